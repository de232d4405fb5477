-- The transparency log (interlock.audit). Entries are append-only: the triggers stop accidental
-- edits by application code; deliberate tampering is caught by `interlock audit verify`.
CREATE TABLE audit_entries (
    idx         INTEGER PRIMARY KEY,          -- leaf position, 0-based, no gaps
    event       TEXT NOT NULL,
    time        TEXT NOT NULL,                -- RFC 3339 UTC, fixed width
    agent       TEXT,
    environment TEXT,
    risk        TEXT,
    outcome     TEXT,
    action_id   TEXT,
    entry       TEXT NOT NULL,                -- the canonical JSON that was hashed
    leaf_hash   TEXT NOT NULL                 -- hex SHA-256(0x00 || entry)
);
CREATE INDEX audit_entries_time ON audit_entries(time);
CREATE INDEX audit_entries_action ON audit_entries(action_id);
CREATE INDEX audit_entries_agent ON audit_entries(agent, time);

-- Perfect subtree hashes: id = level << 40 | index (see interlock.audit.merkle.node_id).
CREATE TABLE audit_nodes (
    id   INTEGER PRIMARY KEY,
    hash TEXT NOT NULL
);

CREATE TABLE audit_checkpoints (
    tree_size INTEGER PRIMARY KEY,
    root      TEXT NOT NULL,
    time      TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    body      TEXT NOT NULL,                  -- the signed canonical JSON
    signature TEXT NOT NULL                   -- hex Ed25519 signature over body
);

CREATE TRIGGER audit_entries_append_only_update BEFORE UPDATE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;
CREATE TRIGGER audit_entries_append_only_delete BEFORE DELETE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;
