"""Gemini CLI's `BeforeTool` hook, spoken over `hooks.py` (docs/integrations.md quotes the contract).

Gemini CLI runs the hook per tool call with `{"hook_event_name": "BeforeTool", "tool_name",
"tool_input", "mcp_context"?, "cwd", …}` on stdin. Exit 0 with `{"decision": "allow"|"deny",
"reason"}` answers (the reason of a deny goes to the model as the tool's error); exit 2 blocks
with stderr as the reason, and any other code is only a warning (the tool runs), so every failure
here is exit 2. BeforeTool has no `ask`, so `--owner-may-decide` is refused.

Standard library only: the lean `interlock-hook gemini` imports this module on every tool call.
"""

from __future__ import annotations

import json
import re

from interlock.integrations.hooks import (
    HookAnswer,
    HookError,
    ProposedAction,
    absolute,
    arguments,
    cwd_of,
    file_action,
    http_get,
    json_object,
    mcp_action,
    mcp_name,
    picked,
    read_action,
    settings_path,
    shell_action,
    text_field,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME = "Gemini CLI"
EVENT = "BeforeTool"
NO_ASK = "for Gemini CLI: its BeforeTool hook has no `ask` answer"
#: Gemini's built-in tools that touch something (names from its tools reference), and MCP tools.
SHELL = frozenset({"run_shell_command"})
READS = frozenset({"read_file", "list_directory", "glob", "search_file_content", "grep_search"})
MATCHER = "^(run_shell_command|read_file|read_many_files|list_directory|glob|search_file_content|grep_search" \
          "|write_file|replace|web_fetch|mcp__.*)$"
URL = re.compile(r"https?://[^\s\"'<>)\]]+")
#: Path arguments across Gemini versions (`path` → `file_path`/`dir_path`; older `absolute_path`).
PATH_KEYS = ("file_path", "absolute_path", "path", "dir_path")


def actions(text: str) -> list[ProposedAction]:
    """The actions one BeforeTool call amounts to; a tool with no mapping is an error (fail closed)."""
    event = json_object(text, EVENT)
    name = event.get("hook_event_name", EVENT)
    if name != EVENT:
        raise HookError(f"hook_event_name is {name!r}: this hook handles {EVENT} only; register it under "
                        f"hooks.{EVENT} in .gemini/settings.json")
    tool = event.get("tool_name")
    if not isinstance(tool, str) or not tool:
        raise HookError(f"{EVENT} input without a `tool_name` string")
    args = arguments(event.get("tool_input"), tool, "tool_input")
    cwd = cwd_of(event)
    if tool in SHELL:
        return [shell_action(text_field(tool, args, "command"), args.get("description"))]
    if tool == "write_file":
        return [file_action("write", text_field(tool, args, *PATH_KEYS), content=str(args.get("content", "")))]
    if tool == "replace":
        edit = picked(args, "old_string", "new_string", "expected_replacements")
        return [file_action("edit", text_field(tool, args, *PATH_KEYS), edits=[edit])]
    if tool in READS:
        path = next((args[k] for k in PATH_KEYS if isinstance(args.get(k), str) and args[k]), cwd)
        return [read_action(tool, path, args, "pattern", "include")]
    if tool == "read_many_files":
        paths = args.get("paths") or args.get("include")
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
            raise HookError("read_many_files input has no `paths` list of file paths or globs")
        return [file_action("read", absolute(p, cwd)) for p in paths]
    if tool == "web_fetch":
        urls = URL.findall(str(args.get("url") or args.get("prompt") or ""))
        if not urls:
            raise HookError("web_fetch input names no http(s) URL in `prompt`")
        return [http_get(u) for u in urls]
    if tool.startswith("mcp__"):
        context = event.get("mcp_context")
        named = context.get("server_name") if isinstance(context, dict) else None
        return [mcp_action(*mcp_name(tool, str(named) if named else None), args)]
    raise HookError(f"Interlock has no mapping for Gemini tool {tool!r}, so it cannot judge it: remove it from the "
                    "hook's matcher if it touches nothing outside the agent, or ask for a mapping")


def render(answer: HookAnswer) -> str:
    """Exit 0's answer: allow, or deny with the reason the model reads as the tool's error."""
    if answer.decision == "allow":
        return json.dumps({"decision": "allow", "reason": answer.reason})
    return json.dumps({"decision": "deny", "reason": answer.reason, "systemMessage": answer.reason})


def blocked(reason: str) -> str:
    return ""  # exit 2: Gemini blocks the tool and hands stderr to the model as the reason


# --- install -------------------------------------------------------------------------------------

GROUPED = True  # {"hooks": {"BeforeTool": [{"matcher", "hooks": [handler]}]}}, as Claude Code's settings


def settings_file(user: bool, project_dir: str) -> str:
    return settings_path(user, project_dir, ".gemini", "settings.json")


def install_entries(command: str, timeout_seconds: int) -> dict[str, Any]:
    """The entry `hook install gemini` merges into settings.json (Gemini's timeout is in milliseconds)."""
    handler = {"name": "interlock", "type": "command", "command": command, "timeout": timeout_seconds * 1000,
               "description": "Interlock judges the tool call before it runs"}
    return {EVENT: {"matcher": MATCHER, "hooks": [handler]}}


NOTES = ("Gemini CLI runs hooks only while its hooks system is enabled (/settings → Advanced → Enable Hooks "
         "System; `tools.enableHooks` in settings.json)",)
