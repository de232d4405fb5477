-- Issue 10 follow-up (interlock.identity): a revocation is bound to the log, not only a column. `revoke`
-- writes token.revoked in the transaction that sets revoked_at, and the row keeps that entry's index.
-- Authentication also looks the token up among the log's token.revoked entries (this partial index holds
-- only those, so appends of every other event pay nothing): clearing revoked_at in the database does not
-- bring a revoked token back, and `audit verify` names the row.
ALTER TABLE tokens ADD COLUMN revoked_idx BIGINT;
CREATE INDEX audit_entries_token_revoked ON audit_entries(idx) WHERE event = 'token.revoked';
