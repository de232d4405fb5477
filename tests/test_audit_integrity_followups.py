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

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "policy.yaml"


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
        session = open_session(store, authenticate(store, secret, log=log), now, log)
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


# --- grants: a use and an expiry are what the log says --------------------------------------------


def _approved_gate(store: Store, tmp_path: Path):  # type: ignore[no-untyped-def]
    from interlock.gate.service import Gate
    from tests.gate_fixtures import Recorded, login, policy_from, propose, sql

    log = AuditLog(store, key_dir=tmp_path / "keys")
    audit = Recorded(log)
    gate = Gate(store, policy_from(), audit)
    request = propose(gate, sql())
    for name in ("bob", "dave"):
        gate.approve(request.id, login(store, audit, name))
    return log, gate, sql, request


def test_a_grant_made_unused_in_the_database_does_not_run_again(store: Store, tmp_path: Path) -> None:
    from interlock.gate.service import GateError

    log, gate, sql, request = _approved_gate(store, tmp_path)
    with log:
        grant = gate.consume_grant("kiro", sql())
        assert gate_problems(log) == []
        with store.transaction() as tx:  # the replay: the row and the request look unused again
            tx.execute("UPDATE grants SET consumed_at = NULL, consumed_by = NULL, consumed_idx = NULL")
            tx.execute("UPDATE approval_requests SET state = 'approved' WHERE id = ?", (request.id,))
        with pytest.raises(GateError) as caught:
            gate.consume_grant("kiro", sql())
        assert caught.value.code == "grant_consumed" and "changed in the database" in str(caught.value)
        problems = gate_problems(log)
        assert [p.where for p in problems] == [f"use of grant {grant.id}"], problems
        assert "is unused in the grants table" in problems[0].what


def test_a_grant_whose_expiry_was_widened_in_the_database_is_not_honoured(store: Store, tmp_path: Path) -> None:
    from interlock.gate.service import GateError

    log, gate, sql, _ = _approved_gate(store, tmp_path)
    with log:
        with store.transaction() as tx:
            tx.execute("UPDATE grants SET expires_at = '2999-01-01T00:00:00.000000Z'")
        with pytest.raises(GateError):
            gate.consume_grant("kiro", sql())
        assert [p.where.split(" of ")[0][:5] for p in gate_problems(log)] == ["grant"]


# --- freezes: a thaw by the database is named by verify ---------------------------------------------

THAWS = [
    ("deleted", "DELETE FROM guard_freezes", "is missing from guard_freezes"),
    ("thawed_at set", "UPDATE guard_freezes SET thawed_at = '2026-01-01T00:00:00.000000Z'", "no guard.thawed entry"),
    ("scope narrowed", "UPDATE guard_freezes SET environment = 'sandbox'", "different scope"),
]


@pytest.mark.parametrize(("how", "sql", "named"), THAWS, ids=[t[0] for t in THAWS])
def test_a_freeze_thawed_in_the_database_is_named_by_verify(
    store_url: str, tmp_path: Path, how: str, sql: str, named: str
) -> None:
    from interlock.runtime import Runtime

    with Runtime(EXAMPLE, store_url, tmp_path / "keys") as runtime:
        frozen = runtime.guard.freeze(agent=None, environment="production", target=None, reason="incident", by="bob")
        kept = runtime.guard.freeze(agent=None, environment="staging", target=None, reason="drill", by="bob")
        runtime.guard.thaw(kept.id, by="bob", groups=("sre",))  # a real thaw is not a problem
        assert gate_problems(runtime.audit) == []
        with runtime.store.transaction() as tx:
            tx.execute(sql + " WHERE id = ?", (frozen.id,))
        problems = gate_problems(runtime.audit)
        assert [p.where for p in problems] == [f"freeze {frozen.id}"]
        assert named in problems[0].what


def test_a_vote_whose_human_was_swapped_in_the_database_is_not_counted(store: Store, tmp_path: Path) -> None:
    """bob approved; the attacker renames his vote to dave (an eligible dba) so the next approval completes
    the quorum with one human fewer than the policy asks."""
    from interlock.gate.service import Gate
    from tests.gate_fixtures import Recorded, login, policy_from, propose, sql

    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        audit = Recorded(log)
        gate = Gate(store, policy_from(), audit)
        request = propose(gate, sql())
        gate.approve(request.id, login(store, audit, "carol"))
        with store.transaction() as tx:
            tx.execute("UPDATE approval_votes SET human = 'dave' WHERE request_id = ?", (request.id,))
        assert gate.status(request.id).request.state.value == "pending"
        status = gate.approve(request.id, login(store, audit, "bob"))
        assert status.request.state.value == "pending"  # dave's "vote" was never cast: not counted
        assert [p.where for p in gate_problems(log)] == [f"vote of dave on {request.id}"]
