"""What every front door does with a proposal after `Gateway.propose`: one definition each.

- the states (`TERMINAL_STATES`, `MAY_RUN`, `RAN`) and `settled(proposal)`: waiting longer changes nothing;
- one wait loop, `wait` and `wait_async`: a step (a long poll, or one advance of an in-process
  gateway) repeated until the proposal is settled or the deadline passed;
- `explain(proposal)`: why it did not run (or that it did), in words a person and a model can act on;
- `ERROR_STATUS` / `status_of(code)`: the one error-code → HTTP status table (the server answers with
  it, the SDK's in-process client reports the same status, the human commands exit by it:
  `exit_code_of(status)`).

A proposal here is the API's JSON (`Proposal.to_json()`): the HTTP API, the SDK, hooks, `exec` and
the MCP proxy all hold that shape. Standard library only, and no `typing`/`dataclasses` at import:
the lean hook (`interlock-hook`) imports this module on every tool call.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from typing import Any

    Body = Mapping[str, Any]

#: States after which waiting longer changes nothing.
TERMINAL_STATES = frozenset({"denied", "sandbox_required", "approved", "allowed", "succeeded", "failed",
                             "rejected", "expired", "invalidated", "cancelled", "superseded",
                             "outcome_unknown"})
#: States in which the caller may run the action itself now (advisory mode).
MAY_RUN = frozenset({"allowed", "approved"})
#: States in which Interlock ran the action (brokered mode); `executing` with a result counts too.
RAN = frozenset({"succeeded", "failed", "cancelled"})
#: The server caps one long poll at this many seconds; `wait` loops polls of at most this long.
MAX_POLL_SECONDS = 300.0


def settled(body: Body) -> bool:
    """Waiting longer changes nothing: a terminal state, or a run whose result is in (its final audit
    entry may be missing if the log failed right after the run)."""
    state = body.get("state")
    return state in TERMINAL_STATES or (state == "executing" and bool(body.get("result")))


def may_run(body: Body) -> bool:
    """The caller may run the (advisory) action now: allowed alone, or approved."""
    return body.get("state") in MAY_RUN


def ran(body: Body) -> bool:
    """Interlock ran the (brokered) action; its `result` says how it went."""
    state = body.get("state")
    return state in RAN or (state == "executing" and bool(body.get("result")))


# --- waiting -------------------------------------------------------------------------------------


def wait(step: Callable[[float], Body], timeout: float, *, pause: float = 0.0,
         now: Callable[[], float] = time.monotonic, sleep: Callable[[float], object] = time.sleep) -> Body:
    """Call `step(seconds_left)` until its answer is settled or `timeout` seconds passed; the last answer.

    A long-polling step waits inside itself (`pause=0`); a step that only looks (an in-process
    gateway's advance) is repeated every `pause` seconds. The step always runs at least once.
    """
    deadline = now() + max(timeout, 0.0)
    while True:
        body = step(min(max(deadline - now(), 0.0), MAX_POLL_SECONDS))
        remaining = deadline - now()
        if settled(body) or remaining <= 0:
            return body
        if pause > 0:
            sleep(min(pause, remaining))


async def wait_async(step: Callable[[float], Awaitable[Body]], timeout: float, *, pause: float = 0.0,
                     now: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], Awaitable[object]] | None = None) -> Body:
    """`wait` for coroutines: the same stop rule; cancelling it stops the wait between steps.
    `sleep` defaults to `asyncio.sleep` (imported here: the lean hook never pays for asyncio)."""
    if sleep is None:
        import asyncio

        sleep = asyncio.sleep
    deadline = now() + max(timeout, 0.0)
    while True:
        body = await step(min(max(deadline - now(), 0.0), MAX_POLL_SECONDS))
        remaining = deadline - now()
        if settled(body) or remaining <= 0:
            return body
        if pause > 0:
            await sleep(min(pause, remaining))


# --- words ---------------------------------------------------------------------------------------


def listing(items: object) -> str:
    """A list of reasons (or one string) as one line."""
    return "; ".join(str(i) for i in items) if isinstance(items, list) else str(items or "")


def what(body: Body, name: str | None = None) -> str:
    """How the action is called in an explanation: the caller's name for it, else its summary."""
    return f"'{name or body.get('summary') or body.get('kind') or 'the action'}'"


def approval_needed(body: Body, name: str | None = None) -> str:
    """Who must approve, and how: for the moment a proposal starts waiting (and when it waited in vain)."""
    approval = body.get("approval") or {}
    request = approval.get("id", "?")
    needs = listing(approval.get("still_needs")) or f"needs {listing(approval.get('required')) or 'approval'}"
    who = ", ".join(approval.get("eligible") or []) or "an eligible human"
    return (f"{what(body, name)} needs approval: approval request {request} ({needs}; eligible: {who}); a human "
            f"approves with `interlock approvals approve {request}`")


def explain(body: Body, *, name: str | None = None, waited: float | None = None,
            again: str = "retry exactly the same call") -> str:
    """Why a settled proposal did or did not run, for the person or model that proposed it.

    `name` is what the caller called the action (an MCP tool's name; default: the summary),
    `waited` how long it waited for approval, `again` how to ask again in that caller's terms.
    Every answer names the action id, the state's reasons, rules and remedy where there are some,
    and for approvals the request id and the command that decides it.
    """
    state = str(body.get("state") or "unknown")
    thing = what(body, name)
    ref = f"action {body.get('id', '?')}"
    approval = body.get("approval") or {}
    request = approval.get("id", "?")
    reasons = listing(body.get("reasons"))
    evidence = body.get("evidence") if not body.get("rehearsal") else None
    # A promotion names the rehearsal it used (docs/sandbox.md).
    seen = f"; promoted with the evidence of rehearsal {evidence.get('id')}: {evidence.get('summary')}" \
        if isinstance(evidence, dict) else ""
    if state in MAY_RUN:
        return f"Interlock {state} {thing} ({ref}{seen})."
    if ran(body):
        return f"Interlock ran {thing} ({ref}{seen}): {state}."
    if state == "pending_approval":
        after = f"it was not approved within {waited:g}s and" if waited is not None else "it"
        return (f"Interlock: {approval_needed(body, name)} ({ref}{seen}); {after} is still waiting for approval, so "
                f"nothing ran. Once it is approved, {again}: the grant matches this exact action, and any change "
                "needs a new approval.")
    if state == "outcome_unknown":
        return (f"Interlock started {thing} ({ref}) but the replica running it stopped before its outcome was "
                "recorded: the outcome is unknown. It is never re-run automatically; a human checks the target "
                "and decides (docs/deploy.md, 'Several replicas'). Do not retry it blindly.")
    if state == "rejected":
        return (f"Interlock: a human denied approval request {request} for {thing} ({ref}): "
                f"{approval.get('reason') or reasons or 'no reason given'}. Nothing ran; do not retry it.")
    if state in ("expired", "invalidated"):
        why = approval.get("reason") or reasons
        return (f"Interlock: approval request {request} for {thing} ({ref}) is {state}"
                f"{f' ({why})' if why else ''}; nothing ran. {again[:1].upper()}{again[1:]} to open a new request.")
    if state == "denied":
        text = f"Interlock denied {thing} ({ref}): {reasons or 'no rule allows it (default deny)'}"
    elif state == "sandbox_required":
        text = f"Interlock requires a sandbox run first for {thing} ({ref}): {reasons or 'the policy wants one'}"
    else:
        text = f"Interlock did not run {thing} ({ref}, state {state}): {reasons or 'no reason given'}"
    if body.get("rules"):
        text += f" [rules: {', '.join(str(r) for r in body['rules'])}]"
    if approval.get("message"):
        text += f". {approval['message']}"
    if remedy := listing(body.get("remedy")):
        text += f". What to do: {remedy}"
    return text + "."


# --- error codes -----------------------------------------------------------------------------------


#: The HTTP status of each error code the API answers with. Codes not here: `token_*` are 401, and the
#: caller's default otherwise (a gateway or rollout error 422: the request, as sent, cannot be done; a gate
#: or rollout command error 409: the request's or rollout's state forbids it, e.g. `already_voted`, `not_paused`).
#: A code has one status wherever it is raised (the server, the SDK's in-process client, the guards'
#: freezes and thaws, the human commands' exit codes); tests/test_answers.py checks every raise site.
ERROR_STATUS = {
    "malformed_json": 400,
    "unauthenticated": 401,
    "human_token": 403, "agent_token": 403, "not_eligible": 403, "unknown_agent": 403, "csrf": 403,
    "policy_denied": 403, "rehearsal_failed": 403, "rehearsal_refused": 403,
    "unknown_action": 404, "unknown_request": 404, "no_such_entry": 404, "unknown_freeze": 404,
    "unknown_command": 404, "unknown_rollout": 404, "not_found": 404,
    "request_timeout": 408,
    "overlapping_freeze": 409, "already_thawed": 409,
    "body_too_large": 413, "payload_too_large": 413,
    "unsupported_media_type": 415,
    "invalid_field": 422, "unknown_field": 422, "invalid_payload": 422, "not_advisory": 422, "not_allowed": 422,
    "reason_required": 422, "reason_too_long": 422, "unknown_environment": 422, "unknown_target": 422,
    "target_environment": 422,
    "unavailable": 503, "store_unavailable": 503,
}


def status_of(code: str, default: int = 422) -> int:
    """The HTTP status for an error code (see `ERROR_STATUS`)."""
    if code.startswith("token_"):
        return 401
    return ERROR_STATUS.get(code, default)


def exit_code_of(status: int) -> int:
    """A command's exit code for an error answer's HTTP status: 1 when the request was refused (4xx:
    as sent it cannot be done, and the refusal is audited), 2 when no answer could be had (5xx)."""
    return 1 if status < 500 else 2
