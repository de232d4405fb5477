-- Console sign-in sessions (interlock.server.ui.sessions). The cookie's secret is never stored: only its
-- sha256. A session is bound to the human token it was opened with: revoking or expiring that token
-- ends the session (the lookup joins tokens), and signing out sets revoked_at.
CREATE TABLE IF NOT EXISTS console_sessions (
    secret_sha256 TEXT PRIMARY KEY,
    token_id      TEXT NOT NULL,
    human         TEXT NOT NULL,
    via           TEXT NOT NULL,          -- 'token' or 'proxy' (--trust-proxy-header)
    created_at    TEXT NOT NULL,          -- RFC 3339 UTC, fixed width
    expires_at    TEXT NOT NULL,
    revoked_at    TEXT
);
CREATE INDEX IF NOT EXISTS console_sessions_token ON console_sessions (token_id);
