"""Background work of one server process, started and stopped by the app's `lifespan`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import anyio
from fastapi import FastAPI

from interlock.server.logs import log_event
from interlock.server.state import Server

EXPIRY_SWEEP_SECONDS = 5.0


async def expire_requests(server: Server, every: float = EXPIRY_SWEEP_SECONDS) -> None:
    """Close requests nobody decided in time (denied: fail closed), audited, even if nobody looks."""
    while True:
        await asyncio.sleep(every)
        try:
            if await anyio.to_thread.run_sync(server.gate.expire_due):
                server.changed.set()
        except Exception as exc:
            log_event("expiry_sweep_failed", error=type(exc).__name__)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs the background jobs while the app serves; closes the store when it stops."""
    server: Server = app.state.server
    jobs = [asyncio.create_task(expire_requests(server))]
    try:
        yield
    finally:
        for job in jobs:
            job.cancel()
        for job in jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await job
        server.close()
