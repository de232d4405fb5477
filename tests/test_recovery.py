"""The recovery sweep on both stores, with the lease clock moved (never slept): an execution whose
replica's heartbeat expired is marked outcome_unknown once; a live replica's and a local mode's are not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from interlock.audit import AuditLog
from interlock.recovery import PRUNE_AFTER, Heartbeat, Sweeper, count_unknown
from interlock.store import Store
from interlock.store.lease import Lease


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def started(audit: AuditLog, action_id: str, replica: str | None) -> None:
    data = {"action_id": action_id, "agent": "kiro", "kind": "shell", "target": None}
    if replica:
        data["replica"] = replica
    audit.append("action.proposed", {"action_id": action_id, "agent": "kiro"})
    audit.append("execution.started", data)


def test_sweep_marks_only_executions_of_dead_replicas(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    with AuditLog(store, key_dir=tmp_path / "keys") as audit:
        dead, alive = Heartbeat(store, "replica:dead", 10, clock), Heartbeat(store, "replica:alive", 10, clock)
        assert dead.beat() and alive.beat()
        started(audit, "act_dead", "replica:dead")
        started(audit, "act_alive", "replica:alive")
        started(audit, "act_local", None)  # a local-mode gateway: no replica, never judged
        started(audit, "act_gone", "replica:never-seen")  # its row was pruned or never written: dead
        audit.append("action.proposed", {"action_id": "act_done", "agent": "kiro"})
        audit.append("execution.started", {"action_id": "act_done", "agent": "kiro", "replica": "replica:dead"})
        audit.append("execution.finished", {"action_id": "act_done", "agent": "kiro", "outcome": "succeeded"})
        sweeper = Sweeper(store, audit, clock=clock)
        assert sweeper.sweep() == ["act_gone"]
        clock.now += timedelta(seconds=11)
        assert alive.beat()
        assert sweeper.sweep() == ["act_dead"]
        assert sweeper.sweep() == []  # marked once
        assert Sweeper(store, audit, clock=clock).sweep() == []  # a new holder (start 0) agrees
        assert count_unknown(store) == 2
        events = [e for _, e, _ in audit.action_entries("act_dead")]
        assert events == ["action.proposed", "execution.started", "execution.outcome_unknown"]
        # Long-dead heartbeat rows are pruned; a clean stop removes its own.
        clock.now += PRUNE_AFTER + timedelta(seconds=20)
        alive.beat()
        sweeper.sweep()
        assert Lease.current(store, "replica:dead") is None
        alive.stop()
        assert Lease.current(store, "replica:alive") is None


ADVISORY = [
    # (what the advisory caller (the in-process MCP proxy) recorded after execution.started, swept?)
    ([], True),  # it died before reporting: outcome unknown
    ([("execution.reported", {"outcome": {"status": "succeeded"}})], False),  # its report is the outcome
    ([("execution.reported", {"outcome": {"status": "error"}})], False),
]


def test_an_advisory_report_closes_the_execution(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    with AuditLog(store, key_dir=tmp_path / "keys") as audit:
        proxy = Heartbeat(store, "replica:mcp-proxy:gone", 10, clock)
        assert proxy.beat()
        for i, (after, _) in enumerate(ADVISORY):
            started(audit, f"act_{i}", "replica:mcp-proxy:gone")
            for event, data in after:
                audit.append(event, {"action_id": f"act_{i}", "agent": "kiro", **data})
        clock.now += timedelta(seconds=11)
        marked = Sweeper(store, audit, clock=clock).sweep()
    assert marked == [f"act_{i}" for i, (_, swept) in enumerate(ADVISORY) if swept]
