"""The Gemini CLI hook (`interlock-hook gemini`): Gemini's documented BeforeTool input in, its
documented answer out, against a real `interlock serve` (SQLite and PostgreSQL).

Gemini CLI itself cannot run here (it needs a Google account and the network), so the tests feed the
hook the payloads its hooks reference documents (docs/integrations.md quotes them) and check the
answers against that reference: exit 0 with `{"decision", "reason"}`, exit 2 (blocks; stderr is the
reason) for every failure, never another code (Gemini runs the tool on any other).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from interlock.integrations import hook_gemini
from interlock.integrations.hooks import HookAnswer, HookError, ProposedAction
from interlock.testing import LiveServer, free_port
from tests.hook_fixtures import install, run_hook, unique


def before_tool(tool: str, tool_input: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A BeforeTool input as Gemini CLI's hooks reference documents it."""
    return {"session_id": "s-1", "transcript_path": "/tmp/t.json", "cwd": "/work/app", "hook_event_name": "BeforeTool",
            "timestamp": "2026-11-25T10:30:00Z", "tool_name": tool, "tool_input": tool_input, **extra}


def mcp(server: str, tool: str, arguments: dict[str, Any]) -> ProposedAction:
    return ProposedAction("mcp", {"server": server, "tool": tool, "arguments": arguments, "annotations": {}})


def file(operation: str, path: str, **extra: Any) -> ProposedAction:
    return ProposedAction("file", {"operation": operation, "path": path, **extra})


ACTIONS = [
    # (tool, tool_input (Gemini's tools reference), extra event fields, the actions proposed)
    ("run_shell_command", {"command": "ls -la", "description": "look around", "directory": "src"}, {},
     [ProposedAction("shell", {"command": "ls -la"}, {"intent": "look around"})]),
    ("run_shell_command", {"command": "rm -rf dist"}, {}, [ProposedAction("shell", {"command": "rm -rf dist"})]),
    ("read_file", {"file_path": "/work/app/.env"}, {}, [file("read", "/work/app/.env")]),
    ("read_file", {"absolute_path": "/work/app/a.py", "offset": 0, "limit": 10}, {}, [file("read", "/work/app/a.py")]),
    ("read_file", {"path": "/work/app/b.py"}, {}, [file("read", "/work/app/b.py")]),
    ("list_directory", {"dir_path": "/etc"}, {}, [file("read", "/etc")]),
    ("glob", {"pattern": "src/**/*.ts"}, {}, [file("read", "/work/app", pattern="src/**/*.ts")]),
    ("search_file_content", {"pattern": "password", "path": "/srv", "include": "*.yml"}, {},
     [file("read", "/srv", pattern="password", include="*.yml")]),
    ("grep_search", {"pattern": "TODO", "dir_path": "/work/app/src"}, {}, [file("read", "/work/app/src", pattern="TODO")]),
    ("read_many_files", {"paths": ["/etc/hosts", "notes.md"]}, {},
     [file("read", "/etc/hosts"), file("read", "/work/app/notes.md")]),
    ("write_file", {"file_path": "/work/app/a.txt", "content": "hi"}, {}, [file("write", "/work/app/a.txt", content="hi")]),
    ("replace", {"file_path": "/work/app/a.py", "old_string": "a", "new_string": "b", "expected_replacements": 2}, {},
     [file("edit", "/work/app/a.py", edits=[{"old_string": "a", "new_string": "b", "expected_replacements": 2}])]),
    ("web_fetch", {"prompt": "Summarize https://example.com/a and https://example.org/b please"}, {},
     [ProposedAction("http", {"method": "GET", "url": u, "headers": {}, "body": None})
      for u in ("https://example.com/a", "https://example.org/b")]),
    ("mcp__github__list_issues", {"repo": "acme/app"}, {}, [mcp("github", "list_issues", {"repo": "acme/app"})]),
    ("mcp__gh__delete_repo", {"repo": "acme/app"}, {"mcp_context": {"server_name": "github"}},
     [mcp("github", "delete_repo", {"repo": "acme/app"})]),
]


@pytest.mark.parametrize(("tool", "tool_input", "extra", "expected"), ACTIONS, ids=[a[0] for a in ACTIONS])
def test_actions_for_each_documented_tool(tool: str, tool_input: dict[str, Any], extra: dict[str, Any],
                                          expected: list[ProposedAction]) -> None:
    assert hook_gemini.actions(json.dumps(before_tool(tool, tool_input, **extra))) == expected


REFUSED = [
    ("", "no BeforeTool JSON"),
    ('{"tool_name": ', "not JSON"),
    ("[1]", "not an object"),
    (json.dumps({**before_tool("read_file", {"file_path": "/a"}), "hook_event_name": "AfterTool"}), "BeforeTool only"),
    (json.dumps(before_tool("run_shell_command", {})), "command"),
    (json.dumps(before_tool("save_memory", {"fact": "x"})), "no mapping for Gemini tool"),
    (json.dumps(before_tool("web_fetch", {"prompt": "summarize the news"})), "no http(s) URL"),
    (json.dumps(before_tool("read_many_files", {"paths": []})), "`paths`"),
    (json.dumps(before_tool("mcp__nameonly", {})), "mcp__<server>__<tool>"),
    (json.dumps({**before_tool("read_file", {}), "cwd": None}), "no path"),
]


@pytest.mark.parametrize(("stdin", "words"), REFUSED)
def test_inputs_it_cannot_judge_are_errors(stdin: str, words: str) -> None:
    with pytest.raises(HookError, match=None) as caught:
        hook_gemini.actions(stdin)
    assert words in str(caught.value)


@pytest.mark.parametrize(("hook_answer", "stdout"), [
    (HookAnswer("allow", "Interlock: ls"), {"decision": "allow", "reason": "Interlock: ls"}),
    (HookAnswer("deny", "Interlock denied"), {"decision": "deny", "reason": "Interlock denied",
                                           "systemMessage": "Interlock denied"}),
])
def test_render(hook_answer: HookAnswer, stdout: dict[str, Any]) -> None:
    assert json.loads(hook_gemini.render(hook_answer)) == stdout
    assert hook_gemini.blocked("anything") == ""  # exit 2 + stderr is Gemini's blocking answer


LIVE = [
    # (tool, tool_input, decision, words in the reason)
    ("run_shell_command", {"command": "ls /srv", "description": "look around"}, "allow", "ls"),
    ("run_shell_command", {"command": "kubectl replace --force -f {u}.yaml"}, "deny", "never-replace-prod"),
    ("write_file", {"file_path": "/work/app/.gemini/settings.json", "content": "{u}"}, "deny", "Gemini CLI hooks"),
    ("read_file", {"file_path": "/work/app/.env"}, "deny", "needs approval"),
    ("mcp__github__list_issues", {"repo": "acme/{u}"}, "allow", "list_issues"),
]


@pytest.mark.parametrize(("tool", "tool_input", "decision", "words"), LIVE)
def test_hook_answers(server: LiveServer, tokens: dict[str, str], tool: str, tool_input: dict[str, Any],
                      decision: str, words: str) -> None:
    done = run_hook("gemini", json.dumps(before_tool(tool, unique(tool_input))), "--gateway", server.url, "--env",
                    "production", "--wait", "0.2", token=tokens["kiro"])
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["decision"] == decision
    assert words in answer["reason"]


@pytest.mark.parametrize(("stdin", "args", "words"), [
    ('{"tool_name": ', ["--gateway", "{url}", "--env", "production"], "not JSON"),
    (json.dumps(before_tool("save_memory", {})), ["--gateway", "{url}", "--env", "production"], "no mapping"),
    (json.dumps(before_tool("run_shell_command", {"command": "ls"})),
     ["--gateway", "http://127.0.0.1:{free}", "--env", "production"], "cannot reach"),
    (json.dumps(before_tool("run_shell_command", {"command": "ls"})),
     ["--gateway", "{url}", "--env", "production", "--owner-may-decide"], "no `ask` answer"),
])
def test_every_failure_exits_2(server: LiveServer, tokens: dict[str, str], stdin: str, args: list[str],
                               words: str) -> None:
    concrete = [a.replace("{url}", server.url).replace("{free}", str(free_port())) for a in args]
    done = run_hook("gemini", stdin, *concrete, token=tokens["kiro"])
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert words in done.stderr


def test_install_merges_into_settings_json_and_is_idempotent(tmp_path: Path) -> None:
    settings = tmp_path / ".gemini" / "settings.json"
    settings.parent.mkdir()
    mine = {"matcher": "write_file", "hooks": [{"type": "command", "command": "./lint.sh"}]}
    settings.write_text(json.dumps({"theme": "dark", "tools": {"enableHooks": True},
                                    "hooks": {"BeforeTool": [mine], "AfterTool": [mine]}}))
    for _ in range(2):
        result = install(tmp_path, "gemini")
        assert result.exit_code == 0, result.output
    doc = json.loads(settings.read_text())
    assert doc["theme"] == "dark" and doc["tools"] == {"enableHooks": True} and doc["hooks"]["AfterTool"] == [mine]
    first, ours = doc["hooks"]["BeforeTool"]
    assert first == mine
    assert ours["matcher"] == hook_gemini.MATCHER
    (handler,) = ours["hooks"]
    assert handler["command"] == "interlock-hook gemini --env production --gateway http://127.0.0.1:8700 --wait 90"
    assert handler["timeout"] == 120_000  # milliseconds: the wait plus a margin
    assert "Enable Hooks System" in result.output


def test_install_user_scope(tmp_path: Path) -> None:
    result = install(tmp_path, "gemini", "--user")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "home" / ".gemini" / "settings.json").read_text())["hooks"]["BeforeTool"]
