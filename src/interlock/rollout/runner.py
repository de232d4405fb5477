"""The rollout runner's rounds under the store's lease (DESIGN.md §9): exactly one holder moves rollouts.

    runner = Runner(rollouts, ttl=15)  # one per process; the lease job is "rollout-runner"
    runner.round(stopping)             # if we hold (or take) the lease: every rollout with work

The lease is renewed once half its time is gone: between units of work, and at a round's start, so an
idle holder polling every second writes its row every ttl/2, not every poll; while a round runs, a thread
renews it every third of its time too, so one long action does not outlast it. A process that does not hold
it reads the row and tries to take it only once it has expired (a read per poll, not a write). The round
stops when the process is stopping or the lease is lost, so a shutdown never starts another target's step.
`interlock serve` calls `round` from its lifespan with INTERLOCK_LEASE_SECONDS as the ttl.
"""

from __future__ import annotations

import threading
from contextlib import suppress

from interlock.rollout.service import Rollouts
from interlock.store.errors import StoreError
from interlock.store.lease import Lease

JOB = "rollout-runner"
LEASE_SECONDS = 30.0


class Runner:
    def __init__(self, rollouts: Rollouts, *, ttl: float = LEASE_SECONDS, holder: str | None = None) -> None:
        self.rollouts = rollouts
        self.lease = Lease(rollouts.store, JOB, ttl=ttl, holder=holder, clock=rollouts.clock)

    def round(self, stopping: threading.Event) -> int:
        """One round: the number of units of work done (0 when another process holds the lease)."""
        if stopping.is_set() or not self.hold():
            return 0

        def keep_going() -> bool:
            return not stopping.is_set() and self.hold()

        done = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(done,), name="interlock-rollout-lease", daemon=True)
        renewer.start()
        try:
            return self.rollouts.run_due(keep_going)
        finally:
            done.set()
            renewer.join()

    def _renew(self, done: threading.Event) -> None:
        """Renew the lease every third of its time while a round runs: an action longer than the lease
        (a terraform apply, a slow deploy) never lets another replica take the rollout over beside it and
        find its target `started` (outcome_unknown). A failed renewal is retried; a lost lease ends the
        round at its next unit (`keep_going`)."""
        while not done.wait(self.lease.ttl / 3):
            if self.lease.fencing is None:
                return
            with suppress(StoreError):
                self.lease.acquire()

    def hold(self) -> bool:
        """Whether we hold the lease for at least half its time more, renewing or taking it when needed."""
        lease = self.lease
        if lease.held and lease.expires_at is not None:
            if (lease.expires_at - lease.clock()).total_seconds() > lease.ttl / 2:
                return True
            return lease.acquire()
        found = Lease.current(lease.store, lease.job)
        if found is not None and found.holder != lease.holder and found.expires_at > lease.clock():
            return False  # another holder's live lease: no write to learn it
        return lease.acquire()

    def release(self) -> None:
        self.lease.release()
