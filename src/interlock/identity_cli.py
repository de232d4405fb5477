"""`interlock token create|revoke|list` (mounted by interlock.cli as `interlock token`).

The secret is printed once, on stdout, at creation; only its sha256 is stored. Exit codes: 0 done,
1 refused, 2 usage, policy or store error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from interlock import options
from interlock.console import err, fail, out
from interlock.gate.clock import stamp, system_clock
from interlock.human_api import appending_store
from interlock.identity import AuthError, PrincipalKind, create_token, list_tokens, revoke
from interlock.options import DEFAULT_DB, Format
from interlock.policy import PolicyError, load_policy
from interlock.policy.schema import parse_duration
from interlock.store import Store

app = typer.Typer(
    help="Create, revoke and list agent and human tokens.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@contextmanager
def _opened(db: str, key_dir: Path | None) -> Iterator[tuple[Store, Any]]:
    # Appends only: the server (or `audit checkpoint`) signs checkpoints, never this command.
    with appending_store(db, options.key_dir_for(db, key_dir)) as (store, audit):
        try:
            yield store, audit
        except AuthError as exc:
            fail(str(exc), 1)


@app.command("create")
@options.shared
def create_command(
    agent: Annotated[str | None, typer.Option("--agent", help="an agent's name")] = None,
    human: Annotated[str | None, typer.Option("--human", help="a human's name")] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="lifetime, e.g. 12h, 30d (default: never)")
    ] = None,
    policy: options.PolicyFile = None,
    db: options.Db = DEFAULT_DB,
    key_dir: options.KeyDir = None,
    format: options.Fmt = Format.text,
) -> None:
    """Create a token for one agent or one human; the secret is shown once."""
    if (agent is None) == (human is None):
        fail("give exactly one of --agent NAME or --human NAME", 2)
    kind: PrincipalKind = "agent" if agent is not None else "human"
    name = agent if agent is not None else human
    assert name is not None
    try:
        seconds = parse_duration(expires) if expires is not None else None
    except ValueError as exc:
        fail(f"--expires: {exc}", 2)
    loaded = None
    if policy is not None:
        try:
            loaded = load_policy(policy)
        except PolicyError as exc:
            fail(f"policy {policy} does not load:\n{exc}", 2)
    with _opened(db, key_dir) as (store, audit):
        try:
            token_id, secret = create_token(store, kind, name, seconds, audit, policy=loaded)
        except ValueError as exc:
            fail(str(exc), 2)
    if format is Format.json:
        sys.stdout.write(json.dumps({"id": token_id, "kind": kind, "name": name, "secret": secret}) + "\n")
        return
    err.print(
        f"created {kind} token {token_id} for {name}; the secret below is shown only once:", markup=False
    )
    sys.stdout.write(secret + "\n")


@app.command("revoke")
@options.shared
def revoke_command(
    token_id: Annotated[str, typer.Argument(help="the token id (tok_…), see `list`")],
    db: options.Db = DEFAULT_DB,
    key_dir: options.KeyDir = None,
) -> None:
    """Revoke a token at once."""
    with _opened(db, key_dir) as (store, audit):
        info = revoke(store, token_id, audit)
    out.print(f"revoked {info.kind} token {info.id} ({info.name})", markup=False)


@app.command("list")
@options.shared
def list_command(db: options.Db = DEFAULT_DB, key_dir: options.KeyDir = None,
                 format: options.Fmt = Format.text) -> None:
    """Every token: id, kind, name, state (never the secret)."""
    with _opened(db, key_dir) as (store, _audit):
        tokens = list_tokens(store)
    now = stamp(system_clock())
    if format is Format.json:
        rows = [{**t.__dict__, "state": t.state(now)} for t in tokens]
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table("id", "kind", "name", "state", "created", "expires", box=None)
    for t in tokens:
        table.add_row(t.id, t.kind, t.name, t.state(now), t.created_at, t.expires_at or "never")
    out.print(table)
