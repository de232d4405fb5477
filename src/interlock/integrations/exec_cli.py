"""`interlock exec --env ENV [--target T] -- CMD…` (mounted by interlock.cli as `interlock exec`).

Proposes the command as a brokered shell action: Interlock decides, gates on approvals and runs it
with the target's credentials (the caller never holds them), and this prints what it printed.

Exit codes: the command's own exit code when it ran (124 when Interlock killed it at its timeout);
1 denied, rejected, expired, or it could not start; 2 usage error or no decision could be had (the
gateway is down: nothing ran); 3 still waiting for approval after `--wait` seconds (the request
stays open: run the same command again once it is approved).
"""

from __future__ import annotations

import shlex
import sys
from typing import Annotated, Any

import typer

from interlock import answers, options
from interlock.client import Client, InterlockError, LocalClient, client_for
from interlock.vocabulary import DEFAULT_DB, DEFAULT_WAIT, UsageError, choose_client

EXIT_DENIED = 1
EXIT_ERROR = 2
EXIT_PENDING = 3
EXIT_TIMEOUT = 124
HTTP_TIMEOUT = 900.0


def _say(message: str) -> None:
    sys.stderr.write(f"interlock exec: {message}\n")
    sys.stderr.flush()


def show_result(body: dict[str, Any]) -> int:
    """Print a brokered execution's output; the exit code the caller should see."""
    result = body.get("result") or {}
    output = result.get("output") or ""
    if output:
        sys.stdout.write(output)
        sys.stdout.flush()
    if result.get("truncated"):
        _say(f"output truncated at {len(output.encode())} of {result.get('output_bytes')} bytes "
             f"(sha256 {result.get('output_sha256')})")
    status = result.get("status")
    if status == "timeout":
        _say("the command was killed at the target's timeout")
        return EXIT_TIMEOUT
    if status == "error" or result.get("exit_code") is None:
        _say(f"the command could not run: {result.get('error') or status}")
        return EXIT_DENIED
    return int(result["exit_code"])


def outcome(body: dict[str, Any], wait: float) -> int:
    """The exit code for a settled proposal, saying on stderr why when it did not run."""
    if answers.ran(body):
        return show_result(body)
    _say(answers.explain(body, waited=wait, again="run the same command again"))
    return EXIT_PENDING if body.get("state") == "pending_approval" else EXIT_DENIED


def run(client: Client | LocalClient, env: str, command: list[str], target: str | None, wait: float) -> int:
    line = shlex.join(command)
    body = client.propose("shell", env, {"command": line}, target=target, mode="brokered")
    if body.get("state") == "pending_approval":
        _say(f"{answers.approval_needed(body)}. Waiting up to {wait:g} s…")
    if not answers.settled(body):
        body = client.wait(str(body["id"]), wait)
    return outcome(body, wait)


@options.shared
def exec_(
    ctx: typer.Context,
    env: options.Env = None,
    target: Annotated[str | None, typer.Option("--target", help="target to run against (its credentials)")] = None,
    gateway: options.Gateway = None,
    token: options.Token = None,
    policy: options.PolicyFile = None,
    agent: options.Agent = None,
    db: options.Db = DEFAULT_DB,
    key_dir: options.KeyDir = None,
    wait: options.Wait = DEFAULT_WAIT,
) -> None:
    """Run a shell command through Interlock: decided, approved, run and audited there."""
    command = list(ctx.args)
    if command and command[0] == "--":
        command = command[1:]
    problem = None
    if not command:
        problem = "no command: interlock exec --env ENV -- CMD…"
    elif not env:
        problem = "pass --env ENV (or set INTERLOCK_ENV)"
    if problem:
        _say(problem)
        raise typer.Exit(EXIT_ERROR)
    try:
        chosen = choose_client(gateway=options.given("gateway", gateway), policy=options.given("policy", policy),
                               token=token, agent=agent, db=db, key_dir=key_dir)
    except UsageError as exc:
        _say(str(exc))
        raise typer.Exit(EXIT_ERROR) from exc
    assert env is not None
    try:
        # Brokered: the answer comes after the command ran, so the HTTP timeout covers its run time.
        with client_for(chosen, timeout=HTTP_TIMEOUT) as client:
            code = run(client, env, command, target, wait)
    except InterlockError as exc:
        _say(str(exc))
        raise typer.Exit(EXIT_ERROR) from exc
    raise typer.Exit(code)
