"""The audit log on both stores: durable appends, group commit from threads and processes,
checkpoints and keys, proofs checked by the standalone verifier, export, CLI, replay."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interlock.audit import AuditError, AuditLog, verify
from interlock.audit.checkpoint import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, Signer, SigningKeyError
from interlock.audit.cli import app
from interlock.fingerprint import canonical_json
from interlock.model import Action, Kind, Rationale
from interlock.store import Store, StoreError, open_store
from interlock.testing import eventually
from tests.conftest import audit_lock_held


@pytest.fixture
def log(store: Store, tmp_path: Path) -> AuditLog:
    with AuditLog(store, key_dir=tmp_path / "keys") as opened:
        yield opened


def test_append_returns_a_durable_receipt(log: AuditLog, store: Store) -> None:
    receipt = log.append("approval.approved", {"request": "r1", "human": "bob"})
    assert receipt.index == 0 and receipt.event == "approval.approved"
    with store.transaction() as tx:
        row = tx.fetchone("SELECT entry, leaf_hash FROM audit_entries WHERE idx = 0")
    assert row is not None
    expected = canonical_json(
        {"event": "approval.approved", "time": receipt.time, "data": {"human": "bob", "request": "r1"}}
    )
    assert row["entry"].encode() == expected
    assert row["leaf_hash"] == receipt.leaf_hash == verify._leaf(expected).hex()


def test_models_enums_and_tuples_are_recorded_as_json(log: AuditLog) -> None:
    action = Action(
        kind=Kind.shell,
        environment="production",
        payload={"command": "ls"},
        rationale=Rationale(intent="look"),
    )
    log.append("action.proposed", {"agent": "kiro", "action": action, "action_id": "a1", "tags": ("x", "y")})
    [row] = log.search(action_id="a1")
    assert row["data"]["action"]["kind"] == "shell" and row["data"]["tags"] == ["x", "y"]
    assert log.search(environment="production")[0]["index"] == row["index"]


@pytest.mark.parametrize(
    ("event", "data", "message"),
    [
        ("Action Proposed", {}, "unknown audit event"),
        ("", {}, "unknown audit event"),
        ("action.decided", {}, "unknown audit event"),  # nothing writes it: not an event
        ("error", {}, "unknown audit event"),
        ("webhook.failed", ["not", "a", "dict"], "JSON object"),
        ("webhook.failed", {"x": float("nan")}, "not JSON"),
        ("webhook.failed", {"x": object()}, "not JSON"),
    ],
)
@pytest.mark.parametrize("door", ["append", "append_async", "append_later", "append_many_async"])
def test_bad_entries_are_refused(log: AuditLog, door: str, event: str, data: object, message: str) -> None:
    """Through every way in (blocking, awaited on a loop, queued without a wait), before anything is queued;
    several awaited at once: a good entry before the bad one is not written either."""
    append = {"append": log.append, "append_later": log.append_later,
              "append_async": lambda e, d: asyncio.run(log.append_async(e, d)),
              "append_many_async": lambda e, d: asyncio.run(
                  log.append_many_async([("webhook.failed", {"fine": True}), (e, d)]))}[door]
    with pytest.raises(AuditError, match=message):
        append(event, data)
    assert log.size() == 0


def test_store_failure_reaches_the_caller(store: Store, tmp_path: Path) -> None:
    log = AuditLog(store, key_dir=tmp_path / "keys")
    store.close()
    with pytest.raises(StoreError):
        log.append("webhook.failed", {"message": "store is gone"})
    log.close()


def test_unmigrated_store_is_refused(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'raw.db'}") as raw, pytest.raises(AuditError, match="migrate"):
        AuditLog(raw, key_dir=tmp_path / "keys")


def test_many_threads_one_valid_tree(log: AuditLog) -> None:
    receipts: list[int] = []
    guard = threading.Lock()

    def worker(n: int) -> None:
        for i in range(40):
            r = log.append("action.proposed", {"action_id": f"{n}-{i}", "outcome": "allow"})
            with guard:
                receipts.append(r.index)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(receipts) == list(range(16 * 40))
    log.checkpoint()
    report = log.verify()
    assert report.ok, report.describe()
    assert report.entries == report.covered == 640


_APPENDER = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from interlock.audit import AuditLog
    from interlock.store import open_store
    url, keys, who = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    store = open_store(url)
    log = AuditLog(store, key_dir=keys, checkpoint_every=50)
    def run(t):
        for i in range(30):
            log.append("execution.started", {"agent": who, "action_id": f"{who}-{t}-{i}"})
    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    log.close()
    store.close()
    """
)


def test_several_processes_append_to_one_valid_tree(store_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    Signer.load_or_create(keys)  # replicas share one key
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _APPENDER, store_url, str(keys), f"p{k}"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(3)
    ]
    for w in workers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
    with open_store(store_url) as store, AuditLog(store, key_dir=keys) as log:
        log.checkpoint()
        report = log.verify()
        assert report.ok, report.describe()
        assert report.entries == 3 * 4 * 30
        assert report.verified_checkpoints == report.checkpoints >= 2
        ids = [r["data"]["action_id"] for r in log.search(event="execution.started", limit=1000)]
        assert len(set(ids)) == 360


def test_checkpoints_on_schedule_and_on_demand(store: Store, tmp_path: Path) -> None:
    with AuditLog(store, key_dir=tmp_path / "keys", checkpoint_every=10) as log:
        for i in range(25):
            log.append("webhook.failed", {"i": i})
        sizes = [c.tree_size for c in log.checkpoints()]
        assert sizes[:2] == [10, 20]
        made = log.checkpoint()
        assert made.tree_size == 25 and log.checkpoint() == made  # idempotent at one size
        assert verify.checkpoint_problem(made, log.signer.public_key) is None
        assert made.fields["key_id"] == log.signer.key_id


def test_idle_log_checkpoints_on_its_interval(store: Store, tmp_path: Path) -> None:
    with AuditLog(store, key_dir=tmp_path / "keys", checkpoint_every=1000, checkpoint_interval_s=0.2) as log:
        log.append("webhook.failed", {"i": 1})
        log.append("webhook.failed", {"i": 2})
        checkpoints = eventually(log.checkpoints, timeout=10, what="a checkpoint made on the interval")
        assert [c.tree_size for c in checkpoints][-1] == 2


def test_key_is_created_private_and_public_key_exported(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    signer = Signer.load_or_create(keys)
    assert stat.S_IMODE((keys / PRIVATE_KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    exported = verify.load_public_key((keys / PUBLIC_KEY_FILE).read_bytes())
    assert verify.key_id(exported) == signer.key_id == Signer.load_or_create(keys).key_id


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    Signer.load_or_create(keys)
    os.chmod(keys / PRIVATE_KEY_FILE, 0o644)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        Signer.load_or_create(keys)


def test_proofs_verify_with_the_standalone_verifier(log: AuditLog) -> None:
    for i in range(13):
        log.append("webhook.failed", {"i": i})
    old = log.checkpoint()
    for i in range(13, 40):
        log.append("webhook.failed", {"i": i})
    new = log.checkpoint()
    for index in (0, 7, 12, 13, 39):
        p = log.inclusion_proof(index)
        assert p.tree_size == 40 and p.checkpoint == new
        assert verify.verify_inclusion(
            index, 40, bytes.fromhex(p.leaf_hash), [bytes.fromhex(h) for h in p.path], new.root
        )
        assert verify._leaf(p.entry.encode()).hex() == p.leaf_hash
    path = [bytes.fromhex(h) for h in log.consistency_proof(13, 40)]
    assert verify.verify_consistency(13, 40, path, old.root, new.root)
    assert not verify.verify_consistency(13, 40, path, new.root, new.root)
    with pytest.raises(AuditError, match="not in a tree"):
        log.inclusion_proof(40, 40)


def test_export_verifies_standalone(log: AuditLog, tmp_path: Path) -> None:
    for i in range(30):
        log.append("webhook.failed", {"i": i})
        if i % 9 == 0:
            log.checkpoint()
    log.checkpoint()
    export = tmp_path / "export.jsonl"
    with export.open("w") as out:
        assert log.export(out) == 30
    pub = tmp_path / "pub.pem"
    pub.write_bytes(log.signer.public_pem())
    script = Path(verify.__file__)
    run = subprocess.run(
        [sys.executable, "-I", str(script), str(export), str(pub)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("OK: 30 entries")
    other = tmp_path / "other.pem"
    other.write_bytes(Signer.load_or_create(tmp_path / "other").public_pem())
    run = subprocess.run(
        [sys.executable, "-I", str(script), str(export), str(other)], capture_output=True, text=True
    )
    assert run.returncode == 1 and "not among the given public keys" in run.stdout


def test_standalone_verifier_imports_nothing_from_interlock() -> None:
    source = Path(verify.__file__).read_text()
    assert "interlock" not in "\n".join(line for line in source.splitlines() if "import" in line)


# --- CLI ----------------------------------------------------------------------------------------


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_cli_round_trip(store_url: str, tmp_path: Path) -> None:
    keys = str(tmp_path / "keys")
    with open_store(store_url) as store, AuditLog(store, key_dir=Path(keys)) as log:
        log.append(
            "action.proposed",
            {
                "action_id": "a1",
                "agent": "kiro",
                "action": {"kind": "sql", "environment": "production", "payload": {"sql": "DELETE FROM t"}},
            },
        )
        log.append(
            "action.proposed",
            {"action_id": "a1", "agent": "kiro", "decision": {"outcome": "deny", "risk": "destructive"}},
        )
        log.append(
            "action.proposed",
            {
                "action_id": "a2",
                "agent": "ada",
                "action": {"kind": "shell", "environment": "staging", "payload": {"command": "ls"}},
            },
        )
    common = ["--db", store_url, "--key-dir", keys]
    code, saved = _cli("checkpoint", *common)
    assert code == 0 and json.loads(saved)["signature"]
    witness = tmp_path / "witness.json"
    witness.write_text(saved)
    # `verify --since FILE` is now `--witness FILE` (`--since` means a time everywhere; the old
    # spelling still works with a warning on stderr: tests/test_options.py)
    code, out = _cli("verify", *common, "--witness", str(witness), "--format", "json")
    assert code == 0, out
    assert json.loads(out)["ok"] is True
    code, out = _cli("show", *common, "--agent", "kiro")
    assert code == 0 and "DELETE FROM t" in out and "ls" not in out.split("DELETE")[0][-5:]
    code, out = _cli("show", *common, "--risk", "destructive", "--format", "json")
    assert [r["event"] for r in json.loads(out)] == ["action.proposed"]
    code, out = _cli("show", *common, "--text", "delete from", "--format", "json")
    assert [r["index"] for r in json.loads(out)] == [0]
    code, out = _cli("show", *common, "--action", "a1")
    assert code == 0 and "action.proposed" in out and "action.proposed" in out and "→ deny" in out
    code, out = _cli("show", *common, "--since", "1h", "--env", "staging", "--format", "json")
    assert [r["data"]["action_id"] for r in json.loads(out)] == ["a2"]
    code, out = _cli("proof", "1", *common)
    assert code == 0 and json.loads(out)["tree_size"] == 3
    code, out = _cli("pubkey", "--key-dir", keys)
    assert code == 0 and out.startswith("-----BEGIN PUBLIC KEY-----")
    export = tmp_path / "e.jsonl"
    code, _ = _cli("export", *common, "--out", str(export))
    assert code == 0 and len(export.read_text().splitlines()) == 1 + 3 + 1


def test_cli_verify_without_a_database_is_a_usage_error(tmp_path: Path) -> None:
    code, out = _cli("verify", "--db", f"sqlite:///{tmp_path / 'none.db'}", "--key-dir", str(tmp_path))
    assert code == 2 and "no audit database" in out


def test_append_fails_closed_when_the_log_is_held(store_url: str, tmp_path: Path) -> None:
    """Another process holding the audit lock (or SQLite's write lock) past the timeout: the
    caller gets StoreUnavailable instead of waiting forever; the entry lands once it is free."""
    with audit_lock_held(store_url) as let_go, open_store(store_url) as store, \
            AuditLog(store, key_dir=tmp_path / "keys", append_timeout_s=0.5) as log:
        try:
            with pytest.raises(StoreError, match="not durable within"):
                log.append("webhook.failed", {"message": "held"})
        finally:
            let_go()
        log.append("webhook.failed", {"message": "after"})
        log.checkpoint()
        report = log.verify()
        assert report.ok and report.entries == 2, report.describe()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda b: b, None),
        (lambda b: {**b, "entry": b["entry"].replace("}", " }", 1)}, "does not hash"),
        (lambda b: {**b, "index": (b["index"] + 1) % b["tree_size"]}, "not in the checkpointed tree"),
        (lambda b: {**b, "path": b["path"][:-1]}, "not in the checkpointed tree"),
        (lambda b: {**b, "checkpoint": {**b["checkpoint"], "signature": "00" * 64}}, "signature"),
        (lambda b: {**b, "tree_size": b["tree_size"] - 1}, "tree size"),
    ],
)
def test_proof_bundles_check_standalone(log: AuditLog, change: object, problem: str | None) -> None:
    log.append_many([("webhook.failed", {"k": k}) for k in range(11)])
    bundle = json.loads(json.dumps(log.inclusion_proof(6).to_json()))
    problems = verify.verify_proof(change(bundle), log.signer.public_key)  # type: ignore[operator]
    if problem is None:
        assert problems == []
    else:
        assert problems and problem in problems[0]


def test_append_many_is_all_or_nothing_on_bad_input(log: AuditLog) -> None:
    with pytest.raises(AuditError):
        log.append_many([("webhook.failed", {"k": 1}), ("webhook.failed", {"k": float("inf")}), ("webhook.failed", {"k": 3})])
    assert log.size() == 0
    assert [r.index for r in log.append_many([("webhook.failed", {"k": k}) for k in range(3)])] == [0, 1, 2]


def test_append_many_in_writes_entries_in_order_inside_the_callers_transaction(log: AuditLog, store: Store) -> None:
    log.append("webhook.failed", {"k": "before"})  # the group-commit writer and the caller share one tree
    with store.transaction() as tx:
        receipts = log.append_many_in(tx, [("webhook.failed", {"k": k}) for k in range(5)])
        assert log.append_many_in(tx, []) == []
    log.append("webhook.failed", {"k": "after"})
    assert [r.index for r in receipts] == [1, 2, 3, 4, 5]
    assert [json.loads(e["entry"])["data"]["k"] for e in log.iter_entries()] == ["before", 0, 1, 2, 3, 4, "after"]
    log.checkpoint()
    report = log.verify()
    assert report.ok and report.entries == 7, report.problems
    proof = log.inclusion_proof(3)
    assert proof.leaf_hash == receipts[2].leaf_hash


@pytest.mark.parametrize("writes", [
    # w: the writer thread (append), t: append_many_in committed, r: append_many_in rolled back,
    # o: another process's log on the same store. append_many_in reuses the frontier this process last
    # committed when nobody appended since, and moves it past its own entries only once they commit.
    "wttw", "wtrtw", "wrrtw", "wotw", "totto", "wtowtw", "trt", "wrotw", "trow",
])
def test_append_many_in_and_the_writer_build_one_tree_whoever_appends_between(
        log: AuditLog, store: Store, tmp_path: Path, writes: str) -> None:
    expected: list[str] = []
    with AuditLog(store, key_dir=tmp_path / "keys") as other:
        for n, who in enumerate(writes):
            item = [("webhook.failed", {"k": f"{who}{n}"})]
            if who == "w":
                log.append_many(item)
            elif who == "o":
                other.append_many(item)
            elif who == "t":
                with store.transaction() as tx:
                    log.append_many_in(tx, item)
            else:
                with pytest.raises(RuntimeError), store.transaction() as tx:
                    log.append_many_in(tx, item)
                    raise RuntimeError("the caller's write failed")
                continue
            expected.append(f"{who}{n}")
    log.append("webhook.failed", {"k": "last"})
    assert [json.loads(e["entry"])["data"]["k"] for e in log.iter_entries()] == [*expected, "last"]
    log.checkpoint()
    report = log.verify()
    assert report.ok and report.entries == len(expected) + 1, report.problems


def test_append_many_in_rolls_back_with_the_callers_transaction(log: AuditLog, store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as tx:
        log.append_many_in(tx, [("webhook.failed", {"k": 1}), ("webhook.failed", {"k": 2})])
        raise RuntimeError("the caller's own write failed")
    with pytest.raises(AuditError), store.transaction() as tx:
        log.append_many_in(tx, [("webhook.failed", {"k": 1}), ("no.such.event", {"k": 2})])
    assert log.size() == 0 and log.append("webhook.failed", {"k": 3}).index == 0
