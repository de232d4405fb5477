-- Issue 10.2 (interlock.gate): each vote and grant is bound to the audit entry that recorded it, written
-- in the same transaction. The gate counts a vote, and honours a grant, only when that entry is in the
-- tree, authenticated and says the same; `audit verify` checks every row the same way.
ALTER TABLE approval_votes ADD COLUMN entry_idx BIGINT;
ALTER TABLE grants ADD COLUMN issued_idx BIGINT;
ALTER TABLE grants ADD COLUMN consumed_idx BIGINT;
