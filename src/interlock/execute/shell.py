"""shell: `/bin/bash -c COMMAND` with the target's environment, never the gateway's.

Target fields: `workdir` (must exist; default: a fresh temporary directory, removed afterwards),
`env` (name → credential reference, resolved now), `timeout`, `max_output_bytes`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from interlock.execute.process import base_env, run_process
from interlock.execute.result import (
    Clock,
    CredentialRedactor,
    ExecutionError,
    ExecutionResult,
    OutputCapture,
    Status,
    make_result,
)
from interlock.model import Action
from interlock.policy.schema import Target

BASH = "/bin/bash"
DEFAULT_MAX_OUTPUT = 1024 * 1024


def target_env(target: Target | None, redactor: CredentialRedactor, home: str) -> dict[str, str]:
    """The controlled environment plus the target's resolved `env` (values registered as secrets)."""
    env = base_env(home)
    if target is not None:
        for name, ref in sorted(target.env.items()):
            env[name] = redactor.resolve(ref, f"target env {name}")
    return env


def workdir(target: Target | None) -> str | None:
    """The target's working directory, checked; None means "use a fresh temporary one"."""
    if target is None or target.workdir is None:
        return None
    path = Path(target.workdir)
    if not path.is_dir():
        raise ExecutionError(f"target workdir {target.workdir!r} does not exist or is not a directory: create it")
    return str(path)


def command_of(action: Action) -> str:
    command = action.payload.get("command")
    if not isinstance(command, str) or not command.strip():
        raise ExecutionError('shell payload needs a non-empty string `command`, e.g. {"command": "ls -l"}')
    return command


def run(
    action: Action, target: Target | None, timeout: float, redactor: CredentialRedactor, clock: Clock
) -> ExecutionResult:
    command = command_of(action)
    limit = target.max_output_bytes if target is not None else DEFAULT_MAX_OUTPUT
    cwd = workdir(target)
    with tempfile.TemporaryDirectory(prefix="interlock-shell-", ignore_cleanup_errors=True) as scratch:
        env = target_env(target, redactor, home=scratch)
        outcome = run_process(
            [BASH, "-c", command], env=env, cwd=cwd or scratch, timeout=timeout, output=OutputCapture(limit)
        )
    if outcome.cancelled is not None:
        return make_result(Status.cancelled, redactor, clock, outcome.output, exit_code=outcome.exit_code,
                           error=f"cancelled: {outcome.cancelled}; the process tree was killed")
    if outcome.timed_out:
        return make_result(
            Status.timeout,
            redactor,
            clock,
            outcome.output,
            exit_code=outcome.exit_code,
            error=f"timed out after {timeout:g}s; the process tree was killed",
        )
    status = Status.succeeded if outcome.exit_code == 0 else Status.failed
    error = None if status is Status.succeeded else f"exited with code {outcome.exit_code}"
    return make_result(status, redactor, clock, outcome.output, exit_code=outcome.exit_code, error=error)
