"""The Cursor hook (`interlock-hook cursor`): Cursor's documented hook inputs in (beforeShellExecution,
beforeMCPExecution, beforeReadFile, preToolUse for edits), its documented answer out, against a real
`interlock serve` (SQLite and PostgreSQL).

Cursor itself cannot run here (a desktop app with an account), so the tests feed the hook the payloads
Cursor's hooks documentation gives (docs/integrations.md quotes them) and check the answers against
it: `{"permission", "user_message", "agent_message"}`, and exit 2 with a deny for every failure.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from interlock.integrations import hook_cursor
from interlock.integrations.hooks import HookAnswer, HookError, ProposedAction
from interlock.testing import LiveServer, free_port
from tests.hook_fixtures import install, run_hook, unique

COMMON = {"conversation_id": "conv-123", "generation_id": "gen-456", "workspace_roots": ["/work/app"],
          "cursor_version": "2.0.77"}


def cursor_event(name: str, **fields: Any) -> dict[str, Any]:
    return {"hook_event_name": name, **COMMON, **fields}


def file(operation: str, path: str, **extra: Any) -> ProposedAction:
    return ProposedAction("file", {"operation": operation, "path": path, **extra})


ACTIONS = [
    ("shell", cursor_event("beforeShellExecution", command="npm install express", cwd="/work/app"),
     [ProposedAction("shell", {"command": "npm install express"})]),
    ("mcp, input as a string", cursor_event("beforeMCPExecution", tool_name="database_query",
                                            tool_input='{"query": "SELECT * FROM users"}', url="http://localhost:3000"),
     [ProposedAction("mcp", {"server": "http://localhost:3000", "tool": "database_query",
                             "arguments": {"query": "SELECT * FROM users"}, "annotations": {}})]),
    ("mcp, input as an object", cursor_event("beforeMCPExecution", tool_name="delete_issue",
                                             tool_input={"id": 7}, command="npx mcp-server"),
     [ProposedAction("mcp", {"server": "npx mcp-server", "tool": "delete_issue", "arguments": {"id": 7},
                             "annotations": {}})]),
    ("read with attachments", cursor_event("beforeReadFile", file_path="/work/app/secrets.env", content="API_KEY=...",
                                           attachments=[{"type": "file", "file_path": "/work/app/.cursorrules"},
                                                        {"type": "file", "filePath": "/work/app/b.md"}]),
     [file("read", "/work/app/secrets.env"), file("read", "/work/app/.cursorrules"), file("read", "/work/app/b.md")]),
    ("write", cursor_event("preToolUse", tool_name="Write", cwd="/work/app",
                           tool_input={"file_path": "src/a.ts", "contents": "x"}),
     [file("write", "/work/app/src/a.ts", content="x")]),
    ("str replace", cursor_event("preToolUse", tool_name="StrReplace",
                                 tool_input={"path": "/w/a.ts", "old_string": "a", "new_string": "b"}),
     [file("edit", "/w/a.ts", edits=[{"old_string": "a", "new_string": "b"}])]),
    ("delete", cursor_event("preToolUse", tool_name="Delete", tool_input={"path": "/w/old.ts"}),
     [file("delete", "/w/old.ts")]),
    ("shell through preToolUse", cursor_event("preToolUse", tool_name="Shell", tool_input={"command": "ls"}),
     [ProposedAction("shell", {"command": "ls"})]),
    ("read through preToolUse", cursor_event("preToolUse", tool_name="Read", tool_input={"path": "/w/.env"}),
     [file("read", "/w/.env")]),
]


@pytest.mark.parametrize(("name", "event", "expected"), ACTIONS, ids=[a[0] for a in ACTIONS])
def test_actions_for_each_documented_event(name: str, event: dict[str, Any], expected: list[ProposedAction]) -> None:
    assert hook_cursor.actions(json.dumps(event)) == expected


REFUSED = [
    ("", "no Cursor hook JSON"),
    ("nope", "not JSON"),
    (json.dumps(cursor_event("afterFileEdit", file_path="/a", edits=[])), "afterFileEdit"),
    (json.dumps(cursor_event("beforeShellExecution", cwd="/w")), "command"),
    (json.dumps(cursor_event("beforeMCPExecution", tool_name="q", tool_input="{oops")), "not JSON"),
    (json.dumps(cursor_event("beforeReadFile", content="x")), "file_path"),
    (json.dumps(cursor_event("preToolUse", tool_name="Task", tool_input={"prompt": "x", "path": "/a"})),
     "no mapping for Cursor tool"),
    (json.dumps(cursor_event("preToolUse", tool_name="MultiEdit", tool_input={"file_path": "/a"})), "`edits`"),
]


@pytest.mark.parametrize(("stdin", "words"), REFUSED)
def test_inputs_it_cannot_judge_are_errors(stdin: str, words: str) -> None:
    with pytest.raises(HookError) as caught:
        hook_cursor.actions(stdin)
    assert words in str(caught.value)


@pytest.mark.parametrize("decision", ["allow", "deny", "ask"])
def test_render(decision: str) -> None:
    assert json.loads(hook_cursor.render(HookAnswer(decision, "why"))) == {"permission": decision, "user_message": "why",
                                                                        "agent_message": "why"}
    assert json.loads(hook_cursor.blocked("broken"))["permission"] == "deny"


LIVE = [
    (cursor_event("beforeShellExecution", command="git status", cwd="/work/app"), "allow", "git"),
    (cursor_event("beforeShellExecution", command="kubectl replace --force -f {u}.yaml", cwd="/w"), "deny",
     "never-replace-prod"),
    (cursor_event("beforeReadFile", file_path="/work/app/.env", content="K=v"), "deny", "needs approval"),
    (cursor_event("beforeMCPExecution", tool_name="list_issues", tool_input={"repo": "acme/{u}"},
                  command="npx github-mcp"), "allow", "list_issues"),
    (cursor_event("preToolUse", tool_name="Write", tool_input={"file_path": "/work/app/.cursor/hooks.json",
                                                               "contents": "{u}"}), "deny", "Cursor hooks"),
]


@pytest.mark.parametrize(("event", "decision", "words"), LIVE)
def test_hook_answers(server: LiveServer, tokens: dict[str, str], event: dict[str, Any], decision: str,
                      words: str) -> None:
    done = run_hook("cursor", json.dumps(unique(event)), "--gateway", server.url, "--env", "production", "--wait",
                    "0.2", token=tokens["kiro"])
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["permission"] == decision
    assert words in answer["agent_message"] and answer["user_message"] == answer["agent_message"]


@pytest.mark.parametrize(("stdin", "args", "words"), [
    ("nope", ["--gateway", "{url}", "--env", "production"], "not JSON"),
    (json.dumps(cursor_event("beforeShellExecution", command="ls", cwd="/w")),
     ["--gateway", "http://127.0.0.1:{free}", "--env", "production"], "cannot reach"),
    (json.dumps(cursor_event("beforeShellExecution", command="ls", cwd="/w")),
     ["--gateway", "{url}", "--env", "production", "--token", "ilk_a_wrong"], "401"),
])
def test_every_failure_exits_2_with_a_deny(server: LiveServer, tokens: dict[str, str], stdin: str, args: list[str],
                                           words: str) -> None:
    concrete = [a.replace("{url}", server.url).replace("{free}", str(free_port())) for a in args]
    done = run_hook("cursor", stdin, *concrete, token=None if "--token" in args else tokens["kiro"])
    assert done.returncode == 2, done.stderr
    assert json.loads(done.stdout)["permission"] == "deny"
    assert words in done.stderr


def test_install_merges_into_hooks_json_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / ".cursor" / "hooks.json"
    path.parent.mkdir()
    theirs = {"command": "./format.sh"}
    path.write_text(json.dumps({"version": 1, "hooks": {"afterFileEdit": [theirs], "beforeShellExecution": [theirs]}}))
    for _ in range(2):
        result = install(tmp_path, "cursor")
        assert result.exit_code == 0, result.output
    hooks = json.loads(path.read_text())["hooks"]
    assert hooks["afterFileEdit"] == [theirs]
    command = "interlock-hook cursor --env production --gateway http://127.0.0.1:8700 --wait 90"
    ours = {"command": command, "timeout": 120, "failClosed": True}
    assert hooks["beforeShellExecution"] == [theirs, ours]
    assert hooks["beforeMCPExecution"] == [ours] and hooks["beforeReadFile"] == [ours]
    assert hooks["preToolUse"] == [{**ours, "matcher": hook_cursor.EDIT_MATCHER}]


def test_install_user_scope(tmp_path: Path) -> None:
    assert install(tmp_path, "cursor", "--user").exit_code == 0
    assert json.loads((tmp_path / "home" / ".cursor" / "hooks.json").read_text())["version"] == 1


def shell_call(agent: str, command: str) -> str:
    """The shell call each of the three agents documents, for `command`."""
    return json.dumps({
        "gemini": {"hook_event_name": "BeforeTool", "cwd": "/w", "tool_name": "run_shell_command",
                   "tool_input": {"command": command}},
        "copilot": {"timestamp": 1704614600000, "cwd": "/w", "toolName": "bash",
                    "toolArgs": json.dumps({"command": command})},
        "cursor": cursor_event("beforeShellExecution", command=command, cwd="/w"),
    }[agent])


def decision_of(agent: str, stdout: str) -> str:
    answer = json.loads(stdout)
    return str(answer.get("decision") or answer.get("permissionDecision") or answer.get("permission"))


@pytest.mark.parametrize("agent", ["gemini", "copilot", "cursor"])
def test_pending_approval_is_waited_for_then_allowed_once(server: LiveServer, tokens: dict[str, str],
                                                          agent: str) -> None:
    """The shared wait: each dialect waits for the humans, and the grant is for that exact call, once."""
    line = f"touch /srv/{agent}-approved-{uuid.uuid4().hex[:8]}"
    approver = threading.Thread(target=server.decide_when_pending, args=(line, tokens["bob"]))
    approver.start()
    try:
        done = run_hook(agent, shell_call(agent, line), "--gateway", server.url, "--env", "production", "--wait", "60",
                        token=tokens["kiro"])
    finally:
        approver.join()
    assert done.returncode == 0, done.stderr
    assert decision_of(agent, done.stdout) == "allow"
    again = run_hook(agent, shell_call(agent, line), "--gateway", server.url, "--env", "production", "--wait", "0.2",
                     token=tokens["kiro"])
    assert decision_of(agent, again.stdout) == "deny"  # the grant was single use
