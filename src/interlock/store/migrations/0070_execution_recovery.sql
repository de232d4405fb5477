-- The recovery sweep (interlock.recovery) looks for actions that started on a replica which then died:
-- `execution.started` with no outcome. These partial indexes keep that look to the few such entries
-- instead of the whole log (they hold one row per execution, not per entry).
CREATE INDEX IF NOT EXISTS audit_entries_started ON audit_entries(idx) WHERE event = 'execution.started';
CREATE INDEX IF NOT EXISTS audit_entries_ended ON audit_entries(action_id)
    WHERE event IN ('execution.finished', 'execution.outcome_unknown');
CREATE INDEX IF NOT EXISTS audit_entries_unknown ON audit_entries(idx) WHERE event = 'execution.outcome_unknown';
