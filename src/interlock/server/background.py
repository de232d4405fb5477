"""Background work of one server process, started and stopped by the app's `lifespan`.

Several replicas (or `serve --workers N`) share one store, and each background job must run in exactly
one of them (DESIGN.md §9): the expiry sweep, checkpoint signing and the recovery sweep each run under
a lease (`interlock.store.lease`); when the holder dies another process takes the job over within the
lease time. Each process also holds a heartbeat lease of its own (`interlock.recovery`), named in the
`execution.started` entries it writes, so the recovery sweep can tell its runs were orphaned.

Webhook deliveries are staged in the store's outbox with their cause, by whichever replica it happens
on; the holder of the `webhook-delivery` lease sends and retries them (interlock.gate.webhook), so a
delivery outlives the replica that staged it (at least once, same delivery id: docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import FastAPI

from interlock.recovery import Heartbeat, Sweeper, replica_job
from interlock.rollout.runner import Runner
from interlock.server.logs import log_event
from interlock.server.state import Server
from interlock.store.events import Channel, subscriber
from interlock.store.lease import DEFAULT_TTL_SECONDS, run_leased_async

#: Lease time of every background job and of a replica's heartbeat: a dead holder's job moves (and its
#: orphaned executions are found) within about this long.
ENV_LEASE_SECONDS = "INTERLOCK_LEASE_SECONDS"
#: How often the expiry and recovery sweeps run.
ENV_SWEEP_SECONDS = "INTERLOCK_SWEEP_SECONDS"
#: How often the rollout runner looks for work when no event wakes it.
ENV_ROLLOUT_POLL_SECONDS = "INTERLOCK_ROLLOUT_POLL_SECONDS"
#: How often a checkpoint is signed when the log grew.
ENV_CHECKPOINT_SECONDS = "INTERLOCK_CHECKPOINT_SECONDS"

EXPIRY_SWEEP_SECONDS = 5.0
CHECKPOINT_SECONDS = 60.0
#: How often the rollout runner looks for work when nothing wakes it: timed pauses and analysis intervals
#: come due at this pace. A start, command or vote on any replica wakes the lease holder at once (store
#: events on `rollouts` and `approvals`: LISTEN/NOTIFY on PostgreSQL, the sidecar file on SQLite).
ROLLOUT_ROUND_SECONDS = 1.0
#: How long a stopping server waits for the rollout runner's round to end before it leaves the store open.
RUNNER_STOP_SECONDS = 30.0
#: The channels that wake the rollout runner: rollouts started or commanded, approval votes.
ROLLOUT_WAKE = (Channel.rollouts, Channel.approvals)

#: The lease job names (rows of `leases`; `SELECT * FROM leases` shows who runs what).
EXPIRY_JOB = "expiry-sweep"
CHECKPOINT_JOB = "audit-checkpoint"
RECOVERY_JOB = "recovery-sweep"


@dataclass(frozen=True)
class Timing:
    lease: float = DEFAULT_TTL_SECONDS
    sweep: float = EXPIRY_SWEEP_SECONDS
    checkpoint: float = CHECKPOINT_SECONDS
    rollouts: float = ROLLOUT_ROUND_SECONDS

    @staticmethod
    def from_env() -> Timing:
        def seconds(name: str, default: float) -> float:
            text = os.environ.get(name)
            if not text:
                return default
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{name}={text!r} is not a number of seconds") from None
            if value <= 0:
                raise ValueError(f"{name}={text!r} must be above 0 seconds")
            return value

        return Timing(lease=seconds(ENV_LEASE_SECONDS, DEFAULT_TTL_SECONDS),
                      sweep=seconds(ENV_SWEEP_SECONDS, EXPIRY_SWEEP_SECONDS),
                      checkpoint=seconds(ENV_CHECKPOINT_SECONDS, CHECKPOINT_SECONDS),
                      rollouts=seconds(ENV_ROLLOUT_POLL_SECONDS, ROLLOUT_ROUND_SECONDS))


def _logged(job: str, step: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        try:
            return step()
        except Exception as exc:
            log_event("background_job_failed", job=job, error=type(exc).__name__)
            raise
    return run


def expire_requests(server: Server) -> None:
    """Close requests nobody decided in time (denied: fail closed), audited, even if nobody looks."""
    if server.gate.expire_due():
        server.changed.set()


class CheckpointSigner:
    """Signs a checkpoint when the log grew and `every` seconds passed since this process last signed
    (a new holder signs at once: at most one extra checkpoint per takeover)."""

    def __init__(self, server: Server, every: float) -> None:
        self.server, self.every = server, every
        self.last: float | None = None

    def __call__(self) -> None:
        audit = self.server.audit
        if not audit.signs or (self.last is not None and time.monotonic() - self.last < self.every):
            return
        if audit.checkpoint_behind():
            audit.checkpoint()
            self.last = time.monotonic()


async def heartbeat(beat: Heartbeat, every: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await anyio.to_thread.run_sync(beat.beat)
        except Exception as exc:
            log_event("heartbeat_failed", job=beat.job, error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def run_rollouts(server: Server, stopping: threading.Event, every: float = ROLLOUT_ROUND_SECONDS,
                       lease: float = DEFAULT_TTL_SECONDS, *, stop: asyncio.Event | None = None) -> None:
    """The rollout runner (docs/rollouts.md, interlock.rollout.runner): exactly one replica holds the
    lease and moves every rollout that has work; the others wait to take over.

    Between rounds the holder waits for the first of: a start or command in this process
    (`server.rollouts_changed`), a change on a `ROLLOUT_WAKE` channel made by any replica, or `every`
    seconds (timed pauses, analysis intervals, a lost notification). The others only poll: every event
    would otherwise cost each of them a lease attempt, and the holder's own writes publish too.

    It ends once `stopping` is set (and `stop`, its loop-side twin, wakes it): a round in progress sees
    `stopping` between its units of work. It is never cancelled to stop it: a cancelled task stops
    waiting for its round's worker thread, which goes on using the store the lifespan then closes (a
    segfault in sqlite3, seen in tests/test_server_api.py's in-process apps)."""
    # INTERLOCK_LEASE_SECONDS, as every background job's; at least three polls, so an idle holder renews
    # it in time (it renews once half of it is gone: interlock.rollout.runner).
    runner = Runner(server.rollouts, ttl=max(lease, 3 * every))
    events = subscriber(server.store)

    def one_round() -> dict[str, int]:
        seen = {str(c): events.generation(c) for c in ROLLOUT_WAKE}  # before: a change during it wakes us
        runner.round(stopping)
        return seen

    try:
        while not stopping.is_set():
            server.rollouts_changed.clear()
            seen: dict[str, int] | None = None
            try:
                seen = await anyio.to_thread.run_sync(one_round)
            except Exception as exc:
                log_event("rollout_runner_failed", error=type(exc).__name__, detail=str(exc)[:300])
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(server.rollouts_changed.wait())]
            if stop is not None:
                waits.append(asyncio.ensure_future(stop.wait()))
            if seen is not None and runner.lease.held:
                waits.append(asyncio.ensure_future(events.wait_any_async(seen, every)))
            try:
                await asyncio.wait(waits, timeout=every, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
    finally:
        with contextlib.suppress(Exception):
            await anyio.to_thread.run_sync(runner.release)  # a store call: off the event loop


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs the background jobs while the app serves; closes the store when it stops."""
    server: Server = app.state.server
    timing = Timing.from_env()
    store = server.store
    beat = Heartbeat(store, replica_job(), ttl=timing.lease)
    await anyio.to_thread.run_sync(beat.beat)
    server.gateway.replica = beat.job
    server.audit.auto_checkpoint = False  # signed by the one holder of CHECKPOINT_JOB
    sweeper = Sweeper(store, server.audit)
    server.sweeper = sweeper
    stop = asyncio.Event()
    stopping = threading.Event()  # the rollout runner's: checked between its units of work

    def leased(job: str, step: Callable[[], object], every: float) -> asyncio.Task[None]:
        run = _logged(job, step)
        return asyncio.create_task(run_leased_async(
            store, job, lambda: anyio.to_thread.run_sync(run), every=every, stop=stop, ttl=timing.lease))

    # A round at least every third of the lease time, so the holder renews it well before it expires.
    renew = timing.lease / 3
    jobs = [asyncio.create_task(heartbeat(beat, renew, stop)),
            leased(EXPIRY_JOB, lambda: expire_requests(server), min(timing.sweep, renew)),
            leased(CHECKPOINT_JOB, CheckpointSigner(server, timing.checkpoint), min(timing.checkpoint, renew)),
            leased(RECOVERY_JOB, sweeper.sweep, min(timing.sweep, renew))]
    runner = asyncio.create_task(run_rollouts(server, stopping, timing.rollouts, timing.lease, stop=stop))
    notifier = server.gate.notifier
    if notifier is not None:  # at once, not at its first delivery: it may have to take over another's
        notifier.start(ttl=timing.lease)
    try:
        yield
    finally:
        stopping.set()
        stop.set()
        # The runner ends its round and returns (run_rollouts: never cancelled, its worker thread would go on
        # using the store closed below). A round in the middle of a long action (a terraform apply) may
        # outlast the wait: then the store is left open for the process's exit to end, and the action,
        # started without an outcome, becomes outcome_unknown by the next recovery sweep, as if killed.
        done, _ = await asyncio.wait([runner], timeout=RUNNER_STOP_SECONDS)
        for job in jobs:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(job, timeout=10)
        with contextlib.suppress(Exception):
            await anyio.to_thread.run_sync(beat.stop)
        if done:
            server.close()
        else:
            log_event("rollout_runner_still_running", detail=f"still in a round after {RUNNER_STOP_SECONDS:g} s "
                      "of shutdown: the store is left to the process's exit")
