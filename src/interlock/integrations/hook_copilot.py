"""GitHub Copilot CLI's `preToolUse` hook, spoken over `hooks.py` (docs/integrations.md quotes the contract).

Copilot runs the hook per tool call with `{"sessionId", "timestamp", "cwd", "toolName", "toolArgs"}`
on stdin (`toolArgs` a JSON string in the older reference, an object in the newer). Exit 0 with
`{"permissionDecision": "allow"|"deny"|"ask", "permissionDecisionReason"}` answers; exit 2 and any
other non-zero exit deny the call (Copilot merges stdout JSON with the deny), so a failure here is
exit 2 with a deny on stdout as well. A hook that outlives `timeoutSec` lets the call through, which
is why `install` sets the timeout well above `--wait`.

MCP tools reach the hook as `<server>-<tool>` (Copilot has no separator a server name cannot hold), so
the action carries the whole name as `tool` and the server as unknown; the MCP classifier judges
by the verbs in the name and by the arguments.

Standard library only: the lean `interlock-hook copilot` imports this module on every tool call.
"""

from __future__ import annotations

import json
import os

from interlock.integrations.hooks import (
    HookAnswer,
    HookError,
    ProposedAction,
    arguments,
    cwd_of,
    file_action,
    http_get,
    json_object,
    mcp_action,
    patch_actions,
    picked,
    read_action,
    shell_action,
    text_field,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME = "GitHub Copilot CLI"
EVENT = "preToolUse"
NO_ASK = ""  # `ask` prompts the person at the keyboard (the cloud agent treats it as deny)
SHELL = frozenset({"bash", "powershell"})
READS = frozenset({"view", "glob", "grep", "rg"})
EDITS = frozenset({"edit", "str_replace_editor"})
#: Built-in tools that touch nothing outside the agent: never sent to the hook (see MATCHER).
INTERNAL = frozenset({"ask_user", "task", "update_todo", "web_search", "report_intent", "read_agent",
                      "write_agent", "list_agents"})
#: Copilot anchors it as ^(?:MATCHER)$. Built-in names have no '-', MCP tools `<server>-<tool>` do.
MATCHER = "bash|powershell|view|create|edit|str_replace_editor|apply_patch|glob|grep|rg|web_fetch|.+-.+"


def actions(text: str) -> list[ProposedAction]:
    """The actions one preToolUse call amounts to; a tool with no mapping is an error (fail closed)."""
    event = json_object(text, EVENT)
    tool = event.get("toolName")
    if not isinstance(tool, str) or not tool:
        raise HookError(f"{EVENT} input without a `toolName` string: register the hook under the camelCase "
                        f"`{EVENT}` event in .github/hooks/*.json")
    args = arguments(event.get("toolArgs"), tool, "toolArgs")
    cwd = cwd_of(event)
    if tool in SHELL:
        return [shell_action(text_field(tool, args, "command"), args.get("description"))]
    if tool == "create":
        content = args.get("file_text", args.get("content", ""))
        return [file_action("write", text_field(tool, args, "path", "file_path"), content=str(content))]
    if tool in EDITS:
        if args.get("command") == "create":  # str_replace_editor's sub-commands: create, view, edits
            return [file_action("write", text_field(tool, args, "path"), content=str(args.get("file_text", "")))]
        if args.get("command") == "view":
            return [file_action("read", text_field(tool, args, "path"))]
        edit = picked(args, "old_str", "new_str", "insert_line")
        return [file_action("edit", text_field(tool, args, "path", "file_path"), edits=[edit])]
    if tool == "apply_patch":
        return patch_actions(text_field(tool, args, "input", "patch", "command"))
    if tool in READS:
        path = args.get("path") if isinstance(args.get("path"), str) and args["path"] else cwd
        return [read_action(tool, path, args, "pattern", "glob")]
    if tool == "web_fetch":
        return [http_get(text_field(tool, args, "url"))]
    if "-" in tool and tool not in INTERNAL:
        return [mcp_action("", tool, args)]
    raise HookError(f"Interlock has no mapping for Copilot tool {tool!r}, so it cannot judge it: remove it from the "
                    "hook's matcher if it touches nothing outside the agent, or ask for a mapping")


def render(answer: HookAnswer) -> str:
    return json.dumps({"permissionDecision": answer.decision, "permissionDecisionReason": answer.reason})


def blocked(reason: str) -> str:
    """Beside exit 2 (which already denies): the reason where Copilot shows it."""
    return render(HookAnswer("deny", reason))


# --- install -------------------------------------------------------------------------------------

GROUPED = False  # {"version": 1, "hooks": {"preToolUse": [handler, …]}}


def settings_file(user: bool, project_dir: str) -> str:
    """A file of Interlock's own among the agent's hook files (`.github/hooks/*.json` are all read)."""
    if user:
        home = os.environ.get("COPILOT_HOME") or os.path.join(os.path.expanduser("~"), ".copilot")
        return os.path.join(home, "hooks", "interlock.json")
    return os.path.join(project_dir, ".github", "hooks", "interlock.json")


def install_entries(command: str, timeout_seconds: int) -> dict[str, Any]:
    return {EVENT: {"type": "command", "bash": command, "matcher": MATCHER, "timeoutSec": timeout_seconds}}


NOTES = ("Copilot lets a call through when the hook outlives timeoutSec: keep --wait well below it",)
