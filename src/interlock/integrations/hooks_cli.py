"""`interlock hook claude-code|codex|gemini|copilot|cursor|install` (mounted as `interlock hook`).

`claude-code`, `codex`, `gemini`, `copilot` and `cursor` are the hooks themselves (see
interlock.integrations.hooks and its dialects: exit 0 with the agent's answer, exit 2 on any
error). `install` writes the hook entry into the agent's settings, merging with what is there;
running it again updates the entry instead of adding one.
The installed command is the lean `interlock-hook` script, which starts several times faster than
the full CLI: the hook runs once per tool call.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from interlock import options
from interlock.integrations.hooks import DEFAULT_WAIT, DIALECTS, MATCHERS, HookSettings, execute
from interlock.options import DEFAULT_DB, InProcess, Remote

app = typer.Typer(
    help="Agent hooks (Claude Code, Codex, Gemini CLI, Copilot CLI, Cursor): every tool call is proposed to "
         "Interlock first.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: The hook must answer before the agent gives up on it: a hook the agent times out is a failed hook,
#: and Claude Code then runs the tool. The installed timeout is the wait plus this margin.
TIMEOUT_MARGIN = 30

Env = options.Env
Target = Annotated[str | None, typer.Option("--target", help="target every action is for (optional)")]
Gateway = options.Gateway
Token = options.Token
PolicyFile = options.PolicyFile
Agent = options.Agent
Db = options.Db
KeyDir = options.KeyDir
Wait = options.Wait
OwnerMayDecide = Annotated[bool, typer.Option(
    "--owner-may-decide", help="Claude Code only: answer `ask` (the person at the keyboard decides) instead of "
                               "waiting for Interlock approvers. Off by default: that person is usually the "
                               "agent's owner, who never counts as an approver.")]


def _run(flavor: str, env: str | None, target: str | None, gateway: str | None, token: str | None,
         policy: Path | None, agent: str | None, db: str, key_dir: Path | None, wait: float,
         owner_may_decide: bool) -> None:
    settings = HookSettings.from_env(flavor, env=env, target=target, gateway=gateway, token=token,
                                     policy=str(policy) if policy else None, agent=agent, db=db,
                                     key_dir=str(key_dir) if key_dir else None, wait=wait,
                                     owner_may_decide=owner_may_decide)
    settings.typed = {name for name in ("gateway", "policy") if options.on_command_line(name)}
    raise typer.Exit(execute(settings))


def _hook(flavor: str, doc: str, *, may_ask: bool) -> None:
    """Register `interlock hook FLAVOR`: the same command for every dialect but for its words, with
    `--owner-may-decide` only where the agent has an `ask` answer."""
    def asks(env: Env = None, target: Target = None, gateway: Gateway = None, token: Token = None,
             policy: PolicyFile = None, agent: Agent = None, db: Db = DEFAULT_DB, key_dir: KeyDir = None,
             wait: Wait = DEFAULT_WAIT, owner_may_decide: OwnerMayDecide = False) -> None:
        _run(flavor, env, target, gateway, token, policy, agent, db, key_dir, wait, owner_may_decide)

    def never_asks(env: Env = None, target: Target = None, gateway: Gateway = None, token: Token = None,
                   policy: PolicyFile = None, agent: Agent = None, db: Db = DEFAULT_DB, key_dir: KeyDir = None,
                   wait: Wait = DEFAULT_WAIT) -> None:
        _run(flavor, env, target, gateway, token, policy, agent, db, key_dir, wait, False)

    command: Callable[..., None] = asks if may_ask else never_asks
    command.__name__ = command.__qualname__ = flavor.replace("-", "_")
    command.__doc__ = doc
    app.command(flavor)(options.shared(command))


_hook("claude-code", "The Claude Code PreToolUse hook: reads the tool call on stdin, answers allow/deny on stdout.",
      may_ask=True)
_hook("codex", "The Codex PreToolUse hook: a deny is the JSON answer, an allow is an empty answer.", may_ask=False)
_hook("gemini", 'The Gemini CLI BeforeTool hook: answers {"decision": "allow"|"deny", "reason"} on stdout.',
      may_ask=False)
_hook("copilot", 'The GitHub Copilot CLI preToolUse hook: answers {"permissionDecision", "permissionDecisionReason"}.',
      may_ask=True)
_hook("cursor", "The Cursor hook (beforeShellExecution, beforeMCPExecution, beforeReadFile, preToolUse for edits).",
      may_ask=True)


# --- install ---------------------------------------------------------------------------------------


class AgentName(StrEnum):
    claude_code = "claude-code"
    codex = "codex"
    gemini = "gemini"
    copilot = "copilot"
    cursor = "cursor"


def settings_path(flavor: str, user: bool, project_dir: Path) -> Path:
    """Where the agent reads hook settings: Claude Code's settings.json, Codex's hooks.json."""
    if flavor == "claude-code":
        return (Path.home() if user else project_dir) / ".claude" / "settings.json"
    codex_home = Path(os.environ["CODEX_HOME"]) if user and os.environ.get("CODEX_HOME") else Path.home() / ".codex"
    return (codex_home if user else project_dir / ".codex") / "hooks.json"


#: What the installed hook runs by default: the lean script by name, found on PATH on whichever
#: machine runs the agent, so a committed project setting works for the whole team.
HOOK_PROGRAM = "interlock-hook"


def hook_on_path() -> str | None:
    """Where `interlock-hook` is found on this machine's PATH (None: the hook would not start here)."""
    return shutil.which(HOOK_PROGRAM)


def hook_command(flavor: str, *, executable: str, env: str, gateway: str | None, policy: str | None,
                 agent: str | None, db: str | None, key_dir: str | None, target: str | None, wait: float) -> str:
    """The command line the agent runs. Never holds the token: that stays in INTERLOCK_TOKEN."""
    argv = [executable, flavor, "--env", env]
    for flag, value in (("--gateway", gateway), ("--policy", policy), ("--agent", agent), ("--db", db),
                        ("--key-dir", key_dir), ("--target", target)):
        if value:
            argv += [flag, value]
    argv += ["--wait", f"{wait:g}"]
    return shlex.join(argv)


def is_interlock_hook(handler: Any) -> bool:
    """A handler that runs Interlock's hook (`command`, or Copilot's `bash`/`powershell`)."""
    if not isinstance(handler, dict):
        return False
    return any(isinstance(c, str) and ("interlock-hook " in c or "interlock hook " in c)
               for c in (handler.get("command"), handler.get("bash"), handler.get("powershell")))


def merge_hook(doc: dict[str, Any], flavor: str, command: str, timeout: int) -> dict[str, Any]:
    """`doc` with exactly one Interlock PreToolUse entry (added, or the existing one updated);
    everything else in it is kept as it was."""
    handler = {"type": "command", "command": command, "timeout": timeout}
    return merge_entries(doc, {"PreToolUse": {"matcher": MATCHERS[flavor], "hooks": [handler]}}, grouped=True)


def merge_entries(doc: dict[str, Any], entries: dict[str, Any], *, grouped: bool) -> dict[str, Any]:
    """`doc` with exactly one Interlock entry per event of `entries` (added, or ours updated in place);
    everything else is kept. `grouped`: events hold `{"matcher", "hooks": [...]}` groups (Claude Code,
    Codex, Gemini CLI); else they hold handlers, in a `{"version": 1, …}` file (Copilot, Cursor)."""
    if not grouped:
        if doc.get("version", 1) != 1:
            raise ValueError(f"its `version` is {doc.get('version')!r}, not 1: fix the file by hand, then run "
                             "install again")
        doc.setdefault("version", 1)
    hooks = doc.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ValueError("its `hooks` is not an object: fix the file by hand, then run install again")
    for event, entry in entries.items():
        current = hooks.setdefault(event, [])
        if not isinstance(current, list):
            raise ValueError(f"its `hooks.{event}` is not a list: fix the file by hand, then run install again")
        hooks[event] = merge_group(current, entry) if grouped else merge_handler(current, entry)
    return doc


def merge_handler(handlers: list[Any], ours: dict[str, Any]) -> list[Any]:
    """`handlers` with ours in place of the first Interlock handler (appended if none), others kept."""
    kept = [h for h in handlers if not is_interlock_hook(h)]
    at = next((i for i, h in enumerate(handlers) if is_interlock_hook(h)), None)
    if at is None:
        return [*kept, ours]
    before = sum(1 for h in handlers[:at] if not is_interlock_hook(h))
    return [*kept[:before], ours, *kept[before:]]


def merge_group(groups: list[Any], entry: dict[str, Any]) -> list[Any]:
    """`groups` with our group in place of the first that held our handler; others' handlers kept."""
    kept: list[Any] = []
    placed = False
    for group in groups:
        ours = isinstance(group, dict) and isinstance(group.get("hooks"), list) and \
            any(is_interlock_hook(h) for h in group["hooks"])
        if not ours:
            kept.append(group)
            continue
        others = [h for h in group["hooks"] if not is_interlock_hook(h)]
        if others:  # someone else's handlers share the group: keep them there, ours goes in its own group
            kept.append({**group, "hooks": others})
        if not placed:
            kept.append(entry)
            placed = True
    if not placed:
        kept.append(entry)
    return kept


def install_plan(flavor: str, user: bool, project_dir: Path, command: str,
                 timeout: int) -> tuple[Path, dict[str, Any], bool, tuple[str, ...]]:
    """(settings file, entries by event, grouped?, notes) for installing `flavor`'s hook."""
    if flavor in DIALECTS:
        dialect = importlib.import_module(DIALECTS[flavor])
        return (Path(dialect.settings_file(user, str(project_dir))), dialect.install_entries(command, timeout),
                dialect.GROUPED, tuple(dialect.NOTES))
    handler = {"type": "command", "command": command, "timeout": timeout}
    notes = ("Codex asks you to review and trust a new hook before it runs it",) if flavor == "codex" else ()
    return (settings_path(flavor, user, project_dir), {"PreToolUse": {"matcher": MATCHERS[flavor],
                                                                      "hooks": [handler]}}, True, notes)


def write_settings(path: Path, entries: dict[str, Any], *, grouped: bool) -> None:
    """Merge the hook `entries` into the settings file at `path` (atomically)."""
    try:
        doc = json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}): fix it by hand, then run install again") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"{path} does not hold a JSON object: fix it by hand, then run install again")
    try:
        merged = merge_entries(doc, entries, grouped=grouped)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".interlock-tmp")
    temporary.write_text(json.dumps(merged, indent=2) + "\n")
    temporary.replace(path)  # atomic: the agent never reads a half-written settings file


@app.command("install")
@options.shared
def install(
    agent_name: Annotated[AgentName, typer.Argument(metavar="claude-code|codex|gemini|copilot|cursor",
                                                    help="which agent to hook")],
    env: Env = None,
    user: Annotated[bool, typer.Option("--user/--project", help="user-wide settings, or this project's")] = False,
    project_dir: Annotated[Path, typer.Option("--dir", help="the project's root (with --project)")] = Path("."),
    gateway: Gateway = None, policy: PolicyFile = None, agent: Agent = None, db: Db = DEFAULT_DB,
    key_dir: KeyDir = None, target: Target = None, wait: Wait = DEFAULT_WAIT,
    executable: Annotated[str | None, typer.Option(
        "--command", help="hook program to run (default: interlock-hook, found on PATH on each machine; "
                          "pin a path only for a --user install on this machine)")] = None,
) -> None:
    """Write the Interlock hook into the agent's settings (merged, idempotent)."""
    flavor = agent_name.value
    if not env:
        typer.echo("error: pass --env ENV: the environment the agent's actions are judged in", err=True)
        raise typer.Exit(2)
    chosen = options.client(gateway=gateway, policy=policy, token=None, agent=agent, db=db, key_dir=key_dir,
                            needs_token=False)
    gateway = chosen.url if isinstance(chosen, Remote) else None
    in_process = str(Path(chosen.policy).resolve()) if isinstance(chosen, InProcess) else None
    # The written command names only what was given: a default store and key folder stay defaults.
    command = hook_command(flavor, executable=executable or HOOK_PROGRAM, env=env, gateway=gateway,
                           policy=in_process, agent=agent if in_process else None,
                           db=db if in_process and db != DEFAULT_DB else None,
                           key_dir=str(key_dir) if in_process and key_dir else None, target=target, wait=wait)
    path, entries, grouped, notes = install_plan(flavor, user, project_dir.resolve(), command,
                                                 int(wait) + TIMEOUT_MARGIN)
    try:
        write_settings(path, entries, grouped=grouped)
    except (ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"installed the Interlock hook in {path}")
    typer.echo(f"  {command}")
    if executable is None and hook_on_path() is None:
        typer.echo(f"  warning: {HOOK_PROGRAM} is not on PATH here: put the Python environment's bin directory on "
                   f"PATH (pip install interlock in it), or pin the program with --command "
                   f"{Path(sys.executable).parent / HOOK_PROGRAM}", err=True)
    if not user:
        note = " (the --policy path is absolute: prefer --gateway for a committed setting)" if in_process else ""
        typer.echo(f"  commit {path.relative_to(project_dir.resolve())} so the team gets the hook{note}")
    if gateway:
        typer.echo("  the agent's token goes in INTERLOCK_TOKEN, in the environment the agent starts from")
    for note in notes:
        typer.echo(f"  {note}")
