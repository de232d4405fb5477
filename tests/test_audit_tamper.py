"""Hypothesis-driven tampering on both stores: change a byte, delete, reorder, insert, truncate,
swap checkpoints, forge a signature. Verification (in the store and of an export, by the
standalone verifier) fails and names the place every time; untampered logs always verify.

The attacker here has the database owner's rights: it drops the append-only triggers first."""

from __future__ import annotations

import io
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.audit import AuditLog, verify
from interlock.audit.checkpoint import Signer
from interlock.store import Store

OPS = [
    "byte",
    "byte_and_hash",
    "delete",
    "reorder",
    "insert",
    "truncate",
    "swap_checkpoints",
    "forge_signature",
    "forge_root",
    "other_key",
    "outside_negative",
    "outside_far",
    "side_column",
    "side_column_and_entry",
    "renumber",
    "forged_leaf",
]
#: Tampering that leaves the tree itself intact: an export (which carries only the tree) verifies.
TREE_INTACT = {"outside_negative", "outside_far", "side_column"}


def _attacker(store: Store) -> None:
    with store.transaction() as tx:
        if store.dialect == "sqlite":
            for trigger in ("audit_entries_append_only_update", "audit_entries_append_only_delete",
                            "audit_entries_in_tree", "audit_head_only_grows",
                            "audit_head_kept"):
                tx.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        else:
            tx.execute("DROP TRIGGER IF EXISTS audit_entries_append_only ON audit_entries")
            tx.execute("DROP TRIGGER IF EXISTS audit_head_only_grows ON audit_head")
            tx.execute("ALTER TABLE audit_entries DROP CONSTRAINT IF EXISTS audit_entries_idx_not_negative")


def _reset(store: Store) -> None:
    """Empty the log between examples (the attacker has dropped the guards; the grow trigger stays
    on PostgreSQL, where it also enforces the index, so it is dropped only around the tampering)."""
    with store.transaction() as tx:
        for table in ("audit_entries", "audit_tree", "audit_checkpoints"):
            tx.execute(f"DELETE FROM {table}")
        tx.execute("UPDATE audit_head SET size = 0, mac_from = 0")
        if store.dialect == "postgresql":
            tx.execute(
                "CREATE OR REPLACE TRIGGER audit_entries_in_tree AFTER INSERT ON audit_entries "
                "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_in_tree_batch()"
            )
        else:
            tx.execute(
                "CREATE TRIGGER IF NOT EXISTS audit_entries_grow AFTER INSERT ON audit_entries "
                "BEGIN UPDATE audit_head SET size = NEW.idx + 1 WHERE id = 1; END"
            )


def _unguarded(tx: object, store: Store) -> None:
    """Drop the insert guards too: the attacker writes rows wherever it likes."""
    if store.dialect == "postgresql":
        tx.execute("DROP TRIGGER IF EXISTS audit_entries_in_tree ON audit_entries")  # type: ignore[attr-defined]
    else:
        tx.execute("DROP TRIGGER IF EXISTS audit_entries_grow")  # type: ignore[attr-defined]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, list[int], str, int, int, int]:
    n = draw(st.integers(min_value=2, max_value=40))
    sizes = sorted(set(draw(st.lists(st.integers(min_value=1, max_value=n - 1), max_size=4))) | {n})
    op = draw(st.sampled_from(OPS))
    i = draw(st.integers(min_value=0, max_value=n - 1))
    j = draw(st.integers(min_value=0, max_value=n - 1).filter(lambda x: x != i))
    salt = draw(st.integers(min_value=0, max_value=10**6))
    return n, sizes, op, i, j, salt


def _build(log: AuditLog, n: int, sizes: list[int]) -> None:
    done = 0
    for size in sizes:
        log.append_many(
            [
                ("action.proposed", {"action_id": f"a{k}", "outcome": "allow", "k": k})
                for k in range(done, size)
            ]
        )
        log.checkpoint()
        done = size


def _entry(tx: object, i: int) -> dict[str, object]:
    row = tx.fetchone("SELECT * FROM audit_entries WHERE idx = ?", (i,))  # type: ignore[attr-defined]
    assert row is not None
    return dict(row)


def _tamper(
    store: Store, op: str, n: int, i: int, j: int, salt: int, other: Signer
) -> tuple[int | None, str]:
    """Apply one tampering; returns (the entry index it touched or None, the checkpoint text it names)."""
    with store.transaction() as tx:
        _unguarded(tx, store)
        if op in ("outside_negative", "outside_far"):
            row = _entry(tx, i)
            index = -1 - salt if op == "outside_negative" else 2**50 + salt
            tx.execute(
                "INSERT INTO audit_entries(idx, event, time, agent, environment, risk, outcome, action_id, "
                "entry, leaf_hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (index, row["event"], row["time"], row["agent"], row["environment"], row["risk"],
                 "deny", row["action_id"], row["entry"].replace('"allow"', '"deny"'), row["leaf_hash"], row["mac"]),
            )
            return index, ""
        if op == "side_column":
            tx.execute("UPDATE audit_entries SET outcome = 'deny' WHERE idx = ?", (i,))
            return i, ""
        if op == "side_column_and_entry":
            entry = str(_entry(tx, i)["entry"]).replace('"allow"', '"deny"')
            tx.execute(
                "UPDATE audit_entries SET outcome = 'deny', entry = ?, leaf_hash = ? WHERE idx = ?",
                (entry, verify._leaf(entry.encode()).hex(), i),
            )
            return i, ""
        if op == "renumber":  # delete entry i, close the gap and shrink the tree size to match
            tx.execute("DELETE FROM audit_entries WHERE idx = ?", (i,))
            tx.execute("UPDATE audit_entries SET idx = idx + 1000000 WHERE idx > ?", (i,))
            tx.execute("UPDATE audit_entries SET idx = idx - 1000001 WHERE idx >= 1000000")
            tx.execute("UPDATE audit_head SET size = ?", (n - 1,))
            return i, ""
        if op == "forged_leaf":  # a well-formed entry appended at the end, without the entry key
            forged = '{"data":{"forged":true},"event":"approval.approved","time":"2026-01-01T00:00:00.000000Z"}'
            tx.execute(
                "INSERT INTO audit_entries(idx, event, time, entry, leaf_hash) VALUES (?, ?, ?, ?, ?)",
                (n, "approval.approved", "2026-01-01T00:00:00.000000Z", forged, verify._leaf(forged.encode()).hex()),
            )
            tx.execute("UPDATE audit_head SET size = ?", (n + 1,))
            return n, ""
        if op in ("byte", "byte_and_hash"):
            entry = _entry(tx, i)["entry"]
            assert isinstance(entry, str)
            position = salt % len(entry)
            changed = entry[:position] + ("x" if entry[position] != "x" else "y") + entry[position + 1 :]
            if op == "byte":
                tx.execute("UPDATE audit_entries SET entry = ? WHERE idx = ?", (changed, i))
            else:
                leaf = verify._leaf(changed.encode()).hex()
                tx.execute(
                    "UPDATE audit_entries SET entry = ?, leaf_hash = ? WHERE idx = ?", (changed, leaf, i)
                )
            return i, ""
        if op == "delete":
            tx.execute("DELETE FROM audit_entries WHERE idx = ?", (i,))
            return i, ""
        if op == "reorder":
            a, b = _entry(tx, i), _entry(tx, j)
            for target, source in ((i, b), (j, a)):
                tx.execute(
                    "UPDATE audit_entries SET entry = ?, leaf_hash = ? WHERE idx = ?",
                    (source["entry"], source["leaf_hash"], target),
                )
            return min(i, j), ""
        if op == "insert":
            tx.execute("UPDATE audit_entries SET idx = idx + 1000000 WHERE idx >= ?", (i,))
            tx.execute("UPDATE audit_entries SET idx = idx - 999999 WHERE idx >= 1000000")
            forged = '{"data":{"forged":true},"event":"webhook.failed","time":"2026-01-01T00:00:00.000000Z"}'
            tx.execute(
                "INSERT INTO audit_entries(idx, event, time, entry, leaf_hash) VALUES (?, ?, ?, ?, ?)",
                (i, "error", "2026-01-01T00:00:00.000000Z", forged, verify._leaf(forged.encode()).hex()),
            )
            return i, ""
        if op == "truncate":
            tx.execute("DELETE FROM audit_entries WHERE idx >= ?", (i,))
            return i, ""
        rows = tx.fetchall("SELECT tree_size, body, signature FROM audit_checkpoints ORDER BY tree_size")
        first, last = rows[0], rows[-1]
        if op == "swap_checkpoints" and len(rows) >= 2:
            tx.execute(
                "UPDATE audit_checkpoints SET signature = ? WHERE tree_size = ?",
                (last["signature"], first["tree_size"]),
            )
            tx.execute(
                "UPDATE audit_checkpoints SET signature = ? WHERE tree_size = ?",
                (first["signature"], last["tree_size"]),
            )
            return None, f"tree size {first['tree_size']}"
        target = rows[salt % len(rows)]
        where = f"tree size {target['tree_size']}"
        if op in ("forge_signature", "swap_checkpoints"):
            signature = target["signature"]
            flipped = signature[:10] + ("0" if signature[10] != "0" else "1") + signature[11:]
            tx.execute(
                "UPDATE audit_checkpoints SET signature = ? WHERE tree_size = ?",
                (flipped, target["tree_size"]),
            )
        elif op == "forge_root":
            fields = json.loads(target["body"])
            fields["root"] = "ab" * 32
            body = json.dumps(fields, separators=(",", ":"), sort_keys=True)
            tx.execute(
                "UPDATE audit_checkpoints SET body = ? WHERE tree_size = ?", (body, target["tree_size"])
            )
        else:  # other_key: a well-formed checkpoint signed by someone else's key
            fields = json.loads(target["body"])
            forged = other.sign(fields["tree_size"], bytes.fromhex(fields["root"]), fields["time"])
            tx.execute(
                "UPDATE audit_checkpoints SET body = ?, signature = ? WHERE tree_size = ?",
                (forged.body, forged.signature, target["tree_size"]),
            )
        return None, where


def _names_the_place(
    report: verify.Report, index: int | None, where: str, op: str, *, in_store: bool = True
) -> bool:
    if index is None:
        return any(where in p.where for p in report.problems)
    first = report.first_bad_index
    if first is None or first > index:
        return False
    # In the store, MACs and side columns pin these to the entry; an export carries neither.
    exact = ("byte", "delete", "outside_negative", "outside_far", "side_column", "renumber", "forged_leaf")
    if op in (exact if in_store else ("byte", "delete")):
        return any(p.exact and p.index == index for p in report.problems)
    return any(
        p.index is not None and p.until is not None and p.index <= index < p.until for p in report.problems
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_tampering_is_found_and_located(store: Store, tmp_path: Path, scenario: tuple) -> None:  # type: ignore[type-arg]
    n, sizes, op, i, j, salt = scenario
    _attacker(store)
    _reset(store)
    keys, other = tmp_path / "keys", Signer.load_or_create(tmp_path / "other-keys")
    with AuditLog(store, key_dir=keys, checkpoint_every=10**9, checkpoint_interval_s=3600) as log:
        _build(log, n, sizes)
        clean = log.verify()
        assert clean.ok and clean.entries == n and clean.verified_checkpoints == len(sizes), clean.describe()
        index, where = _tamper(store, op, n, i, j, salt, other)
        report = log.verify()
        assert not report.ok, f"{op} at {i} went unnoticed"
        assert _names_the_place(report, index, where, op), f"{op} at {index} {where}: {report.describe()}"
        if op in TREE_INTACT or op == "forged_leaf":
            # The export carries only the tree; a leaf forged at the end is not under a checkpoint
            # (the signer refuses to sign it), so the export only shows it as not yet covered.
            assert log.verify().problems  # still flagged in the store
            return
        export = io.StringIO()
        log.export(export)
        exported = verify.verify_export(export.getvalue().splitlines(), log.signer.public_key)
        assert not exported.ok, f"{op} at {i} went unnoticed in the export"
        if op == "renumber":
            # Without entry MACs (an export carries none) a renumbered log looks cut off at the end
            # unless a checkpoint falls between the deletion and the end; the store's verify is exact.
            continue_check = any(p.index is not None for p in exported.problems)
            assert continue_check, exported.describe()
            return
        assert _names_the_place(exported, index, where, op, in_store=False), f"export {op}: {exported.describe()}"


def test_a_forked_history_fails_the_since_check(store: Store, tmp_path: Path) -> None:
    """An old checkpoint saved by a witness exposes history rewritten and re-signed with the real key."""
    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        log.append_many([("webhook.failed", {"k": k}) for k in range(10)])
        witness = log.checkpoint()
        log.append_many([("webhook.failed", {"k": k}) for k in range(10, 20)])
        latest = log.checkpoint()
        good = [bytes.fromhex(p) for p in log.consistency_proof(10, 20)]
        assert verify.verify_consistency(10, 20, good, witness.root, latest.root)
        _attacker(store)
        with store.transaction() as tx:  # rewrite entry 3 and every hash above it, then re-sign
            tx.execute("DELETE FROM audit_checkpoints")
            tx.execute("DELETE FROM audit_tree")
            rows = tx.fetchall("SELECT idx, entry FROM audit_entries ORDER BY idx")
            tx.execute("DELETE FROM audit_entries")
            tx.execute("UPDATE audit_head SET size = 0")
        rewritten = [json.loads(r["entry"])["data"] for r in rows]
        rewritten[3] = {"k": "nothing happened here"}
        log.append_many([("webhook.failed", data) for data in rewritten])
        forged = log.checkpoint()
        assert log.verify().ok  # internally consistent: only a witness can tell
        proof = [bytes.fromhex(p) for p in log.consistency_proof(10, 20)]
        assert not verify.verify_consistency(10, 20, proof, witness.root, forged.root)
