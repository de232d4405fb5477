"""Issue 10.4 and 10.5 (both stores): one signing key per log, never a stray one; a keyring verifies
across key rotation and says which key signed what; proofs at a size carry their checkpoint; a
third party checks an export against a saved witness checkpoint."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interlock.audit import AuditLog, verify
from interlock.audit.checkpoint import ENTRY_KEY_FILE, Signer
from interlock.audit.log import KeyMismatch
from interlock.cli import app
from interlock.store import Store, open_store
from interlock.vocabulary import default_key_dir

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "policy.yaml"
VERIFY_PY = Path(__file__).resolve().parents[1] / "src" / "interlock" / "audit" / "verify.py"
runner = CliRunner()


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PostgreSQL stores keep their default keys under the per-user state folder: a private one here."""
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    monkeypatch.delenv("INTERLOCK_KEY_DIR", raising=False)
    monkeypatch.delenv("INTERLOCK_KEYS", raising=False)
    return home


def _file_store(store_url: str, tmp_path: Path) -> str:
    """A SQLite store given by absolute path, so commands run from elsewhere open the same file."""
    if store_url.startswith("sqlite:///"):
        return f"sqlite:///{Path(store_url.removeprefix('sqlite:///')).resolve()}"
    return store_url


def test_token_create_from_another_directory_signs_nothing_and_verify_passes(
    store_url: str, tmp_path: Path, state_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = _file_store(store_url, tmp_path)
    with open_store(db) as store, AuditLog(store) as server:  # the server: keys derived from the store
        server.append("policy.loaded", {"file": "p.yaml"})
        server.checkpoint()
        signing = server.signer.key_id
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    made = runner.invoke(app, ["token", "create", "--human", "bob", "--db", db, "--policy", str(EXAMPLE)])
    assert made.exit_code == 0, made.output
    assert not (elsewhere / ".interlock").exists()  # no stray key beside the current directory
    with open_store(db) as store, AuditLog(store) as server:  # the server signs what token create appended
        server.checkpoint()
        assert server.signer.key_id == signing
    checked = runner.invoke(app, ["audit", "verify", "--db", db])
    assert checked.exit_code == 0, checked.output
    assert f"key {signing} signed 2 checkpoints" in checked.output
    with open_store(db) as store, store.transaction(readonly=True) as tx:
        assert {r["role"]: r["key_id"] for r in tx.fetchall("SELECT role, key_id FROM audit_keys")}["signing"] == signing


def test_no_command_creates_a_key_for_a_log_bound_to_another(store_url: str, tmp_path: Path,
                                                             state_home: Path) -> None:
    db = _file_store(store_url, tmp_path)
    with open_store(db) as store, AuditLog(store, key_dir=tmp_path / "server-keys") as server:
        server.append("policy.loaded", {"file": "p.yaml"})
        server.checkpoint()
        expected = server.signer.key_id
    stray = tmp_path / "stray-keys"
    made = runner.invoke(app, ["token", "create", "--human", "bob", "--db", db, "--key-dir", str(stray)])
    assert made.exit_code == 2, made.output
    assert expected in made.output and str(stray) in made.output
    assert not stray.exists()  # refused before any key was made
    other = tmp_path / "other-keys"
    Signer.load_or_create(other)
    with open_store(db) as store, pytest.raises(KeyMismatch, match=expected):
        AuditLog(store, key_dir=other)


def test_an_approver_needs_only_the_entry_key(store: Store, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    with AuditLog(store, key_dir=keys) as server:
        server.append("policy.loaded", {"file": "p.yaml"})
        approver_keys = tmp_path / "approver"
        approver_keys.mkdir(mode=0o700)
        (approver_keys / ENTRY_KEY_FILE).write_bytes((keys / ENTRY_KEY_FILE).read_bytes())
        (approver_keys / ENTRY_KEY_FILE).chmod(0o600)
        with AuditLog(store, key_dir=approver_keys, sign=False) as approver:
            approver.append("approval.approved", {"request_id": "apr_1", "principal": "bob", "verdict": "approve"})
            assert not approver.signs
            with pytest.raises(Exception, match="does not sign checkpoints"):
                approver.checkpoint()
        server.checkpoint()
        report = server.verify()
        assert report.ok and report.entries == 2, report.describe()


def test_a_keyring_verifies_across_rotation_and_says_which_key_signed_what(store: Store, tmp_path: Path) -> None:
    old, new = Signer.load_or_create(tmp_path / "old"), Signer.load_or_create(tmp_path / "new")
    with AuditLog(store, key_dir=tmp_path / "old") as log:
        log.append_many([("policy.loaded", {"k": k}) for k in range(6)])
        log.checkpoint()
        log.append_many([("policy.loaded", {"k": k}) for k in range(6, 9)])
        log.checkpoint()
        export = io.StringIO()
        log.export(export)
    lines = export.getvalue().splitlines()
    entries, checkpoints = verify.read_export(lines)
    rotated = [checkpoints[0], new.sign(9, checkpoints[1].root)]  # the key was rotated before size 9
    report = verify.verify_log(entries, rotated, [old.public_key, new.public_key])
    assert report.ok, report.describe()
    assert report.signed_by == {old.key_id: [6], new.key_id: [9]}
    assert f"key {new.key_id} signed 1 checkpoint (tree size 9)" in report.describe()
    alone = verify.verify_log(entries, rotated, old.public_key)
    assert not alone.ok and f"signed by key '{new.key_id}', which is not among the given public keys" in alone.describe()


def test_proofs_at_a_size_carry_the_checkpoint(store: Store, tmp_path: Path) -> None:
    with AuditLog(store, key_dir=tmp_path / "keys", checkpoint_every=10**9, checkpoint_interval_s=3600) as log:
        log.append_many([("policy.loaded", {"k": k}) for k in range(5)])
        log.checkpoint()
        log.append_many([("policy.loaded", {"k": k}) for k in range(5, 12)])
        log.checkpoint()
        log.append_many([("policy.loaded", {"k": k}) for k in range(12, 14)])
        key = log.signer.public_key
        exact, later, none = (log.inclusion_proof(3, size).to_json() for size in (5, 8, 14))
    assert json.loads(exact["checkpoint"]["body"])["tree_size"] == 5 and exact["consistency"] is None
    assert json.loads(later["checkpoint"]["body"])["tree_size"] == 12 and later["consistency"]
    assert verify.verify_proof(exact, key) == [] and verify.verify_proof(later, key) == []
    assert none["checkpoint"] is None
    [problem] = verify.verify_proof(none, key)
    assert "carries no signed checkpoint" in problem
    tampered = {**later, "consistency": later["consistency"][:-1]}
    assert "consistency proof fails" in verify.verify_proof(tampered, key)[0]
    bundle, pem = tmp_path / "proof.json", tmp_path / "key.pem"
    bundle.write_text(json.dumps(none))
    pem.write_bytes((tmp_path / "keys" / "audit-ed25519.pub.pem").read_bytes())
    run = subprocess.run([sys.executable, "-I", str(VERIFY_PY), "--proof", str(bundle), str(pem)],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 1 and "carries no signed checkpoint" in run.stdout and "Traceback" not in run.stderr


def test_verify_py_checks_an_export_against_a_saved_witness(store: Store, tmp_path: Path) -> None:
    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        log.append_many([("policy.loaded", {"k": k}) for k in range(10)])
        witness = tmp_path / "witness.json"
        witness.write_text(json.dumps(log.checkpoint().to_json()))
        log.append_many([("policy.loaded", {"k": k}) for k in range(10, 20)])
        log.checkpoint()
        good = tmp_path / "good.jsonl"
        with good.open("w") as out:
            log.export(out)
    pem = tmp_path / "keys" / "audit-ed25519.pub.pem"

    def check(export: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-I", str(VERIFY_PY), "--witness", str(witness), str(export), str(pem)],
                              capture_output=True, text=True, check=False)

    assert check(good).returncode == 0, check(good).stdout
    rolled_back = tmp_path / "rolled-back.jsonl"  # the log cut back to 6 entries, old checkpoints dropped
    kept = [line for line in good.read_text().splitlines()
            if json.loads(line)["type"] == "header" or json.loads(line).get("index", 99) < 6]
    rolled_back.write_text("\n".join(kept) + "\n")
    run = check(rolled_back)
    assert run.returncode == 1 and "covers 10" in run.stdout, run.stdout
    assert default_key_dir("sqlite:///x/y.db") == Path("x/keys")  # the derived default the CLI uses


def test_verify_py_with_the_entry_key_places_a_renumbering_in_an_export_exactly(store: Store, tmp_path: Path) -> None:
    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        log.append_many([("policy.loaded", {"k": k}) for k in range(10)])
        log.checkpoint()
        export = tmp_path / "audit.jsonl"
        with export.open("w") as out:
            log.export(out)
    lines = export.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    kept = [r for r in records if r.get("index") != 4]  # entry 4 deleted, the rest renumbered
    for r in kept:
        if r["type"] == "entry" and r["index"] > 4:
            r["index"] -= 1
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("".join(json.dumps(r) + "\n" for r in kept))
    pem, key = tmp_path / "keys" / "audit-ed25519.pub.pem", tmp_path / "keys" / ENTRY_KEY_FILE

    def run(*extra: str, export_file: Path = tampered) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-I", str(VERIFY_PY), "--json", *extra, str(export_file), str(pem)],
                              capture_output=True, text=True, check=False)

    assert run("--entry-key", str(key), export_file=export).returncode == 0
    without, with_key = json.loads(run().stdout), json.loads(run("--entry-key", str(key)).stdout)
    assert without["first_bad_index"] == 9  # without MACs: only "entries are missing at the end" is known
    assert with_key["first_bad_index"] == 4 and not with_key["ok"]
