"""`interlock approvals list|show|approve|deny`: the approver's view (mounted by interlock.cli).

The caller is whoever the token says (`--token` or INTERLOCK_TOKEN), never a name typed on the
command line; agent tokens are refused. Until the HTTP server is there it talks to the store directly
(`--db`). Exit codes: 0 done, 1 refused (the error says why, and it is audited), 2 usage, policy or
store error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from interlock.gate.clock import stamp
from interlock.gate.events import APPROVAL_REFUSED
from interlock.gate.requests import RequestState, RequestStatus
from interlock.gate.service import Gate, GateError
from interlock.gate.webhook import Notifier
from interlock.identity import AuthError, Principal, authenticate, require_human
from interlock.policy import PolicyError, load_policy
from interlock.store import DEFAULT_URL, StoreError, open_store

app = typer.Typer(
    help="Review approval requests: list, show, approve, deny (a human's token).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Format(StrEnum):
    text = "text"
    json = "json"


Db = Annotated[str, typer.Option("--db", envvar="INTERLOCK_DB", help="store URL")]
PolicyOpt = Annotated[
    Path, typer.Option("--policy", envvar="INTERLOCK_POLICY", help="the policy the gate runs (required)")
]
Token = Annotated[
    str, typer.Option("--token", envvar="INTERLOCK_TOKEN", help="your human token (prefer the env variable)")
]
Keys = Annotated[Path, typer.Option("--keys", envvar="INTERLOCK_KEYS", help="audit signing key directory")]
Fmt = Annotated[Format, typer.Option("--format", help="text or json")]


def fail(message: str, code: int) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(code)


@dataclass
class Session:
    gate: Gate
    principal: Principal


@contextmanager
def session(db: str, policy_path: Path, token: str, keys: Path) -> Iterator[Session]:
    """Open store, audit log and gate; authenticate the caller as a human (fail closed on anything)."""
    from interlock.audit import AuditLog

    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        fail(f"policy {policy_path} does not load:\n{exc}", 2)
    try:
        store = open_store(db)
    except StoreError as exc:
        fail(str(exc), 2)
    try:
        store.migrate()
        audit = AuditLog(store, key_dir=keys)
        try:
            principal = authenticate(store, token, audit=audit)
            require_human(principal)
        except AuthError as exc:
            if exc.reason == "agent_token":
                audit.append(
                    APPROVAL_REFUSED, {"code": "agent_token", "token_id": exc.token_id, "error": str(exc)}
                )
            fail(str(exc), 1)
        # The policy's webhooks hear about outcomes decided here too; the CLI waits for deliveries
        # (retries included) before it exits, and failures are audited as webhook.failed.
        notifier = Notifier(policy.doc.notify, audit)
        try:
            yield Session(Gate(store, policy, audit, notifier=notifier), principal)
        except GateError as exc:
            fail(f"[{exc.code}] {exc}", 1)
        finally:
            notifier.close(timeout=20)
            audit.close()
    except StoreError as exc:
        fail(f"store error: {exc}", 2)
    finally:
        store.close()


def _left(seconds: int) -> str:
    if seconds <= 0:
        return "-"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _print_status(status: RequestStatus) -> None:
    req = status.request
    action = req.action
    where = action.environment + (f"/{action.target}" if action.target else "")
    cls = req.classification
    tags = f" [{', '.join(cls.tags)}]" if cls.tags else ""
    out.print(f"approval request {req.id}  state: {req.state.value}", markup=False)
    out.print(f"  agent:     {req.agent} (owner {req.owner}, who cannot approve)", markup=False)
    out.print(f"  action:    {action.kind.value} in {where}", markup=False)
    out.print(f"  summary:   {cls.risk.value}{tags}: {cls.summary}", markup=False)
    out.print("  exact action (this is what runs, byte for byte):", markup=False)
    for line in json.dumps(action.payload, indent=2, sort_keys=True).splitlines():
        out.print(f"    {line}", markup=False)
    if req.rationale is not None:
        out.print(f"  intent:    {req.rationale.intent}", markup=False)
        out.print(f"  effect:    {req.rationale.expected_effect or '-'}", markup=False)
        out.print(f"  rollback:  {req.rationale.rollback or '-'}", markup=False)
    else:
        out.print("  rationale: none given", markup=False)
    out.print("  evidence:  none (no sandbox run attached)", markup=False)
    out.print(f"  rules:     {', '.join(req.rules)}", markup=False)
    out.print(f"  requires:  {'; '.join(r.describe() for r in req.requirements)}", markup=False)
    out.print(f"  eligible:  {', '.join(req.eligible)}", markup=False)
    votes = ", ".join(f"{v.human} {v.verdict}d{f' ({v.reason})' if v.reason else ''}" for v in status.votes)
    out.print(f"  so far:    {votes or 'no votes yet'}", markup=False)
    out.print(f"  quorum:    {status.still_needs}", markup=False)
    if req.state is RequestState.pending:
        out.print(
            f"  time left: {_left(status.seconds_left)} (expires {stamp(req.expires_at)})", markup=False
        )
    elif req.state_reason:
        out.print(f"  outcome:   {req.state_reason}", markup=False)
    out.print(f"  fingerprint: {req.fingerprint}", markup=False)


def _emit(status: RequestStatus, fmt: Format) -> None:
    if fmt is Format.json:
        sys.stdout.write(status.model_dump_json() + "\n")
    else:
        _print_status(status)


@app.command("list")
def list_command(
    policy: PolicyOpt,
    token: Token,
    db: Db = DEFAULT_URL,
    keys: Keys = Path(".interlock/keys"),
    all_states: Annotated[bool, typer.Option("--all", help="include decided requests")] = False,
    fmt: Fmt = Format.text,
) -> None:
    """Pending approval requests (expired ones are expired first)."""
    with session(db, policy, token, keys) as s:
        requests = s.gate.list_requests(None if all_states else RequestState.pending)
        statuses = [s.gate.status(r.id) for r in requests]
    if fmt is Format.json:
        sys.stdout.write(json.dumps([st.model_dump(mode="json") for st in statuses]) + "\n")
        return
    if not statuses:
        out.print("no pending approval requests" if not all_states else "no approval requests", markup=False)
        return
    table = Table("id", "state", "agent", "where", "risk", "summary", "quorum", "left", box=None)
    for st in statuses:
        r = st.request
        where = r.action.environment + (f"/{r.action.target}" if r.action.target else "")
        table.add_row(
            r.id,
            r.state.value,
            r.agent,
            where,
            r.classification.risk.value,
            r.classification.summary,
            st.still_needs,
            _left(st.seconds_left),
        )
    out.print(table)


@app.command("show")
def show_command(
    request_id: Annotated[str, typer.Argument(help="the request id (apr_…)")],
    policy: PolicyOpt,
    token: Token,
    db: Db = DEFAULT_URL,
    keys: Keys = Path(".interlock/keys"),
    fmt: Fmt = Format.text,
) -> None:
    """The exact action, its summary, the rationale, votes so far and time left."""
    with session(db, policy, token, keys) as s:
        _emit(s.gate.status(request_id), fmt)


@app.command("approve")
def approve_command(
    request_id: Annotated[str, typer.Argument(help="the request id (apr_…)")],
    policy: PolicyOpt,
    token: Token,
    db: Db = DEFAULT_URL,
    keys: Keys = Path(".interlock/keys"),
    fmt: Fmt = Format.text,
) -> None:
    """Approve as yourself (the token's human). Read `show` first: you approve that exact action."""
    with session(db, policy, token, keys) as s:
        _emit(s.gate.approve(request_id, s.principal), fmt)


@app.command("deny")
def deny_command(
    request_id: Annotated[str, typer.Argument(help="the request id (apr_…)")],
    policy: PolicyOpt,
    token: Token,
    reason: Annotated[str, typer.Option("--reason", help="why (required; the agent is told)")] = "",
    db: Db = DEFAULT_URL,
    keys: Keys = Path(".interlock/keys"),
    fmt: Fmt = Format.text,
) -> None:
    """Deny with a reason; one denial ends the request."""
    with session(db, policy, token, keys) as s:
        _emit(s.gate.deny(request_id, s.principal, reason), fmt)
