"""Several `interlock serve` replicas on one real PostgreSQL (issue 18), as real processes on loopback.

- an agent waits on replica A; two humans approve on B and C; A's wait returns and the action ran once;
- a replica is SIGKILLed while it runs an approved action: another replica's recovery sweep marks it
  `outcome_unknown` (never re-run), the metric counts it, its waiter on a live replica is released;
  the leased jobs (expiry sweep, checkpoints, recovery sweep) each have one holder and move on the kill;
  the log verifies afterwards.

PostgreSQL only: replicas share a database server; SQLite replicas on one host are `serve --workers N`.
Lease times are 2 s here (INTERLOCK_LEASE_SECONDS) so takeover is quick; tests poll, never sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlock.audit import AuditLog
from interlock.gate.service import Gate
from interlock.model import Action, Kind
from interlock.policy import decide, load_policy
from interlock.policy.classifying import classify_action
from interlock.store import open_store
from interlock.testing import LiveServer, eventually, free_port, live_server
from tests import gate_fixtures
from tests.conftest import PgAdmin
from tests.gate_fixtures import Receiver
from tests.test_console import sign_in

receiver = gate_fixtures.receiver

POLICY = gate_fixtures.SERVED_PRODUCTION + """\
notify:
  - {name: ops, url: 'RECEIVER', events: [execution.outcome_unknown]}
tests:
  - {agent: kiro, env: production, kind: shell, input: "touch /tmp/x", expect: approval_required}
"""
FAST = {"INTERLOCK_LEASE_SECONDS": "2", "INTERLOCK_SWEEP_SECONDS": "0.5", "INTERLOCK_CHECKPOINT_SECONDS": "0.5"}
JOBS = ("expiry-sweep", "audit-checkpoint", "recovery-sweep", "webhook-delivery")


@pytest.fixture
def pg_url(pg_admin: PgAdmin) -> Iterator[str]:
    name = pg_admin.create_database("replicas")
    url = pg_admin.url(name)
    with open_store(url) as store:
        store.migrate()
    yield url
    pg_admin.drop_later(name)


def replicas(stack: ExitStack, pg_url: str, tmp_path: Path, n: int, receiver: Receiver | None = None
             ) -> list[LiveServer]:
    policy = tmp_path / "policy.yaml"
    # Without a receiver the alert goes to a closed port: retried, then audited as webhook.failed.
    policy.write_text(POLICY.replace("RECEIVER", receiver.url if receiver else f"http://127.0.0.1:{free_port()}/"))
    # One directory, so one signing key shared by every replica (docs/deploy.md); each has its own log.
    return [stack.enter_context(live_server(policy, pg_url, tmp_path, env=FAST)) for _ in range(n)]


def sql(url: str, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with open_store(url) as store, store.transaction() as tx:
        return [dict(r) for r in tx.fetchall(query, params)]


def events_of(url: str, action_id: str) -> list[str]:
    return [r["event"] for r in sql(url, "SELECT event FROM audit_entries WHERE action_id = ? ORDER BY idx",
                                    (action_id,)) if r["event"].startswith(("action.", "execution."))]


def holders(url: str) -> dict[str, str]:
    return {r["job"]: r["holder"] for r in sql(url, "SELECT job, holder FROM leases WHERE expires_at > ?",
                                                (_now(),)) if r["job"] in JOBS}


def every_job_held(url: str, not_by: int | None = None) -> dict[str, str] | None:
    """{job: holder} once every leased job has a live holder (none of them process `not_by`)."""
    found = holders(url)
    if len(found) < len(JOBS) or any(h.split(":")[1] == str(not_by) for h in found.values()):
        return None
    return found


def _now() -> str:
    from interlock.gate.clock import stamp, system_clock

    return stamp(system_clock())


def propose(server: LiveServer, token: str, command: str) -> dict[str, Any]:
    with server.client(token) as agent:
        answer = agent.post("/v1/actions", json={"kind": "shell", "environment": "production",
                                                 "payload": {"command": command}})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def approve(server: LiveServer, token: str, request_id: str) -> None:
    with server.client(token) as human:
        answer = human.post(f"/v1/approvals/{request_id}/approve", json={})
    assert answer.status_code == 200, answer.text


def verify(url: str, key_dir: Path) -> None:
    with open_store(url) as store, AuditLog(store, key_dir=key_dir, create_key=False) as log:
        report = log.verify()
    assert report.ok, report.problems


def test_a_wait_on_one_replica_is_released_by_votes_on_two_others(pg_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with ExitStack() as stack:
        a, b, c = replicas(stack, pg_url, tmp_path, 3)
        kiro, bob, carol = a.token("agent", "kiro"), a.token("human", "bob"), a.token("human", "carol")
        proposed = propose(a, kiro, f"echo x >> {marker}")
        assert proposed["state"] == "pending_approval", proposed
        approve(b, bob, proposed["approval"]["id"])
        approve(c, carol, proposed["approval"]["id"])
        with a.client(kiro, timeout=60) as agent:
            done = agent.post(f"/v1/actions/{proposed['id']}/wait", params={"timeout": 30}).json()
        assert done["state"] == "succeeded", done
        assert marker.read_text() == "x\n"  # ran exactly once
        assert events_of(pg_url, proposed["id"]).count("execution.started") == 1
        # The expiry sweep runs once across the three: a request already past its time (opened here on a
        # clock in the past, so nobody waits for its TTL) is expired by exactly one of them.
        stale = open_stale_request(pg_url, tmp_path, a)
        def expired() -> list[str]:
            return [r["entry"] for r in sql(pg_url, "SELECT entry FROM audit_entries WHERE event = 'approval.expired'")]

        eventually(expired, what="the stale request expired by a replica's sweep")
        eventually(lambda: sql(pg_url, "SELECT state FROM approval_requests WHERE id = ?", (stale,))[0]["state"]
                   == "expired")
        assert [stale in entry for entry in expired()] == [True]  # by one replica, once


def open_stale_request(url: str, tmp_path: Path, server: LiveServer) -> str:
    """An approval request (through the real gate, on the replicas' policy and log) whose expiry passed
    long ago: it was opened on a clock in January."""
    policy = load_policy(server.policy)
    action = Action(kind=Kind.shell, environment="production", payload={"command": "touch /tmp/stale"})
    classification = classify_action(policy, action)
    with open_store(url) as store, AuditLog(store, key_dir=server.key_dir) as log:
        gate = Gate(store, policy, log, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
        return gate.open_request("kiro", action, decide(policy, "kiro", action, classification), classification).id


def open_executions(url: str) -> list[str]:
    """Actions that started and have neither an outcome nor outcome_unknown."""
    return [r["action_id"] for r in sql(
        url, "SELECT s.action_id FROM audit_entries s WHERE s.event = 'execution.started' AND NOT EXISTS "
             "(SELECT 1 FROM audit_entries f WHERE f.action_id = s.action_id "
             "AND f.event IN ('execution.finished', 'execution.outcome_unknown'))")]


def test_killed_replica_in_flight_action_is_outcome_unknown_and_jobs_move(pg_url: str, tmp_path: Path,
                                                                         receiver: Receiver) -> None:
    marker = tmp_path / "after-sleep"
    with ExitStack() as stack:
        servers = replicas(stack, pg_url, tmp_path, 3, receiver)
        a, b, c = servers
        kiro, bob, carol = a.token("agent", "kiro"), a.token("human", "bob"), a.token("human", "carol")
        # Each leased job has exactly one holder among the three.
        jobs = eventually(lambda: every_job_held(pg_url), what="a holder per job")
        # A long approved action whose only waiter (which runs it) is on replica A.
        proposed = propose(a, kiro, f"sleep 60; touch {marker}")
        request_id = proposed["approval"]["id"]
        approve(b, bob, request_id)
        approve(c, carol, request_id)
        with a.client(kiro, timeout=3) as agent, contextlib.suppress(httpx.ReadTimeout):
            agent.post(f"/v1/actions/{proposed['id']}/wait", params={"timeout": 1})  # runs it: 60 s
        eventually(lambda: "execution.started" in events_of(pg_url, proposed["id"]), what="A started it")
        # Meanwhile an agent waits for it on replica B.
        started = sql(pg_url, "SELECT entry FROM audit_entries WHERE action_id = ? AND event = 'execution.started'",
                      (proposed["id"],))
        assert '"replica":"replica:' in started[0]["entry"]
        os.kill(a.process.pid, signal.SIGKILL)
        a.process.wait()
        with b.client(kiro, timeout=60) as agent:
            waited = agent.post(f"/v1/actions/{proposed['id']}/wait", params={"timeout": 30}).json()
        assert waited["state"] == "outcome_unknown", waited
        assert events_of(pg_url, proposed["id"]).count("execution.started") == 1  # never re-run
        assert events_of(pg_url, proposed["id"]).count("execution.outcome_unknown") == 1
        assert not marker.exists()
        with c.client(bob) as human:
            assert "interlock_outcome_unknown_total 1.0" in human.get("/metrics").text
            shown = human.get(f"/v1/actions/{proposed['id']}").json()
        assert shown["state"] == "outcome_unknown"
        # A human is alerted by webhook too, sent once by the holder of webhook-delivery.
        (alert,) = eventually(lambda: [json.loads(r["body"]) for r in receiver.received], what="the alert")
        assert alert["event"] == "execution.outcome_unknown"
        assert alert["alert"]["trigger_action"] == proposed["id"] and "check the target" in alert["alert"]["detail"]
        # ... and shown in the console: the queue lists it for a human to check, the agent's page says so.
        with sign_in(c, bob) as console:
            queue = console.get("/ui").text
            assert "Outcome unknown" in queue and f'/ui/actions/{proposed["id"]}' in queue
            assert "outcome_unknown" in console.get("/ui/agents/kiro").text
            assert "execution.outcome_unknown" in console.get(f"/ui/actions/{proposed['id']}").text
        # The killed replica's jobs moved to a live one; every job still has one holder.
        dead = {job for job, holder in jobs.items() if holder.split(":")[1] == str(a.process.pid)}
        moved = eventually(lambda: every_job_held(pg_url, not_by=a.process.pid), what="jobs moved")
        assert set(moved) == set(JOBS), (dead, moved)
        # Checkpoints continue under the new holder, signed with the shared key; the log verifies.
        size = sql(pg_url, "SELECT count(*) AS n FROM audit_entries")[0]["n"]
        eventually(lambda: sql(pg_url, "SELECT max(tree_size) AS n FROM audit_checkpoints")[0]["n"] == size,
                   what="a checkpoint of the whole log")
        # One signer at a time: no tree size was signed twice (by two replicas).
        assert sql(pg_url, "SELECT tree_size FROM audit_checkpoints GROUP BY tree_size HAVING count(*) > 1") == []
        verify(pg_url, b.key_dir)


def test_bounded_load_with_a_replica_killed_and_restarted(pg_url: str, tmp_path: Path) -> None:
    """Agents propose (reads run alone, writes need two humans) and wait on random replicas while humans
    vote on random replicas; one replica is SIGKILLed mid-run and a new one started. Afterwards every
    2xx proposal is in the log, no action ran twice, and the log verifies."""
    ran = tmp_path / "ran"
    with ExitStack() as stack:
        servers = replicas(stack, pg_url, tmp_path, 3)
        kiro, bob, carol = (servers[0].token(k, n) for k, n in (("agent", "kiro"), ("human", "bob"),
                                                               ("human", "carol")))
        live = list(servers)
        accepted: list[str] = []
        lock = threading.Lock()
        done = threading.Event()

        def call(token: str, path: str, body: dict[str, Any] | None = None,
                 params: dict[str, Any] | None = None) -> dict[str, Any] | None:
            server = random.choice(live)
            try:
                with server.client(token, timeout=30) as http:
                    answer = http.post(path, json=body or {}, params=params)
            except httpx.TransportError:
                return None  # that replica is down: the caller tries elsewhere
            return dict(answer.json()) if answer.status_code == 200 else None

        def agent(worker: int) -> None:
            for i in range(8):
                write = i % 2 == 1
                command = f"echo {worker}-{i} >> {ran}" if write else f"echo {worker}-{i}"
                answer = call(kiro, "/v1/actions", {"kind": "shell", "environment": "production",
                                                    "payload": {"command": command}})
                if answer is None:
                    continue
                with lock:
                    accepted.append(answer["id"])
                if answer["state"] == "pending_approval":
                    for _ in range(5):
                        settled = call(kiro, f"/v1/actions/{answer['id']}/wait", params={"timeout": 5})
                        if settled and settled["state"] != "pending_approval":
                            break

        def humans() -> None:
            while not done.is_set():
                listing = call_get(bob, "/v1/approvals")
                for request in (listing or {}).get("approvals", []):
                    for token in (bob, carol):
                        call(token, f"/v1/approvals/{request['id']}/approve")
                done.wait(0.2)

        def call_get(token: str, path: str) -> dict[str, Any] | None:
            try:
                with random.choice(live).client(token, timeout=10) as http:
                    answer = http.get(path)
            except httpx.TransportError:
                return None
            return dict(answer.json()) if answer.status_code == 200 else None

        voter = threading.Thread(target=humans)
        voter.start()
        agents = [threading.Thread(target=agent, args=(w,)) for w in range(3)]
        for t in agents:
            t.start()
        eventually(lambda: len(accepted) >= 6, what="some proposals before the kill")
        victim = live[0]
        live.remove(victim)
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.wait()
        live.append(stack.enter_context(live_server(tmp_path / "policy.yaml", pg_url, tmp_path, env=FAST)))
        for t in agents:
            t.join(timeout=180)
        done.set()
        voter.join(timeout=30)

        proposed = {r["action_id"] for r in sql(pg_url, "SELECT action_id FROM audit_entries "
                                                        "WHERE event = 'action.proposed'")}
        assert set(accepted) <= proposed  # every 2xx proposal is on record
        starts = sql(pg_url, "SELECT action_id, count(*) AS n FROM audit_entries WHERE event = 'execution.started' "
                             "GROUP BY action_id")
        assert all(r["n"] == 1 for r in starts), starts  # nothing started twice
        lines = ran.read_text().split() if ran.exists() else []
        assert len(lines) == len(set(lines)), lines  # no approved action ran twice
        assert lines, "some approved writes ran"
        # Whatever the killed replica was running when it died is outcome_unknown, named as its; nothing is
        # left open once the sweep has looked (the live replicas' runs all finished).
        eventually(lambda: open_executions(pg_url) == [], what="no execution left without an outcome")
        unknown = sql(pg_url, "SELECT entry FROM audit_entries WHERE event = 'execution.outcome_unknown'")
        assert all(json.loads(r["entry"])["data"]["replica"].split(":")[2] == str(victim.process.pid)
                   for r in unknown), unknown
        verify(pg_url, servers[1].key_dir)
