"""Humans' guard endpoints: the kill switch (`/v1/freezes`) and the guards' state (`/v1/guards`).

Agent tokens are refused everywhere here (403): an agent can neither freeze, thaw nor look. Any human
may freeze; only members of the policy's `guards.thaw_by` groups may thaw (any human when none are
named). Every freeze, thaw and refused thaw is audited (docs/guards.md).
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import Field

from interlock.guard.freezes import FreezeError
from interlock.model import Strict
from interlock.server.deps import Human, ServerDep
from interlock.server.errors import ApiError
from interlock.server.responses import JSON
from interlock.store import StoreError

router = APIRouter(tags=["guards"])


class FreezeRequest(Strict):
    agent: str | None = Field(default=None, max_length=64, description="only this agent (else every agent)")
    environment: str | None = Field(default=None, max_length=64, description="only this environment")
    target: str | None = Field(default=None, max_length=64, description="only this target")
    reason: str = Field(default="", max_length=500, description="why; shown in every denial it causes")


async def _guard_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
    except FreezeError as exc:
        raise ApiError(exc.status, exc.code, str(exc), exc.field) from exc
    except StoreError as exc:
        raise ApiError(503, "unavailable", f"the store is unavailable: {exc} (nothing changed)") from exc


@router.post("/v1/freezes", status_code=201)
async def create_freeze(body: FreezeRequest, who: Human, server: ServerDep) -> Response:
    """Freeze (kill switch): proposals in scope are denied, their approvals suspended, running ones cancelled."""
    found = await _guard_call(server.runtime.guard.freeze, agent=body.agent, environment=body.environment,
                              target=body.target, reason=body.reason, by=who.name)
    return JSON(found.to_json(), status_code=201)


@router.get("/v1/freezes")
async def list_freezes(who: Human, server: ServerDep, all: bool = False) -> Response:
    """The freezes in force, as the gateway honours them (the log's, not just the table's rows);
    `all=true` adds the thawed ones."""

    def load() -> list[dict[str, Any]]:
        return [f.to_json() for f in server.runtime.guard.listing(include_thawed=all)]

    return JSON({"freezes": await _guard_call(load)})


@router.delete("/v1/freezes/{freeze_id}")
async def thaw_freeze(freeze_id: str, who: Human, server: ServerDep) -> Response:
    human = server.policy.doc.humans.get(who.name)
    found = await _guard_call(server.runtime.guard.thaw, freeze_id, by=who.name,
                              groups=human.groups if human else ())
    return JSON(found.to_json())


@router.get("/v1/guards")
async def guards_status(who: Human, server: ServerDep) -> Response:
    """Active freezes, change-freeze windows (in force or not), open breakers, detectors."""
    return JSON(await _guard_call(server.runtime.guard.status))
