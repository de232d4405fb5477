"""The recovery sweep on both stores, with the lease clock moved (never slept): an execution whose
replica's heartbeat expired is marked outcome_unknown once; a live replica's and a local mode's are not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

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


ADVISORY_STATES = [
    # (what follows an allowed advisory proposal recorded started by the MCP proxy, its state, reported?)
    ([], "allowed", False),
    (["outcome_unknown"], "outcome_unknown", False),  # the proxy died: the sweep marked it
    (["outcome_unknown", "report"], "allowed", True),  # its report came late (store cut off): the report wins
    (["report", "outcome_unknown"], "allowed", True),  # a mark after a report changes nothing
]

POLICY = """\
version: 1
humans: {alice: {groups: [sre]}}
agents: {kiro: {owner: alice, roles: [developer]}}
environments: {workspace: {}}
roles: {developer: {workspace: {autonomous: read, approve: {write: 1}}}}
"""


@pytest.mark.parametrize(("steps", "state", "reported"), ADVISORY_STATES)
def test_an_advisory_action_through_the_sweep(store_url: str, tmp_path: Path, steps: list[str], state: str,
                                              reported: bool) -> None:
    from interlock.client import LocalClient
    from interlock.gateway import Mode
    from interlock.model import Action

    (tmp_path / "policy.yaml").write_text(POLICY)
    with LocalClient(tmp_path / "policy.yaml", "kiro", db=store_url, key_dir=tmp_path / "keys") as local:
        gateway = local.runtime.gateway
        action = Action(kind="mcp", environment="workspace",
                        payload={"server": "fs", "tool": "read_text_file", "arguments": {}, "annotations": {}})
        proposal = gateway.propose("kiro", action, mode=Mode.advisory, started="replica:mcp-proxy:gone")
        assert proposal.state.value == "allowed"
        for step in steps:
            if step == "report":
                gateway.record_report(proposal.id, "kiro", {"status": "succeeded", "duration_ms": 1.0})
            else:
                gateway.audit.append("execution.outcome_unknown", {"action_id": proposal.id, "agent": "kiro"})
        after = gateway.status(proposal.id, agent="kiro")
        events = [e for _, e, _ in gateway.audit.action_entries(proposal.id)]
    assert events[:2] == ["action.proposed", "execution.started"]
    assert after.state.value == state and (after.reported is not None) is reported
