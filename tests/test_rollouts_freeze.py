"""Issue 16.6: under a freeze, a rollout's rollback runs only on a human's explicit command.

`abort --under-freeze` by a human in the policy's `guards.thaw_by` writes one audit entry naming the
human, the freezes and the exact rollback fingerprints; the Gateway lets exactly those rollbacks past
those freezes, each once, against that entry. Both stores, a fleet of real local HTTP services, the
injected clock (tests.test_rollouts shows the same world)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from interlock.gateway import State
from interlock.guard.rollback_pass import Pass
from interlock.identity import Principal
from interlock.rollout.service import CommandError, RolloutPhase, Rollouts
from interlock.testing import eventually, live_server
from tests.gate_fixtures import ManualClock
from tests.rollout_fleet import Service, fleet
from tests.test_rollouts import BOB, CAROL, deploys, policy_text, rollout_doc, rollout_worlds

NAMES = ["web-1", "web-2", "web-3"]
AGENT = Principal(kind="agent", name="deployer", token_id="tok_deployer")
#: two targets changed, then a `pause: {}`: the rollout waits there for a human
STEPS = [{"setTargets": 2}, {"pause": {}}, {"percent": 100}]


def _window(start: datetime, hours: int) -> str:
    end = start + timedelta(hours=hours)
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"


def guarded(text: str, window_from: datetime | None) -> str:
    """The rollouts policy with bob on call (`thaw_by: [oncall]`), and a change-freeze window over
    production from `window_from` for a day when given."""
    text = text.replace("bob:   {groups: [sre]}", "bob:   {groups: [sre, oncall]}")
    windows = "" if window_from is None else (
        f"  freezes:\n    - name: incident\n      environments: [production]\n"
        f"      window: \"{_window(window_from, 24)}\"\n      reason: incident window\n")
    return text + f"guards:\n  thaw_by: [oncall]\n{windows}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now=datetime.now(UTC))  # grants are checked on the system clock


World = Callable[..., tuple[Rollouts, dict[str, Service]]]


@pytest.fixture
def world(store_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[World]:
    """test_rollouts' world under the guarded policy (`window_from`: a change-freeze window from then)."""
    with rollout_worlds(store_url, tmp_path, clock) as build:
        yield lambda window_from=None: build(names=NAMES, edit=lambda text: guarded(text, window_from))


def started(rollouts: Rollouts) -> str:
    """A rollout with web-1 and web-2 changed to v2, waiting at its `pause: {}`."""
    rollout = rollouts.submit("deployer", rollout_doc("v2", steps=STEPS))
    rollouts.approve(rollout.id, CAROL)
    rollouts.tick(rollout.id)
    assert rollouts.get(rollout.id).phase is RolloutPhase.paused
    return rollout.id


def entries(rollouts: Rollouts, event: str) -> list[dict[str, Any]]:
    return [e["data"] for e in rollouts.audit.search(event=event, limit=50)]


def test_a_human_who_may_thaw_rolls_back_past_the_freeze_exactly_once(world: World) -> None:
    rollouts, services = world()
    guard = rollouts.gateway.guard
    assert guard is not None
    rollout_id = started(rollouts)
    frozen = guard.freeze(agent=None, environment="production", target=None, reason="incident 4720", by="carol")

    rollouts.abort(rollout_id, BOB, "plain abort first")
    rollouts.tick(rollout_id)
    refused = rollouts.get(rollout_id)
    assert refused.phase is RolloutPhase.paused and "rollback not run" in refused.state["reason"]

    rollouts.abort(rollout_id, BOB, "incident 4720: take v2 back", under_freeze=True)
    rollouts.tick(rollout_id)
    done = rollouts.get(rollout_id)
    assert done.phase is RolloutPhase.rolled_back, done.state["reason"]
    assert deploys(services) == {"web-1": ["v2", "v1"], "web-2": ["v2", "v1"], "web-3": []}

    [command] = entries(rollouts, "rollout.abort_under_freeze")
    assert (command["human"], command["freezes"], command["reason"]) == \
        ("bob", [frozen.id], "incident 4720: take v2 back")
    assert [r["target"] for r in command["rollbacks"]] == ["web-2", "web-1"]
    passed = entries(rollouts, "rollout.freeze_passed")
    assert sorted(p["fingerprint"] for p in passed) == sorted(command["fingerprints"])

    # the freeze still holds for everything else: the same rollback again (its pass used), a forward step
    rollback = rollouts.plan_of(done).backward("web-1", rollouts.policy.doc)
    again = rollouts.gateway.propose("deployer", rollback, rollback=Pass(rollout_id, done.state["freeze_pass"]))
    assert again.state is State.denied and "once already" in " ".join(again.decision.reasons)
    forward = rollouts.plan_of(done).forward("web-3", rollouts.policy.doc)
    assert rollouts.gateway.propose("deployer", forward).state is State.denied
    assert deploys(services)["web-3"] == []


@pytest.mark.parametrize(("who", "code"), [
    (CAROL, "not_eligible"),  # a human outside thaw_by
    (AGENT, "agent_token"),  # an agent never
])
def test_only_a_human_who_may_thaw_aborts_under_a_freeze(world: World, who: Principal, code: str) -> None:
    rollouts, _ = world()
    guard = rollouts.gateway.guard
    assert guard is not None
    rollout_id = started(rollouts)
    guard.freeze(agent=None, environment=None, target=None, reason="incident 4721", by="carol")
    with pytest.raises(CommandError) as refused:
        rollouts.abort(rollout_id, who, "take it back", under_freeze=True)
    assert refused.value.code == code, refused.value
    assert entries(rollouts, "rollout.abort_under_freeze") == []
    if who.kind == "human":  # audited, as a refused thaw is
        [audited] = entries(rollouts, "guard.refused")
        assert (audited["op"], audited["human"], audited["code"]) == ("abort_under_freeze", "carol", code)
    assert rollouts.get(rollout_id).phase is RolloutPhase.paused


@pytest.mark.parametrize(("frozen", "reason", "code"), [
    (True, "", "reason_required"),
    (False, "take it back", "not_frozen"),
])
def test_an_abort_under_freeze_needs_a_reason_and_a_freeze(world: World, frozen: bool, reason: str,
                                                           code: str) -> None:
    rollouts, _ = world()
    guard = rollouts.gateway.guard
    assert guard is not None
    rollout_id = started(rollouts)
    if frozen:
        guard.freeze(agent=None, environment=None, target=None, reason="incident 4722", by="carol")
    with pytest.raises(CommandError) as refused:
        rollouts.abort(rollout_id, BOB, reason, under_freeze=True)
    assert refused.value.code == code


def test_a_freeze_made_after_the_abort_still_holds(world: World) -> None:
    rollouts, services = world()
    guard = rollouts.gateway.guard
    assert guard is not None
    rollout_id = started(rollouts)
    guard.freeze(agent=None, environment=None, target="web-2", reason="incident 4723", by="carol")
    rollouts.abort(rollout_id, BOB, "take web-2 back", under_freeze=True)
    later = guard.freeze(agent=None, environment=None, target="web-1", reason="incident 4724", by="carol")
    rollouts.tick(rollout_id)
    paused = rollouts.get(rollout_id)
    assert paused.phase is RolloutPhase.paused and later.id in paused.state["reason"], paused.state["reason"]
    assert "abort --under-freeze again" in paused.state["reason"]
    assert deploys(services) == {"web-1": ["v2"], "web-2": ["v2", "v1"], "web-3": []}
    # a second explicit command (a new entry naming both freezes) takes web-1 back; web-2's pass stays used
    rollouts.abort(rollout_id, BOB, "take web-1 back too", under_freeze=True)
    rollouts.tick(rollout_id)
    assert rollouts.get(rollout_id).phase is RolloutPhase.rolled_back
    assert deploys(services) == {"web-1": ["v2", "v1"], "web-2": ["v2", "v1"], "web-3": []}
    second = entries(rollouts, "rollout.abort_under_freeze")
    assert sorted(len(e["rollbacks"]) for e in second) == [1, 2], "the second names only what is left: web-1"


def test_a_pass_counts_only_against_its_own_entry(world: World) -> None:
    rollouts, services = world()
    guard = rollouts.gateway.guard
    assert guard is not None
    rollout_id = started(rollouts)
    guard.freeze(agent=None, environment=None, target=None, reason="incident 4725", by="carol")
    rollout = rollouts.get(rollout_id)
    rollback = rollouts.plan_of(rollout).backward("web-1", rollouts.policy.doc)
    other = rollouts.audit.search(event="guard.frozen", limit=1)[0]["index"]  # a real entry, not an abort
    forged = rollouts.gateway.propose("deployer", rollback, rollback=Pass(rollout_id, other))
    assert forged.state is State.denied and "is not a `rollout abort --under-freeze`" in \
        " ".join(forged.decision.reasons)
    assert deploys(services)["web-1"] == ["v2"]


def test_a_change_freeze_window_behaves_the_same(world: World, clock: ManualClock) -> None:
    rollouts, services = world(window_from=clock() + timedelta(hours=1))
    rollout_id = started(rollouts)
    clock.advance(2 * 3600)  # inside the window now
    rollouts.abort(rollout_id, BOB, "plain abort first")
    rollouts.tick(rollout_id)
    assert "rollback not run" in rollouts.get(rollout_id).state["reason"]
    rollouts.abort(rollout_id, BOB, "incident window: take v2 back", under_freeze=True)
    rollouts.tick(rollout_id)
    done = rollouts.get(rollout_id)
    assert done.phase is RolloutPhase.rolled_back, done.state["reason"]
    assert deploys(services) == {"web-1": ["v2", "v1"], "web-2": ["v2", "v1"], "web-3": []}
    [command] = entries(rollouts, "rollout.abort_under_freeze")
    assert (command["freezes"], command["windows"]) == ([], ["incident"])


def test_through_the_server_only_the_cli_command_of_a_human_who_may_thaw_rolls_back(
        store_url: str, tmp_path: Path) -> None:
    with fleet(NAMES) as services:
        policy = tmp_path / "policy.yaml"
        policy.write_text(guarded(policy_text({n: s.url for n, s in services.items()}), None))
        with live_server(policy, store_url, tmp_path) as server:
            agent, bob, carol = (server.token("agent", "deployer"), server.token("human", "bob"),
                                 server.token("human", "carol"))
            with server.client(agent) as http:
                rollout_id = http.post("/v1/rollouts", json=rollout_doc("v2", steps=STEPS)).json()["id"]
            with server.client(carol) as http:
                assert http.post(f"/v1/rollouts/{rollout_id}/approve", json={}).status_code == 200

                def paused() -> dict[str, Any] | None:
                    body: dict[str, Any] = http.get(f"/v1/rollouts/{rollout_id}").json()
                    return body if body["phase"] == "paused" else None

                eventually(paused, what="the rollout at its pause {} step")
                made = http.post("/v1/freezes", json={"environment": "production", "reason": "incident 4726"})
                assert made.status_code == 201, made.text
                body = {"reason": "take it back", "under_freeze": True}
                refused = http.post(f"/v1/rollouts/{rollout_id}/abort", json=body)
                assert (refused.status_code, refused.json()["error"]["code"]) == (403, "not_eligible"), refused.text
                assert "thaw_by" in refused.json()["error"]["message"]
            with server.client(agent) as http:
                assert http.post(f"/v1/rollouts/{rollout_id}/abort", json=body).status_code == 403
            done = subprocess.run([sys.executable, "-m", "interlock.cli", "rollout", "abort", rollout_id,
                                   "--under-freeze", "--reason", "incident 4726: take v2 back", "--gateway",
                                   server.url, "--token", bob], capture_output=True, text=True, timeout=120,
                                  check=False)
            assert done.returncode == 0, done.stdout + done.stderr
            with server.client(bob) as http:
                def rolled_back() -> dict[str, Any] | None:
                    body: dict[str, Any] = http.get(f"/v1/rollouts/{rollout_id}").json()
                    return body if body["phase"] == "rolled_back" else None

                eventually(rolled_back, what="the rollback past the freeze")
        assert deploys(services) == {"web-1": ["v2", "v1"], "web-2": ["v2", "v1"], "web-3": []}
