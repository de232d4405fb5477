"""A rollout's one approval, in process on both stores, over a fleet of real local HTTP services: its
request is notified like any approval request (signed JSON and Slack bodies to a real receiver)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from interlock.model import Action, Kind
from interlock.policy import load_policy_text
from interlock.rollout import rehearsals
from interlock.rollout.model import RolloutError
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


def sandboxed_policy(urls: dict[str, str]) -> str:
    """Production web targets that must be rehearsed on their staging twin first (a `sandbox` rule)."""
    prod = "".join(f"  {n}: {{environment: production, kind: http, url: '{urls[n]}', http_methods: {{POST: write}}"
                   f", twin: {n}-stg}}\n" for n in urls if not n.endswith("-stg"))
    stg = "".join(f"  {n}: {{environment: staging, kind: http, url: '{urls[n]}', http_methods: {{POST: write}}}}\n"
                  for n in urls if n.endswith("-stg"))
    members = ", ".join(n for n in urls if not n.endswith("-stg"))
    return f"""
version: 1
humans:
  alice: {{groups: [sre]}}
  bob:   {{groups: [sre]}}
  carol: {{groups: [sre]}}
agents:
  deployer: {{owner: alice, roles: [deployer]}}
environments:
  staging:    {{promotes_to: production}}
  production: {{protected: true}}
targets:
{prod}{stg}
groups:
  web-fleet: [{members}]
roles:
  deployer:
    staging:    {{autonomous: destructive}}   # the twins are the agent's to try things on
    production: {{autonomous: read, approve: {{write: 1, destructive: 2}}}}
rules:
  - id: web-rehearsed-first
    when: {{environment: production, kind: http, risk: [write, destructive]}}
    effect: sandbox
    sandbox: staging
    reason: a web deploy runs on its staging twin first
"""


def relative(version: str, **changes: object) -> dict[str, object]:
    """The same payload on every member and its twin: a path under each target's url (which the http
    classifier cannot judge, so it is `unknown`, judged destructive: two humans in production)."""
    return rollout_doc(version, payload={"method": "POST", "url": "/deploy", "body": {"version": version}},
                       rollback={"payload": {"method": "POST", "url": "/deploy", "body": {"version": "v1"}}},
                       **changes)


@pytest.fixture
def twins() -> Iterator[dict[str, Service]]:
    with fleet(["web-1", "web-2", "web-1-stg", "web-2-stg"]) as services:
        yield services


def test_sandbox_required_members_are_rehearsed_on_their_twins_before_the_approval_opens(
        store_url: str, tmp_path: Path, clock: ManualClock, twins: dict[str, Service]) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(sandboxed_policy({n: s.url for n, s in twins.items()}))
    with Runtime(path, store_url, tmp_path / "keys", clock=clock) as runtime:
        rollouts = Rollouts(runtime.store, runtime.policy, runtime.audit, runtime.gateway, clock=clock)
        rollout = rollouts.submit("deployer", relative("v2", steps=[{"setTargets": 1}, {"percent": 100}]))
        deploys = {n: s.state()["deploys"] for n, s in twins.items()}
        assert deploys == {"web-1": [], "web-2": [], "web-1-stg": ["v2", "v1"], "web-2-stg": ["v2", "v1"]}, \
            "forward then rollback on each twin; nothing on production"
        request = rollouts.gate.status(rollout.state["approval"]["request_id"]).request
        assert request.evidence is not None and len(request.evidence["rehearsals"]) == 4
        assert "web-1-stg (staging)" in request.evidence["description"]
        assert request.rollout is not None
        seen = {t["name"]: (t["forward"]["decision"], t["forward"]["sandboxed"], t["rollback"]["sandboxed"])
                for t in request.rollout["targets"]}
        assert seen == {"web-1": ("approval_required", True, True), "web-2": ("approval_required", True, True)}
        rollouts.approve(rollout.id, BOB)
        rollouts.approve(rollout.id, CAROL)
        rollouts.tick(rollout.id)
        done = rollouts.get(rollout.id)
        assert done.phase is RolloutPhase.succeeded, done.state["reason"]
        assert {n: twins[n].state()["deploys"] for n in ("web-1", "web-2")} == {"web-1": ["v2"], "web-2": ["v2"]}


@pytest.mark.parametrize(("case", "code", "says"), [
    ("bad payload", "rehearsal_failed", "the forward action of web-1 on its twin web-1-stg (staging) failed"),
    ("templated", "templated_payload", "give a path under the target's url"),
])
def test_a_failed_rehearsal_refuses_the_rollout_before_anything_runs(
        store_url: str, tmp_path: Path, clock: ManualClock, twins: dict[str, Service], case: str, code: str,
        says: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(sandboxed_policy({n: s.url for n, s in twins.items()}))
    doc = relative("v2", steps=[{"percent": 100}])
    if case == "bad payload":  # the service answers 400 to a version that is not a string
        doc["payload"] = {"method": "POST", "url": "/deploy", "body": {"version": 2}}
    if case == "templated":
        doc = rollout_doc("v2", steps=[{"percent": 100}])
    with Runtime(path, store_url, tmp_path / "keys", clock=clock) as runtime:
        rollouts = Rollouts(runtime.store, runtime.policy, runtime.audit, runtime.gateway, clock=clock)
        with pytest.raises(RolloutError) as refused:
            rollouts.submit("deployer", doc)
        assert refused.value.code == code and says in str(refused.value), refused.value
        assert rollouts.all() == [] and rollouts.gate.list_requests() == [], "no rollout, nobody asked"
        assert runtime.audit.search(event="rollout.refused", limit=5)
    assert twins["web-1"].state()["deploys"] == [] and twins["web-2"].state()["deploys"] == []
    assert twins["web-2-stg"].state()["deploys"] == [], "the first failure stops the rehearsals"


def test_a_member_without_a_twin_where_the_rule_says_is_refused_naming_it_and_what_to_add() -> None:
    """The policy loader refuses a sandbox rule over a target without a twin; this is the rollout's own
    fail-closed check for a member whose twin is not in the environment its decision names."""
    doc = load_policy_text(sandboxed_policy({"web-1": "http://127.0.0.1:9", "web-1-stg": "http://127.0.0.1:8"})).doc
    action = Action(kind=Kind.http, environment="production", target="web-1",
                    payload={"method": "POST", "url": "/deploy", "body": {"version": "v2"}})
    assert rehearsals.twin_for(doc, rehearsals.Needed("web-1", "forward", action, "staging")) == "web-1-stg"
    with pytest.raises(RolloutError) as refused:
        rehearsals.twin_for(doc, rehearsals.Needed("web-1", "rollback", action, "sandbox"))
    assert refused.value.code == "no_twin"
    assert str(refused.value).startswith("the rollback action on web-1 must be rehearsed on its twin in sandbox "
                                         "first, and web-1 has none there: add `twin: NAME` to targets.web-1")
