-- Console sessions bound to the log (interlock.server.ui.sessions), like tokens (0024, 0026): a session row is
-- written in the transaction of its console.signed_in entry and keeps that entry's index; signing out writes
-- console.signed_out naming the session. The lookup believes a session only when its entry checks out and asks
-- the log (this partial index holds only sign-outs) whether it was signed out: clearing revoked_at in the
-- database does not sign a session back in, and a session row written into the database opens nothing.
ALTER TABLE console_sessions ADD COLUMN entry_idx BIGINT;
CREATE INDEX audit_entries_console_signed_out ON audit_entries(idx) WHERE event = 'console.signed_out';
