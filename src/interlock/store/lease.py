"""One holder per background job (DESIGN.md §9): a lease row per job, taken by compare-and-set, renewed.

    lease = Lease(store, "expiry-sweep", ttl=15)   # holder id: host:pid:random
    if lease.acquire():                             # taken (free or expired), or renewed (already ours)
        ...                                         # one round of the job
    lease.release()                                 # another process may take it at once

    run_leased(store, "expiry-sweep", sweep, every=5, stop=stop_event)   # the usual loop, in a thread
    await run_leased_async(store, "expiry-sweep", sweep, every=5, stop=async_stop)

The `leases` row is taken with one conditional upsert: insert it, take it over when it has expired, or
renew it when we hold it. Exactly one of any number of threads, processes or replicas wins (SQLite: the
single write lock; PostgreSQL: the upsert's row lock). When a holder dies its lease simply expires and
the next `acquire` elsewhere takes it: takeover within `ttl` plus one round.

`fencing` grows by one at every change of holder. A job whose writes must not come from a holder that
lost its lease (a process paused past its expiry, then waking) passes `lease.fencing` along with them
and checks it with `Lease.current(store, job)` in the same transaction.

Times come from an injectable clock (`interlock.gate.clock`): tests move time, never sleep for a ttl.
Holders on several machines must have clocks that agree to well within a ttl (NTP does).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import secrets
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from interlock.gate.clock import Clock, parse_stamp, stamp, system_clock
from interlock.store.base import Store
from interlock.store.errors import StoreError

_log = logging.getLogger("interlock.lease")

DEFAULT_TTL_SECONDS = 15.0
_RELEASED = stamp(datetime(1970, 1, 1, tzinfo=UTC))

_TAKE = (
    "INSERT INTO leases(job, holder, fencing, acquired_at, expires_at) VALUES (?, ?, 1, ?, ?) "
    "ON CONFLICT (job) DO UPDATE SET "
    "fencing = CASE WHEN leases.holder = excluded.holder THEN leases.fencing ELSE leases.fencing + 1 END, "
    "acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at "
    "ELSE excluded.acquired_at END, "
    "holder = excluded.holder, expires_at = excluded.expires_at "
    "WHERE leases.holder = excluded.holder OR leases.expires_at <= ? "
    "RETURNING fencing"
)


def default_holder() -> str:
    """host:pid:random — unique per Lease, readable in `leases` when someone asks who runs a job."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class LeaseInfo:
    job: str
    holder: str
    fencing: int
    acquired_at: datetime
    expires_at: datetime


class Lease:
    """This process's claim on one job."""

    def __init__(self, store: Store, job: str, *, ttl: float = DEFAULT_TTL_SECONDS, holder: str | None = None,
                 clock: Clock = system_clock) -> None:
        if not job or len(job) > 200:
            raise ValueError("a lease needs a job name of 1 to 200 characters")
        if ttl <= 0:
            raise ValueError(f"a lease ttl must be positive, got {ttl:g}")
        self.store, self.job, self.ttl, self.clock = store, job, ttl, clock
        self.holder = holder or default_holder()
        #: The fencing token of our current hold, None when we do not hold the lease.
        self.fencing: int | None = None
        self.expires_at: datetime | None = None

    @property
    def held(self) -> bool:
        """Whether we hold it, by our own clock (a holder that cannot renew stops before it expires)."""
        return self.fencing is not None and self.expires_at is not None and self.clock() < self.expires_at

    def acquire(self) -> bool:
        """Take the lease (free or expired) or renew it (ours); False while someone else holds it."""
        now = self.clock()
        expires = now + timedelta(seconds=self.ttl)
        with self.store.transaction() as tx:
            row = tx.fetchone(_TAKE, (self.job, self.holder, stamp(now), stamp(expires), stamp(now)))
        if row is None:
            self.fencing, self.expires_at = None, None
            return False
        self.fencing, self.expires_at = int(row["fencing"]), expires
        return True

    renew = acquire

    def release(self) -> None:
        """Give the lease up now (it stays ours until it is taken; the fencing token keeps growing)."""
        if self.fencing is None:
            return
        with self.store.transaction() as tx:
            tx.execute("UPDATE leases SET expires_at = ? WHERE job = ? AND holder = ?",
                       (_RELEASED, self.job, self.holder))
        self.fencing, self.expires_at = None, None

    @staticmethod
    def current(store: Store, job: str) -> LeaseInfo | None:
        """Who holds (or last held) `job`; compare `expires_at` with the clock to know if it is live."""
        with store.transaction(readonly=True) as tx:
            row = tx.fetchone("SELECT job, holder, fencing, acquired_at, expires_at FROM leases WHERE job = ?", (job,))
        if row is None:
            return None
        return LeaseInfo(row["job"], row["holder"], int(row["fencing"]), parse_stamp(row["acquired_at"]),
                         parse_stamp(row["expires_at"]))


Step = Callable[[], object]


def run_leased(store: Store, job: str, step: Step, *, every: float, stop: threading.Event,
               ttl: float | None = None, clock: Clock = system_clock, holder: str | None = None) -> None:
    """Call `step()` every `every` seconds while this process holds `job`'s lease, renewing it each round;
    try to take it each round while another holds it. Returns (releasing the lease) once `stop` is set.
    A failing step or store is logged and retried next round: a background job never dies quietly."""
    lease = Lease(store, job, ttl=ttl or max(3 * every, 1.0), clock=clock, holder=holder)
    try:
        while not stop.is_set():
            try:
                if lease.acquire():
                    step()
            except Exception as exc:
                _log.warning("leased job %s failed a round: %s: %s", job, type(exc).__name__, exc)
            stop.wait(every)
    finally:
        try:
            lease.release()
        except StoreError as exc:
            _log.warning("could not release the lease of %s (it will expire): %s", job, exc)


async def run_leased_async(store: Store, job: str, step: Callable[[], object | Awaitable[object]], *,
                           every: float, stop: asyncio.Event, ttl: float | None = None,
                           clock: Clock = system_clock, holder: str | None = None) -> None:
    """`run_leased` for an asyncio lifespan: store calls go to a worker thread, `step` may be async."""
    lease = Lease(store, job, ttl=ttl or max(3 * every, 1.0), clock=clock, holder=holder)
    try:
        while not stop.is_set():
            try:
                if await asyncio.to_thread(lease.acquire):
                    result = step()
                    if inspect.isawaitable(result):
                        await result
            except Exception as exc:
                _log.warning("leased job %s failed a round: %s: %s", job, type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
    finally:
        try:
            await asyncio.to_thread(lease.release)
        except StoreError as exc:
            _log.warning("could not release the lease of %s (it will expire): %s", job, exc)
