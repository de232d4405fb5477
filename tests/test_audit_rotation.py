"""Signing key rotation (issue 11.5 with 10.4), both stores: `interlock audit rotate-key` as
docs/deploy.md section 8 tells it, verification across the rotation with the default keyring, a
stray key directory still refused, a process keeping the retired key never signs again, an
interrupted rotation finished by running the command again, and a tampered rotation row named."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interlock.audit import AuditLog
from interlock.audit.checkpoint import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, Signer
from interlock.audit.log import KeyMismatch
from interlock.audit.rotation import NEXT_KEY_FILE, _prepared, rotate_key
from interlock.cli import app
from interlock.store import open_store

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    for name in ("INTERLOCK_KEY_DIR", "INTERLOCK_KEYS", "INTERLOCK_DB"):
        monkeypatch.delenv(name, raising=False)


def _log_with_history(db: str, keys: Path, checkpoints: int = 2) -> str:
    """A log with entries and `checkpoints` checkpoints, written as the server writes it; its key id."""
    with open_store(db) as store, AuditLog(store, key_dir=keys) as server:
        for n in range(checkpoints):
            server.append_many([("policy.loaded", {"file": f"p{n}-{i}.yaml"}) for i in range(3)])
            server.checkpoint()
        return server.signer.key_id


def _cli(*args: str) -> tuple[int, str]:
    done = runner.invoke(app, list(args))
    return done.exit_code, done.output


def test_rotation_as_documented_verifies_across_it(store_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    old = _log_with_history(store_url, keys)

    code, out = _cli("audit", "rotate-key", "--db", store_url, "--key-dir", str(keys), "--format", "json")
    assert code == 0, out
    done = json.loads(out)
    new = done["new_key_id"]
    assert done["old_key_id"] == old and new != old
    assert Signer.load_or_create(keys).key_id == new
    assert stat.S_IMODE((keys / PRIVATE_KEY_FILE).stat().st_mode) == 0o600
    assert not (keys / NEXT_KEY_FILE).exists()
    assert (keys / "retired" / f"{old}.pub.pem").read_bytes() != (keys / PUBLIC_KEY_FILE).read_bytes()

    # The server starts with the rotated directory, appends and signs with the new key.
    with open_store(store_url) as store, AuditLog(store, key_dir=keys) as server:
        server.append("policy.loaded", {"file": "after.yaml"})
        after = server.checkpoint()
        rotated = server.search(event="audit.key_rotated")
    assert after.fields["key_id"] == new
    assert [r["data"]["old_key_id"] for r in rotated] == [old]
    assert rotated[0]["data"]["new_key_id"] == new
    assert done["final_checkpoint"] is not None
    assert json.loads(done["final_checkpoint"]["body"])["tree_size"] == rotated[0]["index"] + 1

    # Default keyring: the log's key and retired/*.pub.pem.
    code, out = _cli("audit", "verify", "--db", store_url, "--key-dir", str(keys))
    assert code == 0, out
    assert f"key {old} signed 3 checkpoints" in out and f"key {new} signed 1 checkpoint" in out
    # An explicit keyring works the same; the new key alone does not verify the old checkpoints.
    both = ["--public-key", str(keys / "retired" / f"{old}.pub.pem"), "--public-key", str(keys / PUBLIC_KEY_FILE)]
    assert _cli("audit", "verify", "--db", store_url, "--key-dir", str(keys), *both)[0] == 0
    code, out = _cli("audit", "verify", "--db", store_url, "--key-dir", str(keys),
                     "--public-key", str(keys / PUBLIC_KEY_FILE))
    assert code == 1 and old in out

    # A stray new key directory is still refused, by the library and by a command.
    with open_store(store_url) as store, pytest.raises(KeyMismatch, match=new):
        AuditLog(store, key_dir=tmp_path / "stray")
    code, out = _cli("token", "create", "--human", "bob", "--db", store_url, "--key-dir", str(tmp_path / "stray2"))
    assert code == 2 and new in out
    # And the old key directory (a backup restored by mistake) is refused too.
    with open_store(store_url) as store, pytest.raises(KeyMismatch, match=new):
        AuditLog(store, key_dir=_old_copy(tmp_path, keys, old))


def _old_copy(tmp_path: Path, keys: Path, old: str) -> Path:
    """A key directory holding a private key other than the one in force (stands in for a backup)."""
    copy = tmp_path / f"copy-{old}"
    copy.mkdir(mode=0o700)
    other = Signer.load_or_create(copy)
    assert other.key_id != old
    (copy / "audit-entry.key").write_bytes((keys / "audit-entry.key").read_bytes())
    (copy / "audit-entry.key").chmod(0o600)
    return copy


def test_a_process_keeping_the_retired_key_never_signs_again(store_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    old = _log_with_history(store_url, keys, checkpoints=1)
    with open_store(store_url) as store, AuditLog(store, key_dir=keys) as stale:
        stale.auto_checkpoint = False
        with open_store(store_url) as other:
            rotate_key(other, keys)
        stale.append("policy.loaded", {"file": "late.yaml"})  # appending still works (the entry key is kept)
        with pytest.raises(KeyMismatch, match=f"holds {old}"):
            stale.checkpoint()
    code, out = _cli("audit", "verify", "--db", store_url, "--key-dir", str(keys))
    assert code == 0, out


def test_rotation_needs_the_current_private_key(store_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    _log_with_history(store_url, keys, checkpoints=1)
    (keys / PRIVATE_KEY_FILE).unlink()
    code, out = _cli("audit", "rotate-key", "--db", store_url, "--key-dir", str(keys))
    assert code == 2 and "needs the log's current private key" in out
    assert not (keys / NEXT_KEY_FILE).exists()


def test_an_interrupted_rotation_is_finished_by_running_it_again(store_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    old = _log_with_history(store_url, keys, checkpoints=1)
    with open_store(store_url) as store:
        new = _prepared(keys)
        with AuditLog(store, key_dir=keys) as log:
            log.rotate_signing_key(new)  # the store switched; "crash" before the key files moved
        with pytest.raises(KeyMismatch, match=new.key_id):
            AuditLog(store, key_dir=keys)
        done = rotate_key(store, keys)
    assert (done.old_key_id, done.new_key_id, done.final_checkpoint) == (old, new.key_id, None)
    assert Signer.load_or_create(keys).key_id == new.key_id
    code, out = _cli("audit", "verify", "--db", store_url, "--key-dir", str(keys))
    assert code == 0, out


def test_a_tampered_rotation_row_is_named_by_verify(store_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    _log_with_history(store_url, keys, checkpoints=1)
    with open_store(store_url) as store:
        done = rotate_key(store, keys)
        with store.transaction() as tx:
            tx.execute("UPDATE audit_key_rotations SET old_key_id = ? WHERE entry_idx = ?",
                       ("0123456789abcdef", done.entry_index))
    code, out = _cli("audit", "verify", "--db", store_url, "--key-dir", str(keys))
    assert code == 1
    assert f"key rotation at entry {done.entry_index}" in out and "table was altered" in out


def test_verify_on_a_store_never_migrated_says_what_to_do(empty_store_url: str) -> None:
    with open_store(empty_store_url):  # creates the SQLite file, no tables
        pass
    code, out = _cli("audit", "verify", "--db", empty_store_url)
    assert code == 2
    assert "has no Interlock tables yet: start `interlock serve` on it once" in out and "--db" in out
    assert "migrate()" not in out




def test_a_checkpoint_signed_by_the_retired_key_after_the_rotation_is_named(store_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    _log_with_history(store_url, keys, checkpoints=1)
    old = Signer.load_or_create(keys)  # a copy of the old private key kept somewhere (a leak)
    with open_store(store_url) as store:
        rotate_key(store, keys)
        with AuditLog(store, key_dir=keys) as server:
            server.auto_checkpoint = False  # leave the size unsigned for the forged checkpoint
            server.append("policy.loaded", {"file": "after.yaml"})
            size = server.size()
            forged = old.sign(size, server.root(size))
        with store.transaction() as tx:
            fields = forged.fields
            tx.execute("INSERT INTO audit_checkpoints(tree_size, root, time, key_id, body, signature) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       (size, fields["root"], fields["time"], fields["key_id"], forged.body, forged.signature))
    code, out = _cli("audit", "verify", "--db", store_url, "--key-dir", str(keys))
    assert code == 1
    assert f"checkpoint at size {size}" in out and f"signed by key {old.key_id}" in out
    assert "was in force at that size" in out
