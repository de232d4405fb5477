-- Approval requests, the humans' votes on them, and the single-use grants they yield (interlock.gate).
-- Times are RFC 3339 UTC text with a fixed width, so text comparison is time comparison.
CREATE TABLE IF NOT EXISTS approval_requests (
    id                  TEXT PRIMARY KEY,
    agent               TEXT NOT NULL,
    owner               TEXT NOT NULL,
    fingerprint         TEXT NOT NULL,
    policy_version      TEXT NOT NULL,
    action_json         TEXT NOT NULL,
    classification_json TEXT NOT NULL,
    rules_json          TEXT NOT NULL,
    requirements_json   TEXT NOT NULL,
    eligible_json       TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN
                            ('pending', 'approved', 'denied', 'expired', 'invalidated', 'consumed')),
    state_reason        TEXT NOT NULL DEFAULT '',
    created_at          TEXT NOT NULL,
    expires_at          TEXT NOT NULL,
    decided_at          TEXT,
    -- The fingerprint while pending, NULL afterwards: at most one pending request per action.
    pending_key         TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS approval_requests_state ON approval_requests (state, expires_at);
CREATE INDEX IF NOT EXISTS approval_requests_fingerprint ON approval_requests (fingerprint);

CREATE TABLE IF NOT EXISTS approval_votes (
    request_id  TEXT NOT NULL REFERENCES approval_requests (id),
    human       TEXT NOT NULL,
    token_id    TEXT NOT NULL,
    verdict     TEXT NOT NULL CHECK (verdict IN ('approve', 'deny')),
    reason      TEXT NOT NULL DEFAULT '',
    at          TEXT NOT NULL,
    -- One human, one vote: approving twice counts once.
    PRIMARY KEY (request_id, human)
);

CREATE TABLE IF NOT EXISTS grants (
    id             TEXT PRIMARY KEY,
    request_id     TEXT NOT NULL UNIQUE REFERENCES approval_requests (id),
    agent          TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    consumed_at    TEXT,
    consumed_by    TEXT
);
CREATE INDEX IF NOT EXISTS grants_fingerprint ON grants (fingerprint);
