"""`interlock approvals list|show|approve|deny`: the approver's view (mounted by interlock.cli).

The caller is whoever the token says (`--token` or INTERLOCK_TOKEN), never a name typed on the
command line; agent tokens are refused. With `--server URL` (or INTERLOCK_SERVER) it talks to the
HTTP API; without, directly to the store (`--db`, `--policy`). Both print the same view, and
`--format json` prints what `GET /v1/approvals/{id}` returns. Exit codes: 0 done, 1 refused (the
error says why, and it is audited), 2 usage, policy, store or server error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, Protocol

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from interlock.console import err, out
from interlock.gate.events import APPROVAL_REFUSED
from interlock.gate.requests import RequestState, api_json
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

View = dict[str, Any]


class Format(StrEnum):
    text = "text"
    json = "json"


Server = Annotated[
    str | None, typer.Option("--server", envvar="INTERLOCK_SERVER", help="Interlock server URL (else: the store)")
]
Db = Annotated[str, typer.Option("--db", envvar="INTERLOCK_DB", help="store URL (without --server)")]
PolicyOpt = Annotated[
    Path | None,
    typer.Option("--policy", envvar="INTERLOCK_POLICY", help="the policy the gate runs (required without --server)"),
]
Token = Annotated[
    str, typer.Option("--token", envvar="INTERLOCK_TOKEN", help="your human token (prefer the env variable)")
]
Keys = Annotated[Path, typer.Option("--keys", envvar="INTERLOCK_KEYS", help="audit signing key directory")]
Fmt = Annotated[Format, typer.Option("--format", help="text or json")]


def fail(message: str, code: int) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(code)


class Reviewer(Protocol):
    def list(self, all_states: bool) -> list[View]: ...
    def show(self, request_id: str) -> View: ...
    def approve(self, request_id: str) -> View: ...
    def deny(self, request_id: str, reason: str) -> View: ...


class LocalReviewer:
    """The Gate on the store, as the authenticated human."""

    def __init__(self, gate: Gate, principal: Principal) -> None:
        self.gate, self.principal = gate, principal

    def list(self, all_states: bool) -> list[View]:
        requests = self.gate.list_requests(None if all_states else RequestState.pending)
        return [api_json(self.gate.status(r.id)) for r in requests]

    def show(self, request_id: str) -> View:
        return api_json(self.gate.status(request_id))

    def approve(self, request_id: str) -> View:
        return api_json(self.gate.approve(request_id, self.principal))

    def deny(self, request_id: str, reason: str) -> View:
        return api_json(self.gate.deny(request_id, self.principal, reason))


class RemoteReviewer:
    """The server's API (`/v1/approvals`); the server authenticates the token and runs the Gate."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach the server at {self.client.base_url}: {type(exc).__name__}", 2)
        try:
            body = response.json()
        except ValueError:
            fail(f"the server answered HTTP {response.status_code} without JSON", 2)
        if response.status_code >= 400:
            problem = body.get("error", {}) if isinstance(body, dict) else {}
            code = problem.get("code", f"http_{response.status_code}")
            fail(f"[{code}] {problem.get('message', response.reason_phrase)}", 1 if response.status_code < 500 else 2)
        return body

    def list(self, all_states: bool) -> list[View]:
        body = self._call("GET", "/v1/approvals", params={"state": "all" if all_states else "pending"})
        return list(body["approvals"])

    def show(self, request_id: str) -> View:
        return dict(self._call("GET", f"/v1/approvals/{request_id}"))

    def approve(self, request_id: str) -> View:
        return dict(self._call("POST", f"/v1/approvals/{request_id}/approve", json={}))

    def deny(self, request_id: str, reason: str) -> View:
        return dict(self._call("POST", f"/v1/approvals/{request_id}/deny", json={"reason": reason}))


@contextmanager
def reviewer(server: str | None, db: str, policy_path: Path | None, token: str, keys: Path) -> Iterator[Reviewer]:
    if server:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server, headers=headers, timeout=30.0, follow_redirects=False) as client:
            yield RemoteReviewer(client)
        return
    if policy_path is None:
        fail("give --server URL (INTERLOCK_SERVER) or --policy FILE (INTERLOCK_POLICY) with --db", 2)
    with local_session(db, policy_path, token, keys) as local:
        yield local


@contextmanager
def local_session(db: str, policy_path: Path, token: str, keys: Path) -> Iterator[LocalReviewer]:
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
                audit.append(APPROVAL_REFUSED, {"code": "agent_token", "token_id": exc.token_id, "error": str(exc)})
            audit.close()
            fail(str(exc), 1)
        # The policy's webhooks hear about outcomes decided here too; the CLI waits for deliveries
        # (retries included) before it exits, and failures are audited as webhook.failed.
        notifier = Notifier(policy.doc.notify, audit)
        try:
            yield LocalReviewer(Gate(store, policy, audit, notifier=notifier), principal)
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
    lines += [
        "  evidence:  none (no sandbox run attached)",
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


def _emit(view: View, fmt: Format) -> None:
    if fmt is Format.json:
        sys.stdout.write(json.dumps(view) + "\n")
    else:
        _print_view(view)


@app.command("list")
def list_command(
    token: Token,
    policy: PolicyOpt = None,
    server: Server = None,
    db: Db = DEFAULT_URL,
    keys: Keys = Path(".interlock/keys"),
    all_states: Annotated[bool, typer.Option("--all", help="include decided requests")] = False,
    fmt: Fmt = Format.text,
) -> None:
    """Pending approval requests (expired ones are expired first)."""
    with reviewer(server, db, policy, token, keys) as r:
        views = r.list(all_states)
    if fmt is Format.json:
        sys.stdout.write(json.dumps(views) + "\n")
        return
    if not views:
        out.print("no pending approval requests" if not all_states else "no approval requests", markup=False)
        return
    table = Table("id", "state", "agent", "where", "risk", "summary", "quorum", "left", box=None)
    for v in views:
        table.add_row(
            v["id"],
            v["state"],
            v["agent"],
            _where(v["action"]),
            v["risk"],
            v["summary"],
            v["still_needs"],
            _left(v["seconds_left"]),
        )
    out.print(table)


RequestId = Annotated[str, typer.Argument(help="the request id (apr_…)")]


@app.command("show")
def show_command(
    request_id: RequestId,
    token: Token,
    policy: PolicyOpt = None,
    server: Server = None,
    db: Db = DEFAULT_URL,
    keys: Keys = Path(".interlock/keys"),
    fmt: Fmt = Format.text,
) -> None:
    """The exact action, its summary, the rationale, votes so far and time left."""
    with reviewer(server, db, policy, token, keys) as r:
        _emit(r.show(request_id), fmt)


@app.command("approve")
def approve_command(
    request_id: RequestId,
    token: Token,
    policy: PolicyOpt = None,
    server: Server = None,
    db: Db = DEFAULT_URL,
    keys: Keys = Path(".interlock/keys"),
    fmt: Fmt = Format.text,
) -> None:
    """Approve as yourself (the token's human). Read `show` first: you approve that exact action."""
    with reviewer(server, db, policy, token, keys) as r:
        _emit(r.approve(request_id), fmt)


@app.command("deny")
def deny_command(
    request_id: RequestId,
    token: Token,
    reason: Annotated[str, typer.Option("--reason", help="why (required; the agent is told)")] = "",
    policy: PolicyOpt = None,
    server: Server = None,
    db: Db = DEFAULT_URL,
    keys: Keys = Path(".interlock/keys"),
    fmt: Fmt = Format.text,
) -> None:
    """Deny with a reason; one denial ends the request."""
    with reviewer(server, db, policy, token, keys) as r:
        _emit(r.deny(request_id, reason), fmt)
