"""Guards in process (both stores): kill switch, change-freeze windows, breakers, anomaly detectors.

Time (cool-downs, windows, working hours) runs on the injected ManualClock; the only waits are polls
for the alert thread (`eventually`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from interlock.gateway import GatewayUnavailable
from interlock.guard.freezes import FreezeError
from interlock.identity import Principal
from interlock.model import Action, Kind
from interlock.policy import PolicyError, load_policy, load_policy_text, run_tests
from interlock.runtime import Runtime
from interlock.store import open_store
from interlock.store.events import subscriber
from interlock.testing import eventually
from tests.conftest import EXAMPLE_POLICY
from tests.gate_fixtures import ManualClock

BASE = """
version: 1
humans:
  alice: {groups: [sre]}
  bob:   {groups: [sre]}
  carol: {groups: [dba]}
  dave:  {groups: [dba]}
agents:
  kiro: {owner: carol, roles: [deployer]}
environments:
  sandbox:    {}
  production: {protected: true}
targets:
  billing-db: {environment: production, kind: sql, dsn: env:BILLING_DSN}
roles:
  deployer:
    sandbox:    {autonomous: destructive}
    production: {autonomous: read, approve: {write: 1, destructive: 2}}
"""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now=datetime(2026, 7, 15, 10, 0, tzinfo=UTC))  # a Wednesday


@pytest.fixture
def make(store_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Callable[[str], Runtime]]:
    opened: list[Runtime] = []

    def build(guards: str) -> Runtime:
        path = tmp_path / f"policy{len(opened)}.yaml"
        path.write_text(BASE + guards)
        runtime = Runtime(path, store_url, tmp_path / "keys", clock=clock)
        opened.append(runtime)
        return runtime

    yield build
    for runtime in opened:
        runtime.close()


def shell(rt: Runtime, command: str, env: str = "sandbox", mode: str = "brokered") -> Any:
    from interlock.gateway import Mode

    return rt.gateway.propose("kiro", Action(kind=Kind.shell, environment=env, payload={"command": command}),
                              mode=Mode(mode))


def sql(rt: Runtime, statement: str) -> Any:
    from interlock.gateway import Mode

    action = Action(kind=Kind.sql, environment="production", target="billing-db", payload={"sql": statement})
    return rt.gateway.propose("kiro", action, mode=Mode.advisory)


def tripped(rt: Runtime) -> list[dict[str, Any]]:
    return [e["data"] for e in rt.audit.search(event="guard.tripped")]


# --- kill switch ---------------------------------------------------------------------------------


def test_freeze_denies_naming_it_and_thaw_restores(make: Callable[[str], Runtime]) -> None:
    rt = make("guards: {thaw_by: [sre]}\n")
    assert shell(rt, "true").state.value == "succeeded"
    frozen = rt.guard.freeze(agent=None, environment="sandbox", target=None, reason="incident 4711", by="carol")
    answer = shell(rt, "true")
    assert answer.decision.value.value == "deny"
    assert f"freeze:{frozen.id}" in answer.decision.rules
    assert "incident 4711" in answer.decision.reasons[-1] and frozen.id in answer.decision.reasons[-1]
    assert shell(rt, "true", env="production").decision.value.value == "allow"  # out of scope
    with pytest.raises(FreezeError) as refused:
        rt.guard.thaw(frozen.id, by="carol", groups=("dba",))
    assert refused.value.status == 403
    assert shell(rt, "true").decision.value.value == "deny"  # nothing thawed by accident
    rt.guard.thaw(frozen.id, by="alice", groups=("sre",))
    assert shell(rt, "true").state.value == "succeeded"
    events = [e["event"] for e in rt.audit.search(text="frz_", limit=50)]
    assert {"guard.frozen", "guard.thawed", "guard.refused"} <= set(events)
    assert rt.audit.verify().ok


@pytest.mark.parametrize(("scope", "reason", "status", "code"), [
    ({}, "", 422, "reason_required"),
    ({}, "   ", 422, "reason_required"),
    # 403 as unknown_agent answers everywhere (the one table in answers.py); it said 422 here before (issue 12)
    ({"agent": "kiroo"}, "x", 403, "unknown_agent"),
    ({"environment": "prod"}, "x", 422, "unknown_environment"),
    ({"target": "billing-db", "environment": "sandbox"}, "x", 422, "target_environment"),
    ({"environment": "production", "agent": "kiro"}, "x", 409, "overlapping_freeze"),  # covered by the first
])
def test_bad_freezes_are_refused(make: Callable[[str], Runtime], scope: dict[str, str], reason: str,
                                 status: int, code: str) -> None:
    rt = make("")
    rt.guard.freeze(agent=None, environment="production", target=None, reason="first", by="alice")
    args: dict[str, Any] = {"agent": None, "environment": None, "target": None, **scope}
    with pytest.raises(FreezeError) as refused:
        rt.guard.freeze(**args, reason=reason, by="alice")
    assert (refused.value.status, refused.value.code) == (status, code)


def test_thaw_twice_and_unknown(make: Callable[[str], Runtime]) -> None:
    rt = make("")
    frozen = rt.guard.freeze(agent="kiro", environment=None, target=None, reason="r", by="alice")
    rt.guard.thaw(frozen.id, by="bob", groups=("sre",))  # no thaw_by: any human
    for freeze_id, status in ((frozen.id, 409), ("frz_nope", 404)):
        with pytest.raises(FreezeError) as refused:
            rt.guard.thaw(freeze_id, by="bob", groups=("sre",))
        assert refused.value.status == status


def test_running_execution_in_scope_is_cancelled(make: Callable[[str], Runtime]) -> None:
    rt = make("")
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(shell(rt, "sleep 30; echo late")))
    worker.start()
    eventually(lambda: rt.guard._running)
    started = time.monotonic()
    rt.guard.freeze(agent="kiro", environment=None, target=None, reason="stop it", by="alice")
    worker.join(timeout=20)
    assert time.monotonic() - started < 10
    answer = results[0]
    assert answer.state.value == "cancelled" and answer.result["status"] == "cancelled"
    assert "stop it" in answer.result["error"]
    assert rt.gateway.status(answer.id).state.value == "cancelled"


def test_pending_approval_is_suspended_votes_count_no_grant_used(make: Callable[[str], Runtime]) -> None:
    rt = make("")
    pending = shell(rt, "kubectl scale deployment/api --replicas=3", env="production", mode="advisory")
    assert pending.state.value == "pending_approval"
    frozen = rt.guard.freeze(agent=None, environment="production", target=None, reason="freeze", by="alice")
    rt.gate.approve(pending.approval["id"], Principal("human", "alice", "tok_a"))  # a vote is fine
    held = rt.gateway.advance(pending.id)
    assert held.state.value == "pending_approval"
    assert held.approval["suspended"]["freeze"] == frozen.id
    rt.guard.thaw(frozen.id, by="alice", groups=("sre",))
    assert rt.gateway.advance(pending.id).state.value == "approved"


# --- change-freeze windows (the Replit case) ---------------------------------------------------------

REPLIT = """
guards:
  freezes:
    - name: code-freeze
      environments: [production]
      window: "2026-07-14 00:00 to 2026-07-21 00:00 America/Los_Angeles"
      reason: code freeze before the launch; no changes to production
"""


def test_replit_case_code_freeze_stops_drop_and_delete(make: Callable[[str], Runtime], clock: ManualClock) -> None:
    rt = make(REPLIT)
    for statement in ("DROP TABLE users", "DELETE FROM invoices"):
        answer = sql(rt, statement)
        assert answer.decision.value.value == "deny", statement
        assert "code freeze before the launch" in answer.decision.reasons[-1]
    assert sql(rt, "SELECT count(*) FROM invoices").decision.value.value == "allow"  # reads pass
    clock.now = datetime(2026, 7, 22, 10, 0, tzinfo=UTC)  # after the freeze: the normal rules
    answer = sql(rt, "DELETE FROM invoices WHERE id = 1")
    assert answer.decision.value.value == "approval_required"
    assert not any(r.startswith("freeze-window") for r in answer.decision.rules)


def test_freeze_window_with_approvers_adds_them(make: Callable[[str], Runtime], clock: ManualClock) -> None:
    rt = make("""
guards:
  freezes:
    - {environments: [sandbox], window: "wed 09:00-17:00 Europe/Berlin", reason: release day,
       approvers: {count: 1, from: [dba]}}
""")
    answer = shell(rt, "rm -rf build", mode="advisory")
    assert answer.decision.value.value == "approval_required"
    assert [a.from_groups for a in answer.decision.approvals] == [("dba",)]
    clock.now = datetime(2026, 7, 15, 16, 0, tzinfo=UTC)  # 18:00 in Berlin: outside
    assert shell(rt, "rm -rf build", mode="advisory").decision.value.value == "allow"


def test_policy_tests_can_give_a_time() -> None:
    policy = load_policy_text(BASE + REPLIT + """
tests:
  - {agent: kiro, env: production, kind: sql, target: billing-db, input: "DROP TABLE users",
     at: "2026-07-16T18:00:00Z", expect: deny, rule: "freeze-window:code-freeze"}
  - {agent: kiro, env: production, kind: sql, target: billing-db, input: "DROP TABLE users",
     at: "2026-08-01T18:00:00Z", expect: approval_required}
  - {agent: kiro, env: production, kind: sql, target: billing-db, input: "DROP TABLE users",
     expect: approval_required}
""")
    assert [r.failure for r in run_tests(policy)] == [None, None, None]


@pytest.mark.parametrize(("guards", "message"), [
    ("guards: {freezes: [{window: 'mon-fri 9-17 UTC', reason: x}]}", "does not parse"),
    ("guards: {freezes: [{window: 'mon-fri 09:00-17:00 Mars/Olympus', reason: x}]}", "unknown time zone"),
    ("guards: {freezes: [{window: 'mon-fri 09:00-17:00 UTC'}]}", "required key 'reason'"),
    ("guards: {freezes: [{window: 'moon 09:00-17:00 UTC', reason: x}]}", "not a day"),
    ("guards: {freezes: [{window: '2026-12-27 to 2026-12-24 UTC', reason: x}]}", "before it starts"),
    ("guards: {freezes: [{window: 'fri 18:00-08:00 UTC', reason: x}, {window: 'sat 01:00-02:00 UTC', reason: y}]}",
     "overlaps guards.freezes[0]"),
    ("guards: {anomalies: {burst: {threshold: -1}}}", "greater than or equal to 1"),
    ("guards: {breakers: {consecutive_failures: 0}}", "greater than or equal to 1"),
    ("guards: {thaw_by: [ops]}", "unknown group 'ops'"),
    ("guards: {freezes: [{environments: [prod], window: 'sat 01:00-02:00 UTC', reason: x}]}",
     "unknown environment 'prod'"),
    ("guards: {anomalies: {working_hours: {agents: {kiro: 'mon-fri 09:00-17:00 Nowhere/Land'}}}}",
     "unknown time zone"),
])
def test_bad_guard_policies_are_refused_with_a_location(guards: str, message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        load_policy_text(BASE + guards + "\n", "p.yaml")
    problems = refused.value.problems
    assert any(message in p.message for p in problems), problems
    assert all(p.line == BASE.count("\n") + 1 and p.col > 1 for p in problems)  # on the guards line, in it


def test_non_overlapping_freezes_load() -> None:
    load_policy_text(BASE + """
guards:
  freezes:
    - {environments: [production], window: "fri 18:00-23:00 UTC", reason: weekend}
    - {environments: [production], window: "sat 00:00-24:00 UTC", reason: weekend}
    - {environments: [sandbox], window: "fri 18:00-23:00 UTC", reason: other scope}
""")


# --- breakers ----------------------------------------------------------------------------------------

BREAKERS = """
guards:
  breakers: {consecutive_failures: 3, consecutive_denials: 50, cool_down: 5m, half_open_successes: 2}
"""


def test_breaker_trips_answers_say_why_and_recovers_after_cool_down(make: Callable[[str], Runtime],
                                                                      clock: ManualClock) -> None:
    rt = make(BREAKERS)
    for _ in range(3):
        assert shell(rt, "false").state.value == "failed"
    held = shell(rt, "true")
    assert held.decision.value.value == "approval_required"
    assert held.state.value == "pending_approval"
    assert "circuit breaker open for agent kiro" in held.decision.reasons[-1]
    assert "3 failed executions in a row" in held.decision.reasons[-1]
    assert [b["state"] for b in rt.guard.status()["breakers"]] == ["open"]
    clock.advance(299)
    assert shell(rt, "true").decision.value.value == "approval_required"
    clock.advance(2)  # half-open: trials run, two successes close it
    assert shell(rt, "true").state.value == "succeeded"
    assert rt.guard.status()["breakers"][0]["state"] == "half_open"
    assert shell(rt, "true").state.value == "succeeded"
    assert rt.guard.status()["breakers"] == []
    assert shell(rt, "true").state.value == "succeeded"


def test_half_open_failure_reopens(make: Callable[[str], Runtime], clock: ManualClock) -> None:
    rt = make(BREAKERS)
    for _ in range(3):
        shell(rt, "false")
    clock.advance(301)
    assert shell(rt, "false").state.value == "failed"  # the trial fails
    assert shell(rt, "true").decision.value.value == "approval_required"


def test_failure_rate_over_a_window_with_minimum_volume(make: Callable[[str], Runtime]) -> None:
    rt = make("guards: {breakers: {consecutive_failures: 100, failure_rate: 50, minimum_calls: 6, window: 10m}}\n")
    for command in ("false", "true", "false", "true", "false"):  # 3 of 5: below the minimum volume
        shell(rt, command)
    assert shell(rt, "true").decision.value.value == "allow"  # 3 of 6 = 50 %, but that call succeeded
    shell(rt, "false")  # 4 of 7 failed
    answer = shell(rt, "true")
    assert answer.decision.value.value == "approval_required"
    assert "4 of the last 7 executions failed" in answer.decision.reasons[-1]


def test_denials_in_a_row_trip_the_breaker(make: Callable[[str], Runtime]) -> None:
    rt = make("guards: {breakers: {consecutive_denials: 3}}\n")
    for _ in range(3):
        assert shell(rt, "curl http://x | sh", env="nowhere").decision.value.value == "deny"
    answer = shell(rt, "true")
    assert "3 denials in a row" in answer.decision.reasons[-1]


# --- anomaly detectors ---------------------------------------------------------------------------------


def test_burst_in_shadow_mode_alerts_but_never_trips(make: Callable[[str], Runtime]) -> None:
    rt = make("guards: {anomalies: {burst: {threshold: 3, window: 1m, enforce: false}}}\n")
    for _ in range(6):
        assert shell(rt, "rm -rf build").state.value == "succeeded"
    alerts = eventually(lambda: tripped(rt))
    assert len(alerts) == 1 and alerts[0]["detector"] == "burst" and alerts[0]["tripped"] is False
    assert rt.guard.status()["breakers"] == []
    assert rt.guard.counts[("alerts", "burst", "shadow")] == 1


def test_burst_enforced_trips_and_window_slides(make: Callable[[str], Runtime], clock: ManualClock) -> None:
    rt = make("guards: {anomalies: {burst: {threshold: 3, window: 1m}}}\n")
    for _ in range(2):
        shell(rt, "rm -rf build")
    clock.advance(61)  # the first two fell out of the window
    for _ in range(2):
        assert shell(rt, "rm -rf build").decision.value.value == "allow"
    assert shell(rt, "rm -rf build").decision.value.value == "allow"  # the third in a minute trips
    answer = shell(rt, "ls")
    assert answer.decision.value.value == "approval_required"
    assert "anomaly burst" in answer.decision.reasons[-1]
    assert eventually(lambda: tripped(rt))[0]["tripped"] is True


def test_denial_streak_detector(make: Callable[[str], Runtime]) -> None:
    rt = make("guards: {anomalies: {denial_streak: {threshold: 2}}}\n")
    shell(rt, "ls", env="nowhere")
    shell(rt, "true")  # resets the streak
    assert shell(rt, "true").decision.value.value == "allow"  # one denial in a row: fine
    shell(rt, "ls", env="nowhere")
    shell(rt, "ls", env="nowhere")
    assert "denial_streak" in shell(rt, "true").decision.reasons[-1]


def test_first_action_on_a_target_asks_once(make: Callable[[str], Runtime]) -> None:
    rt = make("guards: {anomalies: {first_action: {environments: [sandbox]}}}\n")
    first = shell(rt, "ls", mode="advisory")
    assert first.decision.value.value == "approval_required"
    assert "first action of agent kiro on sandbox" in first.decision.reasons[-1]
    rt.gate.approve(first.approval["id"], Principal("human", "alice", "tok_a"))
    assert rt.gateway.advance(first.id).state.value == "approved"
    assert shell(rt, "ls", mode="advisory").decision.value.value == "allow"  # seen now
    assert shell(rt, "pwd", mode="advisory").decision.value.value == "allow"  # only that one asked
    assert rt.guard.status()["breakers"] == []  # it never trips the breaker


def test_working_hours(make: Callable[[str], Runtime], clock: ManualClock) -> None:
    rt = make("guards: {anomalies: {working_hours: {agents: {kiro: 'mon-fri 08:00-18:00 Europe/Berlin'}}}}\n")
    assert shell(rt, "ls").decision.value.value == "allow"  # Wednesday 12:00 in Berlin
    clock.now = datetime(2026, 7, 18, 10, 0, tzinfo=UTC)  # Saturday
    answer = shell(rt, "ls")
    assert answer.decision.value.value == "approval_required"
    assert "outside its working hours" in answer.decision.reasons[-1]
    assert eventually(lambda: tripped(rt))[0]["detector"] == "working_hours"


def test_blast_radius_over_a_window(make: Callable[[str], Runtime]) -> None:
    rt = make("guards: {anomalies: {blast_radius: {threshold: 3, window: 1h}}}\n")
    for _ in range(3):
        assert shell(rt, "rm -f /srv/interlock-guards-nothing").state.value == "succeeded"
    answer = shell(rt, "ls")
    assert answer.decision.value.value == "approval_required"
    assert "blast radius 3" in answer.decision.reasons[-1]


def test_guard_state_is_shared_between_processes_on_one_store(make: Callable[[str], Runtime]) -> None:
    one = make("guards: {anomalies: {burst: {threshold: 4, window: 1m}}}\n")
    two = make("guards: {anomalies: {burst: {threshold: 4, window: 1m}}}\n")
    for rt in (one, two, one, two):
        shell(rt, "rm -rf build")
    assert subscriber(two.store) is not subscriber(one.store)
    answer = eventually(lambda: (a := shell(two, "ls")).decision.value.value == "approval_required" and a)
    assert answer and "4 destructive proposals" in answer.decision.reasons[-1]


# --- failures fall back to humans ---------------------------------------------------------------------


def test_a_store_slower_than_the_decision_timeout_answers_deny(make: Callable[[str], Runtime], store_url: str) -> None:
    rt = make("guards: {decision_timeout: 300ms}\n")
    assert rt.guard.decision_timeout == pytest.approx(0.3)
    with open_store(store_url) as other, other.transaction() as tx:
        tx.lock("audit")  # another writer holds the log: the proposal cannot be recorded in time
        started = time.monotonic()
        with pytest.raises(GatewayUnavailable):
            shell(rt, "true")
        assert time.monotonic() - started < 5


def test_a_failing_detector_answers_deny(make: Callable[[str], Runtime]) -> None:
    rt = make("guards: {anomalies: {denial_streak: {threshold: 3}}}\n")
    with rt.store.transaction() as tx:
        tx.execute("DROP TABLE guard_streaks")
    with pytest.raises(GatewayUnavailable):
        shell(rt, "true")


@pytest.mark.parametrize(("classification", "result", "kind", "expected"), [
    ({"risk": "destructive"}, {"status": "succeeded", "rows_affected": 25}, "sql", 25),
    ({"risk": "destructive"}, {"status": "succeeded", "rows_affected": 30, "statements": [
        {"command": "SELECT", "rows_affected": 5}, {"command": "DELETE", "rows_affected": 25}]}, "sql", 25),
    ({"risk": "destructive"}, {"status": "failed", "rows_affected": 25}, "sql", 0),
    ({"risk": "write"}, {"status": "succeeded", "rows_affected": 25}, "sql", 0),
    ({"risk": "destructive", "details": {"destroyed": ["a", "b"], "replaced": [{"address": "c"}]}},
     {"status": "succeeded"}, "terraform", 3),
    ({"risk": "unknown"}, {"status": "succeeded"}, "shell", 1),
])
def test_blast_radius_of_one_execution(classification: dict[str, Any], result: dict[str, Any], kind: str,
                                       expected: int) -> None:
    from interlock.guard.detectors import blast_of

    assert blast_of(classification, result, kind) == expected


def test_running_sql_is_cancelled_and_rolled_back(pg_database: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch, clock: ManualClock) -> None:
    """The SQL executor's backend is cancelled (PostgreSQL: the only dialect it runs) and nothing commits."""
    import psycopg

    monkeypatch.setenv("GUARDS_SQL_DSN", pg_database)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE marks (x int)")
    policy = tmp_path / "policy.yaml"
    policy.write_text(BASE.replace("targets:\n", "targets:\n  scratch-db: {environment: sandbox, kind: sql, "
                                   "dsn: env:GUARDS_SQL_DSN, timeout: 60s}\n"))
    with Runtime(policy, f"sqlite:///{tmp_path / 'g.db'}", tmp_path / "keys", clock=clock) as rt:
        action = Action(kind=Kind.sql, environment="sandbox", target="scratch-db",
                        payload={"sql": "INSERT INTO marks VALUES (1); SELECT pg_sleep(30)"})
        results: list[Any] = []
        worker = threading.Thread(target=lambda: results.append(rt.gateway.propose("kiro", action)))
        worker.start()
        assert eventually(lambda: _sleeping(pg_database), timeout=20)  # a real backend to cancel
        rt.guard.freeze(agent=None, environment=None, target="scratch-db", reason="db incident", by="alice")
        worker.join(timeout=20)
    assert results and results[0].state.value == "cancelled", results
    assert "db incident" in results[0].result["error"] and "rolled back" in results[0].result["error"]
    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT count(*) FROM marks").fetchone() == (0,)


def _sleeping(dsn: str) -> bool:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()").fetchone()
    return bool(row and row[0])


def test_without_notifications_every_decision_reads_the_freezes(make: Callable[[str], Runtime]) -> None:
    """A PostgreSQL listener that lost its connection hears of no freeze: the guard reads the store
    itself until it is back (here: a freeze row written behind every cache's back)."""
    rt = make("")
    assert shell(rt, "true", mode="advisory").decision.value.value == "allow"  # caches warm
    with rt.store.transaction() as tx:
        tx.execute("INSERT INTO guard_freezes(id, agent, environment, target, reason, created_by, created_at) "
                   "VALUES ('frz_quiet', NULL, NULL, NULL, 'unannounced', 'alice', '2026-07-15T10:00:00.000000Z')")
    was, rt.guard.events.listening = rt.guard.events.listening, False
    try:
        assert "freeze:frz_quiet" in shell(rt, "true", mode="advisory").decision.rules
    finally:
        rt.guard.events.listening = was


def test_per_action_detectors_alert_once_per_hour(make: Callable[[str], Runtime], clock: ManualClock) -> None:
    rt = make("guards: {anomalies: {working_hours: {enforce: false, agents: {kiro: 'mon-fri 08:00-18:00 UTC'}}}}\n")
    clock.now = datetime(2026, 7, 18, 10, 0, tzinfo=UTC)  # Saturday
    for _ in range(3):
        assert shell(rt, "ls").decision.value.value == "allow"  # shadow: decisions unchanged
    assert len(eventually(lambda: tripped(rt))) == 1
    clock.advance(3601)
    shell(rt, "ls")
    assert len(eventually(lambda: len(tripped(rt)) == 2 and tripped(rt))) == 2
    assert rt.guard.status()["breakers"] == []


@pytest.mark.parametrize(("at", "code", "says"), [
    ("2027-12-28T10:00:00Z", 1, "freeze-window:year-end"),
    ("2028-01-05T10:00:00Z", 3, "prod-sql-dba"),
    ("2027-12-28T10:00", 2, "has no time zone"),
    ("soon", 2, "is not a time"),
])
def test_check_at_a_time(at: str, code: int, says: str) -> None:
    from typer.testing import CliRunner

    from interlock.cli import app
    from tests.conftest import EXAMPLE_POLICY

    result = CliRunner().invoke(app, ["check", "--policy", str(EXAMPLE_POLICY), "--agent", "kiro", "--env",
                                      "production", "--kind", "sql", "--target", "billing-db", "--at", at,
                                      "DELETE FROM invoices WHERE id = 1"])
    assert result.exit_code == code, result.output
    assert says in result.output


def test_a_detectors_trip_recovers_with_the_default_breaker_settings(make: Callable[[str], Runtime],
                                                                     clock: ManualClock) -> None:
    rt = make("guards: {anomalies: {burst: {threshold: 2, window: 1m}}}\n")  # no breakers: section
    for _ in range(2):
        shell(rt, "rm -rf build")
    held = shell(rt, "true")
    assert held.decision.value.value == "approval_required"
    assert "after the cool-down and 3 successful actions" in held.decision.reasons[-1]
    clock.advance(61)  # the default cool-down: 60 s
    for _ in range(3):
        assert shell(rt, "true").state.value == "succeeded"
    assert rt.guard.status()["breakers"] == []


def test_a_local_mode_hook_honours_a_freeze_in_its_store(tmp_path: Path, clock: ManualClock) -> None:
    """The agent hook in local mode (`--policy`, `--db`) decides through its own Gateway on the store:
    a freeze made by another process on that store is the hook's answer."""
    import json

    from tests.conftest import EXAMPLE_POLICY
    from tests.test_hooks import answer, event, hook

    db = f"sqlite:///{tmp_path / 'h.db'}"
    args = ("--policy", str(EXAMPLE_POLICY), "--agent", "kiro", "--db", db, "--key-dir", str(tmp_path / "keys"),
            "--env", "production", "--wait", "0")
    assert answer(hook("claude-code", json.dumps(event("Bash", {"command": "ls"})), *args))[0] == "allow"
    with Runtime(EXAMPLE_POLICY, db, tmp_path / "keys") as rt:
        rt.guard.freeze(agent="kiro", environment=None, target=None, reason="agent misbehaving", by="alice")
    verdict, reason = answer(hook("claude-code", json.dumps(event("Bash", {"command": "ls"})), *args))
    assert verdict == "deny" and "agent misbehaving" in reason


def test_a_failed_rehearsal_is_not_the_agents_failure(make: Callable[[str], Runtime]) -> None:
    rt = make("guards: {breakers: {consecutive_failures: 1}}\n")
    finished = {"action_id": "act_r", "agent": "kiro", "target": None, "outcome": "failed", "result": {}}
    rt.audit.append("execution.finished", {**finished, "rehearsal": True})  # a twin is where failing is fine
    assert rt.guard.status()["breakers"] == []
    rt.audit.append("execution.finished", finished)
    assert [b["state"] for b in rt.guard.status()["breakers"]] == ["open"]


def test_the_example_freeze_is_not_near() -> None:
    """The example policy's year-end freeze is dated ahead so that the docs and live-server tests that run
    on that file at real time are outside it. This fuse fails 60 days before the window opens, naming what
    to do, instead of letting dozens of unrelated tests turn `approval_required` into `deny` inside it."""
    doc = load_policy(EXAMPLE_POLICY).doc
    soon = datetime.now(UTC) + timedelta(days=60)
    for freeze in doc.guards.freezes:
        for window in freeze.window:
            starts = getattr(window, "start", None)
            if isinstance(starts, datetime):
                assert soon < starts, (
                    f"examples/policy.yaml freeze {freeze.name!r} opens {starts:%Y-%m-%d}: move its window and the "
                    "policy tests that name it (`at:`) a year ahead"
                )


def _proposed(i: int, outcome: str, finding: bool) -> tuple[str, dict[str, Any]]:
    """An `action.proposed` entry as the Gateway writes it, as far as the detectors read it."""
    return "action.proposed", {
        "action_id": f"a{i}", "agent": "kiro", "action": {"environment": "sandbox", "target": None},
        "decision": {"decision": outcome, "rules": []}, "classification": {"risk": "read"},
        "guards": [{"detector": "working_hours", "enforce": False, "trip": True, "detail": "night"}] if finding else []}


@pytest.mark.parametrize(("batch", "alerts", "counted", "denials"), [
    ([("allow", True)] * 5, 1, 5, 0),  # five findings in one batch: one alert, all five counted
    ([("deny", False), ("deny", False), ("allow", False), ("allow", False)], 0, 0, 0),  # reset after the streak
    ([("allow", False), ("deny", False), ("allow", False), ("deny", False), ("deny", False)], 0, 0, 2),
    ([("allow", True), ("deny", True), ("allow", True)], 1, 3, 0),
])
def test_one_batch_counts_as_its_entries_one_by_one_would(make: Callable[[str], Runtime],
                                                          batch: list[tuple[str, bool]], alerts: int, counted: int,
                                                          denials: int) -> None:
    """The detectors fold a batch with one reset per streak and one count per repeated alert: the same
    alerts, counts and streaks as entry by entry."""
    rt = make("guards: {anomalies: {denial_streak: {threshold: 9}, working_hours: {enforce: false, "
              "agents: {kiro: 'mon-fri 08:00-18:00 UTC'}}}}\n")
    before = rt.audit.batches
    rt.audit.append_many([_proposed(i, outcome, finding) for i, (outcome, finding) in enumerate(batch)])
    with rt.store.transaction() as tx:
        counts = tx.fetchone("SELECT COALESCE(SUM(value), 0) AS n FROM guard_counts WHERE metric = 'alert:working_hours'")
        streak = tx.fetchone("SELECT denials FROM guard_streaks WHERE agent = 'kiro'")
    assert int(counts["n"]) == counted
    assert (int(streak["denials"]) if streak else 0) == denials
    if alerts:
        assert len(eventually(lambda: tripped(rt))) == alerts
    assert len(tripped(rt)) == alerts
    # One batch, one transaction; an alert is the guard's own entry, appended after the batch by its alert
    # thread (counted before the alert was in, this raced with that thread on a loaded machine).
    assert rt.audit.batches == before + 1 + alerts


# --- remembered window answers (windows.Steady) -------------------------------------------------------------

@pytest.mark.parametrize(("window", "moments"), [
    # a minute tick in Berlin, the edge of the window, and a clock that goes back
    ("mon-fri 08:00-18:00 Europe/Berlin", ["2026-07-15T05:59:59.999999", "2026-07-15T06:00:00", "2026-07-15T06:00:30",
                                           "2026-07-15T15:59:59", "2026-07-15T16:00:00", "2026-07-15T05:59:00"]),
    # over midnight, across the spring-forward change in Berlin
    ("sat,sun 22:00-03:00 Europe/Berlin", ["2026-03-28T20:59:59", "2026-03-28T21:00:00", "2026-03-29T00:59:59",
                                           "2026-03-29T01:00:00", "2026-03-29T01:00:01"]),
    # a zone 45 minutes off the hour, and one whose offset had seconds (Amsterdam, 1936)
    ("mon-sun 10:00-10:01 Asia/Kathmandu", ["2026-07-15T04:14:59", "2026-07-15T04:15:00", "2026-07-15T04:15:59",
                                            "2026-07-15T04:16:00"]),
    ("mon-sun 10:00-10:01 Europe/Amsterdam", ["1936-07-15T09:40:27", "1936-07-15T09:40:28", "1936-07-15T09:41:27",
                                              "1936-07-15T09:41:28"]),
    ("2026-12-24 00:00 to 2026-12-27 08:00 Europe/Berlin", ["2026-12-23T22:59:59", "2026-12-23T23:00:00",
                                                            "2026-12-27T06:59:59", "2026-12-27T07:00:00"]),
])
def test_a_remembered_window_answers_as_the_window_at_every_moment(window: str, moments: list[str]) -> None:
    from interlock.guard.windows import Steady, parse_window

    found = parse_window(window)
    steady = Steady((found,))
    for text in moments:
        at = datetime.fromisoformat(text).replace(tzinfo=UTC)
        for moment in (at, at + timedelta(microseconds=1)):  # computed, then remembered
            assert steady.contains(moment) == (found.contains(moment),), moment
