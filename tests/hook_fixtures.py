"""Helpers shared by the agent-hook tests (tests/test_hooks*.py): run the real `interlock-hook`
process, and install into a scratch project with the real `interlock hook install`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from interlock.integrations.hooks_cli import app as hook_app

HOOK = Path(sys.executable).parent / "interlock-hook"


def run_hook(flavor: str, stdin: str, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """One hook call as the agent makes it: a process, the input on stdin, INTERLOCK_* cleared."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    if token:
        env["INTERLOCK_TOKEN"] = token
    return subprocess.run([str(HOOK), flavor, *args], input=stdin, capture_output=True, text=True, env=env,
                          timeout=120)


def unique(value: Any) -> Any:
    """`value` with every `{u}` made unique, so a test never meets another's grant or request."""
    return json.loads(json.dumps(value).replace("{u}", uuid.uuid4().hex[:8]))


def install(tmp_path: Path, agent: str, *args: str, home: Path | None = None) -> Any:
    """`interlock hook install AGENT` into the project at tmp_path (HOME at `home`, for --user)."""
    home = home or tmp_path / "home"
    home.mkdir(exist_ok=True)
    return CliRunner().invoke(hook_app, ["install", agent, "--dir", str(tmp_path), "--env", "production",
                                         "--gateway", "http://127.0.0.1:8700", "--wait", "90", *args],
                              env={"HOME": str(home), "COPILOT_HOME": "", "CODEX_HOME": ""})
