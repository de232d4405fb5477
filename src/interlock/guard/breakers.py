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

Each transition is also an entry in that transaction (`guard.breaker_opened`, `guard.breaker_closed`),
and the log, not the row, says whether a breaker is open (DESIGN.md §9): `Ledger` folds the entries,
and `in_force` keeps a breaker the log holds open open though its row was closed, deleted or its
`opened_at` moved back in the database. The streaks and sliding-window counters that lead to a trip
are not entries (docs/audit.md: not checkable).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from interlock.audit.events import AuditEvent
from interlock.gate.bindings import entries_since
from interlock.gate.clock import parse_stamp, stamp
from interlock.gate.events import GateAudit
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


def trip(tx: Transaction, agent: str, target: str, reason: str, now: datetime, log: GateAudit) -> Breaker:
    """Open (or re-open) the breaker, record it and announce it."""
    found = get(tx, agent, target)
    trips = (found.trips if found else 0) + 1
    tx.execute("INSERT INTO guard_breakers(agent, target, state, reason, opened_at, successes, trips) "
               "VALUES (?, ?, 'open', ?, ?, 0, ?) ON CONFLICT (agent, target) DO UPDATE SET state = 'open', "
               "reason = excluded.reason, opened_at = excluded.opened_at, successes = 0, trips = excluded.trips",
               (agent, target, reason[:500], stamp(now), trips))
    publish(tx, Channel.guards, {"agent": agent, "target": target, "state": "open"})
    log.append_in(tx, OPENED, {"agent": agent, "target": target, "reason": reason[:500], "opened_at": stamp(now),
                               "trips": trips})
    return Breaker(agent, target, State.open, reason, now, 0, trips)


def close(tx: Transaction, breaker: Breaker, reason: str, log: GateAudit) -> None:
    tx.execute("UPDATE guard_breakers SET state = 'closed', reason = ?, successes = 0 WHERE agent = ? AND target = ?",
               (reason[:500], breaker.agent, breaker.target))
    publish(tx, Channel.guards, {"agent": breaker.agent, "target": breaker.target, "state": "closed"})
    log.append_in(tx, CLOSED, {"agent": breaker.agent, "target": breaker.target, "reason": reason[:500]})


def count_success(tx: Transaction, breaker: Breaker) -> int:
    tx.execute("UPDATE guard_breakers SET successes = successes + 1 WHERE agent = ? AND target = ?",
               (breaker.agent, breaker.target))
    return breaker.successes + 1


def restore(tx: Transaction, breaker: Breaker) -> None:
    """Put the log's open breaker back into its row (closed, deleted or moved in the database), so the
    half-open trials that close it count again."""
    tx.execute("INSERT INTO guard_breakers(agent, target, state, reason, opened_at, successes, trips) "
               "VALUES (?, ?, 'open', ?, ?, 0, ?) ON CONFLICT (agent, target) DO UPDATE SET state = 'open', "
               "reason = excluded.reason, opened_at = excluded.opened_at, successes = 0, trips = excluded.trips",
               (breaker.agent, breaker.target, breaker.reason[:500], stamp(breaker.opened_at), breaker.trips))


# --- what the log says -------------------------------------------------------------------------------

OPENED, CLOSED = AuditEvent.GUARD_BREAKER_OPENED.value, AuditEvent.GUARD_BREAKER_CLOSED.value
#: A transition entry that does not check out opens every agent's breaker until the store is restored:
#: never half-open (its cool-down never ends), so autonomy waits for a human (fail closed).
NEVER = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass
class Ledger:
    """The latest recorded transition of every breaker (an open Breaker, or None once closed), folded
    from the log's transition entries. Append-only, so `fold` reads only entries appended since; fold
    only committed entries (indexes below a size read before this transaction wrote any)."""

    size: int = 0
    last: dict[tuple[str, str], Breaker | None] = dataclasses.field(default_factory=dict)
    at: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)  # the index of that transition
    damaged: list[int] = dataclasses.field(default_factory=list)

    def fold(self, log: GateAudit, tx: Transaction, size: int) -> Ledger:
        for index, found in entries_since(log, tx, (OPENED, CLOSED), self.size, size):
            event, data = found if found is not None else ("", {})
            agent, target = data.get("agent"), data.get("target")
            if not isinstance(agent, str) or not isinstance(target, str):
                self.damaged.append(index)  # does not check out: we cannot tell whose breaker it was
                continue
            self.at[(agent, target)] = index
            self.last[(agent, target)] = None if event == CLOSED else Breaker(
                agent, target, State.open, str(data.get("reason", "")), parse_stamp(str(data.get("opened_at"))),
                0, int(data.get("trips") or 1))
        self.size = max(self.size, size)
        return self


def in_force_one(row: Breaker | None, recorded: Breaker | None) -> Breaker | None:
    """The breaker to believe: the row, unless the log holds it open and the row says closed (or is
    missing), or opened earlier than the log says (a cool-down cut short). A row open where the log
    says closed stays open: an extra breaker only asks for more approvals."""
    if recorded is None:
        return row
    if row is None or row.state is State.closed:
        return recorded
    if row.opened_at < recorded.opened_at:
        return dataclasses.replace(row, opened_at=recorded.opened_at)
    return row


def in_force(table: dict[tuple[str, str], Breaker], ledger: Ledger,
             agents: list[str]) -> dict[tuple[str, str], Breaker]:
    merged = dict(table)
    for key, recorded in ledger.last.items():
        found = in_force_one(table.get(key), recorded)
        if found is not None:
            merged[key] = found
    for index in ledger.damaged[:1]:
        for agent in agents:
            merged[(agent, AGENT_WIDE)] = Breaker(
                agent, AGENT_WIDE, State.open, f"audit entry {index} (a breaker transition) does not check out: "
                "it was changed in the database; run `interlock audit verify` and restore the store", NEVER)
    return merged
