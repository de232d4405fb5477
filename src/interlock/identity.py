"""Tokens: who is calling. Agents and humans each hold their own bearer token.

A token's secret is `ilk_a_…` (agent) or `ilk_h_…` (human) followed by 32 random bytes (urlsafe
base64). It is shown once, at creation; the store keeps only its sha256. Authentication looks the
hash up and answers with a `Principal`, or raises `AuthError` with a specific reason that never
echoes the presented secret.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from interlock.gate.bindings import named_in_log
from interlock.gate.clock import Clock, parse_stamp, stamp, system_clock
from interlock.gate.events import TOKEN_CREATED, TOKEN_REFUSED, TOKEN_REVOKED, AuditSink, GateAudit
from interlock.policy import Policy
from interlock.store import Store
from interlock.store.events import Channel, publish

PrincipalKind = Literal["agent", "human"]

_PREFIX: dict[str, str] = {"agent": "ilk_a_", "human": "ilk_h_"}
_SECRET = re.compile(r"^ilk_([ah])_[A-Za-z0-9_-]{43}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class AuthError(Exception):
    """Authentication or authorisation failed. `reason` is one of: malformed, unknown, revoked,
    expired, agent_token, unknown_name. The message never contains the presented secret."""

    def __init__(self, reason: str, message: str, token_id: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.token_id = token_id


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `name` comes from the token, never from a request body."""

    kind: PrincipalKind
    name: str
    token_id: str


@dataclass(frozen=True)
class TokenInfo:
    id: str
    kind: PrincipalKind
    name: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None

    def state(self, now: str) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def secret_hash(secret: str) -> str:
    # A fast, unsalted hash is right here: the secret is 256 bits from the OS CSPRNG, so there is no
    # dictionary to try and brute force is hopeless whatever the hash costs. Slow password hashes
    # (bcrypt, argon2) protect low-entropy human passwords; for random tokens they only add latency
    # to every request. Unsalted also lets authentication be one indexed lookup.
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def create_token(
    store: Store,
    kind: PrincipalKind,
    name: str,
    expires_in: int | None,
    audit: GateAudit,
    *,
    policy: Policy | None = None,
    clock: Clock = system_clock,
) -> tuple[str, str]:
    """Create a token; returns (token_id, secret). The secret is not stored and cannot be shown again.

    With a policy, `name` must be one of its agents (kind agent) or humans (kind human)."""
    if kind not in _PREFIX:
        raise ValueError(f"token kind {kind!r} is neither 'agent' nor 'human'")
    if not _NAME.match(name):
        raise ValueError(f"token name {name!r} is not a policy name (letters, digits, '_', '.', '-')")
    if expires_in is not None and expires_in <= 0:
        raise ValueError(f"expires_in must be a positive number of seconds, got {expires_in}")
    if policy is not None:
        known = policy.doc.agents if kind == "agent" else policy.doc.humans
        if name not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise AuthError(
                "unknown_name",
                f"{kind} {name!r} is not in policy {policy.file} ({kind}s: {listed}); "
                "add it to the policy first",
            )
    secret = _PREFIX[kind] + secrets.token_urlsafe(32)
    token_id = "tok_" + secrets.token_hex(8)
    now = clock()
    expires_at = stamp(now + timedelta(seconds=expires_in)) if expires_in is not None else None
    with store.transaction() as tx:
        tx.execute(
            "INSERT INTO tokens(id, kind, name, secret_sha256, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (token_id, kind, name, secret_hash(secret), stamp(now), expires_at),
        )
        # Recorded in the same transaction, with the secret's lookup hash (issue 10.2): a token row
        # written into the database directly has no such entry and never authenticates.
        receipt = audit.append_in(tx, TOKEN_CREATED, {"token_id": token_id, "kind": kind, "name": name,
                                                      "expires_at": expires_at, "lookup_hash": secret_hash(secret)})
        tx.execute("UPDATE tokens SET entry_idx = ? WHERE id = ?", (receipt.index, token_id))
    return token_id, secret


def authenticate(
    store: Store,
    secret: str,
    *,
    log: GateAudit,
    audit: AuditSink | None = None,
    clock: Clock = system_clock,
) -> Principal:
    """The principal a secret belongs to; AuthError (audited as token.refused when `audit` is given).

    `log` is required (fail closed, so the check cannot be forgotten): the token row must say what its
    token.created entry says (a row written into the database directly is refused as `unrecorded`),
    and a token the log records as revoked is refused even when the database says otherwise."""
    return authenticate_until(store, secret, log=log, audit=audit, clock=clock)[0]


def authenticate_until(
    store: Store,
    secret: str,
    *,
    log: GateAudit,
    audit: AuditSink | None = None,
    clock: Clock = system_clock,
) -> tuple[Principal, datetime | None]:
    """`authenticate`, and when the token expires (None: never), for a cache that must stop believing
    the answer at that moment (server.state.TokenCache)."""
    try:
        return _authenticate(store, secret, clock, log)
    except AuthError as exc:
        if audit is not None:
            audit.append(TOKEN_REFUSED, {"reason": exc.reason, "error": str(exc), "token_id": exc.token_id})
        raise


def _authenticate(store: Store, secret: str, clock: Clock, log: GateAudit) -> tuple[Principal, datetime | None]:
    match = _SECRET.match(secret) if isinstance(secret, str) else None
    if match is None:
        raise AuthError(
            "malformed",
            "malformed token: expected ilk_a_… (agent) or ilk_h_… (human) "
            "as printed by `interlock token create`",
        )
    # The lookup key is a hash of the secret, so index timing reveals nothing an attacker can steer.
    with store.transaction(readonly=True) as tx:
        row = tx.fetchone(
            "SELECT id, kind, name, secret_sha256, expires_at, revoked_at, revoked_idx, entry_idx FROM tokens "
            "WHERE secret_sha256 = ?",
            (secret_hash(secret),),
        )
        recorded = row is None or token_recorded(log, tx, row)
        revoked_in_log = None if row is None or row["revoked_at"] is not None else revocation_in_log(log, tx, row)
    if row is None or row["kind"][0] != match.group(1):
        raise AuthError("unknown", "unknown token: it was never issued here (check the server or --db)")
    if not recorded:
        raise AuthError(
            "unrecorded",
            f"token {row['id']} is not recorded in the audit log (written into the database directly, or made "
            "before tokens were bound to the log): create a new one with `interlock token create`",
            row["id"],
        )
    if row["revoked_at"] is not None:
        raise AuthError(
            "revoked", f"token {row['id']} was revoked at {row['revoked_at']}; ask for a new one", row["id"]
        )
    if revoked_in_log is not None:
        raise AuthError(
            "revoked",
            f"token {row['id']} was revoked (audit entry {revoked_in_log}) although the tokens table says it is "
            "not: the table was changed in the database; run `interlock audit verify` and ask for a new token",
            row["id"],
        )
    expires = None if row["expires_at"] is None else parse_stamp(row["expires_at"])
    if expires is not None and expires <= clock():
        raise AuthError(
            "expired", f"token {row['id']} expired at {row['expires_at']}; ask for a new one", row["id"]
        )
    return Principal(kind=row["kind"], name=row["name"], token_id=row["id"]), expires


def token_recorded(log: GateAudit, tx: Any, row: dict[str, Any]) -> bool:
    """Whether a tokens row says what its token.created entry says (in the tree, authenticated)."""
    found = log.entry_at(tx, None if row.get("entry_idx") is None else int(row["entry_idx"]))
    if found is None:
        return False
    event, data = found
    return (event == TOKEN_CREATED and data.get("token_id") == row["id"] and data.get("kind") == row["kind"]
            and data.get("name") == row["name"] and data.get("lookup_hash") == row["secret_sha256"]
            and data.get("expires_at") == row["expires_at"])


def revocation_in_log(log: GateAudit, tx: Any, row: dict[str, Any]) -> int | None:
    """The index of a token.revoked entry in the tree that names this token, or None (gate.bindings)."""
    since = 0 if row.get("entry_idx") is None else int(row["entry_idx"])
    return named_in_log(log, tx, TOKEN_REVOKED, "token_id", str(row["id"]), since)


def require_human(principal: Principal) -> Principal:
    """Refuse agent tokens at human endpoints: an agent can never approve (invariant 4)."""
    if principal.kind != "human":
        raise AuthError(
            "agent_token",
            f"agent token {principal.token_id} ({principal.name}) is refused here: "
            "only a human's own token may review approvals",
            principal.token_id,
        )
    return principal


def revoke(store: Store, token_id: str, audit: GateAudit, *, clock: Clock = system_clock) -> TokenInfo:
    """Revoke a token at once (servers' token caches hear of it on the `tokens` channel); revoking twice is
    an error naming when it was revoked.

    The token.revoked entry is written in the transaction that sets revoked_at and the row keeps its
    index (migration 0026): authentication finds the revocation in the log even if the column is cleared."""
    now = stamp(clock())
    with store.transaction() as tx:
        row = tx.fetchone(
            "SELECT id, kind, name, created_at, expires_at, revoked_at FROM tokens WHERE id = ?", (token_id,)
        )
        if row is None:
            raise AuthError("unknown", f"no token {token_id!r}: see `interlock token list`")
        if row["revoked_at"] is not None:
            raise AuthError("revoked", f"token {token_id} was already revoked at {row['revoked_at']}", token_id)
        changed = tx.execute(
            "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, token_id)
        )
        if not changed:  # revoked by another process between our read and this write
            raise AuthError("revoked", f"token {token_id} was already revoked", token_id)
        receipt = audit.append_in(tx, TOKEN_REVOKED, {"token_id": token_id, "kind": row["kind"], "name": row["name"],
                                                      "revoked_at": now})
        tx.execute("UPDATE tokens SET revoked_idx = ? WHERE id = ?", (receipt.index, token_id))
        # Committed with the revocation or not at all: every server's token cache drops what it holds
        # (SQLite: at its next request; PostgreSQL: when the NOTIFY arrives, or the 1 s re-read).
        publish(tx, Channel.tokens, {"token_id": token_id})
        row = dict(row, revoked_at=now)
    return _info(row)


def revocation_recorded(log: GateAudit, tx: Any, row: dict[str, Any]) -> bool:
    """Whether a revoked tokens row says what its token.revoked entry says (in the tree, authenticated)."""
    found = log.entry_at(tx, None if row.get("revoked_idx") is None else int(row["revoked_idx"]))
    if found is None:
        return False
    event, data = found
    return (event == TOKEN_REVOKED and data.get("token_id") == row["id"]
            and data.get("revoked_at") == row["revoked_at"])


def list_tokens(store: Store) -> list[TokenInfo]:
    with store.transaction(readonly=True) as tx:
        rows = tx.fetchall(
            "SELECT id, kind, name, created_at, expires_at, revoked_at FROM tokens ORDER BY created_at, id"
        )
    return [_info(r) for r in rows]


def _info(row: dict[str, Any]) -> TokenInfo:
    return TokenInfo(
        id=row["id"],
        kind=row["kind"],
        name=row["name"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )
