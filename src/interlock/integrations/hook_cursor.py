"""Cursor's agent hooks, spoken over `hooks.py` (docs/integrations.md quotes the contract).

Cursor runs one hook process per event, `hook_event_name` naming it:
- `beforeShellExecution` `{"command", "cwd"}` → a shell action;
- `beforeMCPExecution` `{"tool_name", "tool_input", "url" | "command"}` → an MCP action (Cursor names
  the server by its URL or its start command, not by its configured name);
- `beforeReadFile` `{"file_path", "content", "attachments"}` → a file read (and one per attachment);
- `preToolUse` `{"tool_name", "tool_input"}` for the file edits (`Write`, `StrReplace`, `Edit`,
  `MultiEdit`, `Delete`): Cursor's edit hook `afterFileEdit` only reports after the fact.
It answers `{"permission": "allow"|"deny"|"ask", "user_message", "agent_message"}`. Exit 2 blocks;
other failures block only with `"failClosed": true`, which `install` sets. A failure here is exit 2
with a deny on stdout as well.

Standard library only: the lean `interlock-hook cursor` imports this module on every tool call.
"""

from __future__ import annotations

import json

from interlock.integrations.hooks import (
    HookAnswer,
    HookError,
    ProposedAction,
    absolute,
    arguments,
    cwd_of,
    file_action,
    json_object,
    mcp_action,
    picked,
    settings_path,
    shell_action,
    text_field,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME = "Cursor"
EVENTS = ("beforeShellExecution", "beforeMCPExecution", "beforeReadFile", "preToolUse")
NO_ASK = ""  # `ask` hands the call to the person in Cursor
EDIT_MATCHER = "Write|StrReplace|Edit|MultiEdit|Delete"
PATH_KEYS = ("file_path", "path", "target_file")


def actions(text: str) -> list[ProposedAction]:
    """The actions one Cursor hook event amounts to; an event or tool with no mapping is an error."""
    event = json_object(text, "Cursor hook")
    name = event.get("hook_event_name")
    cwd = cwd_of(event)
    if name == "beforeShellExecution":
        return [shell_action(text_field(name, event, "command"))]
    if name == "beforeMCPExecution":
        tool = text_field(name, event, "tool_name")
        server = event.get("server") or event.get("url") or event.get("command") or ""
        return [mcp_action(str(server)[:200], tool, arguments(event.get("tool_input"), tool, "tool_input"))]
    if name == "beforeReadFile":
        reads = [file_action("read", text_field(name, event, "file_path"))]
        for attachment in event.get("attachments") or []:
            path = attachment.get("file_path") or attachment.get("filePath") if isinstance(attachment, dict) else None
            if isinstance(path, str) and path:
                reads.append(file_action("read", path))
        return reads
    if name == "preToolUse":
        return edit_actions(text_field(name, event, "tool_name"), event, cwd)
    raise HookError(f"hook_event_name is {name!r}: this hook handles {', '.join(EVENTS)}; register it under those "
                    "events in .cursor/hooks.json")


def edit_actions(tool: str, event: dict[str, Any], cwd: str | None) -> list[ProposedAction]:
    args = arguments(event.get("tool_input"), tool, "tool_input")
    if tool == "Shell":  # only if Cursor ignored the matcher: judged as beforeShellExecution would be
        return [shell_action(text_field(tool, args, "command"))]
    path = absolute(text_field(tool, args, *PATH_KEYS), cwd)
    if tool == "Write":
        return [file_action("write", path, content=str(args.get("contents", args.get("content", ""))))]
    if tool in ("StrReplace", "Edit"):
        edit = picked(args, "old_string", "new_string", "replace_all")
        return [file_action("edit", path, edits=[edit])]
    if tool == "MultiEdit":
        edits = args.get("edits")
        if not isinstance(edits, list):
            raise HookError("MultiEdit input has no `edits` list")
        return [file_action("edit", path, edits=edits)]
    if tool == "Delete":
        return [file_action("delete", path)]
    if tool == "Read":  # only if Cursor ignored the matcher: judged as beforeReadFile would be
        return [file_action("read", path)]
    raise HookError(f"Interlock has no mapping for Cursor tool {tool!r} in preToolUse, so it cannot judge it: the "
                    f"installed matcher is {EDIT_MATCHER}")


def render(answer: HookAnswer) -> str:
    """`agent_message` is what the model reads; `user_message` what the person in Cursor sees."""
    return json.dumps({"permission": answer.decision, "user_message": answer.reason,
                       "agent_message": answer.reason})


def blocked(reason: str) -> str:
    return render(HookAnswer("deny", reason))  # beside exit 2, which blocks on its own


# --- install -------------------------------------------------------------------------------------

GROUPED = False  # {"version": 1, "hooks": {"beforeShellExecution": [handler, …], …}}


def settings_file(user: bool, project_dir: str) -> str:
    return settings_path(user, project_dir, ".cursor", "hooks.json")


def install_entries(command: str, timeout_seconds: int) -> dict[str, Any]:
    """One handler per event; failClosed so a hook that crashes or times out blocks, not allows."""
    handler = {"command": command, "timeout": timeout_seconds, "failClosed": True}
    return {"beforeShellExecution": handler, "beforeMCPExecution": handler, "beforeReadFile": handler,
            "preToolUse": {**handler, "matcher": EDIT_MATCHER}}


NOTES = ("Cursor reloads hooks.json on save; check Settings → Hooks that the four hooks are listed",)
