"""Humans' endpoints: list, show, approve and deny approval requests."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import Field

from interlock.gate.requests import RequestState, RequestStatus, api_json
from interlock.model import Strict
from interlock.server.deps import Human, ServerDep
from interlock.server.errors import call_gate
from interlock.server.responses import JSON
from interlock.server.state import Server

router = APIRouter(tags=["humans"])


class ApproveRequest(Strict):
    #: Kept with the vote and in the `approval.approved` audit entry (docs/approvals.md).
    comment: str = Field(default="", max_length=2000)


class DenyRequest(Strict):
    reason: str = Field(min_length=1, max_length=2000)


@router.get("/v1/approvals")
async def list_approvals(
    who: Human, server: ServerDep,
    state: str = Query("pending", pattern="^(pending|approved|denied|expired|invalidated|consumed|all)$"),
) -> Response:
    requests = await call_gate(server.gate.list_requests, None if state == "all" else RequestState(state))
    statuses = [await call_gate(server.gate.status, r.id) for r in requests[:500]]
    return JSON({"approvals": [api_json(s) for s in statuses]})


@router.get("/v1/approvals/{request_id}")
async def show_approval(request_id: str, who: Human, server: ServerDep) -> Response:
    return JSON(api_json(await call_gate(server.gate.status, request_id)))


@router.post("/v1/approvals/{request_id}/approve")
async def approve(request_id: str, who: Human, server: ServerDep, body: ApproveRequest | None = None) -> Response:
    status = await call_gate(server.gate.approve, request_id, who, body.comment if body else "")
    _voted(server, status)
    return JSON(api_json(status))


@router.post("/v1/approvals/{request_id}/deny")
async def deny(request_id: str, body: DenyRequest, who: Human, server: ServerDep) -> Response:
    status = await call_gate(server.gate.deny, request_id, who, body.reason)
    _voted(server, status)
    return JSON(api_json(status))


def _voted(server: Server, status: RequestStatus) -> None:
    """Wake this process's long polls, and its rollout runner when the request is a rollout's approval
    (the rollout starts, or ends, on its request's outcome)."""
    server.changed.set()
    if status.request.rollout_id is not None:
        server.rollouts_changed.set()
