-- Circuit breakers bound to the log (interlock.guard.breakers): each transition writes guard.breaker_opened or
-- guard.breaker_closed in the transaction that changes the guard_breakers row. The guards fold these entries
-- (an open breaker whose row was closed in the database stays open); these partial indexes hold only them.
CREATE INDEX audit_entries_guard_breaker_opened ON audit_entries(idx) WHERE event = 'guard.breaker_opened';
CREATE INDEX audit_entries_guard_breaker_closed ON audit_entries(idx) WHERE event = 'guard.breaker_closed';
