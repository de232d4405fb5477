-- Rollouts (interlock.rollout): one row per rollout with its durable progress. `version` grows at every
-- write; the runner and humans' commands update compare-and-set on it, so none overwrites the other.
-- Every transition is also an audit entry; this row is what the runner resumes from.
CREATE TABLE IF NOT EXISTS rollouts (
    id             TEXT PRIMARY KEY,
    agent          TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    spec_json      TEXT NOT NULL,
    state_json     TEXT NOT NULL,
    phase          TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    version        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS rollouts_phase ON rollouts (phase, updated_at);

