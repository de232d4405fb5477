"""Operations: liveness, readiness, Prometheus metrics (no token: probes and scrapers have none)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from interlock.server.deps import ServerDep
from interlock.server.responses import JSON

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> Response:
    return JSON({"status": "ok"})


@router.get("/readyz")
async def readyz(server: ServerDep) -> Response:
    ok, why = await anyio.to_thread.run_sync(server.ready)
    return JSON({"status": "ready" if ok else "not ready", "detail": why,
                 "missing_secrets": [{"where": m.where, "ref": m.ref, "why": m.why} for m in server.missing_secrets],
                 "policy_version": server.policy.version}, status_code=200 if ok else 503)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(server: ServerDep) -> Response:
    return PlainTextResponse(generate_latest(server.registry).decode(), media_type=CONTENT_TYPE_LATEST)
