"""Integrity at use (both stores): what the product reads from the store checks out against the log when
it is used, not only when `audit verify` runs (DESIGN.md §9). Threat model: write access to the database,
not to the key directory. Each test changes rows with SQL the way that attacker would, and shows the
product still refuses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from interlock.gate.integrity import gate_problems
from interlock.gateway import Mode
from interlock.identity import authenticate, create_token, secret_hash
from interlock.model import Action, Kind
from interlock.runtime import Runtime
from interlock.server.ui.sessions import Session, close_session, find_session, open_session, session_id
from interlock.store.events import Channel, publish
from tests.conftest import EXAMPLE_POLICY
from tests.gate_fixtures import ManualClock
from tests.test_guards import BASE as GUARDED
from tests.test_guards import BREAKERS
from tests.test_guards import shell as guarded_shell


@pytest.fixture
def runtime(store_url: str, tmp_path: Path) -> Iterator[Runtime]:
    with Runtime(EXAMPLE_POLICY, store_url, tmp_path / "keys") as opened:
        yield opened


def _read_in_production(rt: Runtime) -> Any:
    """An action the example policy lets kiro do alone (a read in production): only a freeze stops it."""
    action = Action(kind=Kind.shell, environment="production", payload={"command": "kubectl get pods"})
    return rt.gateway.propose("kiro", action, mode=Mode.advisory)


def _freeze_rules(answer: Any) -> list[str]:
    return [r for r in answer.decision.rules if r.startswith("freeze:")]


def _tamper(rt: Runtime, sql: str, *args: object, announce: str | None = None) -> None:
    """Run the attacker's SQL; `announce` also publishes on that channel, so every cache reloads."""
    with rt.store.transaction() as tx:
        tx.execute(sql, args)
        if announce is not None:
            publish(tx, announce, {"op": "tampered"})


# --- freezes: the log says which are in force ----------------------------------------------------------

# How the attacker thaws a freeze in the database (and tells every process to reload).
THAWS = [
    ("row deleted", "DELETE FROM guard_freezes WHERE id = ?"),
    ("thawed_at set", "UPDATE guard_freezes SET thawed_at = '2026-01-01T00:00:00.000000Z', thawed_by = 'mallory' "
                      "WHERE id = ?"),
    ("scope narrowed", "UPDATE guard_freezes SET environment = 'staging' WHERE id = ?"),
]


@pytest.mark.parametrize(("how", "sql"), THAWS, ids=[t[0] for t in THAWS])
def test_a_freeze_thawed_in_the_database_still_denies(
    runtime: Runtime, store_url: str, tmp_path: Path, how: str, sql: str
) -> None:
    assert _freeze_rules(_read_in_production(runtime)) == []
    frozen = runtime.guard.freeze(agent=None, environment="production", target=None, reason="incident", by="bob")
    assert _freeze_rules(_read_in_production(runtime)) == [f"freeze:{frozen.id}"]
    _tamper(runtime, sql, frozen.id, announce=Channel.freezes)
    assert _freeze_rules(_read_in_production(runtime)) == [f"freeze:{frozen.id}"]  # this process, reloaded
    with Runtime(EXAMPLE_POLICY, store_url, tmp_path / "keys") as fresh:  # a process started after it
        assert _freeze_rules(_read_in_production(fresh)) == [f"freeze:{frozen.id}"]
        assert [f["id"] for f in fresh.guard.status()["freezes"]] == [frozen.id]
        assert [f.id for f in fresh.guard.listing()] == [frozen.id]  # what GET /v1/freezes shows
        # A human can still end it: the thaw is recorded and the row put back, thawed.
        fresh.guard.thaw(frozen.id, by="alice", groups=("sre",))
        assert _freeze_rules(_read_in_production(fresh)) == []
        assert fresh.guard.listing() == []
        assert [f.id for f in fresh.guard.listing(include_thawed=True)] == [frozen.id]
        assert gate_problems(fresh.audit) == []
    assert _freeze_rules(_read_in_production(runtime)) == []  # the thaw reached the first process too


def test_a_thawed_freeze_stays_thawed_and_its_row_revived_in_the_database_does_not_count(runtime: Runtime) -> None:
    frozen = runtime.guard.freeze(agent="kiro", environment=None, target=None, reason="drill", by="bob")
    runtime.guard.thaw(frozen.id, by="alice", groups=("sre",))
    _tamper(runtime, "UPDATE guard_freezes SET thawed_at = NULL, thawed_by = NULL", announce=Channel.freezes)
    assert _freeze_rules(_read_in_production(runtime)) == []  # the log says thawed
    assert runtime.guard.listing() == []


def test_a_freeze_row_written_into_the_database_denies_too(runtime: Runtime) -> None:
    """A row the log does not know is honoured: an extra freeze only ever denies more (fail closed)."""
    _tamper(runtime, "INSERT INTO guard_freezes(id, agent, environment, target, reason, created_by, created_at) "
            "VALUES ('frz_forged', NULL, 'production', NULL, 'forged', 'mallory', '2026-01-01T00:00:00.000000Z')",
            announce=Channel.freezes)
    assert _freeze_rules(_read_in_production(runtime)) == ["freeze:frz_forged"]
    assert [f.id for f in runtime.guard.listing()] == ["frz_forged"]


def test_a_freeze_entry_changed_in_the_database_freezes_everything(
    runtime: Runtime, store_url: str, tmp_path: Path
) -> None:
    """The attacker narrows the entry as well as the row: the entry no longer checks out, so a process
    that reads it cannot tell what it froze and freezes everything, naming the entry (a process that
    read it before keeps what it read)."""
    frozen = runtime.guard.freeze(agent=None, environment="production", target=None, reason="incident", by="bob")
    with runtime.store.transaction() as tx:
        index = tx.fetchone("SELECT idx FROM audit_entries WHERE event = 'guard.frozen'")["idx"]
        tx.execute("DROP TRIGGER audit_entries_append_only_update" if runtime.store.dialect == "sqlite"
                   else "DROP TRIGGER audit_entries_append_only ON audit_entries")  # the attacker can
        tx.execute("UPDATE audit_entries SET entry = REPLACE(entry, '\"environment\":\"production\"', "
                   "'\"environment\":\"staging\"') WHERE idx = ?", (index,))
    _tamper(runtime, "DELETE FROM guard_freezes WHERE id = ?", frozen.id, announce=Channel.freezes)
    assert _freeze_rules(_read_in_production(runtime)) == [f"freeze:{frozen.id}"]
    with Runtime(EXAMPLE_POLICY, store_url, tmp_path / "keys") as fresh:
        sandbox = Action(kind=Kind.shell, environment="sandbox", payload={"command": "ls"})
        for answer in (_read_in_production(fresh), fresh.gateway.propose("kiro", sandbox, mode=Mode.advisory)):
            assert _freeze_rules(answer) == [f"freeze:entry-{index}"]
            assert f"audit entry {index} (guard.frozen) does not check out" in answer.decision.reasons[-1]


# --- console sessions: a sign-out is what the log says ---------------------------------------------------


def _signed_in(rt: Runtime, human: str = "bob") -> Session:
    _, secret = create_token(rt.store, "human", human, None, rt.audit)
    return open_session(rt.store, authenticate(rt.store, secret, log=rt.audit), datetime.now(UTC), rt.audit)


def _live(rt: Runtime, session: Session) -> bool:
    return find_session(rt.store, session.secret, datetime.now(UTC), rt.audit) is not None


def test_a_session_signed_back_in_by_the_database_stays_signed_out(runtime: Runtime) -> None:
    session, kept = _signed_in(runtime), _signed_in(runtime, "carol")
    assert close_session(runtime.store, session, datetime.now(UTC), runtime.audit)
    assert not _live(runtime, session) and _live(runtime, kept)
    assert gate_problems(runtime.audit) == []
    _tamper(runtime, "UPDATE console_sessions SET revoked_at = NULL")  # the copied cookie's comeback
    assert not _live(runtime, session)
    assert _live(runtime, kept)  # only a sign-out of this session counts
    problems = gate_problems(runtime.audit)
    assert [p.where for p in problems] == [f"sign-out of bob's console session {session_id(secret_hash(session.secret))}"]
    assert "the sign-out was undone in the database" in problems[0].what


# How the attacker opens a session with the database alone (a cookie secret of their choosing, or a row
# changed to another human) -> the console opens nothing.
FORGED = [
    ("row written, proxy", "INSERT INTO console_sessions(secret_sha256, token_id, human, via, created_at, expires_at) "
                           "VALUES (?, 'proxy', 'bob', 'proxy', '2026-01-01T00:00:00.000000Z', "
                           "'2999-01-01T00:00:00.000000Z')"),
    ("row copied with another entry", "INSERT INTO console_sessions(secret_sha256, token_id, human, via, created_at, "
                                      "expires_at, entry_idx) SELECT ?, token_id, human, via, created_at, expires_at, "
                                      "entry_idx FROM console_sessions"),
]


@pytest.mark.parametrize(("how", "sql"), FORGED, ids=[f[0] for f in FORGED])
def test_a_session_row_written_into_the_database_opens_nothing(runtime: Runtime, how: str, sql: str) -> None:
    real = _signed_in(runtime)
    forged = Session(real.principal, "attacker-chosen-secret", real.expires_at, "proxy")
    _tamper(runtime, sql, secret_hash(forged.secret))
    assert not _live(runtime, forged) and _live(runtime, real)


def test_a_session_given_to_another_human_in_the_database_opens_nothing(runtime: Runtime) -> None:
    session = _signed_in(runtime)
    _tamper(runtime, "UPDATE console_sessions SET human = 'alice'")
    assert not _live(runtime, session)


# --- circuit breakers: an open breaker is what the log says ------------------------------------------------

# How the attacker closes an open breaker in the database -> the agent still needs a human.
RESETS = [
    ("row closed", "UPDATE guard_breakers SET state = 'closed', successes = 0"),
    ("row deleted", "DELETE FROM guard_breakers"),
    ("cool-down cut short", "UPDATE guard_breakers SET opened_at = '2000-01-01T00:00:00.000000Z'"),
]


@pytest.mark.parametrize(("how", "sql"), RESETS, ids=[r[0] for r in RESETS])
def test_a_breaker_closed_in_the_database_stays_open(store_url: str, tmp_path: Path, how: str, sql: str) -> None:
    clock = ManualClock(now=datetime(2026, 7, 15, 10, 0, tzinfo=UTC))
    policy = tmp_path / "policy.yaml"
    policy.write_text(GUARDED + BREAKERS)
    with Runtime(policy, store_url, tmp_path / "keys", clock=clock) as rt:
        for _ in range(3):
            assert guarded_shell(rt, "false").state.value == "failed"
        assert guarded_shell(rt, "true").decision.value.value == "approval_required"
        assert gate_problems(rt.audit) == []
        _tamper(rt, sql, announce=Channel.guards)
        assert [p.where for p in gate_problems(rt.audit)] == ["breaker of agent kiro"]
        held = guarded_shell(rt, "true")
        assert held.decision.value.value == "approval_required"
        assert "3 failed executions in a row" in held.decision.reasons[-1]
        with Runtime(policy, store_url, tmp_path / "keys", clock=clock) as fresh:  # a process started after it
            assert guarded_shell(fresh, "true").decision.value.value == "approval_required"
        # It still recovers the audited way: after the cool-down two trial successes close it.
        clock.advance(301)
        assert guarded_shell(rt, "true").state.value == "succeeded"
        assert guarded_shell(rt, "true").state.value == "succeeded"
        assert rt.guard.status()["breakers"] == []
        assert guarded_shell(rt, "true").decision.value.value == "allow"
        assert gate_problems(rt.audit) == []
        assert [e["event"] for e in rt.audit.search(event="guard.breaker_opened")] == ["guard.breaker_opened"]
        assert len(rt.audit.search(event="guard.breaker_closed")) == 1
