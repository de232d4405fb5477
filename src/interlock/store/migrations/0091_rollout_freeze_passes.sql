-- A rollback past a freeze (interlock.guard.rollback_pass): each use of a human's `rollout abort --under-freeze`
-- writes rollout.freeze_passed; the Gateway asks the log whether a (pass, fingerprint) was used already, so a
-- rollback passes each freeze once. This partial index holds only those entries.
CREATE INDEX audit_entries_rollout_freeze_passed ON audit_entries(idx) WHERE event = 'rollout.freeze_passed';
