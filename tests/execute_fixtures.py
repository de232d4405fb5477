"""Helpers shared by the executor tests (tests/test_execute_*.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from interlock.execute import ExecutionResult
from interlock.model import Action, Kind
from interlock.policy.schema import Target

ENV = "production"


def action(kind: Kind | str, payload: dict[str, Any], target: str | None = "t") -> Action:
    return Action(kind=Kind(kind), environment=ENV, target=target, payload=payload)


def target(kind: Kind | str, **fields: Any) -> Target:
    return Target(environment=ENV, kind=Kind(kind), **fields)


def assert_no_secret(result: ExecutionResult, *secrets: str) -> None:
    """No secret anywhere in what the result would store or return."""
    dumped = result.model_dump_json()
    for secret in secrets:
        assert secret not in dumped, f"secret leaked into the result: {dumped[:500]}"


def live_processes_with(marker: str) -> list[int]:
    """Pids whose command line contains `marker` (to prove a process tree was killed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found
