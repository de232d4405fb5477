"""Signing key rotation: `interlock audit rotate-key` (docs/deploy.md, "Signing key rotation").

    rotation = rotate_key(store, key_dir)   # needs the current private key: it proves ownership

In one store transaction the old key signs a last checkpoint that covers an `audit.key_rotated`
entry naming both keys, and the log is bound to the new key (audit_key_rotations). Only then do the
key files change: the new private key, prepared beside the old one as `audit-ed25519.next.pem`
(0600), replaces it, and the old public key is archived as `retired/<key id>.pub.pem`, which
`audit verify` adds to its keyring by default. A crash between the two steps leaves the store bound
to the prepared key; running the command again finishes the file step.

The entry key (HMAC of each entry) is kept: see docs/deploy.md for why and for a leaked key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from interlock.audit.checkpoint import (
    PRIVATE_KEY_FILE,
    PUBLIC_KEY_FILE,
    Signer,
    SigningKeyError,
    _load,
    _write_secret,
)
from interlock.audit.log import AuditLog, recorded_keys
from interlock.audit.verify import Checkpoint, load_public_key
from interlock.store import Store

NEXT_KEY_FILE = "audit-ed25519.next.pem"
RETIRED_DIR = "retired"


@dataclass(frozen=True)
class Rotation:
    old_key_id: str
    new_key_id: str
    archived: Path
    #: The audit.key_rotated entry and the old key's last checkpoint (None when this run only
    #: finished the file step of an interrupted rotation).
    entry_index: int | None
    final_checkpoint: Checkpoint | None

    def to_json(self) -> dict[str, object]:
        return {
            "old_key_id": self.old_key_id,
            "new_key_id": self.new_key_id,
            "archived": str(self.archived),
            "entry_index": self.entry_index,
            "final_checkpoint": self.final_checkpoint.to_json() if self.final_checkpoint else None,
        }


def rotate_key(store: Store, key_dir: Path) -> Rotation:
    key_dir = Path(key_dir)
    resumed = _finish_interrupted(store, key_dir)
    if resumed is not None:
        return resumed
    if not (key_dir / PRIVATE_KEY_FILE).exists():
        raise SigningKeyError(
            f"no private signing key in {key_dir}: rotation needs the log's current private key (it proves "
            "the log is yours); pass the signer's --key-dir (INTERLOCK_KEY_DIR)"
        )
    new = _prepared(key_dir)
    with AuditLog(store, key_dir=key_dir, create_key=False, sign=True) as log:
        old = log.signer
        receipt, final = log.rotate_signing_key(new)
    archived = _install(key_dir, new, old.key_id, old.public_pem())
    return Rotation(old.key_id, new.key_id, archived, receipt.index, final)


def retired_keys(key_dir: Path) -> list[Ed25519PublicKey]:
    """The archived public keys of earlier signing keys (retired/*.pub.pem), oldest file name first."""
    folder = Path(key_dir) / RETIRED_DIR
    keys = []
    for path in sorted(folder.glob("*.pub.pem")) if folder.is_dir() else []:
        try:
            keys.append(load_public_key(path.read_bytes()))
        except (OSError, ValueError) as exc:
            raise SigningKeyError(f"cannot read the retired public key {path}: {exc}") from exc
    return keys


def _prepared(key_dir: Path) -> Signer:
    """The next key pair, prepared as a 0600 file before the store changes (kept if a run was cut)."""
    path = key_dir / NEXT_KEY_FILE
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_secret(key_dir, NEXT_KEY_FILE, pem)
    return Signer(_load(path))


def _finish_interrupted(store: Store, key_dir: Path) -> Rotation | None:
    """The store already names the prepared key (a run stopped after its transaction): move the files."""
    path = key_dir / NEXT_KEY_FILE
    if not path.exists():
        return None
    new = Signer(_load(path))
    with store.transaction(readonly=True) as tx:
        bound = recorded_keys(tx).get("signing")
    if bound != new.key_id:
        return None
    try:
        old = Signer(_load(key_dir / PRIVATE_KEY_FILE))  # replaced last: still the old key here
    except SigningKeyError as exc:
        raise SigningKeyError(f"cannot finish the interrupted rotation in {key_dir}: {exc}") from exc
    return Rotation(old.key_id, new.key_id, _install(key_dir, new, old.key_id, old.public_pem()), None, None)


def _install(key_dir: Path, new: Signer, old_key_id: str, old_public_pem: bytes) -> Path:
    retired = key_dir / RETIRED_DIR
    archived = retired / f"{old_key_id}.pub.pem"
    try:
        retired.mkdir(mode=0o700, exist_ok=True)
        _replace(archived, old_public_pem)
        _replace(key_dir / PUBLIC_KEY_FILE, new.public_pem())
        os.replace(key_dir / NEXT_KEY_FILE, key_dir / PRIVATE_KEY_FILE)  # still 0600: mkstemp made it so
    except OSError as exc:
        raise SigningKeyError(
            f"the log now uses key {new.key_id}, but the key files in {key_dir} could not be moved ({exc}): "
            "fix the cause and run `interlock audit rotate-key` again to finish"
        ) from exc
    return archived


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
