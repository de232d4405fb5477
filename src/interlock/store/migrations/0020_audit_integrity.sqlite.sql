-- Issue 10 (interlock.audit): every row the product reads must be inside the Merkle tree.
-- audit_head holds the tree size; an entry is accepted only at exactly that index (so no row with a
-- negative index or beyond the tree can be written by the application), and each insert grows it.
-- mac: HMAC-SHA256 of "index:leaf_hash" under the entry key kept beside the signing key (never in the
-- store), so a well-formed leaf forged by someone with database access alone fails verification.
-- Entries before mac_from were written before entry MACs existed.
CREATE TABLE audit_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    size     INTEGER NOT NULL CHECK (size >= 0),
    mac_from INTEGER NOT NULL CHECK (mac_from >= 0)
);
INSERT INTO audit_head(id, size, mac_from)
    SELECT 1, COALESCE(MAX(idx) + 1, 0), COALESCE(MAX(idx) + 1, 0) FROM audit_entries WHERE idx >= 0;

ALTER TABLE audit_entries ADD COLUMN mac TEXT;

-- The keys this log is bound to (the signing key and the entry key), by id: a process holding
-- another key refuses to write rather than fork the log.
CREATE TABLE audit_keys (
    role       TEXT PRIMARY KEY CHECK (role IN ('signing', 'entry')),
    key_id     TEXT NOT NULL,
    public_key TEXT,
    created_at TEXT NOT NULL
);

CREATE TRIGGER audit_entries_in_tree BEFORE INSERT ON audit_entries
WHEN NEW.idx < 0 OR NEW.idx <> (SELECT size FROM audit_head WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'audit entry index outside the tree: entries are appended at the tree size only');
END;
CREATE TRIGGER audit_entries_grow AFTER INSERT ON audit_entries
BEGIN
    UPDATE audit_head SET size = NEW.idx + 1 WHERE id = 1;
END;
CREATE TRIGGER audit_head_only_grows BEFORE UPDATE ON audit_head
WHEN NEW.size < OLD.size OR NEW.mac_from <> OLD.mac_from OR NEW.id <> OLD.id
BEGIN
    SELECT RAISE(ABORT, 'the audit tree size only grows');
END;
CREATE TRIGGER audit_head_kept BEFORE DELETE ON audit_head
BEGIN
    SELECT RAISE(ABORT, 'the audit tree size only grows');
END;
CREATE TRIGGER audit_keys_kept_update BEFORE UPDATE ON audit_keys
BEGIN
    SELECT RAISE(ABORT, 'the audit log keys are recorded once');
END;
CREATE TRIGGER audit_keys_kept_delete BEFORE DELETE ON audit_keys
BEGIN
    SELECT RAISE(ABORT, 'the audit log keys are recorded once');
END;
