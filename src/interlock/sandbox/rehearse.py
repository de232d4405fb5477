"""Rehearsal executors: run the same action on a twin, and say what it did there.

`rehearse(action, twin)` never raises: like `execute`, whatever goes wrong is a result with
`status=error` and a message. Per kind (docs/sandbox.md):
- sql: one transaction on the twin, rolled back (`strategy: rollback`) or committed (`apply`), with
  rows per statement and the written tables' row counts before and after (execute/sql_rehearsal.py);
- shell: in bubblewrap on an overlay or a throwaway copy of the twin's workdir, with the files
  created, changed and deleted (execute/bwrap.py);
- terraform: the approved plan file when the twin's workdir holds that very file, else a fresh
  `terraform plan` of the twin's configuration; its summary (creates, updates, replaces, deletes),
  then `apply` in the twin's workdir;
- kubectl: the same command with `--dry-run=server` against the twin's cluster;
- http, aws: the ordinary executor against the twin's base URL / endpoint.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interlock.execute import DEFAULT_TIMEOUT, check_target, executor_for
from interlock.execute.result import (
    Clock,
    CredentialRedactor,
    ExecutionError,
    ExecutionResult,
    OutputCapture,
    Status,
    make_result,
)
from interlock.model import Action, Kind
from interlock.policy.schema import Target


@dataclass(frozen=True)
class Rehearsal:
    result: ExecutionResult
    effects: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


def rehearse(action: Action, twin: Target | None, *, timeout: float | None = None,
             shell_mode: str | None = None) -> Rehearsal:
    """Run `action` (already pointed at the twin) on `twin`; never raises."""
    clock, redactor = Clock(), CredentialRedactor()
    effects: dict[str, Any] = {}
    try:
        if twin is None:
            raise ExecutionError("a rehearsal needs the twin target; it is missing from the policy")
        seconds = float(timeout if timeout is not None else (twin.timeout or DEFAULT_TIMEOUT))
        check_target(action, twin)
        result, effects = _run(action, twin, seconds, redactor, clock, shell_mode)
    except ExecutionError as exc:
        result = make_result(Status.error, redactor, clock, error=str(exc))
    except Exception as exc:
        result = make_result(Status.error, redactor, clock,
                             error=f"{action.kind.value} rehearsal failed: {type(exc).__name__}: {exc}")
    return Rehearsal(result=result, effects=effects, summary=summarize(action.kind, result, effects))


def _run(action: Action, twin: Target, seconds: float, redactor: CredentialRedactor, clock: Clock,
         shell_mode: str | None) -> tuple[ExecutionResult, dict[str, Any]]:
    if action.kind is Kind.sql:
        from interlock.execute.sql_rehearsal import run_rehearsal

        return run_rehearsal(action, twin, seconds, redactor, clock)
    if action.kind is Kind.shell:
        from interlock.execute.bwrap import run_in_bwrap

        mode = shell_mode if shell_mode in ("overlay", "copy") else None
        return run_in_bwrap(action, twin, seconds, redactor, clock, mode=mode)  # type: ignore[arg-type]
    if action.kind is Kind.terraform:
        return _terraform(action, twin, seconds, redactor, clock)
    if action.kind is Kind.kubectl:
        return _kubectl(action, twin, seconds, redactor, clock)
    if action.kind in (Kind.http, Kind.aws):
        result = executor_for(action.kind)(action, twin, seconds, redactor, clock)
        effects = {"status": result.status.value, "http_status": result.http_status,
                   "body_sha256": result.output_sha256, "body_bytes": result.output_bytes}
        if action.kind is Kind.aws:
            effects.update(_aws_resources(action))
        return result, effects
    raise ExecutionError(f"{action.kind.value} actions cannot be rehearsed yet: no rehearsal executor")


# --- aws -----------------------------------------------------------------------------------------

_RESOURCE_KEY = re.compile(r"(Id|Ids|Name|Names|Arn|Arns|Bucket|Key|Identifier|Identifiers)$")


def _aws_resources(action: Action) -> dict[str, Any]:
    """The call and the resources it names (parameters like InstanceIds, Bucket, RoleName, …)."""
    from interlock.execute.aws import _call_of

    try:
        service, operation, params = _call_of(action)
    except Exception:
        return {}
    named: list[str] = []

    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, list):
            for item in node:
                walk(item, key)
        elif isinstance(node, str | int) and _RESOURCE_KEY.search(key) and len(named) < 100:
            named.append(f"{key}={node}")

    walk(params, "")
    return {"operation": f"{service}:{operation}", "resources": named}


# --- kubectl ---------------------------------------------------------------------------------------

_DRY_RUN_LINE = re.compile(r"^(?P<resource>\S+/\S+) (?P<verb>[a-z ]+?)(?: \(server dry run\))?$")


def _kubectl(action: Action, twin: Target, seconds: float, redactor: CredentialRedactor,
             clock: Clock) -> tuple[ExecutionResult, dict[str, Any]]:
    """The same kubectl command with `--dry-run=server` (any --dry-run the agent gave is replaced)."""
    from interlock.execute import kubectl

    words = [w for w in kubectl.arguments(action.payload) if not w.startswith("--dry-run")]
    cut = words.index("--") if "--" in words else len(words)
    words = [*words[:cut], "--dry-run=server", *words[cut:]]
    dry = action.model_copy(update={"payload": {"args": words}})
    result = kubectl.run(dry, twin, seconds, redactor, clock)
    changed = []
    for line in result.output.splitlines():
        match = _DRY_RUN_LINE.match(line.strip())
        if match:
            changed.append({"resource": match["resource"], "verb": match["verb"]})
    return result, {"dry_run": "server", "argv": ["kubectl", *words], "resources": changed}


# --- terraform -------------------------------------------------------------------------------------


def plan_summary(plan: dict[str, Any]) -> dict[str, Any]:
    counts = {"create": 0, "update": 0, "replace": 0, "delete": 0}
    replaces: list[str] = []
    deletes: list[str] = []
    for change in plan.get("resource_changes") or []:
        actions = change.get("change", {}).get("actions", [])
        address = str(change.get("address", "?"))
        if "delete" in actions and "create" in actions:
            counts["replace"] += 1
            replaces.append(address)
        elif "delete" in actions:
            counts["delete"] += 1
            deletes.append(address)
        elif "create" in actions:
            counts["create"] += 1
        elif "update" in actions:
            counts["update"] += 1
    return {"counts": counts, "replaces": replaces, "deletes": deletes}


def _terraform(action: Action, twin: Target, seconds: float, redactor: CredentialRedactor,
               clock: Clock) -> tuple[ExecutionResult, dict[str, Any]]:
    from interlock.execute import terraform
    from interlock.execute.process import run_process

    workdir = terraform._workdir(twin)
    output = OutputCapture(twin.max_output_bytes)
    with tempfile.TemporaryDirectory(prefix="interlock-rehearsal-tf-", ignore_cleanup_errors=True) as scratch:
        env = terraform._terraform_env(twin, redactor, scratch)

        def tf(*args: str, capture: OutputCapture) -> int | None:
            remaining = max(0.001, seconds - clock.elapsed())
            outcome = run_process([sys.executable, "-c", terraform.WORKER, f"-chdir={workdir}", *args], env=env,
                                  cwd=str(workdir), timeout=remaining, output=capture, kill_grace=2.0)
            if outcome.timed_out:
                raise TimeoutError
            return outcome.exit_code

        plan_file, source = _same_plan(workdir, action.payload), "the approved plan file"
        try:
            if plan_file is None:
                plan_file, source = Path(scratch) / "rehearsal.tfplan", "a fresh plan of the twin's configuration"
                if tf("plan", "-no-color", "-input=false", f"-out={plan_file}", capture=output) != 0:
                    return make_result(Status.failed, redactor, clock, output,
                                       error="terraform plan failed on the twin"), {"plan_source": source}
            shown = OutputCapture(256 * 1024 * 1024)
            if tf("show", "-json", "-no-color", str(plan_file), capture=shown) != 0:
                return make_result(Status.failed, redactor, clock, output,
                                   error="terraform show -json failed on the twin"), {"plan_source": source}
            effects = {"plan_source": source, "plan": plan_summary(json.loads(shown.raw()))}
            code = tf("apply", "-no-color", "-input=false", str(plan_file), capture=output)
        except TimeoutError:
            return make_result(Status.timeout, redactor, clock, output,
                               error=f"the terraform rehearsal timed out after {seconds:g}s and was stopped"), {}
    ok = code == 0
    return make_result(Status.succeeded if ok else Status.failed, redactor, clock, output, exit_code=code,
                       error=None if ok else f"terraform apply on the twin exited with code {code}"), effects


def plan_differences(expected: dict[str, Any], found: dict[str, Any]) -> str | None:
    """How the twin's plan differs from the proposed plan (counts, replaces, deletes), or None."""
    diffs = [f"{key}: proposed {expected.get(key)}, twin {found.get(key)}"
             for key in ("counts", "replaces", "deletes") if expected.get(key) != found.get(key)]
    return "; ".join(diffs) or None


def _same_plan(workdir: Path, payload: dict[str, Any]) -> Path | None:
    """The payload's plan file in the twin's workdir, when it is there with the approved hash."""
    name, expected = payload.get("plan_file"), payload.get("plan_sha256")
    if not isinstance(name, str) or not isinstance(expected, str) or Path(name).is_absolute():
        return None
    path = (workdir / name).resolve()
    if not path.is_relative_to(workdir) or not path.is_file():
        return None
    return path if hashlib.sha256(path.read_bytes()).hexdigest() == expected.lower() else None


# --- summaries -------------------------------------------------------------------------------------


def summarize(kind: Kind, result: ExecutionResult, effects: dict[str, Any]) -> str:
    """One line an approver reads: what the rehearsal did on the twin."""
    if result.status is Status.error or (result.error and not effects):
        return f"not run: {result.error}" if result.status is Status.error else str(result.error)
    if kind is Kind.sql:
        from interlock.execute.sql_rehearsal import summary

        text = summary(effects)
    elif kind is Kind.shell:
        files = effects.get("files", {}).get("counts", {})
        text = (f"exit {result.exit_code}; files created {files.get('created', 0)}, changed {files.get('changed', 0)},"
                f" deleted {files.get('deleted', 0)} ({effects.get('isolation', 'bubblewrap')})")
    elif kind is Kind.terraform:
        plan = effects.get("plan", {})
        counts = plan.get("counts", {})
        text = ", ".join(f"{n} to {what}" for what, n in counts.items()) or "no plan"
        if plan.get("replaces"):
            text += f"; replaces {', '.join(plan['replaces'][:10])}"
        if plan.get("deletes"):
            text += f"; deletes {', '.join(plan['deletes'][:10])}"
    elif kind is Kind.kubectl:
        changed = effects.get("resources", [])
        text = "server dry run: " + (", ".join(f"{c['resource']} {c['verb']}" for c in changed[:10]) or "no resources")
    elif kind is Kind.aws and effects.get("operation"):
        text = f"{effects['operation']} on {', '.join(effects.get('resources', [])[:10]) or 'no named resource'}"
    else:
        text = f"HTTP {result.http_status}" if result.http_status else f"status {result.status.value}"
    if result.status is not Status.succeeded and result.error:
        text += f"; {result.error}"
    return text
