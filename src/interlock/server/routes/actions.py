"""Agents' endpoints: propose an action, read it, wait for it, report its outcome (advisory mode)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import Field

from interlock import answers
from interlock.gateway import GatewayError, GatewayUnavailable, Mode, Proposal
from interlock.model import Action, Kind, Rationale, Strict
from interlock.server.deps import Agent, AnyPrincipal, ServerDep, bearer, get_server, identify, require_agent
from interlock.server.errors import call_gateway, gateway_error
from interlock.server.responses import JSON
from interlock.store import StoreError
from interlock.store.events import Channel, subscriber

MAX_WAIT_SECONDS = answers.MAX_POLL_SECONDS
#: A long poll is woken by the store's events (any replica's votes, expiries, freezes, outcomes); it
#: re-reads the action at least this often anyway, should an announcement itself have failed.
FALLBACK_SECONDS = 5.0
#: What can move a waiting action: its request (votes, expiry), a freeze or thaw, its execution's end.
WAKE_CHANNELS = (Channel.approvals, Channel.freezes, Channel.actions)

router = APIRouter(tags=["agents"])


class ActionRequest(Strict):
    kind: Kind
    environment: str
    target: str | None = None
    payload: dict[str, Any]
    rationale: Rationale | None = None
    mode: Mode = Mode.brokered


class OutcomeRequest(Strict):
    status: str = Field(pattern="^(succeeded|failed|error|timeout)$")
    exit_code: int | None = None
    duration_ms: float | None = None
    output_excerpt: str = Field(default="", max_length=4096)


@router.post("/v1/actions")
async def propose(body: ActionRequest, request: Request) -> Response:
    """Propose an action (agent token). The decision, and the result when Interlock ran it."""
    # The hot path: no dependencies, and one worker-thread hop for the token check and the proposal.
    server = get_server(request)
    secret = bearer(request)
    action = Action(kind=body.kind, environment=body.environment, target=body.target, payload=body.payload,
                    rationale=body.rationale)

    def decide_and_run() -> Proposal:
        who = require_agent(identify(request, secret))
        return server.gateway.propose(who.name, action, mode=body.mode)

    try:
        proposal = await anyio.to_thread.run_sync(decide_and_run)
    except GatewayError as exc:
        raise gateway_error(exc) from exc
    except (GatewayUnavailable, StoreError) as exc:
        server.decisions.labels("deny", body.kind.value).inc()
        return JSON({"decision": "deny", "state": "denied",
                     "reasons": [f"{exc} (fail closed: nothing ran)"]}, status_code=503)
    server.decisions.labels(proposal.decision.value.value, body.kind.value).inc()
    return JSON(proposal.to_json())


@router.get("/v1/actions/{action_id}")
async def get_action(action_id: str, who: AnyPrincipal, server: ServerDep) -> Response:
    proposal = await call_gateway(server.gateway.status, action_id, agent=who.name if who.kind == "agent" else None)
    return JSON(proposal.to_json())


@router.post("/v1/actions/{action_id}/wait")
async def wait(action_id: str, who: Agent, server: ServerDep,
               timeout: float = Query(30.0, ge=0, le=MAX_WAIT_SECONDS)) -> Response:
    """Long poll: returns when the action is decided, executed, denied or expired, or at `timeout`."""

    events = subscriber(server.store)
    seen: dict[str, int] = {}

    async def step(_: float) -> dict[str, Any]:
        # The generations are taken before the read: a change after it wakes the next wait.
        seen.update(await anyio.to_thread.run_sync(lambda: {c: events.generation(c) for c in WAKE_CHANNELS}))
        proposal: Proposal = await call_gateway(server.gateway.advance, action_id, who.name)
        return proposal.to_json()

    async def until_changed(seconds: float) -> None:
        await events.wait_any_async(seen, min(seconds, FALLBACK_SECONDS))

    body = await answers.wait_async(step, timeout, pause=FALLBACK_SECONDS, sleep=until_changed)
    return JSON(body)


@router.post("/v1/actions/{action_id}/rehearse")
async def rehearse(action_id: str, who: Agent, server: ServerDep) -> Response:
    """Rehearse the agent's own action on its target's twin (docs/sandbox.md): Interlock runs the same
    kind and payload there, brokered, decided by the policy of the twin's environment. The answer is
    the rehearsal (an action of its own, with `rehearsal.of` and, once it ran, its `evidence`)."""
    proposal = await call_gateway(server.gateway.rehearse, action_id, who.name)
    server.decisions.labels(proposal.decision.value.value, proposal.action.kind.value).inc()
    return JSON(proposal.to_json())


@router.post("/v1/actions/{action_id}/outcome")
async def outcome(action_id: str, body: OutcomeRequest, who: Agent, server: ServerDep) -> Response:
    proposal = await call_gateway(server.gateway.report, action_id, who.name, body.model_dump())
    return JSON(proposal.to_json())
