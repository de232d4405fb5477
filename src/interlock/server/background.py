"""Background work of one server process, started and stopped by the app's `lifespan`."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

import anyio
from fastapi import FastAPI

from interlock.server.logs import log_event
from interlock.server.state import Server
from interlock.store.lease import Lease

EXPIRY_SWEEP_SECONDS = 5.0
#: How often the rollout runner looks for work when nothing wakes it (a start or command wakes it at once).
ROLLOUT_ROUND_SECONDS = 1.0
#: The runner's lease: renewed between units of work, so a long action never lets another replica in
#: while this one still runs (a holder that dies is replaced within this time).
ROLLOUT_LEASE_SECONDS = 30.0


async def expire_requests(server: Server, every: float = EXPIRY_SWEEP_SECONDS) -> None:
    """Close requests nobody decided in time (denied: fail closed), audited, even if nobody looks."""
    while True:
        await asyncio.sleep(every)
        try:
            if await anyio.to_thread.run_sync(server.gate.expire_due):
                server.changed.set()
        except Exception as exc:
            log_event("expiry_sweep_failed", error=type(exc).__name__)


async def run_rollouts(server: Server, stopping: threading.Event, every: float = ROLLOUT_ROUND_SECONDS) -> None:
    """The rollout runner (docs/rollouts.md): exactly one replica holds the lease and moves every rollout
    that has work; the others wait to take over. Between units of work it renews the lease and checks
    that the server is not stopping, so a shutdown never starts another target's step."""
    lease = Lease(server.store, "rollout-runner", ttl=ROLLOUT_LEASE_SECONDS)

    def keep_going() -> bool:
        if stopping.is_set():
            return False
        left = (lease.expires_at - lease.clock()).total_seconds() if lease.expires_at else 0.0
        return left > ROLLOUT_LEASE_SECONDS / 2 or lease.acquire()

    def one_round() -> None:
        if lease.acquire():
            server.rollouts.run_due(keep_going)

    try:
        while True:
            server.rollouts_changed.clear()
            try:
                await anyio.to_thread.run_sync(one_round)
            except Exception as exc:
                log_event("rollout_runner_failed", error=type(exc).__name__, detail=str(exc)[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.rollouts_changed.wait(), every)
    finally:
        with contextlib.suppress(Exception):
            lease.release()


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs the background jobs while the app serves; closes the store when it stops."""
    server: Server = app.state.server
    stopping = threading.Event()
    jobs = [asyncio.create_task(expire_requests(server)), asyncio.create_task(run_rollouts(server, stopping))]
    try:
        yield
    finally:
        stopping.set()
        for job in jobs:
            job.cancel()
        for job in jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await job
        server.close()
