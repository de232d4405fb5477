"""The rollout runner across replicas (issue 16, goal 2a): two real `interlock serve` processes on one real
PostgreSQL. Replica A holds the runner's lease; an agent starts a rollout on replica B and a human approves
and promotes it there. A hears of each through the store's events (LISTEN/NOTIFY on the `rollouts` and
`approvals` channels) and moves the rollout at once.

The runner's fallback poll is set to 300 s (INTERLOCK_ROLLOUT_POLL_SECONDS), far beyond the test's
deadlines: a rollout that moves here was moved by an event, never by the poll. No time is asserted
(bench/bench_rollouts.py `--replicas` measures the latency). PostgreSQL only: replicas share a database
server (SQLite replicas on one host are `serve --workers N`, woken through the sidecar file).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from interlock.store import open_store
from interlock.testing import eventually, live_server
from tests.rollout_fleet import fleet
from tests.test_rollouts import policy_text, rollout_doc

SLOW_POLL = {"INTERLOCK_ROLLOUT_POLL_SECONDS": "300"}


def runner_holder(url: str) -> str | None:
    with open_store(url) as store, store.transaction(readonly=True) as tx:
        row = tx.fetchone("SELECT holder FROM leases WHERE job = 'rollout-runner'")
    return str(row["holder"]) if row else None


def test_a_rollout_started_and_commanded_on_one_replica_is_moved_by_the_runner_on_another(
        pg_database: str, tmp_path: Path) -> None:
    names = ["web-1", "web-2"]
    with fleet(names) as services, ExitStack() as stack:
        policy = tmp_path / "policy.yaml"
        policy.write_text(policy_text({n: s.url for n, s in services.items()}))
        a = stack.enter_context(live_server(policy, pg_database, tmp_path, env=SLOW_POLL))
        holder = eventually(lambda: runner_holder(pg_database), what="replica A to take the runner's lease")
        assert holder.split(":")[1] == str(a.process.pid)
        b = stack.enter_context(live_server(policy, pg_database, tmp_path, env=SLOW_POLL))
        agent, bob = b.token("agent", "deployer"), b.token("human", "bob")

        def deploys() -> dict[str, list[str]]:
            return {n: s.state()["deploys"] for n, s in services.items()}

        def phase(rollout_id: str, wanted: str) -> dict[str, Any] | None:
            with b.client(bob) as http:
                body: dict[str, Any] = http.get(f"/v1/rollouts/{rollout_id}").json()
            return body if body["phase"] == wanted else None

        doc = rollout_doc("v2", steps=[{"setTargets": 1}, {"pause": {}}, {"percent": 100}])
        with b.client(agent) as http:
            started = http.post("/v1/rollouts", json=doc)
        assert started.status_code == 201, started.text
        rollout_id = started.json()["id"]
        for command, then_phase, then_deploys in [
            # (what a human does on B, the phase A's runner then reaches, the fleet then)
            ("approve", "paused", {"web-1": ["v2"], "web-2": []}),  # wave 1, then the pause {}
            ("promote", "succeeded", {"web-1": ["v2"], "web-2": ["v2"]}),
        ]:
            with b.client(bob) as http:
                answer = http.post(f"/v1/rollouts/{rollout_id}/{command}", json={})
            assert answer.status_code == 200, answer.text
            eventually(lambda: phase(rollout_id, then_phase), timeout=60,  # noqa: B023 - used in this iteration
                       what=f"replica A's runner to reach {then_phase} after {command} on B (poll is 300 s)")
            assert deploys() == then_deploys
        assert runner_holder(pg_database) == holder, "A held the lease throughout: B never ran a step"


def test_the_runners_lease_lasts_interlock_lease_seconds(pg_database: str, tmp_path: Path) -> None:
    """The runner's lease is INTERLOCK_LEASE_SECONDS like every background job's (it was a fixed 30 s), at least
    three polls: a dead holder's rollouts move within it."""
    from datetime import UTC, datetime

    from interlock.store.lease import Lease

    with fleet(["web-1"]) as services:
        policy = tmp_path / "policy.yaml"
        policy.write_text(policy_text({n: s.url for n, s in services.items()}))
        with live_server(policy, pg_database, tmp_path, env={"INTERLOCK_LEASE_SECONDS": "4"}):
            eventually(lambda: runner_holder(pg_database), what="the server to take the runner's lease")
            with open_store(pg_database) as store:
                lease = Lease.current(store, "rollout-runner")
            assert lease is not None
            left = (lease.expires_at - datetime.now(UTC)).total_seconds()
            assert 0 < left <= 4.5, f"the lease runs {left:.1f} s ahead, not INTERLOCK_LEASE_SECONDS (4 s)"
