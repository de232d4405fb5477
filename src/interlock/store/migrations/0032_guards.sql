-- Guards (interlock.guard): kill-switch freezes, circuit breakers and the counters anomaly detectors
-- read. Counters and breakers are written inside the audit log's own batch transaction (under its
-- lock), so every process and replica counts into the same rows without an extra round trip.
CREATE TABLE IF NOT EXISTS guard_freezes (
    id          TEXT PRIMARY KEY,
    agent       TEXT,
    environment TEXT,
    target      TEXT,
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    thawed_at   TEXT,
    thawed_by   TEXT
);
CREATE INDEX IF NOT EXISTS guard_freezes_active ON guard_freezes (thawed_at);
-- One breaker per agent (target '') and per agent x target; only non-closed ones matter, closed
-- rows are kept so `guards status` can say when it last tripped.
CREATE TABLE IF NOT EXISTS guard_breakers (
    agent      TEXT NOT NULL,
    target     TEXT NOT NULL,
    state      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    opened_at  TEXT NOT NULL,
    successes  INTEGER NOT NULL,
    trips      INTEGER NOT NULL,
    PRIMARY KEY (agent, target)
);
-- Consecutive failures and denials per agent (target '') and per agent x target.
CREATE TABLE IF NOT EXISTS guard_streaks (
    agent    TEXT NOT NULL,
    target   TEXT NOT NULL,
    failures INTEGER NOT NULL,
    denials  INTEGER NOT NULL,
    PRIMARY KEY (agent, target)
);
-- Sliding-window counters in one-second buckets (epoch seconds): calls, failures, destructive
-- proposals, blast radius. Buckets older than the longest window are pruned.
CREATE TABLE IF NOT EXISTS guard_counts (
    agent  TEXT NOT NULL,
    target TEXT NOT NULL,
    metric TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    value  BIGINT NOT NULL,
    PRIMARY KEY (agent, target, metric, bucket)
);
-- Targets an agent has acted on (the first-action detector asks a human before the first).
CREATE TABLE IF NOT EXISTS guard_seen (
    agent    TEXT NOT NULL,
    target   TEXT NOT NULL,
    first_at TEXT NOT NULL,
    PRIMARY KEY (agent, target)
);
