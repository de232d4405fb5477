"""Rollouts (`/v1/rollouts`, docs/rollouts.md): an agent starts one; humans approve it once, promote,
pause, resume and abort it. Agents may read their own rollouts; humans read all. The runner that moves
them is a leased background job (server/background.py)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Body
from fastapi.responses import Response
from pydantic import Field

from interlock.answers import status_of
from interlock.identity import Principal
from interlock.model import Strict
from interlock.rollout.model import RolloutError
from interlock.rollout.service import CommandError, Rollout
from interlock.server.deps import Agent, AnyPrincipal, Human, ServerDep
from interlock.server.errors import ApiError
from interlock.server.responses import JSON
from interlock.store import StoreError

router = APIRouter(tags=["rollouts"])


class Command(Strict):
    reason: str = Field(default="", max_length=2000, description="why (required to deny)")
    under_freeze: bool = Field(default=False, description="abort only: roll back past the freezes in force "
                               "(a human in the policy's guards.thaw_by; reason required)")


async def _call(fn: Any, *args: Any) -> Any:
    try:
        return await anyio.to_thread.run_sync(lambda: fn(*args))
    except RolloutError as exc:
        raise ApiError(status_of(exc.code, 422), exc.code, str(exc), exc.field) from exc
    except CommandError as exc:
        raise ApiError(status_of(exc.code, 409), exc.code, str(exc)) from exc
    except StoreError as exc:
        raise ApiError(503, "unavailable", f"the store is unavailable: {exc} (nothing changed)") from exc


def _visible(rollout: Rollout, who: Principal) -> Rollout:
    if who.kind == "agent" and rollout.agent != who.name:
        raise ApiError(404, "unknown_rollout", f"no rollout {rollout.id!r} for this agent")
    return rollout


@router.post("/v1/rollouts", status_code=201)
async def start_rollout(who: Agent, server: ServerDep, body: dict[str, Any] = Body(...)) -> Response:
    """Start a rollout: one action over a target group in waves, with its rollback and steps."""
    rollout = await _call(server.rollouts.submit, who.name, body)
    server.rollouts_changed.set()
    return JSON(rollout.to_json(), status_code=201)


@router.get("/v1/rollouts")
async def list_rollouts(who: AnyPrincipal, server: ServerDep, limit: int = 100) -> Response:
    found = await _call(server.rollouts.all, max(1, min(limit, 1000)))
    return JSON({"rollouts": [r.to_json() for r in found if who.kind == "human" or r.agent == who.name]})


@router.get("/v1/rollouts/{rollout_id}")
async def show_rollout(rollout_id: str, who: AnyPrincipal, server: ServerDep) -> Response:
    return JSON(_visible(await _call(server.rollouts.get, rollout_id), who).to_json())


def _abort(server: Any, body: Command | None) -> Any:
    under_freeze = body is not None and body.under_freeze
    return lambda rollout_id, who, reason: server.rollouts.abort(rollout_id, who, reason, under_freeze=under_freeze)


@router.post("/v1/rollouts/{rollout_id}/{command}")
async def command(rollout_id: str, command: str, who: Human, server: ServerDep,
                  body: Command | None = None) -> Response:
    """approve | deny | promote | pause | resume | abort (humans)."""
    reason = body.reason if body else ""
    if body is not None and body.under_freeze and command != "abort":
        raise ApiError(422, "invalid_field", "under_freeze goes with abort only: send it with `abort`, or leave it out",
                       "under_freeze")
    calls = {"approve": (server.rollouts.approve, reason), "deny": (server.rollouts.deny, reason),
             "promote": (server.rollouts.promote, None), "pause": (server.rollouts.pause, reason),
             "resume": (server.rollouts.resume, None), "abort": (_abort(server, body), reason)}
    if command not in calls:
        raise ApiError(404, "unknown_command", f"no rollout command {command!r}: one of {', '.join(calls)}")
    fn, extra = calls[command]
    args = (rollout_id, who) if extra is None else (rollout_id, who, extra)
    rollout = await _call(fn, *args)
    server.rollouts_changed.set()
    return JSON(rollout.to_json())
