"""shell executor and the dispatcher: real bash subprocesses, real process trees, real /proc."""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path

import pytest

from interlock.execute import Status, execute
from interlock.execute.result import EXCERPT_CHARS
from interlock.testing import eventually
from tests.execute_fixtures import action, assert_no_secret, live_processes_with, target

SECRET = "s3cr3t p@ss/w+rd!tok3n"


@pytest.mark.parametrize(
    ("command", "status", "exit_code", "expected_output"),
    [
        ("echo hello", Status.succeeded, 0, "hello\n"),
        ("exit 3", Status.failed, 3, ""),
        ("echo to-stderr >&2", Status.succeeded, 0, "to-stderr\n"),
        ("cat; echo stdin-closed", Status.succeeded, 0, "stdin-closed\n"),
        ('echo "${GATEWAY_ONLY_SETTING:-absent}"', Status.succeeded, 0, "absent\n"),
        ('echo "$PATH"', Status.succeeded, 0, "/usr/local/bin:/usr/bin:/bin\n"),
        ("env | cut -d= -f1 | sort | tr '\\n' ' '", Status.succeeded, 0, "HOME LANG PATH PWD SHLVL _ "),
        ("kill -9 $$", Status.failed, -9, ""),
        ("yes | head -c 3", Status.succeeded, 0, "y\ny"),  # SIGPIPE is not inherited as ignored
    ],
)
def test_shell_runs_in_a_controlled_environment(
    command: str, status: Status, exit_code: int, expected_output: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_ONLY_SETTING", "the gateway's own environment must not leak")
    result = execute(action("shell", {"command": command}), target("shell"))
    assert (result.status, result.exit_code, result.output) == (status, exit_code, expected_output)
    assert result.output_sha256 == hashlib.sha256(expected_output.encode()).hexdigest()


def test_shell_runs_in_the_target_workdir(tmp_path: Path) -> None:
    (tmp_path / "marker.txt").write_text("here")
    result = execute(action("shell", {"command": "pwd; cat marker.txt"}), target("shell", workdir=str(tmp_path)))
    assert result.output == f"{tmp_path}\nhere"


def test_shell_without_workdir_runs_in_a_fresh_directory_removed_afterwards() -> None:
    result = execute(action("shell", {"command": "pwd; ls -A | wc -l"}, target=None), None)
    scratch, count = result.output.split()
    assert scratch.startswith("/tmp/interlock-shell-") and count == "0"
    assert not Path(scratch).exists()


@pytest.mark.parametrize(
    "command",
    [
        'echo "$TOKEN"',
        "env",
        'echo "$TOKEN" >&2; exit 1',
        'python3 -c \'import os, urllib.parse; print(urllib.parse.quote(os.environ["TOKEN"], safe=""))\'',
        'python3 -c \'import json, os; print(json.dumps({"t": os.environ["TOKEN"]}))\'',
        'printf "%s" "$TOKEN"; sleep 30',
    ],
)
def test_target_secrets_never_reach_the_result(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERLOCK_TEST_TOKEN", SECRET)
    result = execute(
        action("shell", {"command": command}),
        target("shell", env={"TOKEN": "env:INTERLOCK_TEST_TOKEN"}),
        timeout=2,
    )
    assert "[REDACTED]" in result.output
    assert_no_secret(result, SECRET)


def test_a_secret_cut_by_the_output_limit_is_trimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERLOCK_TEST_TOKEN", SECRET)
    command = "head -c 1020 /dev/zero | tr '\\0' a; echo \"$TOKEN\""
    result = execute(
        action("shell", {"command": command}),
        target("shell", env={"TOKEN": "env:INTERLOCK_TEST_TOKEN"}, max_output_bytes=1024),
    )
    assert result.truncated and result.output == "a" * 1020
    assert_no_secret(result, SECRET[:4])


def test_output_is_digested_whole_and_kept_up_to_the_limit() -> None:
    size = 5_000_000
    result = execute(
        action("shell", {"command": f"head -c {size} /dev/zero | tr '\\0' a"}),
        target("shell", max_output_bytes=4096),
    )
    assert (result.status, result.output_bytes, result.truncated) == (Status.succeeded, size, True)
    assert result.output_sha256 == hashlib.sha256(b"a" * size).hexdigest()
    assert result.output == "a" * 4096
    assert len(result.excerpt) == EXCERPT_CHARS


@pytest.mark.parametrize(
    "template",
    [
        "sleep {n}",
        "sleep {n} & sleep {n} & wait",
        "setsid sleep {n} & wait",  # its own session: found through /proc, not the process group
        "(setsid sleep {n} &); sleep {n}",  # orphaned at once: re-parented to the supervisor
        "bash -c 'trap \"\" TERM; sleep {n}'",
        "while true; do sleep {n} & done",  # forks as fast as it can: frozen before the kill
    ],
)
def test_timeout_kills_the_whole_process_tree(template: str) -> None:
    seconds = 1000 + uuid.uuid4().int % 1000  # a unique sleep to find its processes by
    started = time.monotonic()
    result = execute(action("shell", {"command": template.format(n=seconds)}), target("shell"), timeout=1)
    assert result.status is Status.timeout
    assert time.monotonic() - started < 4
    assert result.error is not None and "timed out after 1s" in result.error
    eventually(lambda: live_processes_with(f"sleep {seconds}") == [], timeout=5, what="no process left")


@pytest.mark.parametrize(
    "template",
    [
        "sleep {n} & echo started",  # holds the output pipe
        "nohup sleep {n} >/dev/null 2>&1 & echo started",  # detached from the pipe
        "(setsid sleep {n} >/dev/null 2>&1 &); echo started",  # new session, orphaned, detached
    ],
)
def test_leftovers_in_the_process_group_die_with_the_command(template: str) -> None:
    seconds = 2000 + uuid.uuid4().int % 1000
    started = time.monotonic()
    result = execute(action("shell", {"command": template.format(n=seconds)}), target("shell"), timeout=10)
    assert (result.status, result.output) == (Status.succeeded, "started\n")
    assert time.monotonic() - started < 3
    eventually(lambda: live_processes_with(f"sleep {seconds}") == [], timeout=5, what="no process left")


@pytest.mark.parametrize(
    ("payload", "fields", "message"),
    [
        (
            {"command": "ls"},
            {"workdir": "/nonexistent/interlock"},
            "workdir '/nonexistent/interlock' does not",
        ),
        ({"command": "ls"}, {"env": {"TOKEN": "env:INTERLOCK_TEST_UNSET"}}, "'env:INTERLOCK_TEST_UNSET'"),
        ({"command": "ls"}, {"env": {"TOKEN": "file:/nonexistent/token"}}, "'file:/nonexistent/token'"),
        ({"command": ""}, {}, "non-empty string `command`"),
        ({"cmd": "ls"}, {}, "non-empty string `command`"),
    ],
)
def test_cannot_run_becomes_a_clear_error(payload: dict[str, str], fields: dict[str, object], message: str) -> None:
    result = execute(action("shell", payload), target("shell", **fields))
    assert result.status is Status.error and result.exit_code is None
    assert result.error is not None and message in result.error


@pytest.mark.parametrize(
    ("kind", "target_kind", "target_env", "message"),
    [
        ("sql", None, None, "sql actions need a target"),
        ("shell", "sql", "production", "is a sql target, not shell"),
        ("shell", "shell", "staging", "is in environment staging"),
        ("mcp", "mcp", "production", "no executor for mcp actions"),
    ],
)
def test_dispatch_refuses_mismatched_targets(
    kind: str, target_kind: str | None, target_env: str | None, message: str
) -> None:
    from interlock.model import Kind
    from interlock.policy.schema import Target

    chosen = None if target_kind is None else Target(environment=target_env or "x", kind=Kind(target_kind))
    result = execute(action(kind, {"command": "ls", "sql": "select 1"}), chosen)
    assert result.status is Status.error
    assert result.error is not None and message in result.error
