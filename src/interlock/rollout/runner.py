"""The rollout runner's rounds under the store's lease (DESIGN.md §9): exactly one holder moves rollouts.

    runner = Runner(rollouts)          # one per process; the lease job is "rollout-runner"
    runner.round(stopping)             # if we hold (or take) the lease: every rollout with work

Between units of work the lease is renewed once half its time is gone, and the round stops when the
process is stopping or the lease is lost, so a long action never lets a second runner in beside it and
a shutdown never starts another target's step. `interlock serve` calls `round` from its lifespan.
"""

from __future__ import annotations

import threading

from interlock.rollout.service import Rollouts
from interlock.store.lease import Lease

JOB = "rollout-runner"
LEASE_SECONDS = 30.0


class Runner:
    def __init__(self, rollouts: Rollouts, *, ttl: float = LEASE_SECONDS, holder: str | None = None) -> None:
        self.rollouts = rollouts
        self.lease = Lease(rollouts.store, JOB, ttl=ttl, holder=holder, clock=rollouts.clock)

    def round(self, stopping: threading.Event) -> int:
        """One round: the number of units of work done (0 when another process holds the lease)."""
        if stopping.is_set() or not self.lease.acquire():
            return 0

        def keep_going() -> bool:
            if stopping.is_set():
                return False
            expires = self.lease.expires_at
            left = (expires - self.lease.clock()).total_seconds() if expires else 0.0
            return left > self.lease.ttl / 2 or self.lease.acquire()

        return self.rollouts.run_due(keep_going)

    def release(self) -> None:
        self.lease.release()
