"""Agent hooks: the real `interlock-hook` / `interlock hook` processes fed the documented PreToolUse
JSON, against a real `interlock serve` (SQLite and PostgreSQL).

The contract under test: exit 0 with the JSON answer when Interlock decided; exit 2 with the reason
on stderr for every failure (both agents block the tool on 2; Claude Code runs it on other codes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from interlock.integrations.hooks import (
    HookAnswer,
    HookError,
    HookSettings,
    ProposedAction,
    actions_for,
    parse_args,
    parse_event,
    parse_response,
    render,
    run,
    split_url,
)
from interlock.integrations.hooks_cli import app as hook_app
from interlock.integrations.hooks_cli import merge_hook
from interlock.testing import LiveServer, free_port, live_server

EXAMPLE = Path(__file__).parent.parent / "examples" / "policy.yaml"
HOOK = Path(sys.executable).parent / "interlock-hook"


def event(tool: str, tool_input: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A PreToolUse input as Claude Code documents it."""
    return {"session_id": "s-1", "transcript_path": "/tmp/t.jsonl", "cwd": "/work/app", "permission_mode": "default",
            "hook_event_name": "PreToolUse", "tool_name": tool, "tool_input": tool_input,
            "tool_use_id": f"toolu_{uuid.uuid4().hex[:8]}", **extra}


def hook(flavor: str, stdin: str, *args: str, token: str | None = None,
         command: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    if token:
        env["INTERLOCK_TOKEN"] = token
    argv = (command or [str(HOOK)]) + [flavor, *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=120)


def answer(done: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)["hookSpecificOutput"]
    assert out["hookEventName"] == "PreToolUse"
    return out["permissionDecision"], out["permissionDecisionReason"]


# --- answers from a live gateway ----------------------------------------------------------------

LIVE = [
    # (flavor, tool, tool_input, expected decision, words in the reason)
    ("claude-code", "Bash", {"command": "ls /srv", "description": "look around"}, "allow", "ls"),
    ("claude-code", "Bash", {"command": "kubectl replace --force -f {u}.yaml"}, "deny", "never-replace-prod"),
    ("claude-code", "Bash", {"command": "rm -rf /srv/{u}"}, "deny", "needs approval"),
    ("claude-code", "Write", {"file_path": "/work/app/.git/hooks/pre-commit-{u}", "content": "curl x | sh"}, "deny",
     "protected"),
    ("claude-code", "Write", {"file_path": "/work/app/.claude/settings.json", "content": "{u}"}, "deny",
     "the agent's own permission settings"),
    ("claude-code", "Edit", {"file_path": "/work/app/src/{u}.py", "old_string": "a", "new_string": "b"}, "deny",
     "needs approval"),
    ("claude-code", "Read", {"file_path": "/work/app/README.md"}, "allow", "read"),
    ("claude-code", "Read", {"file_path": "/work/app/.env"}, "deny", "needs approval"),
    ("claude-code", "mcp__github__list_issues", {"repo": "acme/{u}"}, "allow", "list_issues"),
    ("claude-code", "mcp__github__delete_repository", {"repo": "acme/{u}"}, "deny", "needs approval"),
    ("codex", "Bash", {"command": "git status"}, "allow", ""),
    ("codex", "Bash", {"command": "kubectl replace --force -f {u}.yaml"}, "deny", "never-replace-prod"),
    ("codex", "apply_patch", {"command": "*** Begin Patch\n*** Update File: .codex/config-{u}.toml\n@@\n-a\n+b\n"
                                         "*** End Patch\n"}, "deny", "needs approval"),
]


@pytest.mark.parametrize(("flavor", "tool", "tool_input", "decision", "words"), LIVE)
def test_hook_answers(server: LiveServer, tokens: dict[str, str], flavor: str, tool: str,
                      tool_input: dict[str, Any], decision: str, words: str) -> None:
    u = uuid.uuid4().hex[:8]
    concrete = json.loads(json.dumps(tool_input).replace("{u}", u))
    done = hook(flavor, json.dumps(event(tool, concrete)), "--gateway", server.url, "--env", "production",
                "--wait", "0.2", token=tokens["kiro"])
    if flavor == "codex" and decision == "allow":
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")  # Codex: allow is no output
        return
    got, reason = answer(done)
    assert got == decision
    assert words in reason


def test_an_environment_the_policy_does_not_know_is_denied(server: LiveServer, tokens: dict[str, str]) -> None:
    done = hook("claude-code", json.dumps(event("Bash", {"command": "ls"})), "--gateway", server.url, "--env", "mars",
                token=tokens["kiro"])
    decision, reason = answer(done)
    assert decision == "deny" and "mars" in reason


def test_the_mounted_cli_answers_the_same(server: LiveServer, tokens: dict[str, str]) -> None:
    done = hook("claude-code", json.dumps(event("Bash", {"command": "ls /"})), "--gateway", server.url, "--env",
                "production", token=tokens["kiro"], command=[sys.executable, "-m", "interlock.cli", "hook"])
    assert answer(done)[0] == "allow"


def test_pending_approval_is_waited_for_then_allowed(server: LiveServer, tokens: dict[str, str]) -> None:
    line = f"touch /srv/approved-{uuid.uuid4().hex[:8]}"
    approver = threading.Thread(target=server.decide_when_pending, args=(line, tokens["bob"]))
    approver.start()
    try:
        done = hook("claude-code", json.dumps(event("Bash", {"command": line})), "--gateway", server.url,
                    "--env", "production", "--wait", "60", token=tokens["kiro"])
    finally:
        approver.join()
    decision, reason = answer(done)
    assert decision == "allow"
    assert "approved" in reason


def test_denied_while_pending_then_the_same_command_is_allowed_after_approval(
        server: LiveServer, tokens: dict[str, str]) -> None:
    line = f"rm -rf /srv/later-{uuid.uuid4().hex[:8]}"
    stdin = json.dumps(event("Bash", {"command": line}))
    args = ("--gateway", server.url, "--env", "production", "--wait", "0.2")
    decision, reason = answer(hook("claude-code", stdin, *args, token=tokens["kiro"]))
    assert decision == "deny"
    assert "retry exactly the same call" in reason
    server.decide_when_pending(line, tokens["bob"], tokens["carol"])  # destructive: two approvals
    # a different command is a different action: the grant does not cover it
    other = json.dumps(event("Bash", {"command": line + "-other"}))
    assert answer(hook("claude-code", other, *args, token=tokens["kiro"]))[0] == "deny"
    assert answer(hook("claude-code", stdin, *args, token=tokens["kiro"]))[0] == "allow"
    # single use: the grant was consumed by that retry
    assert answer(hook("claude-code", stdin, *args, token=tokens["kiro"]))[0] == "deny"


def test_owner_may_decide_answers_ask(server: LiveServer, tokens: dict[str, str]) -> None:
    done = hook("claude-code", json.dumps(event("Bash", {"command": f"rm -rf /srv/{uuid.uuid4().hex}"})),
                "--gateway", server.url, "--env", "production", "--owner-may-decide", token=tokens["kiro"])
    assert answer(done)[0] == "ask"


def test_in_process_policy_mode(tmp_path: Path) -> None:
    args = ("--policy", str(EXAMPLE), "--agent", "kiro", "--db", f"sqlite:///{tmp_path / 'h.db'}", "--key-dir",
            str(tmp_path / "keys"), "--env", "production", "--wait", "0")
    assert answer(hook("claude-code", json.dumps(event("Bash", {"command": "ls"})), *args))[0] == "allow"
    assert answer(hook("claude-code", json.dumps(event("Bash", {"command": "rm -rf /x"})), *args))[0] == "deny"


# --- every failure exits 2 ----------------------------------------------------------------------

FAILURES = [
    # (name, stdin, arguments (with {url} for the live gateway), token?, words on stderr)
    ("malformed stdin", '{"tool_name": "Bash",', ["--gateway", "{url}", "--env", "production"], True, "not JSON"),
    ("empty stdin", "", ["--gateway", "{url}", "--env", "production"], True, "no PreToolUse JSON"),
    ("not an object", "[1, 2]", ["--gateway", "{url}", "--env", "production"], True, "not an object"),
    ("other event", json.dumps({**event("Bash", {"command": "ls"}), "hook_event_name": "PostToolUse"}),
     ["--gateway", "{url}", "--env", "production"], True, "PreToolUse only"),
    ("no tool_input command", json.dumps(event("Bash", {})), ["--gateway", "{url}", "--env", "production"], True,
     "command"),
    ("unmapped tool", json.dumps(event("Task", {"prompt": "x"})), ["--gateway", "{url}", "--env", "production"],
     True, "no mapping"),
    ("no environment", json.dumps(event("Bash", {"command": "ls"})), ["--gateway", "{url}"], True, "--env"),
    ("no gateway", json.dumps(event("Bash", {"command": "ls"})), ["--env", "production"], True, "no gateway"),
    ("no token", json.dumps(event("Bash", {"command": "ls"})), ["--gateway", "{url}", "--env", "production"], False,
     "INTERLOCK_TOKEN"),
    ("bad token", json.dumps(event("Bash", {"command": "ls"})),
     ["--gateway", "{url}", "--env", "production", "--token", "ilk_a_wrong"], False, "401"),
    ("gateway down", json.dumps(event("Bash", {"command": "ls"})),
     ["--gateway", "http://127.0.0.1:{free}", "--env", "production"], True, "cannot reach"),
    ("not a URL", json.dumps(event("Bash", {"command": "ls"})), ["--gateway", "ftp://x", "--env", "production"],
     True, "not an http(s) URL"),
    ("ask refused for codex", json.dumps(event("Bash", {"command": "ls"})),
     ["--gateway", "{url}", "--env", "production", "--owner-may-decide"], True, "refused for Codex"),
    ("unknown option", json.dumps(event("Bash", {"command": "ls"})), ["--gateway", "{url}", "--frobnicate"], True,
     ""),
]


@pytest.mark.parametrize(("name", "stdin", "args", "with_token", "words"), FAILURES, ids=[f[0] for f in FAILURES])
def test_every_failure_exits_2(server: LiveServer, tokens: dict[str, str], name: str, stdin: str, args: list[str],
                               with_token: bool, words: str) -> None:
    concrete = [a.replace("{url}", server.url).replace("{free}", str(free_port())) for a in args]
    flavor = "codex" if name == "ask refused for codex" else "claude-code"
    done = hook(flavor, stdin, *concrete, token=tokens["kiro"] if with_token else None)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert words in done.stderr


def test_gateway_that_stops_mid_session_exits_2(tmp_path: Path) -> None:
    with live_server(EXAMPLE, f"sqlite:///{tmp_path / 'stop.db'}", tmp_path) as live:
        token = live.token("agent", "kiro")
        args = ("--gateway", live.url, "--env", "production")
        stdin = json.dumps(event("Bash", {"command": "ls"}))
        assert answer(hook("claude-code", stdin, *args, token=token))[0] == "allow"
        live.process.terminate()
        live.process.wait(timeout=15)
        done = hook("claude-code", stdin, *args, token=token)
    assert done.returncode == 2
    assert "cannot reach" in done.stderr


# --- pure pieces, as tables ---------------------------------------------------------------------

ACTIONS = [
    ("Bash", {"command": "ls -l", "description": "list"},
     [ProposedAction("shell", {"command": "ls -l"}, {"intent": "list"})]),
    ("exec_command", {"cmd": ["git", "commit", "-m", "a b"]},
     [ProposedAction("shell", {"command": "git commit -m 'a b'"})]),
    ("Write", {"file_path": "/w/a.py", "content": "x"},
     [ProposedAction("file", {"operation": "write", "path": "/w/a.py", "content": "x"})]),
    ("Edit", {"file_path": "/w/a.py", "old_string": "a", "new_string": "b"},
     [ProposedAction("file", {"operation": "edit", "path": "/w/a.py",
                              "edits": [{"old_string": "a", "new_string": "b"}]})]),
    ("MultiEdit", {"file_path": "/w/a.py", "edits": [{"old_string": "a", "new_string": "b"}]},
     [ProposedAction("file", {"operation": "edit", "path": "/w/a.py",
                              "edits": [{"old_string": "a", "new_string": "b"}]})]),
    ("NotebookEdit", {"notebook_path": "/w/n.ipynb", "new_source": "print(1)", "edit_mode": "replace"},
     [ProposedAction("file", {"operation": "edit", "path": "/w/n.ipynb",
                              "edits": [{"edit_mode": "replace", "new_source": "print(1)"}]})]),
    ("Read", {"file_path": "/w/.env"}, [ProposedAction("file", {"operation": "read", "path": "/w/.env"})]),
    ("Glob", {"pattern": "**/*.py"},
     [ProposedAction("file", {"operation": "read", "path": "/work/app", "pattern": "**/*.py"})]),
    ("Grep", {"pattern": "TODO", "path": "/w/src", "glob": "*.py"},
     [ProposedAction("file", {"operation": "read", "path": "/w/src", "pattern": "TODO", "glob": "*.py"})]),
    ("LS", {"path": "/w"}, [ProposedAction("file", {"operation": "read", "path": "/w"})]),
    ("WebFetch", {"url": "https://example.com/a", "prompt": "summarise"},
     [ProposedAction("http", {"method": "GET", "url": "https://example.com/a", "headers": {}, "body": None})]),
    ("mcp__github__create_issue", {"title": "t"},
     [ProposedAction("mcp", {"server": "github", "tool": "create_issue", "arguments": {"title": "t"},
                             "annotations": {}})]),
    ("mcp__my_db__run__query", {"sql": "select 1"},
     [ProposedAction("mcp", {"server": "my_db", "tool": "run__query", "arguments": {"sql": "select 1"},
                             "annotations": {}})]),
    ("apply_patch", {"command": "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** Update File: b.py\n@@\n-x\n+y\n"
                                "*** Move to: c.py\n*** Delete File: d.py\n*** End Patch"},
     [ProposedAction("file", {"operation": "write", "path": "a.txt", "content": "+hi"}),
      ProposedAction("file", {"operation": "write", "path": "c.py", "content": "moved from b.py"}),
      ProposedAction("file", {"operation": "edit", "path": "b.py", "content": "@@\n-x\n+y"}),
      ProposedAction("file", {"operation": "delete", "path": "d.py", "content": ""})]),
]


@pytest.mark.parametrize(("tool", "tool_input", "expected"), ACTIONS, ids=[a[0] for a in ACTIONS])
def test_actions_for_each_tool(tool: str, tool_input: dict[str, Any], expected: list[ProposedAction]) -> None:
    assert actions_for(parse_event(json.dumps(event(tool, tool_input)))) == expected


@pytest.mark.parametrize(("tool", "tool_input"), [
    ("Task", {"prompt": "x"}),
    ("Bash", {"command": "   "}),
    ("Write", {"content": "x"}),
    ("MultiEdit", {"file_path": "/a", "edits": "nope"}),
    ("mcp__onlyserver", {}),
    ("apply_patch", {"command": "just text"}),
])
def test_tools_that_cannot_be_judged_are_errors(tool: str, tool_input: dict[str, Any]) -> None:
    with pytest.raises(HookError):
        actions_for(parse_event(json.dumps(event(tool, tool_input))))


@pytest.mark.parametrize(("flavor", "hook_answer", "stdout"), [
    ("claude-code", HookAnswer("allow", "ok"), {"hookSpecificOutput": {"hookEventName": "PreToolUse",
                                                                    "permissionDecision": "allow",
                                                                    "permissionDecisionReason": "ok"}}),
    ("claude-code", HookAnswer("deny", "no"), {"hookSpecificOutput": {"hookEventName": "PreToolUse",
                                                                   "permissionDecision": "deny",
                                                                   "permissionDecisionReason": "no"}}),
    ("claude-code", HookAnswer("ask", "you"), {"hookSpecificOutput": {"hookEventName": "PreToolUse",
                                                                   "permissionDecision": "ask",
                                                                   "permissionDecisionReason": "you"}}),
    ("codex", HookAnswer("allow", "ok"), None),
    ("codex", HookAnswer("deny", "no"), {"hookSpecificOutput": {"hookEventName": "PreToolUse",
                                                             "permissionDecision": "deny",
                                                             "permissionDecisionReason": "no"}}),
])
def test_render(flavor: str, hook_answer: HookAnswer, stdout: dict[str, Any] | None) -> None:
    text = render(flavor, hook_answer)
    assert (json.loads(text) if text else None) == stdout


@pytest.mark.parametrize(("raw", "expected"), [
    (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", (200, b"{}")),
    (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\n{\"a\"}extra", (503, b'{"a"}')),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", (200, b"{}")),
    (b"HTTP/1.1 200 OK\r\n\r\n{\"x\": 1}", (200, b'{"x": 1}')),
])
def test_parse_response(raw: bytes, expected: tuple[int, bytes]) -> None:
    assert parse_response(raw) == expected


@pytest.mark.parametrize("raw", [b"", b"HTTP/1.1 200 OK\r\n", b"garbage\r\n\r\n{}",
                                 b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}"])
def test_parse_response_refuses_broken_answers(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_response(raw)


def test_run_never_raises_even_when_the_client_does() -> None:
    class Exploding:
        def propose(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            raise ZeroDivisionError("boom")

        def wait(self, action_id: str, timeout: float) -> dict[str, Any]:
            raise AssertionError("not reached")

    out, err, code = run(HookSettings("claude-code", env="production"), json.dumps(event("Bash", {"command": "ls"})),
                         lambda settings: Exploding())
    assert (out, code) == ("", 2)
    assert "ZeroDivisionError" in err


# --- install ------------------------------------------------------------------------------------


def installed(path: Path) -> list[dict[str, Any]]:
    groups = json.loads(path.read_text())["hooks"]["PreToolUse"]
    return [g for g in groups if any("interlock-hook" in h["command"] for h in g["hooks"])]


@pytest.mark.parametrize(("agent", "scope", "relative"), [
    ("claude-code", "--project", ".claude/settings.json"),
    ("claude-code", "--user", "home/.claude/settings.json"),
    ("codex", "--project", ".codex/hooks.json"),
    ("codex", "--user", "home/.codex/hooks.json"),
])
def test_install_writes_the_hook_entry(tmp_path: Path, agent: str, scope: str, relative: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    result = CliRunner().invoke(hook_app, ["install", agent, scope, "--dir", str(tmp_path), "--env", "production",
                                           "--gateway", "http://127.0.0.1:8700", "--wait", "90"],
                                env={"HOME": str(home), "CODEX_HOME": ""})
    assert result.exit_code == 0, result.output
    groups = installed(tmp_path / relative)
    assert len(groups) == 1
    handler = groups[0]["hooks"][0]
    assert handler["type"] == "command"
    assert handler["timeout"] == 120  # the wait plus a margin: the agent must not time the hook out first
    assert f"interlock-hook {agent} --env production --gateway http://127.0.0.1:8700 --wait 90" in handler["command"]
    assert "ilk_" not in (tmp_path / relative).read_text()  # never the token


def test_install_merges_and_is_idempotent(tmp_path: Path) -> None:
    settings = tmp_path / ".claude" / "settings.json"
    settings.parent.mkdir()
    existing = {"permissions": {"deny": ["Bash(curl:*)"]}, "model": "opus",
                "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "lint.sh"}]}],
                          "PostToolUse": [{"matcher": "Write", "hooks": [{"type": "command", "command": "fmt.sh"}]}]}}
    settings.write_text(json.dumps(existing))
    for env in ("staging", "production"):
        result = CliRunner().invoke(hook_app, ["install", "claude-code", "--dir", str(tmp_path), "--env", env,
                                               "--gateway", "http://gw:8700"])
        assert result.exit_code == 0, result.output
    doc = json.loads(settings.read_text())
    assert doc["permissions"] == existing["permissions"] and doc["model"] == "opus"
    assert doc["hooks"]["PostToolUse"] == existing["hooks"]["PostToolUse"]
    assert doc["hooks"]["PreToolUse"][0] == existing["hooks"]["PreToolUse"][0]
    ours = installed(settings)
    assert len(ours) == 1 and "--env production" in ours[0]["hooks"][0]["command"]


@pytest.mark.parametrize(("content", "words"), [
    ("{not json", "not valid JSON"),
    ('["a list"]', "JSON object"),
    ('{"hooks": []}', "not an object"),
    ('{"hooks": {"PreToolUse": {}}}', "not a list"),
])
def test_install_refuses_a_settings_file_it_cannot_merge(tmp_path: Path, content: str, words: str) -> None:
    settings = tmp_path / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(content)
    result = CliRunner().invoke(hook_app, ["install", "claude-code", "--dir", str(tmp_path), "--env", "production",
                                           "--gateway", "http://gw:8700"])
    assert result.exit_code == 2
    assert words in result.output
    assert settings.read_text() == content  # untouched


@pytest.mark.parametrize("args", [
    ["install", "claude-code", "--gateway", "http://gw"],  # no --env
    ["install", "claude-code", "--env", "production"],  # neither gateway nor policy
    ["install", "claude-code", "--env", "production", "--policy", "p.yaml"],  # --policy without --agent
])
def test_install_usage_errors(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(hook_app, [*args, "--dir", str(tmp_path)], env={"INTERLOCK_URL": "",
                                                                                 "INTERLOCK_ENV": ""})
    assert result.exit_code == 2


def test_merge_moves_our_handler_out_of_a_shared_group() -> None:
    doc = {"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [
        {"type": "command", "command": "lint.sh"}, {"type": "command", "command": "/x/interlock-hook claude-code"}]}]}}
    merged = merge_hook(doc, "claude-code", "/y/interlock-hook claude-code --env p", 150)
    assert merged["hooks"]["PreToolUse"][0] == {"matcher": "Bash", "hooks": [{"type": "command", "command": "lint.sh"}]}
    assert merged["hooks"]["PreToolUse"][1]["hooks"] == [
        {"type": "command", "command": "/y/interlock-hook claude-code --env p", "timeout": 150}]


@pytest.mark.parametrize(("url", "expected"), [
    ("http://127.0.0.1:8700", ("http", "127.0.0.1", 8700, "")),
    ("https://interlock.example.com/base/", ("https", "interlock.example.com", None, "/base/")),
    ("HTTP://[::1]:9000/x", ("http", "::1", 9000, "/x")),
])
def test_split_url(url: str, expected: tuple[str, str, int | None, str]) -> None:
    assert split_url(url) == expected


@pytest.mark.parametrize("url", ["ftp://h", "127.0.0.1:8700", "http://", "http://h:0", "http://h:99999",
                                 "http://user:pw@h", "http://h:80x", "http://[::1", "http://h/a b"])
def test_split_url_refuses(url: str) -> None:
    with pytest.raises(HookError):
        split_url(url)


@pytest.mark.parametrize(("argv", "expected"), [
    (["codex", "--env", "prod", "--gateway=http://g", "--wait", "5"],
     {"flavor": "codex", "env": "prod", "gateway": "http://g", "wait": 5.0, "owner_may_decide": False}),
    (["claude-code", "--policy", "p.yaml", "--agent", "kiro", "--owner-may-decide", "--key-dir", "k"],
     {"flavor": "claude-code", "policy": "p.yaml", "agent": "kiro", "owner_may_decide": True, "key_dir": "k"}),
])
def test_parse_args(argv: list[str], expected: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("INTERLOCK_ENV", "INTERLOCK_URL", "INTERLOCK_TOKEN", "INTERLOCK_POLICY", "INTERLOCK_AGENT"):
        monkeypatch.delenv(name, raising=False)
    settings = parse_args(argv)
    assert {k: getattr(settings, k) for k in expected} == expected


@pytest.mark.parametrize("argv", [[], ["windsurf"], ["codex", "--env"], ["codex", "--bogus", "x"],
                                  ["codex", "--wait", "soon"]])
def test_parse_args_refuses(argv: list[str]) -> None:
    with pytest.raises(HookError):
        parse_args(argv)


@pytest.mark.parametrize(("extra", "path_dirs", "program", "says"), [
    ([], "", "interlock-hook", "is not on PATH here"),  # a team setting: found on PATH on each machine
    ([], str(HOOK.parent), "interlock-hook", "commit .claude/settings.json"),
    (["--command", "/opt/interlock/bin/interlock-hook"], "", "/opt/interlock/bin/interlock-hook", "commit"),
])
def test_install_writes_a_command_every_machine_can_run(tmp_path: Path, extra: list[str], path_dirs: str,
                                                        program: str, says: str) -> None:
    result = CliRunner().invoke(hook_app, ["install", "claude-code", "--dir", str(tmp_path), "--env", "production",
                                           "--gateway", "http://127.0.0.1:8700", *extra],
                                env={"HOME": str(tmp_path), "PATH": path_dirs})
    assert result.exit_code == 0, result.output
    (group,) = installed(tmp_path / ".claude" / "settings.json")
    assert group["hooks"][0]["command"].split(" ")[0] == program
    assert says in result.output
