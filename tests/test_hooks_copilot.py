"""The GitHub Copilot CLI hook (`interlock-hook copilot`): Copilot's documented preToolUse input in,
its documented answer out, against a real `interlock serve` (SQLite and PostgreSQL).

Copilot CLI itself cannot run here (it needs a GitHub Copilot subscription and the network), so the
tests feed the hook the payloads GitHub's hooks reference documents (docs/integrations.md quotes
them): `toolArgs` as a JSON string (the older reference) and as an object (the newer), answers
`{"permissionDecision", "permissionDecisionReason"}`, and exit 2 with a deny for every failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from interlock.classify import paths
from interlock.integrations import hook_copilot
from interlock.integrations.hooks import HookAnswer, HookError, ProposedAction
from interlock.testing import LiveServer, free_port
from tests.hook_fixtures import install, run_hook, unique


def pre_tool_use(tool: str, args: dict[str, Any], *, as_string: bool = True) -> dict[str, Any]:
    """A preToolUse input as GitHub's hooks reference documents it (camelCase event)."""
    return {"sessionId": "s-1", "timestamp": 1704614600000, "cwd": "/work/app", "toolName": tool,
            "toolArgs": json.dumps(args) if as_string else args}


def file(operation: str, path: str, **extra: Any) -> ProposedAction:
    return ProposedAction("file", {"operation": operation, "path": path, **extra})


ACTIONS = [
    # (tool, toolArgs, the actions proposed)
    ("bash", {"command": "rm -rf dist", "description": "Clean build directory"},
     [ProposedAction("shell", {"command": "rm -rf dist"}, {"intent": "Clean build directory"})]),
    ("powershell", {"command": "Get-ChildItem"}, [ProposedAction("shell", {"command": "Get-ChildItem"})]),
    ("view", {"path": "/work/app/.env"}, [file("read", "/work/app/.env")]),
    ("create", {"path": "/work/app/new.py", "file_text": "x = 1"}, [file("write", "/work/app/new.py", content="x = 1")]),
    ("edit", {"path": "src/app.py", "old_str": "a", "new_str": "b"},
     [file("edit", "src/app.py", edits=[{"old_str": "a", "new_str": "b"}])]),
    ("str_replace_editor", {"command": "create", "path": "/w/a.txt", "file_text": "t"},
     [file("write", "/w/a.txt", content="t")]),
    ("str_replace_editor", {"command": "view", "path": "/w/.env"}, [file("read", "/w/.env")]),
    ("str_replace_editor", {"command": "insert", "path": "/w/a.py", "insert_line": 3, "new_str": "x"},
     [file("edit", "/w/a.py", edits=[{"new_str": "x", "insert_line": 3}])]),
    ("apply_patch", {"input": "*** Begin Patch\n*** Delete File: old.txt\n*** End Patch\n"},
     [file("delete", "old.txt", content="")]),
    ("glob", {"pattern": "**/*.pem"}, [file("read", "/work/app", pattern="**/*.pem")]),
    ("grep", {"pattern": "secret", "path": "/srv", "glob": "*.yml"}, [file("read", "/srv", pattern="secret",
                                                                          glob="*.yml")]),
    ("web_fetch", {"url": "https://example.com"},
     [ProposedAction("http", {"method": "GET", "url": "https://example.com", "headers": {}, "body": None})]),
    ("github-mcp-server-list_issues", {"repo": "acme/app"},
     [ProposedAction("mcp", {"server": "", "tool": "github-mcp-server-list_issues", "arguments": {"repo": "acme/app"},
                             "annotations": {}})]),
]


@pytest.mark.parametrize(("tool", "args", "expected"), ACTIONS, ids=[a[0] for a in ACTIONS])
@pytest.mark.parametrize("as_string", [True, False], ids=["toolArgs-string", "toolArgs-object"])
def test_actions_for_each_documented_tool(tool: str, args: dict[str, Any], expected: list[ProposedAction],
                                          as_string: bool) -> None:
    assert hook_copilot.actions(json.dumps(pre_tool_use(tool, args, as_string=as_string))) == expected


REFUSED = [
    ("", "no preToolUse JSON"),
    ("{", "not JSON"),
    (json.dumps({"tool_name": "Bash", "tool_input": {}}), "`toolName`"),  # the PascalCase (VS Code) payload
    (json.dumps({**pre_tool_use("bash", {}), "toolArgs": "{not json"}), "not JSON"),
    (json.dumps({**pre_tool_use("bash", {}), "toolArgs": "[1]"}), "not an object"),
    (json.dumps(pre_tool_use("bash", {})), "command"),
    (json.dumps(pre_tool_use("task", {"prompt": "x"})), "no mapping for Copilot tool"),
    (json.dumps(pre_tool_use("ask_user", {})), "no mapping"),
]


@pytest.mark.parametrize(("stdin", "words"), REFUSED)
def test_inputs_it_cannot_judge_are_errors(stdin: str, words: str) -> None:
    with pytest.raises(HookError) as caught:
        hook_copilot.actions(stdin)
    assert words in str(caught.value)


@pytest.mark.parametrize("decision", ["allow", "deny", "ask"])
def test_render(decision: str) -> None:
    assert json.loads(hook_copilot.render(HookAnswer(decision, "why"))) == {"permissionDecision": decision,
                                                                         "permissionDecisionReason": "why"}
    assert json.loads(hook_copilot.blocked("broken"))["permissionDecision"] == "deny"


LIVE = [
    ("bash", {"command": "ls /srv"}, "allow", "ls"),
    ("bash", {"command": "kubectl replace --force -f {u}.yaml"}, "deny", "never-replace-prod"),
    ("create", {"path": "/work/app/.github/hooks/x-{u}.json", "file_text": "{}"}, "deny", "GitHub Copilot"),
    ("view", {"path": "/work/app/README.md"}, "allow", "read"),
]


@pytest.mark.parametrize(("tool", "args", "decision", "words"), LIVE)
def test_hook_answers(server: LiveServer, tokens: dict[str, str], tool: str, args: dict[str, Any], decision: str,
                      words: str) -> None:
    done = run_hook("copilot", json.dumps(pre_tool_use(tool, unique(args))), "--gateway", server.url, "--env",
                    "production", "--wait", "0.2", token=tokens["kiro"])
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["permissionDecision"] == decision
    assert words in answer["permissionDecisionReason"]


def test_owner_may_decide_answers_ask(server: LiveServer, tokens: dict[str, str]) -> None:
    done = run_hook("copilot", json.dumps(pre_tool_use("bash", unique({"command": "rm -rf /srv/{u}"}))), "--gateway",
                    server.url, "--env", "production", "--owner-may-decide", token=tokens["kiro"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["permissionDecision"] == "ask"


@pytest.mark.parametrize(("stdin", "args", "words"), [
    ("{", ["--gateway", "{url}", "--env", "production"], "not JSON"),
    (json.dumps(pre_tool_use("bash", {"command": "ls"})), ["--gateway", "http://127.0.0.1:{free}", "--env",
                                                          "production"], "cannot reach"),
    (json.dumps(pre_tool_use("bash", {"command": "ls"})), ["--gateway", "{url}"], "--env"),
])
def test_every_failure_exits_2_with_a_deny(server: LiveServer, tokens: dict[str, str], stdin: str, args: list[str],
                                           words: str) -> None:
    concrete = [a.replace("{url}", server.url).replace("{free}", str(free_port())) for a in args]
    done = run_hook("copilot", stdin, *concrete, token=tokens["kiro"])
    assert done.returncode == 2, done.stderr
    answer = json.loads(done.stdout)
    assert answer["permissionDecision"] == "deny" and words in answer["permissionDecisionReason"]
    assert words in done.stderr


def test_install_writes_its_own_hook_file_merged_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / ".github" / "hooks" / "interlock.json"
    path.parent.mkdir(parents=True)
    theirs = {"type": "command", "bash": "./audit.sh", "timeoutSec": 5}
    path.write_text(json.dumps({"version": 1, "hooks": {"preToolUse": [theirs], "sessionStart": [theirs]}}))
    for _ in range(2):
        result = install(tmp_path, "copilot")
        assert result.exit_code == 0, result.output
    doc = json.loads(path.read_text())
    assert doc["version"] == 1 and doc["hooks"]["sessionStart"] == [theirs]
    first, ours = doc["hooks"]["preToolUse"]
    assert first == theirs
    assert ours == {"type": "command", "matcher": hook_copilot.MATCHER, "timeoutSec": 120,
                    "bash": "interlock-hook copilot --env production --gateway http://127.0.0.1:8700 --wait 90"}


def test_install_user_scope_and_a_file_it_cannot_merge(tmp_path: Path) -> None:
    assert install(tmp_path, "copilot", "--user").exit_code == 0
    assert (tmp_path / "home" / ".copilot" / "hooks" / "interlock.json").exists()
    bad = tmp_path / "other"
    (bad / ".github" / "hooks").mkdir(parents=True)
    (bad / ".github" / "hooks" / "interlock.json").write_text('{"version": 2, "hooks": {}}')
    result = install(bad, "copilot")
    assert result.exit_code == 2 and "not 1" in result.output


@pytest.mark.parametrize("agent", ["gemini", "copilot", "cursor"])
@pytest.mark.parametrize("scope", ["--project", "--user"])
def test_every_settings_file_install_writes_is_a_protected_path(tmp_path: Path, agent: str, scope: str) -> None:
    """An agent cannot write its own hook away unnoticed: what `install` writes, the file judge protects."""
    result = install(tmp_path, agent, scope)
    assert result.exit_code == 0, result.output
    written = result.output.split("installed the Interlock hook in ", 1)[1].splitlines()[0]
    assert paths.protected(written), written
