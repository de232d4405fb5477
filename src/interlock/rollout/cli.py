"""`interlock rollout start|status|list|approve|deny|promote|pause|resume|abort` against `interlock serve`.

`start FILE` takes the rollout document (YAML or JSON) with an agent's token; the other commands take
a human's token (status and list take either). `status ID --watch` is the live progress view: waves,
targets, the current step and the last measurements, redrawn until the rollout ends.
Exit codes: 0 done, 1 refused (the error says why), 2 usage or server error.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from interlock import options
from interlock.client import Client, InterlockError, Unavailable
from interlock.console import fail, out
from interlock.options import Format

app = typer.Typer(help="Gradual rollouts: one change over a target group in waves, with checks and rollback.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

Gateway = options.Gateway
Token = options.Token
Fmt = options.Fmt
RolloutId = Annotated[str, typer.Argument(help="the rollout id (rol_…), from `interlock rollout list`")]
Reason = Annotated[str, typer.Option("--reason", help="why (required to deny)")]

_DONE = {"succeeded", "rolled_back", "failed", "denied", "aborted"}
_STYLE = {"changed": "green", "rolled_back": "yellow", "failed": "red", "rollback_failed": "bold red",
          "outcome_unknown": "magenta", "started": "cyan", "rollback_started": "cyan", "untouched": "dim",
          "succeeded": "bold green", "rolled_back_phase": "bold yellow", "paused": "bold magenta",
          "progressing": "bold cyan", "rolling_back": "bold yellow", "pending_approval": "bold blue"}


def _client(gateway: str | None, token: str | None) -> Client:
    if not gateway:
        fail("rollouts run in `interlock serve`: give --gateway URL (or INTERLOCK_URL)", 2)
    if not token:
        fail("give your token: --token or INTERLOCK_TOKEN (an agent's to start, a human's to command)", 2)
    return Client(gateway, token)


def _call(fn: Any, *args: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = fn(*args)
        return result
    except Unavailable as exc:
        fail(str(exc), 2)
    except InterlockError as exc:
        fail(str(exc), 1)


def view(rollout: dict[str, Any]) -> Group:
    """The progress display: phase and reason, the steps with their waves, the targets, the last checks."""
    phase = rollout["phase"]
    head = Text.assemble((f"{rollout['id']} ", "bold"), (phase, _STYLE.get(phase, "")),
                         f"  {rollout['name'] or ''}  group {rollout['group']} ({len(rollout['members'])} "
                         f"{rollout['kind']} targets)")
    reason = Text(rollout.get("reason") or "", style="italic")
    steps = Table(title="steps", show_edge=False, pad_edge=False)
    for column in ("#", "step", "wave", "targets", "state"):
        steps.add_column(column)
    for step in rollout["steps"]:
        body = step["step"]
        what = next(iter(body))
        label = f"{what}: {json.dumps(body[what])}" if what != "analysis" else \
            f"analysis: {', '.join(c['name'] for c in body['analysis']['checks'])}"
        mark = {"done": "✓", "current": "▶", "next": ""}[step["state"]]
        steps.add_row(str(step["index"]), label[:70], str(step.get("wave") or ""), str(step.get("targets") or ""),
                      mark)
    targets = Table(title="targets", show_edge=False, pad_edge=False)
    for column in ("target", "wave", "state", "detail"):
        targets.add_column(column)
    for target in rollout["targets"]:
        state = target["state"]
        targets.add_row(target["name"], str(target.get("wave") or ""), Text(state, style=_STYLE.get(state, "")),
                        (target.get("message") or "")[:80])
    parts: list[Any] = [head, reason, steps, targets]
    analysis = rollout.get("analysis")
    if analysis:
        checks = Table(title=f"analysis at step {analysis['step']}: round {analysis['taken']}, "
                             f"{analysis['failed']} failed, {analysis['errors']} errors", show_edge=False)
        for column in ("check", "target", "phase", "detail"):
            checks.add_column(column)
        for m in analysis.get("last", []):
            style = {"Successful": "green", "Failed": "red", "Error": "magenta", "Inconclusive": "yellow"}
            checks.add_row(m["check"], m["target"], Text(m["phase"], style=style.get(m["phase"], "")),
                           m["message"][:80])
        parts.append(checks)
    approval = rollout.get("approval")
    if approval and phase == "pending_approval":
        parts.append(Text(f"approval {approval.get('request_id') or ''} (`interlock approvals show`): "
                          f"{'; '.join(approval['requirements'])} — {approval['still_needs']}; "
                          f"eligible: {', '.join(approval['eligible'])}"))
    return Group(*parts)


def _show(rollout: dict[str, Any], format: Format) -> None:
    if format is Format.json:
        out.print_json(json.dumps(rollout))
    else:
        out.print(view(rollout))


@app.command()
@options.shared
def start(
    file: Annotated[Path, typer.Argument(help="the rollout document (YAML or JSON)")],
    gateway: Gateway = None, token: Token = None, format: Fmt = Format.text,
) -> None:
    """Start a rollout (an agent's token): checked and decided for every member before anything runs."""
    try:
        doc = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        fail(f"{file}: {exc}", 2)
    with _client(gateway, token) as client:
        _show(_call(client.start_rollout, doc), format)


@app.command()
@options.shared
def status(
    rollout_id: RolloutId, gateway: Gateway = None, token: Token = None, format: Fmt = Format.text,
    watch: Annotated[bool, typer.Option("--watch", help="redraw live until the rollout ends")] = False,
    every: Annotated[float, typer.Option("--every", min=0.1, help="seconds between redraws")] = 1.0,
) -> None:
    """A rollout's phase, steps, targets and last measurements; --watch redraws it live."""
    with _client(gateway, token) as client:
        rollout = _call(client.rollout, rollout_id)
        if not watch or format is Format.json:
            _show(rollout, format)
            return
        with Live(view(rollout), console=out, refresh_per_second=4) as live:
            while rollout["phase"] not in _DONE:
                time.sleep(every)
                rollout = _call(client.rollout, rollout_id)
                live.update(view(rollout))


@app.command("list")
@options.shared
def list_(gateway: Gateway = None, token: Token = None, format: Fmt = Format.text) -> None:
    """Recent rollouts (a human sees all, an agent its own)."""
    with _client(gateway, token) as client:
        found = _call(lambda: {"rollouts": client.rollouts()})["rollouts"]
    if format is Format.json:
        out.print_json(json.dumps({"rollouts": found}))
        return
    table = Table(show_edge=False)
    for column in ("id", "phase", "name", "group", "step", "changed", "agent", "updated"):
        table.add_column(column)
    for r in found:
        changed = sum(1 for t in r["targets"] if t["state"] == "changed")
        table.add_row(r["id"], Text(r["phase"], style=_STYLE.get(r["phase"], "")), r["name"], r["group"],
                      f"{r['step']}/{len(r['steps'])}", f"{changed}/{len(r['members'])}", r["agent"],
                      r["updated_at"][:19])
    out.print(table)


def _command(name: str, doc: str) -> None:
    @options.shared
    def command(rollout_id: RolloutId, reason: Reason = "", gateway: Gateway = None, token: Token = None,
                format: Fmt = Format.text) -> None:
        with _client(gateway, token) as client:
            _show(_call(client.rollout_command, rollout_id, name, reason), format)

    command.__doc__ = doc
    app.command(name)(command)


_command("approve", "Approve the rollout once (a human's token): grants for every target, forward and rollback.")
_command("deny", "Deny the rollout (a human's token; --reason required).")
_command("promote", "Go past the current pause or analysis step.")
_command("pause", "Pause a running rollout (it finishes the target step it is in).")
_command("resume", "Continue a paused rollout (targets left outcome_unknown count as changed).")
UnderFreeze = Annotated[bool, typer.Option("--under-freeze", help="roll back past the freezes in force (a human "
                                            "in the policy's guards.thaw_by; --reason required)")]


@app.command("abort")
@options.shared
def abort(rollout_id: RolloutId, reason: Reason = "", under_freeze: UnderFreeze = False, gateway: Gateway = None,
          token: Token = None, format: Fmt = Format.text) -> None:
    """Roll back every changed target now, in reverse order, without analysis."""
    with _client(gateway, token) as client:
        _show(_call(lambda: client.rollout_command(rollout_id, "abort", reason, under_freeze=under_freeze)), format)
