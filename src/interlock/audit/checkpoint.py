"""Signed checkpoints (tree heads) and the Ed25519 key that signs them.

The key is created on first start in `key_dir` (folder 0700, private key 0600, written with
O_EXCL via a temporary file and a hard link, so two processes starting at once agree on one key).
A private key file that others can read is refused: a leaked signing key lets anyone forge
checkpoints. Replicas that append to one PostgreSQL log share the same key_dir (secret mount).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from interlock.audit.verify import CHECKPOINT_FORMAT, Checkpoint, key_id
from interlock.fingerprint import canonical_json

PRIVATE_KEY_FILE = "audit-ed25519.pem"
PUBLIC_KEY_FILE = "audit-ed25519.pub.pem"
ENTRY_KEY_FILE = "audit-entry.key"


class SigningKeyError(Exception):
    """The signing key cannot be created or loaded (permissions, corrupt file, …)."""


class Signer:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        self.public_key: Ed25519PublicKey = private_key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def load_or_create(cls, key_dir: Path) -> Signer:
        key_dir = Path(key_dir)
        path = key_dir / PRIVATE_KEY_FILE
        if not path.exists():
            _create(key_dir)
        return cls(_load(path))

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, tree_size: int, root: bytes, time: str | None = None) -> Checkpoint:
        body = canonical_json(
            {
                "format": CHECKPOINT_FORMAT,
                "key_id": self.key_id,
                "root": root.hex(),
                "time": time or now(),
                "tree_size": tree_size,
            }
        ).decode("utf-8")
        return Checkpoint(body=body, signature=self._private.sign(body.encode("utf-8")).hex())


class EntryKey:
    """The secret that authenticates each entry (HMAC-SHA256 over "index:leaf_hash"). It lives beside
    the signing key, never in the store: someone with database access alone cannot write an entry
    that verifies, nor move one to another index. Processes that append (the server, `token create`,
    approvers' CLI) hold it; only the signer holds the private key that signs checkpoints."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise SigningKeyError("the audit entry key is shorter than 32 bytes")
        self._secret = secret
        #: HMAC keyed once: each MAC copies it (its key pads already hashed) instead of keying anew, half the
        #: cost of `hmac.digest` per entry. Only ever copied, never updated: safe to share between threads.
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)
        self.key_id = hashlib.sha256(b"interlock-entry-key/1\x00" + secret).hexdigest()[:16]

    @classmethod
    def load(cls, key_dir: Path) -> EntryKey | None:
        path = Path(key_dir) / ENTRY_KEY_FILE
        if not path.exists():
            return None
        _check_private(path)
        try:
            return cls(bytes.fromhex(path.read_text(encoding="ascii").strip()))
        except (OSError, ValueError) as exc:
            raise SigningKeyError(f"cannot read the audit entry key {path}: {exc}") from exc

    @classmethod
    def load_or_create(cls, key_dir: Path) -> EntryKey:
        found = cls.load(key_dir)
        if found is not None:
            return found
        _write_secret(Path(key_dir), ENTRY_KEY_FILE, secrets.token_hex(32).encode("ascii") + b"\n")
        created = cls.load(key_dir)
        assert created is not None
        return created

    def mac(self, index: int, leaf_hash: str) -> str:
        keyed = self._keyed.copy()
        keyed.update(f"{index}:{leaf_hash}".encode("ascii"))
        return keyed.hexdigest()

    def check(self, index: int, leaf_hash: str, mac: str | None) -> bool:
        return mac is not None and hmac.compare_digest(self.mac(index, leaf_hash), mac)


def now() -> str:
    """RFC 3339 UTC with microseconds and 'Z': fixed width, so text order is time order. Every audit entry
    takes one: the formatted second is kept and only the microseconds are written per call
    (`datetime.now().strftime` was a tenth of building a proposal's entry)."""
    global _second
    micros = time.time_ns() // 1000
    second, fraction = divmod(micros, 1_000_000)
    held = _second  # one read: another thread may replace it, never half of it
    if held[0] != second:
        held = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        _second = held
    return f"{held[1]}.{fraction:06d}Z"


#: (Unix second, its RFC 3339 text) of the latest `now`.
_second: tuple[int, str] = (-1, "")


def public_key_pem(key_dir: Path) -> bytes:
    """The exportable public key (creating the key pair if this is the first start)."""
    return Signer.load_or_create(key_dir).public_pem()


def _create(key_dir: Path) -> None:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    if _write_secret(key_dir, PRIVATE_KEY_FILE, pem):
        try:
            (key_dir / PUBLIC_KEY_FILE).write_bytes(Signer(private).public_pem())
        except OSError as exc:
            raise SigningKeyError(f"cannot write the audit public key in {key_dir}: {exc}") from exc


def _write_secret(key_dir: Path, name: str, data: bytes) -> bool:
    """Write a 0600 file once (O_EXCL through a hard link); False when another process won the race."""
    try:
        key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=key_dir, prefix=".audit-key-")  # mkstemp creates it 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, key_dir / name)
            except FileExistsError:
                return False
        finally:
            os.unlink(tmp)
    except OSError as exc:
        raise SigningKeyError(f"cannot create the audit key {name} in {key_dir}: {exc}") from exc
    return True


def _check_private(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise SigningKeyError(f"cannot read the audit key {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(
            f"the audit key {path} is accessible to other users (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )


def _load(path: Path) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SigningKeyError(
                f"the audit signing key {path} is accessible to other users (mode {stat.S_IMODE(mode):o}); "
                f"run: chmod 600 {path}"
            )
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise SigningKeyError(f"cannot read the audit signing key {path}: {exc}") from exc
    except ValueError as exc:
        raise SigningKeyError(f"the audit signing key {path} is not a valid PEM key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"the audit signing key {path} is not an Ed25519 key")
    return key
