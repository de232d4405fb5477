"""Issue 10 follow-ups (both stores). Threat model: write access to the database, not to the key directory.

A revocation is bound to the log: clearing `revoked_at` in the tokens table does not bring a revoked token
back (authentication finds the token.revoked entry), and `audit verify` names the row. Authentication
cannot be called without the log that checks a token's binding."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from pathlib import Path

import pytest

from interlock.audit import AuditLog
from interlock.gate.integrity import gate_problems
from interlock.identity import AuthError, authenticate, create_token, revoke
from interlock.server.ui.sessions import find_session, open_session
from interlock.store import Store


def _revoked_token(store: Store, log: AuditLog) -> tuple[str, str]:
    token_id, secret = create_token(store, "human", "bob", None, log)
    assert authenticate(store, secret, log=log).name == "bob"
    revoke(store, token_id, log)
    return token_id, secret


# How the database attacker undoes a revocation -> what `audit verify` says about it.
UNDO = [
    ("clear the column", "UPDATE tokens SET revoked_at = NULL", "is active in the tokens table"),
    ("clear both columns", "UPDATE tokens SET revoked_at = NULL, revoked_idx = NULL", "is active in the tokens table"),
    ("point at another entry", "UPDATE tokens SET revoked_idx = entry_idx", "does not match the token.revoked entry"),
]


@pytest.mark.parametrize(("how", "sql", "named"), UNDO, ids=[u[0] for u in UNDO])
def test_a_revocation_undone_in_the_database_still_refuses(
    store: Store, tmp_path: Path, how: str, sql: str, named: str
) -> None:
    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        token_id, secret = _revoked_token(store, log)
        assert gate_problems(log) == []
        with store.transaction() as tx:
            tx.execute(sql)
        with pytest.raises(AuthError) as caught:
            authenticate(store, secret, log=log)
        assert caught.value.reason == "revoked" and caught.value.token_id == token_id
        problems = gate_problems(log)
        assert problems and all(p.where.startswith(f"revocation of token {token_id}") for p in problems)
        assert any(named in p.what for p in problems), [p.what for p in problems]
        log.checkpoint()
        assert log.verify().ok  # the log itself is intact: the tampering is in the tokens table


def test_a_revoked_token_whose_row_was_deleted_is_named(store: Store, tmp_path: Path) -> None:
    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        token_id, secret = _revoked_token(store, log)
        with store.transaction() as tx:
            tx.execute("DELETE FROM tokens WHERE id = ?", (token_id,))
        with pytest.raises(AuthError) as caught:
            authenticate(store, secret, log=log)
        assert caught.value.reason == "unknown"
        assert "is missing from the tokens table" in gate_problems(log)[0].what


def test_only_a_revocation_of_this_token_counts(store: Store, tmp_path: Path) -> None:
    """Another token's revocation (even with a similar id) does not refuse this one."""
    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        _revoked_token(store, log)
        _, kept = create_token(store, "human", "carol", None, log)
        with store.transaction() as tx:
            tx.execute("UPDATE tokens SET revoked_at = NULL")  # the attacker's clear touches both rows
        assert authenticate(store, kept, log=log).name == "carol"


def test_a_console_session_does_not_outlive_a_revocation_undone_in_the_database(store: Store, tmp_path: Path) -> None:
    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        token_id, secret = create_token(store, "human", "bob", None, log)
        now = datetime.now(UTC)
        session = open_session(store, authenticate(store, secret, log=log), now)
        assert find_session(store, session.secret, now, log) is not None
        revoke(store, token_id, log)
        assert find_session(store, session.secret, now, log) is None
        with store.transaction() as tx:
            tx.execute("UPDATE tokens SET revoked_at = NULL")
        assert find_session(store, session.secret, now, log) is None


def test_authentication_cannot_forget_the_log() -> None:
    """Fail closed: `log` has no default, so a caller that omits it is a TypeError, not an unchecked token."""
    assert inspect.signature(authenticate).parameters["log"].default is inspect.Parameter.empty
    with pytest.raises(TypeError, match="log"):
        authenticate(None, "ilk_h_" + "A" * 43)  # type: ignore[arg-type,call-arg]
