"""Agents' endpoints: propose an action, read it, wait for it, report its outcome (advisory mode)."""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import Field, TypeAdapter, ValidationError

from interlock import answers
from interlock.gateway import GatewayError, GatewayUnavailable, Mode, Proposal
from interlock.identity import Principal
from interlock.model import Action, Kind, Name, Payload, Rationale, Strict
from interlock.server.deps import Agent, AnyPrincipal, ServerDep, get_server, require_agent
from interlock.server.errors import (
    call_gateway,
    gateway_error,
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
    # Served by `server.hot.HotRoute` (the hot path, ahead of FastAPI: app.InterlockApp): this declaration is
    # what /openapi.json describes, and answers the same should a request ever reach it.
    return await decided(get_server(request), require_agent(request.state.principal), body)


#: The FastAPI route `server.hot.HotRoute` serves.
PROPOSE = next(r for r in router.routes
               if isinstance(r, APIRoute) and r.path == "/v1/actions" and "POST" in (r.methods or ()))


async def decided(server: Server, who: Principal, body: ActionRequest) -> Response:
    """The FastAPI route's answer: `answered`'s status and bytes."""
    status, content = await answered(server, who, _action(body), body.mode)
    return Response(content, status_code=status, media_type=JSON.media_type)


def _action(body: ActionRequest) -> Action:
    return Action(kind=body.kind, environment=body.environment, target=body.target, payload=body.payload,
                  rationale=body.rationale)


async def answered(server: Server, who: Principal, action: Action, mode: Mode) -> tuple[int, bytes]:
    """The proposal's answer (status, JSON bytes): decided on the event loop, its durable audit entry awaited
    there, and only a gate or an execution after it on a worker thread (`Gateway.propose_async`: the thread
    hop and its GIL hand-offs were the largest cost left on the hot path, docs/benchmarks.md); a store or
    audit failure answers deny with 503 (fail closed: nothing ran)."""
    try:
        proposal = await server.gateway.propose_async(who.name, action, mode=mode, offload=anyio.to_thread.run_sync)
    except GatewayError as exc:
        raise gateway_error(exc) from exc
    except (GatewayUnavailable, StoreError) as exc:
        server.count_decision("deny", action.kind)
        return 503, orjson.dumps({"decision": "deny", "state": "denied",
                                  "reasons": [f"{exc} (fail closed: nothing ran)"]})
    server.count_decision(proposal.decision.value, action.kind)  # StrEnums: their label is their value
    return 200, orjson.dumps(proposal.to_json())  # what JSON renders


#: FastAPI validates a body parameter with its type adapter, `from_attributes=True`; so does the plain route.
_BODY: TypeAdapter[ActionRequest] = TypeAdapter(ActionRequest)
_ACTION: TypeAdapter[Action] = TypeAdapter(Action)
#: A mode as JSON spells it (what pydantic accepts for `Mode` from a JSON string: its exact value).
_MODES = {mode.value: mode for mode in Mode}


_MISSING = object()
_LONG_NUMBER = re.compile(rb"\d{19}")


class UnreadableBody(Exception):
    """json.loads failed other than with a JSONDecodeError (FastAPI raises its 400; errors.http_error words it)."""


def parsed_body(raw: bytes) -> tuple[tuple[Action, Mode] | None, list[dict[str, Any]]]:
    """What FastAPI makes of a JSON body for an `ActionRequest` parameter, without FastAPI: the action and
    its mode, or the errors FastAPI would raise (`loc` under "body"), so `errors.validation_problem` words
    them alike."""
    if not raw:
        return None, [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
    # orjson (~5x faster) reads a subset of what json.loads reads (RFC 8259 only: no NaN or Infinity, no
    # lone surrogate, no BOM) into the same values, but for one case: an integer beyond 64 bits becomes a
    # float. A body with 19 digits in a row (any integer past 64 bits has them) and whatever orjson refuses
    # are read by json.loads, which gives FastAPI's value or FastAPI's error.
    value = _MISSING
    if _LONG_NUMBER.search(raw) is None:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = _MISSING
    try:
        if value is _MISSING:
            value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, [{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {},
                       "ctx": {"error": exc.msg}}]
    except Exception as exc:
        raise UnreadableBody(str(exc)) from exc
    if type(value) is dict:
        # The common body, validated straight into the Action (ActionRequest is the Action's fields with the
        # same types, and `mode`): one validation, not ActionRequest's and then the Action's. Anything either
        # refuses is validated again below as FastAPI does, for FastAPI's errors in FastAPI's order.
        fields = value.copy()
        spelled = fields.pop("mode", Mode.brokered.value)
        mode = _MODES.get(spelled) if type(spelled) is str else None  # else validated below, for its error
        if mode is not None:
            try:
                return (_ACTION.validate_python(fields), mode), []
            except ValidationError:
                pass
    try:
        body = _BODY.validate_python(value, from_attributes=True)
    except ValidationError as exc:
        return None, [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
    return (_action(body), body.mode), []


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
