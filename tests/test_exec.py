"""`interlock exec` end to end: a real `interlock exec` process against a real `interlock serve`
(SQLite and PostgreSQL), and in-process with --policy. Interlock runs the command; exec prints its
output and exits with its code; denials, pending approvals and errors have their own codes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from interlock.testing import LiveServer, free_port

EXAMPLE = Path(__file__).parent.parent / "examples" / "policy.yaml"


def interlock_exec(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    if token:
        env["INTERLOCK_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "interlock.cli", "exec", *args], capture_output=True, text=True,
                          env=env, timeout=120)


RUNS = [
    # (agent, environment, command, exit code, stdout, words on stderr)
    ("kiro", "sandbox", ["sh", "-c", "echo hi; exit 7"], 7, "hi\n", ""),
    ("kiro", "sandbox", ["printf", "%s|", "a b", "c'd"], 0, "a b|c'd|", ""),
    ("kiro", "production", ["ls", "/"], 0, None, ""),
    ("kiro", "production", ["kubectl", "replace", "--force", "-f", "api.yaml"], 1, "", "never-replace-prod"),
    ("reporter", "production", ["touch", "/tmp/reporter-{u}"], 1, "", "grants write"),
    ("kiro", "production", ["rm", "-rf", "/srv/{u}"], 3, "", "still waiting for approval"),
]


@pytest.mark.parametrize(("agent", "environment", "command", "code", "stdout", "words"), RUNS)
def test_exec(server: LiveServer, tokens: dict[str, str], agent: str, environment: str, command: list[str],
              code: int, stdout: str | None, words: str) -> None:
    u = uuid.uuid4().hex[:8]
    done = interlock_exec("--env", environment, "--gateway", server.url, "--wait", "0.3", "--",
                          *[c.replace("{u}", u) for c in command], token=tokens[agent])
    assert done.returncode == code, done.stderr
    if stdout is not None:
        assert done.stdout == stdout
    assert words in done.stderr


def test_exec_waits_for_approval_then_runs(server: LiveServer, tokens: dict[str, str], tmp_path: Path) -> None:
    made = tmp_path / f"made-{uuid.uuid4().hex[:8]}"
    line = f"mkdir {made}"

    approver = threading.Thread(target=server.decide_when_pending, args=(line, tokens["bob"]))
    approver.start()
    try:
        done = interlock_exec("--env", "production", "--gateway", server.url, "--wait", "60", "--",
                              "sh", "-c", f"{line} && echo made && exit 5", token=tokens["kiro"])
    finally:
        approver.join()
    assert done.returncode == 5, done.stderr
    assert done.stdout == "made\n"
    assert "needs approval" in done.stderr and "apr_" in done.stderr  # who must approve, and the request id
    assert made.is_dir()


@pytest.mark.parametrize(("args", "with_token", "words"), [
    (["--env", "production", "--gateway", "{url}"], True, "no command"),
    (["--gateway", "{url}", "--", "ls"], True, "--env"),
    (["--env", "production", "--", "ls"], True, "--gateway"),
    (["--env", "production", "--gateway", "{url}", "--", "ls"], False, "no token"),
    (["--env", "production", "--gateway", "{url}", "--token", "ilk_a_wrong", "--", "ls"], False, "401"),
    (["--env", "production", "--gateway", "http://127.0.0.1:{free}", "--", "ls"], True, "cannot reach"),
    (["--env", "production", "--policy", str(EXAMPLE), "--", "ls"], True, "--agent"),
])
def test_exec_errors_exit_2(server: LiveServer, tokens: dict[str, str], args: list[str], with_token: bool,
                            words: str) -> None:
    concrete = [a.replace("{url}", server.url).replace("{free}", str(free_port())) for a in args]
    done = interlock_exec(*concrete, token=tokens["kiro"] if with_token else None)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr
    assert done.stdout == ""


def test_exec_in_process_with_policy(tmp_path: Path) -> None:
    args = ("--policy", str(EXAMPLE), "--agent", "kiro", "--db", f"sqlite:///{tmp_path / 'e.db'}", "--key-dir",
            str(tmp_path / "keys"))
    done = interlock_exec(*args, "--env", "sandbox", "--", "sh", "-c", "echo local; exit 4")
    assert (done.returncode, done.stdout) == (4, "local\n")
    denied = interlock_exec(*args, "--env", "production", "--", "kubectl", "replace", "--force", "-f", "a.yaml")
    assert (denied.returncode, denied.stdout) == (1, "")
    assert "never-replace-prod" in denied.stderr
