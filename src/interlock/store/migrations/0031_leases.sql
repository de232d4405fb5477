-- Leases (interlock.store.lease): one holder per background job across processes and replicas.
-- `fencing` grows by one at every change of holder, so a job that lost its lease can tell.
CREATE TABLE IF NOT EXISTS leases (
    job         TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    fencing     BIGINT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
