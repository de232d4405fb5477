"""A rollout's one approval, in process on both stores, over a fleet of real local HTTP services: its
request is notified like any approval request (signed JSON and Slack bodies to a real receiver)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from interlock.rollout.service import RolloutPhase, Rollouts
from interlock.runtime import Runtime
from tests import gate_fixtures as support
from tests.gate_fixtures import SECRET, ManualClock, Receiver
from tests.rollout_fleet import Service, fleet
from tests.test_rollouts import BOB, CAROL, HEALTH, policy_text, rollout_doc

receiver = support.receiver


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now=datetime.now(UTC))  # the gateway checks grants on the system clock


@pytest.fixture
def two(tmp_path: Path) -> Iterator[dict[str, Service]]:
    with fleet(["web-1", "web-2"]) as services:
        yield services


def test_a_pending_rollout_and_its_outcome_are_notified_like_any_approval(
        store_url: str, tmp_path: Path, clock: ManualClock, receiver: Receiver, two: dict[str, Service],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IL_HOOK_SECRET", SECRET)
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text({n: s.url for n, s in two.items()}) + "notify:\n"
                    f"  - {{url: '{receiver.url}', secret: env:IL_HOOK_SECRET}}\n"
                    f"  - {{url: '{receiver.url}', format: slack, secret: env:IL_HOOK_SECRET}}\n")
    with Runtime(path, store_url, tmp_path / "keys", clock=clock) as runtime:
        rollouts = Rollouts(runtime.store, runtime.policy, runtime.audit, runtime.gateway, clock=clock)
        steps = [{"setTargets": 1}, {"analysis": {"checks": [HEALTH]}}, {"percent": 100}]
        shipped = rollouts.submit("deployer", rollout_doc("v2", steps=steps))
        refused = rollouts.submit("deployer", rollout_doc("v3", steps=[{"percent": 100}]))
        assert rollouts.approve(shipped.id, BOB).phase is RolloutPhase.progressing
        assert rollouts.deny(refused.id, CAROL, "not during the sale").phase is RolloutPhase.denied
        assert runtime.notifier is not None and runtime.notifier.flush(20)
    bodies = [json.loads(r["body"]) for r in receiver.received]
    assert all(r["valid"] for r in receiver.received), "every delivery is signed"
    sent = sorted((b["event"], b["request"]["rollout"]["id"]) for b in bodies if "event" in b)
    assert sent == sorted([("approval.requested", shipped.id), ("approval.requested", refused.id),
                           ("approval.approved", shipped.id), ("approval.denied", refused.id)])
    requested = next(b["request"] for b in bodies if b.get("event") == "approval.requested"
                     and b["request"]["rollout"]["id"] == shipped.id)
    facts = requested["rollout"]
    assert [(t["name"], t["wave"], t["forward"]["decision"], t["rollback"]["decision"]) for t in facts["targets"]] \
        == [("web-1", 1, "approval_required", "approval_required"), ("web-2", 2, "approval_required",
                                                                     "approval_required")]
    assert [s["kind"] for s in facts["steps"]] == ["setTargets", "analysis", "percent"]
    assert facts["steps"][1]["checks"] == ["health"] and facts["progress_deadline"] == 3600
    assert "version" not in json.dumps(requested) and "/deploy" not in json.dumps(requested), "no payload"
    assert requested["link"].endswith(f"/ui/approvals/{shipped.state['approval']['request_id']}")
    slack = [b["text"] for b in bodies if "text" in b]
    assert len(slack) == 4
    first = next(t for t in slack if "approval.requested" in t and shipped.id in t)
    assert "2 targets of group web-fleet" in first and "wave 1: web-1; wave 2: web-2" in first
    assert "checks: health" in first and "rolls back the changed targets" in first
    assert any("approval.denied" in t and "not during the sale" in t for t in slack)
