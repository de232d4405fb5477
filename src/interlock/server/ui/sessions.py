"""Console sessions: a human's token exchanged for a cookie, and the CSRF token that goes with it.

The cookie holds 32 random bytes; the store keeps only their sha256 (a stolen database opens no
session). A session is bound to the token it was opened with: the lookup joins `tokens`, so revoking
or expiring the token ends every session opened with it at the next request. The CSRF token is an
HMAC of the session secret, so it needs no storage and changes with every session.

A session is bound to the log like a token (migration 0051): its row is written in the transaction of
its `console.signed_in` entry and keeps that entry's index, and signing out writes `console.signed_out`
naming the session in the transaction that sets `revoked_at`. The lookup believes a row only when its
entry checks out and says the same, and asks the log whether the session was signed out: a session row
written into the database opens nothing, and clearing `revoked_at` signs nobody back in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from interlock.audit.events import AuditEvent
from interlock.gate.bindings import named_in_log
from interlock.gate.clock import parse_stamp, stamp
from interlock.gate.events import GateAudit
from interlock.identity import Principal, revocation_in_log, secret_hash
from interlock.store import Store

#: The cookie's name; `__Host-` under TLS (the browser then insists on Secure, Path=/ and no Domain).
COOKIE = "interlock_session"
TLS_COOKIE = "__Host-interlock_session"
#: How long a session lives (never longer than its token).
SESSION_SECONDS = 8 * 3600
#: The token id recorded for sessions opened by an authenticating proxy (--trust-proxy-header).
PROXY_TOKEN_ID = "proxy"


@dataclass(frozen=True)
class Session:
    principal: Principal
    secret: str
    expires_at: datetime
    via: str

    @property
    def csrf(self) -> str:
        return csrf_token(self.secret)


def csrf_token(session_secret: str) -> str:
    return hmac.new(session_secret.encode(), b"interlock-console-csrf", hashlib.sha256).hexdigest()


def csrf_ok(session: Session, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(session.csrf, presented or "")


def open_session(store: Store, principal: Principal, now: datetime, log: GateAudit, *, via: str = "token",
                 token_expires_at: datetime | None = None, seconds: int = SESSION_SECONDS) -> Session:
    """A new session for a human principal, with its console.signed_in entry (one transaction); the
    caller has authenticated them."""
    if principal.kind != "human":
        raise ValueError("only humans sign in to the console")
    secret = secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=seconds)
    if token_expires_at is not None:
        expires = min(expires, token_expires_at)
    with store.transaction() as tx:
        tx.execute(
            "INSERT INTO console_sessions(secret_sha256, token_id, human, via, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (_hash(secret), principal.token_id, principal.name, via, stamp(now), stamp(expires)),
        )
        receipt = log.append_in(tx, AuditEvent.CONSOLE_SIGNED_IN, {
            "principal": principal.name, "token_id": principal.token_id, "via": via,
            "session": session_id(_hash(secret)), "expires_at": stamp(expires)})
        tx.execute("UPDATE console_sessions SET entry_idx = ? WHERE secret_sha256 = ?", (receipt.index, _hash(secret)))
    return Session(principal, secret, expires, via)


def find_session(store: Store, secret: str, now: datetime, log: GateAudit) -> Session | None:
    """The live session of a cookie value, or None (unknown, not recorded by its console.signed_in entry,
    signed out in the table or in the log, expired, or its token revoked or expired). A revocation or a
    sign-out the log records counts even if the table was cleared in the database."""
    if not secret or len(secret) > 100:
        return None
    with store.transaction(readonly=True) as tx:
        row = tx.fetchone(
            "SELECT s.secret_sha256, s.token_id, s.human, s.via, s.expires_at, s.revoked_at, s.entry_idx, "
            "t.revoked_at AS token_revoked, t.expires_at AS token_expires, t.kind AS token_kind, "
            "t.id AS id, t.entry_idx AS token_entry_idx "
            "FROM console_sessions s LEFT JOIN tokens t ON t.id = s.token_id WHERE s.secret_sha256 = ?",
            (_hash(secret),),
        )
        if row is None or row["revoked_at"] is not None or not _recorded(log, tx, row):
            return None
        if named_in_log(log, tx, AuditEvent.CONSOLE_SIGNED_OUT, "session", session_id(row["secret_sha256"]),
                        int(row["entry_idx"])) is not None:
            return None  # signed out, though the table says otherwise: changed in the database
        revoked_in_log = (row["id"] is not None and row["token_revoked"] is None
                          and revocation_in_log(log, tx, {"id": row["id"], "entry_idx": row["token_entry_idx"]})
                          is not None)
    if parse_stamp(row["expires_at"]) <= now:
        return None
    if row["via"] == "token":
        if row["token_kind"] != "human" or row["token_revoked"] is not None or revoked_in_log:
            return None
        if row["token_expires"] is not None and parse_stamp(row["token_expires"]) <= now:
            return None
    principal = Principal(kind="human", name=row["human"], token_id=row["token_id"])
    return Session(principal, secret, parse_stamp(row["expires_at"]), row["via"])


def _recorded(log: GateAudit, tx: Any, row: dict[str, Any]) -> bool:
    """Whether a session row says what its console.signed_in entry says (in the tree, authenticated)."""
    found = log.entry_at(tx, None if row["entry_idx"] is None else int(row["entry_idx"]))
    if found is None:
        return False
    event, data = found
    return (event == AuditEvent.CONSOLE_SIGNED_IN and data.get("session") == session_id(row["secret_sha256"])
            and data.get("principal") == row["human"] and data.get("token_id") == row["token_id"]
            and data.get("via") == row["via"] and data.get("expires_at") == row["expires_at"])


def close_session(store: Store, session: Session, now: datetime, log: GateAudit) -> bool:
    """Sign out: the session is revoked in the store and console.signed_out names it in the log (one
    transaction), so a copied cookie is worthless from now on, whatever the table says later."""
    with store.transaction() as tx:
        changed = tx.execute(
            "UPDATE console_sessions SET revoked_at = ? WHERE secret_sha256 = ? AND revoked_at IS NULL",
            (stamp(now), _hash(session.secret)),
        )
        if changed:
            log.append_in(tx, AuditEvent.CONSOLE_SIGNED_OUT, {
                "principal": session.principal.name, "token_id": session.principal.token_id,
                "session": session_id(_hash(session.secret))})
    return bool(changed)


def session_id(secret_sha256: str) -> str:
    """How the log names a session: derived from the stored hash, so the log holds no lookup key."""
    return "ses_" + hashlib.sha256(b"interlock-console-session\x00" + secret_sha256.encode()).hexdigest()[:32]


def token_expiry(store: Store, token_id: str) -> datetime | None:
    with store.transaction(readonly=True) as tx:
        row = tx.fetchone("SELECT expires_at FROM tokens WHERE id = ?", (token_id,))
    return parse_stamp(row["expires_at"]) if row and row["expires_at"] else None


def _hash(secret: str) -> str:
    return secret_hash(secret) if secret.isascii() else hashlib.sha256(secret.encode()).hexdigest()
