"""`interlock rehearse ACTION_ID`: run your action on its target's twin, then see the evidence.

Through a running server (`--gateway URL`, the agent's token in INTERLOCK_TOKEN) or in-process
(`--policy FILE --agent NAME` on the store `--db`). Exit codes: 0 the rehearsal succeeded (its
evidence can promote the action), 1 it failed, was denied, or ran without usable evidence (the answer
says why), 3 it waits for
approval in the twin's environment (`--wait S` to wait for it), 2 usage or a refused rehearsal.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from interlock import options
from interlock.client import InterlockError, client_for, settled
from interlock.console import err, out
from interlock.options import DEFAULT_DB, Format

EXIT = {"succeeded": 0, "failed": 1, "denied": 1, "rejected": 1, "expired": 1, "invalidated": 1,
        "pending_approval": 3, "sandbox_required": 3}


def _print(body: dict[str, Any]) -> None:
    rehearsal = body.get("rehearsal") or {}
    lines = [f"rehearsal {body.get('id')} of {rehearsal.get('of', '?')} on twin {rehearsal.get('twin', '?')}: "
             f"{body.get('state')}"]
    evidence = body.get("evidence")
    if evidence:
        lines.append(f"  evidence: {evidence.get('summary')} ({evidence.get('status')}, "
                     f"{evidence.get('duration_ms')} ms)")
        lines.append("  propose the same action again: it is promoted with this evidence while it is fresh")
    for reason in body.get("reasons") or []:
        lines.append(f"  reason: {reason}")
    for remedy in body.get("remedy") or []:
        lines.append(f"  to do: {remedy}")
    approval = body.get("approval")
    if approval and body.get("state") == "pending_approval":
        lines.append(f"  waiting for approval {approval.get('id')}: {approval.get('still_needs')}")
    result = body.get("result") or {}
    if result.get("error"):
        lines.append(f"  error: {result['error']}")
    for line in lines:
        out.print(line, markup=False)


@options.shared
def rehearse(
    action_id: str = typer.Argument(..., help="the id of your action (act_…) to rehearse on its target's twin"),
    gateway: options.Gateway = None,
    token: options.Token = None,
    policy: options.PolicyFile = None,
    agent: options.Agent = None,
    db: options.Db = DEFAULT_DB,
    key_dir: options.KeyDir = None,
    wait: options.Wait = 0.0,
    format: options.Fmt = Format.text,
) -> None:
    """Rehearse an action on its target's twin (docs/sandbox.md); prints the rehearsal and its evidence."""
    chosen = options.client(gateway=gateway, policy=policy, token=token, agent=agent, db=db, key_dir=key_dir)
    try:
        with client_for(chosen, timeout=600.0) as client:
            body = client.rehearse(action_id)
            if wait > 0 and not settled(body):
                body = client.wait(str(body["id"]), wait)
    except InterlockError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from exc
    if format is Format.json:
        sys.stdout.write(json.dumps(body) + "\n")
    else:
        _print(body)
    code = EXIT.get(str(body.get("state")), 1)
    evidence = body.get("evidence") or {}
    if code == 0 and evidence.get("status") != "succeeded":
        code = 1  # it ran, but its evidence cannot promote (e.g. the twin's plan was another plan)
    raise typer.Exit(code)
