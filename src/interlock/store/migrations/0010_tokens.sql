-- Tokens (interlock.identity): only the sha256 of each secret is kept; the secret is shown once.
CREATE TABLE IF NOT EXISTS tokens (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('agent', 'human')),
    name          TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    revoked_at    TEXT
);
CREATE INDEX IF NOT EXISTS tokens_name ON tokens (kind, name);
