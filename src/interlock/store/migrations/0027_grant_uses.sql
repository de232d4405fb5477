-- Issue 10 follow-up (interlock.gate): a used grant cannot be made unused in the database. Besides the row's
-- consumed_at, the gate asks the log whether a grant.consumed entry names the grant before it honours it;
-- this partial index holds only those entries, so appends of every other event pay nothing.
CREATE INDEX audit_entries_grant_consumed ON audit_entries(idx) WHERE event = 'grant.consumed';
-- Freezes (interlock.guard) are compared with their guard.frozen / guard.thawed entries by `audit verify`: a
-- freeze deleted or thawed in the database, or its scope narrowed, is named there.
CREATE INDEX audit_entries_guard_frozen ON audit_entries(idx) WHERE event = 'guard.frozen';
CREATE INDEX audit_entries_guard_thawed ON audit_entries(idx) WHERE event = 'guard.thawed';
