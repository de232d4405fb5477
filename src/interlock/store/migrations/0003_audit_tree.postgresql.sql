-- Issue 18.5: the Merkle log's perfect-subtree hashes, ordered as appends create them. audit_nodes keyed a
-- node by level << 40 | index, so the nodes one batch creates sat on one b-tree page per level (~log2(size)
-- pages, a third of the WAL frames a batch wrote). audit_tree keys it by (last leaf covered) << 6 | level
-- (interlock.audit.merkle.node_id): a batch's new nodes take consecutive ids at the table's right edge.
-- A new table rather than new ids in the old one: a process of an older version still running on this
-- store (a replica not yet upgraded) then fails its appends and reads (no audit_nodes: it denies, fail
-- closed) instead of writing nodes under the old numbering into the new one.
-- Locked first: a writer of an older version committing nodes between the copy and the drop would lose them.
LOCK TABLE audit_nodes IN ACCESS EXCLUSIVE MODE;
CREATE TABLE audit_tree (
    id   BIGINT PRIMARY KEY,
    hash TEXT NOT NULL
);
INSERT INTO audit_tree(id, hash)
    SELECT (((((id & 1099511627775) + 1) << (id >> 40)::integer) - 1) << 6) | (id >> 40)::integer, hash
    FROM audit_nodes ORDER BY 1;
DROP TABLE audit_nodes;
