-- Core: a small key/value table for store-wide facts (instance id, settings, …).
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
