"""Circuit breakers per agent (target '') and per agent × target, state in the store.

The model is pybreaker's (trip after `consecutive_failures` in a row; after `cool_down` the breaker
is half-open) combined with resilience4j's failure rate (trip when at least `failure_rate` percent of
the executions in `window` failed, once there were `minimum_calls`; close again after
`half_open_successes` successes while half-open, re-open on a failure). Interlock adds denials in a
row (an agent probing the policy) and the anomaly detectors as reasons to trip.

Open means: nothing of that agent runs autonomously. What the policy allowed alone needs one human
approval, and every answer says which breaker is open and why. Half-open lets actions run again as
trials; their outcomes close or re-open it.

Transitions happen inside the audit log's batch transaction (guard.detectors), so every process
sees one breaker; each transition publishes on `Channel.guards` so caches reload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from interlock.gate.clock import parse_stamp, stamp
from interlock.store import Transaction
from interlock.store.events import Channel, publish

AGENT_WIDE = ""


class State(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half_open"


@dataclass(frozen=True)
class Breaker:
    agent: str
    target: str  # AGENT_WIDE for the agent's own breaker
    state: State  # as stored: open or closed (half-open is open past its cool-down, see `effective`)
    reason: str
    opened_at: datetime
    successes: int = 0
    trips: int = 0

    def effective(self, now: datetime, cool_down: float) -> State:
        if self.state is State.open and now >= self.opened_at + timedelta(seconds=cool_down):
            return State.half_open
        return self.state

    def scope(self) -> str:
        return f"agent {self.agent}" + (f" on target {self.target}" if self.target else "")

    def to_json(self, now: datetime, cool_down: float) -> dict[str, Any]:
        state = self.effective(now, cool_down)
        body: dict[str, Any] = {"agent": self.agent, "target": self.target or None, "state": state.value,
                                "reason": self.reason, "opened_at": stamp(self.opened_at), "trips": self.trips}
        if state is State.open:
            body["half_open_at"] = stamp(self.opened_at + timedelta(seconds=cool_down))
        if state is State.half_open:
            body["successes"] = self.successes
        return body


def _row(row: dict[str, Any]) -> Breaker:
    return Breaker(agent=row["agent"], target=row["target"], state=State(row["state"]), reason=row["reason"],
                   opened_at=parse_stamp(row["opened_at"]), successes=int(row["successes"]), trips=int(row["trips"]))


def load(tx: Transaction) -> dict[tuple[str, str], Breaker]:
    return {(b.agent, b.target): b for b in map(_row, tx.fetchall("SELECT * FROM guard_breakers"))}


def get(tx: Transaction, agent: str, target: str) -> Breaker | None:
    row = tx.fetchone("SELECT * FROM guard_breakers WHERE agent = ? AND target = ?", (agent, target))
    return _row(row) if row else None


def trip(tx: Transaction, agent: str, target: str, reason: str, now: datetime) -> Breaker:
    """Open (or re-open) the breaker and announce it."""
    found = get(tx, agent, target)
    trips = (found.trips if found else 0) + 1
    tx.execute("INSERT INTO guard_breakers(agent, target, state, reason, opened_at, successes, trips) "
               "VALUES (?, ?, 'open', ?, ?, 0, ?) ON CONFLICT (agent, target) DO UPDATE SET state = 'open', "
               "reason = excluded.reason, opened_at = excluded.opened_at, successes = 0, trips = excluded.trips",
               (agent, target, reason[:500], stamp(now), trips))
    publish(tx, Channel.guards, {"agent": agent, "target": target, "state": "open"})
    return Breaker(agent, target, State.open, reason, now, 0, trips)


def close(tx: Transaction, breaker: Breaker, reason: str) -> None:
    tx.execute("UPDATE guard_breakers SET state = 'closed', reason = ?, successes = 0 WHERE agent = ? AND target = ?",
               (reason[:500], breaker.agent, breaker.target))
    publish(tx, Channel.guards, {"agent": breaker.agent, "target": breaker.target, "state": "closed"})


def count_success(tx: Transaction, breaker: Breaker) -> int:
    tx.execute("UPDATE guard_breakers SET successes = successes + 1 WHERE agent = ? AND target = ?",
               (breaker.agent, breaker.target))
    return breaker.successes + 1

