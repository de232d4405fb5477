"""What happens to an action whose replica dies while it runs (issue 18.3).

Every server process holds a lease of its own, `replica:<host:pid:random>` (`Heartbeat`), renewed a few
times per lease time, and the gateway writes that job name into each `execution.started` entry. An
action whose `execution.started` has no outcome (`execution.finished`) while its replica's lease has
expired was running in a process that is gone: nobody will ever record how it ended. The recovery
sweep (`sweep`, run by exactly one replica under the `recovery-sweep` lease) then appends
`execution.outcome_unknown` for it, announces it on `Channel.actions` (its waiters return with state
`outcome_unknown`), and counts it (`interlock_outcome_unknown_total`). The entry's audit batch stages a
webhook alert to the policy's `notify` hooks in the same transaction (interlock.gate.webhook), so the
alert is sent even if this replica dies next.

It is **never re-executed**: the grant was consumed when it started, and `outcome_unknown` is terminal.
A human finds out what happened on the target (docs/deploy.md, "Several replicas").

A replica that is alive but could not renew its lease for a whole lease time (store unreachable) can
be swept while its action still runs; its late `execution.finished` then wins in the action's state
(the log keeps both entries, in order).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from interlock.gate.clock import Clock, stamp, system_clock
from interlock.gateway import AuditSink
from interlock.store import Store, StoreError
from interlock.store.events import Channel, publish
from interlock.store.lease import Lease, default_holder

_log = logging.getLogger("interlock.recovery")

EVENT = "execution.outcome_unknown"
#: The lease job name prefix of a replica's heartbeat.
REPLICA_PREFIX = "replica:"
#: Heartbeat rows of replicas gone this long are deleted by the sweep.
PRUNE_AFTER = timedelta(hours=1)
#: At most this many open executions are looked at per round (the rest next round).
BATCH = 200

_OPEN = (
    "SELECT s.idx, s.action_id FROM audit_entries s WHERE s.event = 'execution.started' AND s.idx >= ? "
    "AND NOT EXISTS (SELECT 1 FROM audit_entries f WHERE f.action_id = s.action_id "
    "AND f.event IN ('execution.finished', 'execution.reported', 'execution.outcome_unknown')) "
    "ORDER BY s.idx LIMIT ?"
)


def replica_job(holder: str | None = None) -> str:
    """This process's heartbeat lease name (a new one per process: a restarted replica is a new one)."""
    return REPLICA_PREFIX + (holder or default_holder())


class Heartbeat:
    """Holds `job`'s lease while the process lives: `beat()` every `ttl / 3` seconds."""

    def __init__(self, store: Store, job: str, ttl: float, clock: Clock = system_clock) -> None:
        self.job = job
        self.lease = Lease(store, job, ttl=ttl, clock=clock, holder=job)

    def beat(self) -> bool:
        return self.lease.acquire()

    def stop(self) -> None:
        """A clean stop removes the row: an execution still naming it is then found by the sweep."""
        with self.lease.store.transaction() as tx:
            tx.execute("DELETE FROM leases WHERE job = ? AND holder = ?", (self.job, self.job))


@dataclass
class Sweeper:
    """The recovery sweep's state: from which log index open executions are looked for."""

    store: Store
    audit: AuditSink
    clock: Clock = system_clock
    start: int = 0
    marked: list[str] = field(default_factory=list)

    def sweep(self) -> list[str]:
        """One round: mark every open execution whose replica's lease expired. Returns their action ids."""
        with self.store.transaction(readonly=True) as tx:
            rows = tx.fetchall(_OPEN, (self.start, BATCH))
        found: list[str] = []
        still_open: list[int] = []
        for row in rows:
            idx, action_id = int(row["idx"]), str(row["action_id"])
            started = _started(self.audit, action_id)
            replica = started.get("replica") if started else None
            if not replica or self._alive(str(replica)):
                still_open.append(idx)  # local mode (no replica) or still running: look again later
                continue
            self._mark(action_id, started or {})
            found.append(action_id)
        self._prune()
        if len(rows) < BATCH:
            last = max((int(r["idx"]) for r in rows), default=self.start - 1)
            self.start = min(still_open, default=last + 1)
        self.marked.extend(found)
        return found

    def _prune(self) -> None:
        """Heartbeat rows of replicas dead for over PRUNE_AFTER go (one row per process start would pile
        up). Safe: a missing row reads as a dead replica, which it is."""
        cutoff = stamp(self.clock() - PRUNE_AFTER)
        with self.store.transaction() as tx:
            tx.execute("DELETE FROM leases WHERE job LIKE ? AND expires_at < ?", (REPLICA_PREFIX + "%", cutoff))

    def _alive(self, replica: str) -> bool:
        info = Lease.current(self.store, replica)
        return info is not None and info.expires_at > self.clock()

    def _mark(self, action_id: str, started: dict[str, Any]) -> None:
        data = {"action_id": action_id, "agent": started.get("agent"), "target": started.get("target"),
                "replica": started.get("replica"),
                "reason": "its replica stopped before recording an outcome; never re-run automatically"}
        self.audit.append(EVENT, data)
        try:
            with self.store.transaction() as tx:
                publish(tx, Channel.actions, {"id": action_id, "op": "outcome_unknown"})
        except StoreError as exc:  # waiters find it at their fallback re-read
            _log.warning("could not announce outcome_unknown of %s: %s", action_id, exc)


def _started(audit: AuditSink, action_id: str) -> dict[str, Any] | None:
    """The verified `execution.started` entry's data (read through the log, as every state is)."""
    for _, event, data in audit.action_entries(action_id):
        if event == "execution.started":
            return data
    return None


def count_unknown(store: Store) -> int:
    """How many actions were ever marked outcome_unknown (the metric every replica agrees on)."""
    with store.transaction(readonly=True) as tx:
        row = tx.fetchone("SELECT count(*) AS n FROM audit_entries WHERE event = 'execution.outcome_unknown'")
    return int(row["n"]) if row else 0
