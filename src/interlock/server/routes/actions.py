"""Agents' endpoints: propose an action, read it, wait for it, report its outcome (advisory mode)."""

from __future__ import annotations

import json
from typing import Any

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import Field, TypeAdapter, ValidationError
from starlette.types import Receive, Scope, Send

from interlock import answers
from interlock.gateway import GatewayError, GatewayUnavailable, Mode, Proposal
from interlock.identity import Principal
from interlock.model import Action, Kind, Name, Payload, Rationale, Strict
from interlock.server.deps import Agent, AnyPrincipal, ServerDep, get_server, require_agent
from interlock.server.errors import (
    UNREADABLE_BODY,
    ApiError,
    call_gateway,
    error_body,
    gateway_error,
    refusal,
    validation_problem,
)
from interlock.server.responses import JSON
from interlock.server.state import Server
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
    # The Action's own field types: whatever the Action would refuse is refused here, with a 422.
    kind: Kind
    environment: Name
    target: Name | None = None
    payload: Payload
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
    # Served by `propose_plain` (the hot path, mounted by create_app as a PlainRoute): this declaration is
    # what /openapi.json describes, and answers the same should a request ever reach it.
    return await decided(get_server(request), require_agent(request.state.principal), body)


#: The FastAPI route `propose_plain` serves (server.middleware.PlainRoute).
PROPOSE = next(r for r in router.routes
               if isinstance(r, APIRoute) and r.path == "/v1/actions" and "POST" in (r.methods or ()))


async def decided(server: Server, who: Principal, body: ActionRequest) -> Response:
    """The proposal's answer: decided on the event loop, its durable audit entry awaited there, and only a
    gate or an execution after it on a worker thread (`Gateway.propose_async`: the thread hop and its GIL
    hand-offs were the largest cost left on the hot path, docs/benchmarks.md); a store or audit failure
    answers deny with 503 (fail closed: nothing ran)."""
    action = Action(kind=body.kind, environment=body.environment, target=body.target, payload=body.payload,
                    rationale=body.rationale)
    try:
        proposal = await server.gateway.propose_async(who.name, action, mode=body.mode,
                                                      offload=anyio.to_thread.run_sync)
    except GatewayError as exc:
        raise gateway_error(exc) from exc
    except (GatewayUnavailable, StoreError) as exc:
        server.count_decision("deny", body.kind.value)
        return JSON({"decision": "deny", "state": "denied",
                     "reasons": [f"{exc} (fail closed: nothing ran)"]}, status_code=503)
    server.count_decision(proposal.decision.value.value, body.kind.value)
    return JSON(proposal.to_json())


#: FastAPI validates a body parameter with its type adapter, `from_attributes=True`; so does the plain route.
_BODY: TypeAdapter[ActionRequest] = TypeAdapter(ActionRequest)


class UnreadableBody(Exception):
    """json.loads failed other than with a JSONDecodeError (FastAPI raises its 400; errors.http_error words it)."""


def parsed_body(raw: bytes) -> tuple[ActionRequest | None, list[dict[str, Any]]]:
    """What FastAPI makes of a JSON body for an `ActionRequest` parameter, without FastAPI: the model, or
    the errors FastAPI would raise (`loc` under "body"), so `errors.validation_problem` words them alike."""
    if not raw:
        return None, [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, [{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {},
                       "ctx": {"error": exc.msg}}]
    except Exception as exc:
        raise UnreadableBody(str(exc)) from exc
    try:
        return _BODY.validate_python(value, from_attributes=True), []
    except ValidationError as exc:
        return None, [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]


async def propose_plain(scope: Scope, receive: Receive, send: Send) -> None:
    """`POST /v1/actions` as a plain ASGI handler: the hot path without FastAPI's routing, dependency and
    validation layers (docs/design-deviations.md). Same validation, errors (byte for byte), audit entries
    and answers as `propose` above; BodyLimit has already authenticated the token and bounded the body."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    server: Server = scope["app"].state.server
    who: Principal = scope["state"]["principal"]
    try:
        body, errors = parsed_body(b"".join(chunks))
        if body is None:
            status, code, message_text, where = validation_problem(errors)
            await server.audit_rejection(scope["method"], scope["path"], status, code, who)
            response: Response = JSON(error_body(code, message_text, where), status_code=status)
        else:
            response = await decided(server, require_agent(who), body)
    except UnreadableBody:
        response = await refusal(server, scope["method"], scope["path"],
                                 ApiError(400, "malformed_json", UNREADABLE_BODY), who)
    except ApiError as exc:
        response = await refusal(server, scope["method"], scope["path"], exc, who)
    await response(scope, receive, send)


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
    server.count_decision(proposal.decision.value.value, proposal.action.kind.value)
    return JSON(proposal.to_json())


@router.post("/v1/actions/{action_id}/outcome")
async def outcome(action_id: str, body: OutcomeRequest, who: Agent, server: ServerDep) -> Response:
    proposal = await call_gateway(server.gateway.report, action_id, who.name, body.model_dump())
    return JSON(proposal.to_json())
