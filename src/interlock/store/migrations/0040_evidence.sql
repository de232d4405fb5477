-- Evidence of rehearsals (interlock.sandbox.evidence): one row per rehearsal Interlock ran on a twin.
-- The row is an index over the `rehearsal.finished` audit entry at `audit_idx` (what `audit verify`
-- proves); the promotion lookup re-reads that entry and refuses a row that disagrees with it.
CREATE TABLE IF NOT EXISTS evidence (
    id               TEXT PRIMARY KEY,      -- the rehearsal's action id
    agent            TEXT NOT NULL,
    body_fingerprint TEXT NOT NULL,         -- sha256 of (agent, kind, payload): the action without where
    twin             TEXT NOT NULL,
    environment      TEXT NOT NULL,
    policy_version   TEXT NOT NULL,
    status           TEXT NOT NULL,
    finished_at      TEXT NOT NULL,         -- RFC 3339 UTC, fixed width
    duration_ms      BIGINT NOT NULL,
    audit_idx        BIGINT NOT NULL,
    summary          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS evidence_lookup ON evidence (agent, body_fingerprint, twin, policy_version, finished_at);
CREATE INDEX IF NOT EXISTS evidence_body ON evidence (body_fingerprint);

-- The evidence an approval request was opened with, shown to its approvers (NULL: none).
ALTER TABLE approval_requests ADD COLUMN evidence_json TEXT;
