-- Signing key rotation (issue 11.5 with 10.4; docs/deploy.md "Signing key rotation"). One row per
-- rotation, written in the same transaction as the audit.key_rotated entry at entry_idx and the last
-- checkpoint the old key signed (tree size from_size, which covers that entry). The key the log is
-- bound to is the newest row's key_id, else audit_keys' signing row; `audit verify` checks each row
-- against its entry and each checkpoint's key against the key in force at its size.
-- (Number 0090: outside every helper's range; the integrity range is another engineer's.)
CREATE TABLE audit_key_rotations (
    entry_idx  BIGINT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role = 'signing'),
    old_key_id TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    public_key TEXT NOT NULL,
    from_size  BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
