"""Rollouts in process, on both stores, over a fleet of real local HTTP services (one process each).

The runner is driven by `Rollouts.tick` on an injected ManualClock (pauses and intervals never sleep);
the targets' actions run through the real Gateway and the real http executor against real processes."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from interlock.identity import Principal
from interlock.policy import PolicyError, load_policy_text
from interlock.rollout.model import RolloutError
from interlock.rollout.service import CommandError, RolloutPhase, Rollouts
from interlock.runtime import Runtime
from tests.gate_fixtures import ManualClock
from tests.rollout_fleet import Service, fleet

NAMES = ["web-1", "web-2", "web-3", "web-4"]
BOB = Principal(kind="human", name="bob", token_id="tok_bob")
CAROL = Principal(kind="human", name="carol", token_id="tok_carol")
ALICE = Principal(kind="human", name="alice", token_id="tok_alice")


def policy_text(urls: dict[str, str], extra_targets: str = "", groups: str = "") -> str:
    targets = "".join(f"  {name}: {{environment: production, kind: http, url: '{url}', http_methods: {{POST: write}}, labels: {{tier: web}}}}\n"
                      for name, url in urls.items())
    return f"""
version: 1
humans:
  alice: {{groups: [sre]}}
  bob:   {{groups: [sre]}}
  carol: {{groups: [sre]}}
agents:
  deployer: {{owner: alice, roles: [deployer]}}
environments:
  production: {{protected: true}}
targets:
{targets}{extra_targets}
groups:
  web-fleet: [{", ".join(urls)}]
  web-by-label: {{selector: {{tier: web}}}}
{groups}
roles:
  deployer:
    production: {{autonomous: read, approve: {{write: 1, destructive: 2}}}}
""" + ("""rules:
  - id: web-2-never-destructive
    when: {target: web-2, risk: destructive}
    effect: deny
    reason: web-2 serves the payment callbacks
""" if "web-2" in urls else "")


HEALTH = {"name": "health", "http": {"path": "/health"}, "successCondition": "status == 200 and json.healthy == true"}


def rollout_doc(version: str, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": f"ship {version}",
        "kind": "http",
        "group": "web-fleet",
        "payload": {"method": "POST", "url": "{target.url}/deploy", "body": {"version": version}},
        "rationale": {"intent": f"ship {version}", "rollback": "deploy v1 again"},
        "rollback": {"payload": {"method": "POST", "url": "{target.url}/deploy", "body": {"version": "v1"}}},
        "steps": [
            {"setTargets": 1},
            {"analysis": {"checks": [HEALTH]}},
            {"setTargets": 2},
            {"analysis": {"checks": [HEALTH], "count": 2, "interval": "30s"}},
            {"percent": 100},
        ],
    }
    doc.update(changes)
    return doc


@pytest.fixture
def clock() -> ManualClock:
    # grants are checked by the gate on the system clock: start the injected one at the real time
    return ManualClock(now=datetime.now(UTC))


World = Callable[..., tuple[Rollouts, dict[str, Service]]]


@contextmanager
def rollout_worlds(store_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[World]:
    """Builds fleets of real services with a Runtime over them on one store (`edit` changes the policy
    text first); everything built is closed at the end."""
    opened: list[Runtime] = []
    stack: list[Any] = []

    def build(breaks_on: dict[str, str] | None = None, names: list[str] = NAMES,
              edit: Callable[[str], str] = str) -> tuple[Rollouts, dict[str, Service]]:
        ctx = fleet(names, breaks_on)
        services = ctx.__enter__()
        stack.append(ctx)
        path = tmp_path / "policy.yaml"
        path.write_text(edit(policy_text({n: s.url for n, s in services.items()})))
        runtime = Runtime(path, store_url, tmp_path / "keys", clock=clock)
        opened.append(runtime)
        return Rollouts(runtime.store, runtime.policy, runtime.audit, runtime.gateway, clock=clock), services

    try:
        yield build
    finally:
        for runtime in opened:
            runtime.close()
        for ctx in stack:
            ctx.__exit__(None, None, None)


@pytest.fixture
def world(store_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[World]:
    with rollout_worlds(store_url, tmp_path, clock) as build:
        yield build


def deploys(services: dict[str, Service]) -> dict[str, list[str]]:
    return {name: s.state()["deploys"] for name, s in services.items()}


def test_a_good_change_rolls_out_in_waves_to_all(world: World, clock: ManualClock) -> None:
    rollouts, services = world()
    rollout = rollouts.submit("deployer", rollout_doc("v2"))
    assert rollout.phase is RolloutPhase.pending_approval
    assert rollouts.tick(rollout.id) == 0 and deploys(services) == {n: [] for n in NAMES}, "nothing before approval"
    with pytest.raises(CommandError, match=r"never counts|owner"):
        rollouts.approve(rollout.id, ALICE)  # the agent's owner
    approved = rollouts.approve(rollout.id, BOB)
    assert approved.phase is RolloutPhase.progressing
    assert approved.state["approval"]["grants"] == 8  # one per (target, payload): 4 forward + 4 rollback

    rollouts.tick(rollout.id)  # wave 1, its analysis, wave 2, the first of two measurements
    now = rollouts.get(rollout.id)
    assert [now.targets[n]["state"] for n in NAMES] == ["changed", "changed", "untouched", "untouched"]
    assert now.state["analysis"]["taken"] == 1 and deploys(services)["web-3"] == []
    assert rollouts.tick(rollout.id) == 0, "the interval runs on the injected clock"
    clock.advance(30)
    rollouts.tick(rollout.id)
    done = rollouts.get(rollout.id)
    assert done.phase is RolloutPhase.succeeded, done.state["reason"]
    assert deploys(services) == {n: ["v2"] for n in NAMES}
    assert [done.targets[n]["wave"] for n in NAMES] == [1, 2, 3, 3]
    steps = sorted(rollouts.audit.search(event="rollout.step", limit=50), key=lambda e: e["index"])
    assert [e["data"]["step"] for e in steps if e["data"]["rollout_id"] == rollout.id] == [0, 1, 2, 3, 4]


def test_a_bad_change_fails_at_wave_two_and_rolls_back_changed_targets_only(world: World) -> None:
    rollouts, services = world(breaks_on={"web-2": "v3"})
    rollout = rollouts.submit("deployer", rollout_doc("v3"))
    rollouts.approve(rollout.id, CAROL)
    rollouts.tick(rollout.id)
    after = rollouts.get(rollout.id)
    assert after.phase is RolloutPhase.rolled_back, after.state["reason"]
    assert "web-2" in after.state["reason"] and "never touched" in after.state["reason"]
    # reverse order: web-2 (changed last) is rolled back first, then web-1; web-3 and web-4 never touched
    assert deploys(services) == {"web-1": ["v3", "v1"], "web-2": ["v3", "v1"], "web-3": [], "web-4": []}
    assert [after.targets[n]["state"] for n in NAMES] == ["rolled_back", "rolled_back", "untouched", "untouched"]
    entries = rollouts.audit.search(event="rollout.target", limit=100)
    rolled = [e["data"]["target"] for e in sorted(entries, key=lambda e: e["index"])
              if e["data"]["direction"] == "rollback" and e["data"]["state"] == "rolled_back"]
    assert rolled == ["web-2", "web-1"]


def test_abort_policy_pause_stops_and_asks(world: World) -> None:
    rollouts, services = world(breaks_on={"web-2": "v3"})
    rollout = rollouts.submit("deployer", rollout_doc("v3", abortPolicy="pause"))
    rollouts.approve(rollout.id, BOB)
    rollouts.tick(rollout.id)
    paused = rollouts.get(rollout.id)
    assert paused.phase is RolloutPhase.paused and "abortPolicy pause" in paused.state["reason"]
    assert deploys(services)["web-1"] == ["v3"], "nothing rolled back without a human"
    rollouts.abort(rollout.id, BOB, "v3 breaks web-2")
    rollouts.tick(rollout.id)
    assert rollouts.get(rollout.id).phase is RolloutPhase.rolled_back
    assert deploys(services)["web-2"] == ["v3", "v1"] and deploys(services)["web-3"] == []


def test_pause_waits_for_a_humans_promote_and_a_timed_pause_for_the_clock(world: World, clock: ManualClock) -> None:
    rollouts, services = world(names=["web-1", "web-2"])
    doc = rollout_doc("v2", steps=[{"setTargets": 1}, {"pause": {}}, {"pause": {"duration": "10m"}},
                                   {"percent": 100}])
    rollout = rollouts.submit("deployer", doc)
    rollouts.approve(rollout.id, BOB)
    rollouts.tick(rollout.id)
    waiting = rollouts.get(rollout.id)
    assert waiting.phase is RolloutPhase.paused and "promote" in waiting.state["reason"]
    clock.advance(1800)
    assert rollouts.tick(rollout.id) == 0 and deploys(services)["web-2"] == [], "a pause {} ignores time"
    rollouts.resume(rollout.id, BOB)
    rollouts.tick(rollout.id)
    assert rollouts.get(rollout.id).phase is RolloutPhase.paused, "resume does not pass a pause {}"
    rollouts.promote(rollout.id, BOB)
    rollouts.tick(rollout.id)
    timed = rollouts.get(rollout.id)
    assert timed.phase is RolloutPhase.progressing and timed.state["step"] == 2
    clock.advance(599)
    assert rollouts.tick(rollout.id) == 0
    clock.advance(1)
    rollouts.tick(rollout.id)
    assert rollouts.get(rollout.id).phase is RolloutPhase.succeeded
    assert deploys(services) == {"web-1": ["v2"], "web-2": ["v2"]}


class RunnerDied(BaseException):
    """Stands in for the runner's process dying where it is raised."""


def dies(*_: Any, **__: Any) -> Any:
    raise RunnerDied


@pytest.mark.parametrize(("dies_in", "web_1_after", "deployed_after"), [
    # while web-1's action runs (its execution.started, and the target's `started` riding with it, are
    # durable; no outcome): outcome_unknown, the rollout pauses, nothing runs twice
    ("executor", "outcome_unknown", {"web-1": [], "web-2": []}),
    # before web-1's action started (nothing ran, nothing marked): web-1 is untouched and runs next time
    ("propose", "changed", {"web-1": ["v2"], "web-2": []}),
])
def test_a_step_started_without_outcome_is_outcome_unknown_and_never_repeated(
        world: World, monkeypatch: pytest.MonkeyPatch, dies_in: str, web_1_after: str,
        deployed_after: dict[str, list[str]]) -> None:
    rollouts, services = world(names=["web-1", "web-2"])
    rollout = rollouts.submit("deployer", rollout_doc("v2", steps=[{"setTargets": 1}, {"pause": {}}, {"percent": 100}]))
    rollouts.approve(rollout.id, BOB)
    monkeypatch.setattr(rollouts.gateway, dies_in, dies)
    with pytest.raises(RunnerDied):
        rollouts.tick(rollout.id)
    monkeypatch.undo()
    fresh = Rollouts(rollouts.store, rollouts.policy, rollouts.audit, rollouts.gateway, clock=rollouts.clock)
    fresh.tick(rollout.id)
    paused = fresh.get(rollout.id)
    assert paused.phase is RolloutPhase.paused and paused.targets["web-1"]["state"] == web_1_after
    assert deploys(services) == deployed_after, "a step that started is not run again"
    if web_1_after == "outcome_unknown":
        started = paused.targets["web-1"]["action"]  # the action whose timeline the human checks
        assert started.startswith("act_") and f"audit show --action {started}" in paused.targets["web-1"]["message"]
        assert [e for _, e, _ in rollouts.audit.action_entries(started)][-1] == "execution.started"  # no outcome
        fresh.resume(rollout.id, BOB)  # the human checked web-1: counted as changed
        fresh.tick(rollout.id)
    fresh.promote(rollout.id, BOB)
    fresh.tick(rollout.id)
    assert fresh.get(rollout.id).phase is RolloutPhase.succeeded
    assert deploys(services) == {"web-1": deployed_after["web-1"], "web-2": ["v2"]}


def test_a_target_is_durably_started_in_the_store_while_its_action_runs(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The target's `started` rides with its action's execution.started: whatever the Gateway's path, the
    row (what a runner after a crash reads) says so before the executor runs, forward and rollback."""
    rollouts, _services = world(names=["web-1"])
    rollout = rollouts.submit("deployer", rollout_doc("v2", steps=[{"setTargets": 1}, {"pause": {}}, {"percent": 100}]))
    rollouts.approve(rollout.id, BOB)
    execute = rollouts.gateway.executor
    seen: list[tuple[str, str | None]] = []

    def watched(*args: Any, **kwargs: Any) -> Any:
        row = rollouts.get(rollout.id).targets["web-1"]  # read from the store, as another replica would
        seen.append((row["state"], row.get("action") if row["state"] == "started" else row.get("rollback_action")))
        return execute(*args, **kwargs)

    monkeypatch.setattr(rollouts.gateway, "executor", watched)
    rollouts.tick(rollout.id)
    rollouts.abort(rollout.id, BOB, "take it back")
    rollouts.tick(rollout.id)
    done = rollouts.get(rollout.id)
    assert done.phase is RolloutPhase.rolled_back
    assert seen == [("started", done.targets["web-1"]["action"]),
                    ("rollback_started", done.targets["web-1"]["rollback_action"])]


@pytest.mark.parametrize(("command", "during", "phase", "web_1"), [
    # a human's command lands while web-1's step is under way: the runner's write of its state (a
    # compare-and-set on the version it wrote last, riding in the Gateway's batch) finds the row moved,
    # and records the state on top of the command, under the row's lock
    ("pause", "propose", RolloutPhase.paused, ["v2"]),  # before its action started: paused, web-1 changed
    ("abort", "propose", RolloutPhase.rolled_back, ["v2", "v1"]),  # the outcome recorded, then rolled back
    ("pause", "executor", RolloutPhase.paused, ["v2"]),  # while its action runs
    ("abort", "executor", RolloutPhase.rolled_back, ["v2", "v1"]),
])
def test_a_command_while_a_step_runs_is_kept_and_the_outcome_recorded_on_top(
        world: World, monkeypatch: pytest.MonkeyPatch, command: str, during: str, phase: RolloutPhase,
        web_1: list[str]) -> None:
    rollouts, services = world(names=["web-1", "web-2"])
    rollout = rollouts.submit("deployer", rollout_doc("v2", steps=[{"setTargets": 1}, {"percent": 100}]))
    rollouts.approve(rollout.id, BOB)
    human = Rollouts(rollouts.store, rollouts.policy, rollouts.audit, rollouts.gateway, clock=rollouts.clock)
    step = getattr(rollouts.gateway, during)

    def with_a_command(*args: Any, **kwargs: Any) -> Any:
        getattr(human, command)(rollout.id, BOB, "looks odd")  # another replica's API call, meanwhile
        monkeypatch.undo()
        return step(*args, **kwargs)

    monkeypatch.setattr(rollouts.gateway, during, with_a_command)
    rollouts.tick(rollout.id)
    after = rollouts.get(rollout.id)
    assert after.phase is phase, after.state["reason"]
    assert deploys(services) == {"web-1": web_1, "web-2": []}
    assert after.targets["web-1"]["action"] is not None, "the outcome is recorded, not lost"
    outcomes = [e["data"]["state"] for e in sorted(rollouts.audit.search(event="rollout.target", limit=50),
                                                   key=lambda e: e["index"])
                if e["data"]["rollout_id"] == rollout.id and e["data"]["direction"] == "forward"]
    assert outcomes == ["started", "changed"], "each write audited once (the rolled back attempt wrote nothing)"


def test_a_rollback_step_started_without_outcome_pauses_and_is_never_repeated(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    rollouts, services = world(names=["web-1", "web-2"])
    rollout = rollouts.submit("deployer", rollout_doc("v2", steps=[{"setTargets": 2}, {"percent": 100}]))
    rollouts.approve(rollout.id, BOB)
    rollouts.tick(rollout.id)
    assert rollouts.get(rollout.id).phase is RolloutPhase.succeeded
    rollout = rollouts.submit("deployer", rollout_doc("v3", steps=[{"setTargets": 2}, {"pause": {}}, {"percent": 100}]))
    rollouts.approve(rollout.id, BOB)
    rollouts.tick(rollout.id)
    rollouts.abort(rollout.id, BOB, "v3 is wrong")
    monkeypatch.setattr(rollouts.gateway, "executor", dies)  # while web-2's rollback runs
    with pytest.raises(RunnerDied):
        rollouts.tick(rollout.id)
    monkeypatch.undo()
    fresh = Rollouts(rollouts.store, rollouts.policy, rollouts.audit, rollouts.gateway, clock=rollouts.clock)
    fresh.tick(rollout.id)
    paused = fresh.get(rollout.id)
    assert paused.phase is RolloutPhase.paused and "rollback outcome unknown on web-2" in paused.state["reason"]
    assert [paused.targets[n]["state"] for n in ("web-1", "web-2")] == ["changed", "rollback_failed"]
    assert deploys(services) == {"web-1": ["v2", "v3"], "web-2": ["v2", "v3"]}, "the unknown rollback is not re-run"
    fresh.resume(rollout.id, BOB)  # the human checked web-2; the rollback goes on with web-1 only
    fresh.tick(rollout.id)
    assert fresh.get(rollout.id).phase is RolloutPhase.rolled_back
    assert deploys(services) == {"web-1": ["v2", "v3", "v1"], "web-2": ["v2", "v3"]}


def test_a_deny_on_any_member_refuses_the_rollout_before_anything_runs(world: World) -> None:
    rollouts, services = world(names=["web-1", "web-2"])
    doc = rollout_doc("v2", payload={"method": "DELETE", "url": "{target.url}/deploy"})
    with pytest.raises(RolloutError) as refused:
        rollouts.submit("deployer", doc)
    assert refused.value.code == "policy_denied"
    assert "forward action on web-2 is denied (web-2-never-destructive" in str(refused.value)
    assert rollouts.all() == [] and deploys(services) == {"web-1": [], "web-2": []}
    assert rollouts.audit.search(event="rollout.refused", limit=5)


def test_any_change_to_the_rollout_is_a_new_fingerprint(world: World) -> None:
    rollouts, _ = world(names=["web-1", "web-2"])
    base = rollout_doc("v2")
    first = rollouts.submit("deployer", base).fingerprint
    variants = []
    for path, value in ((("payload", "body", "version"), "v9"), (("rollback", "payload", "body", "version"), "v0"),
                        (("steps", 0, "setTargets"), 2), (("group",), "web-by-label")):
        doc = copy.deepcopy(base)
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        variants.append(rollouts.submit("deployer", doc).fingerprint)
    assert first not in variants and len(set(variants)) == len(variants)


BAD_INPUT = [
    ({"percent_over": True}, {"steps": [{"percent": 120}]}, "invalid_rollout", "steps[0].percent"),
    ({}, {"steps": [{"setTargets": 1}]}, "bad_steps", "never reach 100%"),
    ({}, {"steps": [{"setTargets": 2}, {"setTargets": 1}, {"percent": 100}]}, "bad_steps", "never go down"),
    ({}, {"rollback": {"kind": "sql", "payload": {"sql": "select 1"}}}, "rollback_kind", "same kind"),
    ({}, {"group": "nosuch"}, "bad_group", "unknown target group"),
    ({}, {"steps": [{"analysis": {"checks": [{**HEALTH, "successCondition": "status =="}]}}, {"percent": 100}]},
     "invalid_rollout", "does not parse"),
    ({}, {"steps": [{"analysis": {"checks": [{**HEALTH, "successCondition": "__import__('os')"}]}},
                    {"percent": 100}]}, "invalid_rollout", "Call"),
    ({}, {"steps": [{"analysis": {"checks": [{"name": "errors", "prometheus": {
        "url": "http://127.0.0.1:9", "query": "up"}, "successCondition": "result < 1"}]}}, {"percent": 100}]},
     "prometheus_unreachable", "does not answer"),
    ({}, {"steps": [{"setTargets": 1, "percent": 50}, {"percent": 100}]}, "invalid_rollout", "exactly one"),
]


@pytest.mark.parametrize(("groups", "says"), [
    ("  mixed: [web-1, db-1]\n", "group mixed mixes target kinds (http: web-1; sql: db-1)"),
    ("  nobody: {selector: {tier: none}}\n", "group nobody is empty (no target has the labels"),
    ("  none: []\n", "group none is empty (it lists no targets)"),
    ("  typo: [web-1, web-9]\n", "group typo names unknown target 'web-9'"),
    ("  both: {targets: [web-1], selector: {tier: web}}\n", "has both `targets` and `selector`"),
])
def test_the_policy_refuses_a_bad_group(groups: str, says: str) -> None:
    extra = "  db-1: {environment: production, kind: sql, dsn: 'env:NOPE'}\n"
    with pytest.raises(PolicyError) as refused:
        load_policy_text(policy_text({"web-1": "http://127.0.0.1:9"}, extra, groups))
    assert says in str(refused.value)


@pytest.mark.parametrize(("_", "changes", "code", "says"), BAD_INPUT)
def test_bad_input_is_a_clear_error_before_anything_runs(tmp_path: Path, _: dict[str, Any], changes: dict[str, Any],
                                                         code: str, says: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text({"web-1": "http://127.0.0.1:9", "web-2": "http://127.0.0.1:9"}))
    with Runtime(path, f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "keys") as runtime:
        rollouts = Rollouts(runtime.store, runtime.policy, runtime.audit, runtime.gateway)
        with pytest.raises(RolloutError) as refused:
            rollouts.submit("deployer", rollout_doc("v2", **changes))
        assert refused.value.code == code, refused.value
        assert says in str(refused.value)
        assert rollouts.all() == []


def test_a_freeze_pauses_the_rollout_before_the_frozen_target(world: World) -> None:
    rollouts, services = world()
    guard = rollouts.gateway.guard
    assert guard is not None
    frozen = guard.freeze(agent=None, environment=None, target="web-3", reason="incident 4711", by="bob")
    rollout = rollouts.submit("deployer", rollout_doc("v2", steps=[{"setTargets": 2}, {"percent": 100}]))
    rollouts.approve(rollout.id, BOB)
    rollouts.tick(rollout.id)
    paused = rollouts.get(rollout.id)
    assert paused.phase is RolloutPhase.paused and "web-3" in paused.state["reason"], paused.state["reason"]
    assert deploys(services) == {"web-1": ["v2"], "web-2": ["v2"], "web-3": [], "web-4": []}
    guard.thaw(frozen.id, by="bob", groups=("sre",))
    rollouts.resume(rollout.id, BOB)
    rollouts.tick(rollout.id)
    assert rollouts.get(rollout.id).phase is RolloutPhase.succeeded
    assert deploys(services) == {n: ["v2"] for n in NAMES}


def test_under_a_freeze_an_automatic_rollback_waits_for_a_human(world: World, clock: ManualClock) -> None:
    rollouts, services = world(breaks_on={"web-2": "v3"})
    guard = rollouts.gateway.guard
    assert guard is not None
    steps = [{"setTargets": 2}, {"analysis": {"checks": [HEALTH], "count": 2, "interval": "1m", "failureLimit": 1}},
             {"percent": 100}]
    rollout = rollouts.submit("deployer", rollout_doc("v3", steps=steps))
    rollouts.approve(rollout.id, BOB)
    rollouts.tick(rollout.id)  # both changed; the first failed measurement is within failureLimit
    frozen = guard.freeze(agent=None, environment=None, target="web-1", reason="incident 4712", by="bob")
    clock.advance(60)
    rollouts.tick(rollout.id)
    waiting = rollouts.get(rollout.id)
    assert waiting.phase is RolloutPhase.paused and "explicit" in waiting.state["reason"], waiting.state["reason"]
    assert deploys(services)["web-2"] == ["v3", "v1"] and deploys(services)["web-1"] == ["v3"]
    rollouts.abort(rollout.id, BOB, "roll web-1 back too")
    rollouts.tick(rollout.id)
    refused = rollouts.get(rollout.id)
    assert refused.phase is RolloutPhase.paused and "rollback not run" in refused.state["reason"]
    guard.thaw(frozen.id, by="bob", groups=("sre",))
    rollouts.resume(rollout.id, BOB)
    rollouts.tick(rollout.id)
    assert rollouts.get(rollout.id).phase is RolloutPhase.rolled_back
    assert deploys(services) == {"web-1": ["v3", "v1"], "web-2": ["v3", "v1"], "web-3": [], "web-4": []}


def test_two_runners_on_one_store_one_holds_the_lease_and_each_target_changes_once(
        world: World, store_url: str, tmp_path: Path, clock: ManualClock) -> None:
    import threading

    from interlock.rollout.runner import Runner
    from interlock.testing import eventually

    rollouts, services = world()
    with Runtime(tmp_path / "policy.yaml", store_url, tmp_path / "keys", clock=clock) as replica:
        other = Rollouts(replica.store, replica.policy, replica.audit, replica.gateway, clock=clock)
        rollout = rollouts.submit("deployer", rollout_doc("v2", steps=[{"setTargets": 2}, {"percent": 100}]))
        rollouts.approve(rollout.id, BOB)
        stopping = threading.Event()
        units = {"a": 0, "b": 0}

        def loop(name: str, runner: Runner) -> None:
            while not stopping.is_set():
                units[name] += runner.round(stopping)
                stopping.wait(0.01)

        runners = {"a": Runner(rollouts, holder="replica-a"), "b": Runner(other, holder="replica-b")}
        threads = [threading.Thread(target=loop, args=item) for item in runners.items()]
        for thread in threads:
            thread.start()
        try:
            eventually(lambda: rollouts.get(rollout.id).phase is RolloutPhase.succeeded, what="the rollout to finish")
        finally:
            stopping.set()
            for thread in threads:
                thread.join()
        assert sorted(units.values())[0] == 0 < sorted(units.values())[1], units
        assert deploys(services) == {n: ["v2"] for n in NAMES}


@pytest.mark.parametrize(("advanced", "renewed"), [
    # (seconds since the holder took its 30 s lease, whether its next round writes the lease row)
    (0, False),
    (14, False),  # an idle holder polling every second writes its row every ttl/2, not every poll
    (16, True),  # half of it gone: renewed
])
def test_an_idle_runner_renews_its_lease_once_half_of_it_is_gone(
        world: World, clock: ManualClock, advanced: int, renewed: bool) -> None:
    import threading

    from interlock.rollout.runner import JOB, Runner
    from interlock.store.lease import Lease

    rollouts, _services = world(names=["web-1"])
    runner = Runner(rollouts, ttl=30, holder="replica-a")
    assert runner.round(threading.Event()) == 0  # took the lease; nothing to do
    before = Lease.current(rollouts.store, JOB)
    clock.advance(advanced)
    runner.round(threading.Event())
    after = Lease.current(rollouts.store, JOB)
    assert before is not None and after is not None and after.holder == "replica-a"
    assert (after.expires_at > before.expires_at) is renewed


def test_a_runner_keeps_its_lease_through_an_action_longer_than_the_lease(
        world: World, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a round runs the holder renews its lease (every third of it): another replica's runner
    cannot take the rollout over beside a long action and find its target `started`."""
    import threading

    from interlock.rollout.runner import JOB, Runner
    from interlock.store.lease import Lease
    from interlock.testing import eventually

    rollouts, services = world(names=["web-1"])
    rollout = rollouts.submit("deployer", rollout_doc("v2", steps=[{"percent": 100}]))
    rollouts.approve(rollout.id, BOB)
    holder = Runner(rollouts, ttl=0.3, holder="replica-a")
    other = Runner(Rollouts(rollouts.store, rollouts.policy, rollouts.audit, rollouts.gateway, clock=clock),
                   ttl=0.3, holder="replica-b")
    execute = rollouts.gateway.executor
    others_round: list[int] = []

    def long_action(*args: Any, **kwargs: Any) -> Any:
        clock.advance(1)  # the action outlasts the lease the round started with
        renewed = eventually(lambda: (found := Lease.current(rollouts.store, JOB)) and found.expires_at > clock(),
                             what="the holder to renew its lease while its action runs")
        assert renewed
        others_round.append(other.round(threading.Event()))
        return execute(*args, **kwargs)

    monkeypatch.setattr(rollouts.gateway, "executor", long_action)
    assert holder.round(threading.Event()) > 0
    assert others_round == [0], "the other runner did nothing beside the long action"
    assert rollouts.get(rollout.id).phase is RolloutPhase.succeeded
    assert deploys(services) == {"web-1": ["v2"]}


def test_the_one_approval_counts_each_human_once_takes_a_reason_to_deny_and_expires(
        world: World, clock: ManualClock) -> None:
    rollouts, services = world(names=["web-1"])
    doc = rollout_doc("v2", steps=[{"percent": 100}], payload={"method": "DELETE", "url": "{target.url}/deploy"})
    destructive = rollouts.submit("deployer", doc)  # DELETE is destructive: two humans
    rollouts.approve(destructive.id, BOB)
    with pytest.raises(CommandError) as again:
        rollouts.approve(destructive.id, BOB)
    assert again.value.code == "already_voted"
    with pytest.raises(CommandError) as no_reason:
        rollouts.deny(destructive.id, CAROL, "  ")
    assert no_reason.value.code == "reason_required"
    denied = rollouts.deny(destructive.id, CAROL, "not during the sale")
    assert denied.phase is RolloutPhase.denied and "not during the sale" in denied.state["reason"]
    late = rollouts.submit("deployer", rollout_doc("v2", steps=[{"percent": 100}]))
    clock.advance(3600)  # the policy's approval_ttl
    with pytest.raises(CommandError) as expired:
        rollouts.approve(late.id, BOB)
    assert expired.value.code == "expired" and rollouts.get(late.id).phase is RolloutPhase.expired
    assert rollouts.tick(late.id) == 0 and deploys(services) == {"web-1": []}
