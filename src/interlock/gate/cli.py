"""`interlock approvals list|show|approve|deny`: the approver's view (mounted by interlock.cli).

The caller is whoever the token says (`--token` or INTERLOCK_TOKEN), never a name typed on the
command line; agent tokens are refused. With `--gateway URL` (or INTERLOCK_URL) it talks to the
HTTP API; with `--policy FILE` (INTERLOCK_POLICY), directly to the store (`--db`, `--key-dir`).
Both print the same view, and `--format json` prints what `GET /v1/approvals/{id}` returns. Exit
codes: 0 done, 1 refused (the error says why, and it is audited), 2 usage, policy, store or server
error. The old `--server`/INTERLOCK_SERVER and `--keys`/INTERLOCK_KEYS still work, with a warning.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from interlock import options
from interlock.console import out
from interlock.gate.clock import Clock, stamp, system_clock
from interlock.gate.events import APPROVAL_REFUSED
from interlock.gate.requests import RequestState, api_json
from interlock.gate.service import Gate, GateError
from interlock.gate.webhook import Notifier
from interlock.human_api import HumanApi, human_session, on_store, refused, signed_in
from interlock.identity import Principal
from interlock.options import DEFAULT_DB, Db, Fmt, Format, Gateway, KeyDir, Token
from interlock.options import PolicyFile as PolicyOpt

app = typer.Typer(
    help="Review approval requests: list, show, approve, deny (a human's token).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

View = dict[str, Any]
ALL = "all"


class StateFilter(StrEnum):
    """`approvals list --state`: one request state (RequestState's values), or all of them."""

    pending = "pending"
    approved = "approved"
    denied = "denied"
    expired = "expired"
    invalidated = "invalidated"
    consumed = "consumed"
    all = ALL


#: `approvals list --watch` redraws on these (tests inject a clock and a sleep that advances it).
CLOCK: Clock = system_clock
SLEEP: Callable[[float], None] = time.sleep


class Reviewer(Protocol):
    def list(self, state: str) -> list[View]: ...
    def show(self, request_id: str) -> View: ...
    def approve(self, request_id: str, comment: str = "") -> View: ...
    def deny(self, request_id: str, reason: str) -> View: ...


class LocalReviewer:
    """The Gate on the store, as the authenticated human."""

    def __init__(self, gate: Gate, principal: Principal) -> None:
        self.gate, self.principal = gate, principal

    def list(self, state: str) -> list[View]:
        requests = self.gate.list_requests(None if state == ALL else RequestState(state))
        return [api_json(self.gate.status(r.id)) for r in requests]

    def show(self, request_id: str) -> View:
        return api_json(self.gate.status(request_id))

    def approve(self, request_id: str, comment: str = "") -> View:
        return api_json(self.gate.approve(request_id, self.principal, comment))

    def deny(self, request_id: str, reason: str) -> View:
        return api_json(self.gate.deny(request_id, self.principal, reason))


class RemoteReviewer:
    """The server's API (`/v1/approvals`); the server authenticates the token and runs the Gate."""

    def __init__(self, api: HumanApi) -> None:
        self._call = api.call

    def list(self, state: str) -> list[View]:
        body = self._call("GET", "/v1/approvals", params={"state": state})
        return list(body["approvals"])

    def show(self, request_id: str) -> View:
        return dict(self._call("GET", f"/v1/approvals/{request_id}"))

    def approve(self, request_id: str, comment: str = "") -> View:
        body = {"comment": comment} if comment else {}
        return dict(self._call("POST", f"/v1/approvals/{request_id}/approve", json=body))

    def deny(self, request_id: str, reason: str) -> View:
        return dict(self._call("POST", f"/v1/approvals/{request_id}/deny", json={"reason": reason}))


@contextmanager
def reviewer(gateway: str | None, db: str, policy_path: Path | None, token: str | None,
             key_dir: Path | None) -> Iterator[Reviewer]:
    """The one client choice: the server's API, or the gate on the store."""
    with human_session(gateway, db, policy_path, token, key_dir, local=local_session, remote=RemoteReviewer) as found:
        yield found


@contextmanager
def local_session(db: str, policy_path: Path, token: str, key_dir: Path) -> Iterator[Reviewer]:
    """The gate on the store; the caller authenticated as a human (fail closed on anything).
    Approvers append their votes; they never need the private key, and never sign."""
    with on_store(db, policy_path, key_dir) as (policy, store, audit):
        principal = signed_in(store, token, audit, refusal_event=APPROVAL_REFUSED)
        # The policy's webhooks hear about outcomes decided here too: the deliveries commit with the vote
        # (the webhook outbox); the CLI waits up to 20 s for them to be sent (retries included) by
        # whoever holds the delivery lease (itself, or a running server), and what is left is sent later.
        notifier = Notifier(policy.doc.notify, audit, store)
        try:
            yield LocalReviewer(Gate(store, policy, audit, notifier=notifier), principal)
        except GateError as exc:
            refused(exc.code, str(exc))
        finally:
            if notifier.webhooks:
                notifier.flush(timeout=20)
            notifier.close()


def _left(seconds: int) -> str:
    if seconds <= 0:
        return "-"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _where(action: View) -> str:
    return str(action["environment"]) + (f"/{action['target']}" if action.get("target") else "")


def _vote_text(vote: View) -> str:
    reason = f" ({vote['reason']})" if vote.get("reason") else ""
    return f"{vote['human']} {vote['verdict']}d{reason}"


def _print_view(view: View) -> None:
    action = view["action"]
    tags = f" [{', '.join(view['tags'])}]" if view["tags"] else ""
    lines = [
        f"approval request {view['id']}  state: {view['state']}",
        f"  agent:     {view['agent']} (owner {view['owner']}, who cannot approve)",
        f"  action:    {action['kind']} in {_where(action)}",
        f"  summary:   {view['risk']}{tags}: {view['summary']}",
        "  exact action (this is what runs, byte for byte):",
        *(f"    {line}" for line in json.dumps(action["payload"], indent=2, sort_keys=True).splitlines()),
    ]
    if view.get("rollout"):
        lines += _rollout_lines(view["rollout"])
    rationale = view.get("rationale")
    if rationale:
        lines += [
            f"  intent:    {rationale.get('intent') or '-'}",
            f"  effect:    {rationale.get('expected_effect') or '-'}",
            f"  rollback:  {rationale.get('rollback') or '-'}",
        ]
    else:
        lines.append("  rationale: none given")
    votes = ", ".join(_vote_text(v) for v in view["votes"])
    evidence = view.get("evidence")
    lines += [
        f"  evidence:  {evidence.get('description') or evidence.get('summary')}" if evidence
        else "  evidence:  none (no sandbox run attached)",
        f"  rules:     {', '.join(view['rules'])}",
        f"  requires:  {'; '.join(view['required'])}",
        f"  eligible:  {', '.join(view['eligible'])}",
        f"  so far:    {votes or 'no votes yet'}",
        f"  quorum:    {view['still_needs']}",
    ]
    if view["state"] == "pending":
        lines.append(f"  time left: {_left(view['seconds_left'])} (expires {view['expires_at']})")
    elif view.get("reason"):
        lines.append(f"  outcome:   {view['reason']}")
    lines.append(f"  fingerprint: {view['fingerprint']}")
    for line in lines:
        out.print(line, markup=False)


def _rollout_lines(rollout: View) -> list[str]:
    """A rollout's approval: one vote for every target, so every target, step and the rollback are shown."""

    def decided(d: View) -> str:
        seen = f"{d['decision']} ({d['risk']})"
        return seen + (" after its rehearsal" if d.get("sandboxed") else "")

    lines = [f"  rollout:   {rollout['id']} over group {rollout['group']} ({len(rollout['targets'])} targets), "
             f"maxParallel {rollout['max_parallel']}, progressDeadline {rollout['progress_deadline']} s, "
             f"abortPolicy {rollout['abort_policy']}",
             "  targets:   (wave: forward decision / rollback decision)"]
    lines += [f"    {t['name']}  wave {t['wave']}: {decided(t['forward'])} / {decided(t['rollback'])}"
              for t in rollout["targets"]]
    lines.append("  steps:")
    lines += [f"    {s['index']}. {json.dumps(s['step'], sort_keys=True)}" for s in rollout["steps"]]
    lines.append("  rollback (runs on every changed target, newest first, when a check fails or on abort):")
    undo = json.dumps(rollout["rollback"]["payload"], indent=2, sort_keys=True)
    lines += [f"    {line}" for line in undo.splitlines()]
    return lines


def _emit(view: View, format: Format) -> None:
    if format is Format.json:
        sys.stdout.write(json.dumps(view) + "\n")
    else:
        _print_view(view)


@app.command("list")
@options.shared
def list_command(
    token: Token = None,
    policy: PolicyOpt = None,
    gateway: Gateway = None,
    db: Db = DEFAULT_DB,
    key_dir: KeyDir = None,
    state: Annotated[StateFilter, typer.Option(
        "--state", help="pending, a decided state (approved, denied, expired, …) or all")] = StateFilter.pending,
    all_states: Annotated[bool, typer.Option("--all", help="the same as --state all")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="redraw every --interval seconds until Ctrl-C")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.5, help="seconds between redraws")] = 2.0,
    format: Fmt = Format.text,
) -> None:
    """Approval requests, pending ones by default (expired ones are expired first)."""
    wanted = ALL if all_states else state.value
    with reviewer(gateway, db, policy, token, key_dir) as r:
        if not watch:
            _print_list(r.list(wanted), wanted, format)
            return
        try:
            if format is Format.json:  # one JSON array per redraw, for programs reading lines
                while True:
                    _print_list(r.list(wanted), wanted, format)
                    sys.stdout.flush()
                    SLEEP(interval)
            # People get one view redrawn in place (rich Live), as `rollout status --watch` does.
            with Live(_watch_view(r.list(wanted), wanted, interval), console=out, auto_refresh=False) as live:
                while True:
                    SLEEP(interval)
                    live.update(_watch_view(r.list(wanted), wanted, interval), refresh=True)
        except KeyboardInterrupt:
            return


def _watch_view(views: list[View], state: str, interval: float) -> Group:
    """What `list --watch` shows: when it was read, how often, and the listing."""
    header = Text(f"approval requests ({state}) at {stamp(CLOCK())[:19]}Z, every {interval:g} s; Ctrl-C to stop")
    return Group(header, _list_view(views, state))


def _print_list(views: list[View], state: str, format: Format) -> None:
    """One listing: a JSON array on one line (one per redraw with --watch), or a table."""
    if format is Format.json:
        sys.stdout.write(json.dumps(views) + "\n")
        return
    out.print(_list_view(views, state))


def _list_view(views: list[View], state: str) -> Table | Text:
    if not views:
        return Text("no approval requests" if state == ALL else f"no {state} approval requests")
    table = Table("id", "state", "agent", "where", "risk", "summary", "quorum", "left", box=None)
    for v in views:
        table.add_row(
            v["id"],
            v["state"],
            v["agent"],
            f"rollout over {len(v['rollout']['targets'])} targets of {v['rollout']['group']}" if v.get("rollout")
            else _where(v["action"]),
            v["risk"],
            v["summary"],
            v["still_needs"],
            _left(v["seconds_left"]),
        )
    return table


RequestId = Annotated[str, typer.Argument(help="the request id (apr_…)")]


@app.command("show")
@options.shared
def show_command(
    request_id: RequestId,
    token: Token = None,
    policy: PolicyOpt = None,
    gateway: Gateway = None,
    db: Db = DEFAULT_DB,
    key_dir: KeyDir = None,
    format: Fmt = Format.text,
) -> None:
    """The exact action, its summary, the rationale, votes so far and time left."""
    with reviewer(gateway, db, policy, token, key_dir) as r:
        _emit(r.show(request_id), format)


@app.command("approve")
@options.shared
def approve_command(
    request_id: RequestId,
    token: Token = None,
    comment: Annotated[str, typer.Option("--comment", help="a note kept with your vote and in the audit log")] = "",
    policy: PolicyOpt = None,
    gateway: Gateway = None,
    db: Db = DEFAULT_DB,
    key_dir: KeyDir = None,
    format: Fmt = Format.text,
) -> None:
    """Approve as yourself (the token's human). Read `show` first: you approve that exact action."""
    with reviewer(gateway, db, policy, token, key_dir) as r:
        _emit(r.approve(request_id, comment), format)


@app.command("deny")
@options.shared
def deny_command(
    request_id: RequestId,
    token: Token = None,
    reason: Annotated[str, typer.Option("--reason", help="why (required; the agent is told)")] = "",
    policy: PolicyOpt = None,
    gateway: Gateway = None,
    db: Db = DEFAULT_DB,
    key_dir: KeyDir = None,
    format: Fmt = Format.text,
) -> None:
    """Deny with a reason; one denial ends the request."""
    with reviewer(gateway, db, policy, token, key_dir) as r:
        _emit(r.deny(request_id, reason), format)
