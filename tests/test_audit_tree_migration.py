"""Migration 0003 (issue 18.5): the Merkle nodes move from audit_nodes, keyed level << 40 | index, to
audit_tree, keyed in the order appends create them. An old store migrates to exactly the rows a new one
writes, and its proofs, checkpoints and `audit verify` keep working; a batch's nodes take consecutive ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.audit import AuditLog, merkle, verify
from interlock.store import Store


def _old_id(level: int, index: int) -> int:
    return level << 40 | index  # migration 0002's numbering


def _level_index(node: int) -> tuple[int, int]:
    level = node & ((1 << merkle.LEVEL_BITS) - 1)
    return level, (((node >> merkle.LEVEL_BITS) + 1) >> level) - 1


def _as_before_0003(store: Store) -> None:
    """Put the store's nodes back as a store migrated before 0003 held them."""
    with store.transaction() as tx:
        rows = tx.fetchall("SELECT id, hash FROM audit_tree")
        tx.execute("CREATE TABLE audit_nodes (id BIGINT PRIMARY KEY, hash TEXT NOT NULL)")
        tx.executemany("INSERT INTO audit_nodes(id, hash) VALUES (?, ?)",
                       [(_old_id(*_level_index(int(r["id"]))), r["hash"]) for r in rows])
        tx.execute("DROP TABLE audit_tree")
        tx.execute("DELETE FROM schema_migrations WHERE version = 3")


@pytest.mark.parametrize(("level", "index", "node_id"), [
    (0, 0, 0),            # leaf 0
    (0, 1, 1 << 6),       # leaf 1, then its parent (1, 0): both end at leaf 1
    (1, 0, 1 << 6 | 1),
    (2, 0, 3 << 6 | 2),   # leaves 0..3
    (0, 4, 4 << 6),
    (3, 1, 15 << 6 | 3),  # leaves 8..15
])
def test_node_ids_follow_the_order_appends_create_them(level: int, index: int, node_id: int) -> None:
    assert merkle.node_id(level, index) == node_id
    assert _level_index(node_id) == (level, index)


@pytest.mark.parametrize("size", [1, 9, 40, 200])
def test_a_batch_of_appends_creates_consecutive_node_ids(size: int) -> None:
    leaves = [merkle.leaf_hash(str(i).encode()) for i in range(size)]
    nodes: dict[tuple[int, int], bytes] = {}
    ids = []
    for n, leaf in enumerate(leaves):
        for level, index, digest in merkle.appended_nodes(n, leaf, lambda lv, ix: nodes[(lv, ix)]):
            nodes[(level, index)] = digest
            ids.append(merkle.node_id(level, index))
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 2 * size - bin(size).count("1")


@pytest.mark.parametrize("entries", [0, 1, 2, 7, 8, 100])
def test_an_old_store_migrates_to_the_nodes_a_new_one_writes(store: Store, tmp_path: Path, entries: int) -> None:
    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        log.append_many([("webhook.failed", {"k": k}) for k in range(entries)])
        old = log.checkpoint() if entries else None
        with store.transaction() as tx:
            written = tx.fetchall("SELECT id, hash FROM audit_tree ORDER BY id")
        _as_before_0003(store)
        assert store.migrate() == [3]
        with store.transaction() as tx:
            assert tx.fetchall("SELECT id, hash FROM audit_tree ORDER BY id") == written
        # The migrated log grows, proves and verifies as one that never was migrated.
        log.append_many([("webhook.failed", {"k": k}) for k in range(entries, entries + 5)])
        new = log.checkpoint()
        for index in {0, entries // 2, entries + 4}:
            p = log.inclusion_proof(index)
            assert verify.verify_inclusion(index, new.tree_size, bytes.fromhex(p.leaf_hash),
                                           [bytes.fromhex(h) for h in p.path], new.root)
        if old is not None:
            path = [bytes.fromhex(h) for h in log.consistency_proof(old.tree_size, new.tree_size)]
            assert verify.verify_consistency(old.tree_size, new.tree_size, path, old.root, new.root)
        report = log.verify()
        assert report.ok and report.verified_checkpoints == (2 if old else 1), report.describe()
