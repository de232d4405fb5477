"""Anomaly detectors and breaker bookkeeping, run inside the audit log's batch transaction.

`Counting.on_batch(tx, entries)` is an AuditLog batch hook: it reads the proposals and outcomes the
batch records and, under the log's own lock and in its own transaction, updates the counters every
process shares (so a burst split across two servers still trips), evaluates the detectors and the
breakers, and trips breakers. Nothing here costs the decision a round trip: the proposal's entry is
written anyway, the counters ride with it.

Detectors (policy `guards.anomalies`, each with `enforce: true|false`):

- burst         destructive proposals by one agent in `window` reach `threshold`
- denial_streak `threshold` denials in a row (an agent probing the policy)
- blast_radius  rows deleted, resources destroyed, files removed by one agent in `window` reach `threshold`
- first_action / working_hours are judged before the decision (guard.service); their findings
  arrive here in the proposal's entry and are alerted (and, for working hours, trip) from here.

A detector that fires trips the agent's breaker when enforced, and always alerts (`Alert`); shadow
mode (`enforce: false`) alerts and never trips. A detector fires when its count crosses the
threshold, once per crossing, so a flood is one alert, not thousands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from interlock.gate.bindings import tree_size
from interlock.gate.clock import stamp
from interlock.gate.events import GateAudit
from interlock.guard import breakers
from interlock.guard.breakers import AGENT_WIDE, Breaker, State
from interlock.policy.schema import Breakers, Guards
from interlock.store import Transaction

_log = logging.getLogger("interlock.guard")

#: Rules the guards add to a decision; a denial they caused is not the agent's probing.
GUARD_RULE_PREFIXES = ("freeze:", "freeze-window:", "breaker:", "anomaly:")
FAILED = {"failed", "timeout", "error"}
DESTRUCTIVE = {"destructive", "unknown"}
#: SQL command tags whose row counts are rows changed (docs/executors.md: result.statements).
WRITES = {"DELETE", "UPDATE", "INSERT", "MERGE", "COPY"}
#: Counter buckets are whole seconds; older than the longest window (at least this) they are pruned.
PRUNE_EVERY_SECONDS = 60
#: A detector judged per action (first action, working hours) alerts once per agent and target in this long.
REPEAT_SECONDS = 3600


#: What a breaker tripped by a detector does when the policy has no `breakers:` section.
DEFAULT_BREAKERS = Breakers()


def breaker_settings(guards: Guards) -> Breakers:
    return guards.breakers or DEFAULT_BREAKERS


@dataclass(frozen=True)
class Alert:
    detector: str
    agent: str
    target: str | None
    enforce: bool
    detail: str
    tripped: bool = False
    action_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"detector": self.detector, "agent": self.agent, "target": self.target, "enforce": self.enforce,
                "tripped": self.tripped, "detail": self.detail,
                # not `action_id`: that key files an entry into the action's own timeline
                "trigger_action": self.action_id}


def blast_of(classification: Mapping[str, Any], result: Mapping[str, Any], kind: str) -> int:
    """What one successful destructive execution destroyed: SQL rows written, terraform resources
    destroyed or replaced, else 1 (a shell `rm -r` does not say how many files it removed)."""
    if result.get("status") != "succeeded" or classification.get("risk") not in DESTRUCTIVE:
        return 0
    if kind == "sql":
        statements = result.get("statements")
        if isinstance(statements, list) and statements:  # rows written, not rows a SELECT returned
            return sum(int(s.get("rows_affected") or 0) for s in statements
                       if isinstance(s, Mapping) and str(s.get("command", "")).upper() in WRITES)
        if isinstance(result.get("rows_affected"), int):
            return max(0, int(result["rows_affected"]))
    details = classification.get("details") or {}
    if kind == "terraform" and isinstance(details, Mapping):
        lost = len(details.get("destroyed") or ()) + len(details.get("replaced") or ())
        return max(lost, 1)
    return 1


@dataclass
class Counting:
    """The batch hook. `alerts` receives what fired, after the batch committed."""

    guards: Guards
    clock: Callable[[], datetime]
    alerts: Callable[[list[Alert]], None]
    #: (agent, target) pairs this process knows are recorded as seen: never written again (it only grows)
    seen: set[tuple[str, str]] = field(default_factory=set)
    #: The log that records each breaker transition, in the batch's transaction (breakers.trip/close).
    log: GateAudit | None = None
    _pruned: float = field(default=0.0)
    #: The breakers the log holds open, folded from committed entries only (a batch may roll back).
    _ledger: breakers.Ledger = field(default_factory=breakers.Ledger)
    #: Breakers this batch changed: their rows are newer than the ledger, and right.
    _changed: set[tuple[str, str]] = field(default_factory=set)
    #: Entries of this batch, the log's own and our transitions: the tree's last ones, not yet committed.
    _uncommitted: int = 0
    #: This batch's streaks known to be 0 (reset, not counted up since): resetting one again changes nothing.
    _zeroed: set[tuple[str, str, str]] = field(default_factory=set)
    #: Repeat-alert counts this batch already counted (agent, target, metric): later ones cannot alert (their
    #: total is over one), so they are only added, at the end of the batch, in one statement per count.
    _repeats: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def on_batch(self, tx: Transaction, entries: list[tuple[str, Mapping[str, Any]]]) -> None:
        now = self.clock()
        self._uncommitted, self._changed = len(entries), set()
        # Per batch, not per entry: a busy batch repeats the same agent's reset and alert counts, and each
        # statement is a round trip and, on the audit writer's thread, a GIL hand-off (docs/benchmarks.md).
        self._zeroed, self._repeats = set(), {}
        fired: list[Alert] = []
        for event, data in entries:
            if event == "action.proposed":
                self._proposed(tx, data, now, fired)
            elif event == "action.approved":
                self._seen(tx, data, now)
            elif event == "execution.finished":
                self._finished(tx, data, now, fired)
        for (agent, target, metric), more in self._repeats.items():
            if more:
                self._add(tx, agent, target, metric, more, now)
        second = now.timestamp()
        if second - self._pruned >= PRUNE_EVERY_SECONDS:
            self._pruned = second
            tx.execute("DELETE FROM guard_counts WHERE bucket < ?", (int(second) - self._longest_window(),))
        if fired:
            tx.on_commit(lambda: self.alerts(fired))

    def _longest_window(self) -> int:
        a = self.guards.anomalies
        windows = [d.window for d in (a.burst, a.blast_radius) if d is not None]
        if self.guards.breakers is not None:
            windows.append(self.guards.breakers.window)
        return max([3600, *windows])

    # --- proposals ------------------------------------------------------------------------------

    def _proposed(self, tx: Transaction, data: Mapping[str, Any], now: datetime, fired: list[Alert]) -> None:
        agent = str(data.get("agent") or "")
        action = data.get("action") or {}
        decision = data.get("decision") or {}
        target = str(action.get("target") or "")
        outcome = decision.get("decision")
        rules = decision.get("rules") or ()
        action_id = data.get("action_id")
        by_guard = any(str(r).startswith(GUARD_RULE_PREFIXES) for r in rules)
        anomalies = self.guards.anomalies
        for finding in data.get("guards") or ():
            if "detector" not in finding:
                continue  # a freeze's finding: recorded, not an anomaly
            detector = str(finding.get("detector"))
            enforce = bool(finding.get("enforce"))
            # These fire on every such action: alert (and trip) once per agent, target and hour, not per retry.
            repeat = (agent, target, f"alert:{detector}")
            if repeat in self._repeats:  # counted earlier in this batch: now over one whatever it was then
                self._repeats[repeat] += 1
                continue
            self._repeats[repeat] = 0
            if self._count(tx, agent, target, repeat[2], 1, now, REPEAT_SECONDS) > 1:
                continue
            trips = enforce and bool(finding.get("trip"))
            if trips:
                self._trip(tx, agent, AGENT_WIDE, f"anomaly {detector}: {finding.get('detail')}", now)
            fired.append(Alert(detector, agent, target or None, enforce, str(finding.get("detail")), trips, action_id))
        counts_denials = anomalies.denial_streak is not None or self.guards.breakers is not None
        if counts_denials and outcome == "deny" and not by_guard:
            denials = self._streak(tx, agent, AGENT_WIDE, "denials", +1)
            streak = anomalies.denial_streak
            if streak is not None and denials == streak.threshold:
                detail = f"{denials} denials in a row (threshold {streak.threshold})"
                if streak.enforce:
                    self._trip(tx, agent, AGENT_WIDE, f"anomaly denial_streak: {detail}", now)
                fired.append(Alert("denial_streak", agent, None, streak.enforce, detail, streak.enforce, action_id))
            limit = self.guards.breakers.consecutive_denials if self.guards.breakers else None
            if limit is not None and denials == limit:
                self._trip(tx, agent, AGENT_WIDE, f"{denials} denials in a row", now)
        elif counts_denials and outcome != "deny":
            self._streak(tx, agent, AGENT_WIDE, "denials", 0)
        burst = anomalies.burst
        if burst is not None and (data.get("classification") or {}).get("risk") in DESTRUCTIVE:
            count = self._count(tx, agent, AGENT_WIDE, "destructive", 1, now, burst.window)
            if count == burst.threshold:
                detail = f"{count} destructive proposals within {burst.window} s (threshold {burst.threshold})"
                if burst.enforce:
                    self._trip(tx, agent, AGENT_WIDE, f"anomaly burst: {detail}", now)
                fired.append(Alert("burst", agent, None, burst.enforce, detail, burst.enforce, action_id))
        if outcome == "allow" and anomalies.first_action is not None:
            self._seen(tx, {"agent": agent, "target": target or action.get("environment")}, now)

    def _seen(self, tx: Transaction, data: Mapping[str, Any], now: datetime) -> None:
        if self.guards.anomalies.first_action is None or not data.get("agent") or not data.get("target"):
            return
        pair = (str(data["agent"]), str(data["target"]))
        if pair in self.seen:
            return
        tx.execute("INSERT INTO guard_seen(agent, target, first_at) VALUES (?, ?, ?) "
                   "ON CONFLICT (agent, target) DO NOTHING", (*pair, stamp(now)))
        tx.on_commit(lambda: self.seen.add(pair))

    # --- outcomes -------------------------------------------------------------------------------

    def _finished(self, tx: Transaction, data: Mapping[str, Any], now: datetime, fired: list[Alert]) -> None:
        agent = str(data.get("agent") or "")
        target = str(data.get("target") or "")
        outcome = str(data.get("outcome") or "")
        if outcome == "cancelled" or data.get("rehearsal"):
            return  # a freeze stopped it, or a twin is where failing is the point: not the agent's failure
        failed = outcome in FAILED
        scopes = [AGENT_WIDE] + ([target] if target and self.guards.breakers is not None else [])
        for scope in scopes:
            self._breaker_outcome(tx, agent, scope, failed, now)
        blast = self.guards.anomalies.blast_radius
        amount = int(data.get("blast") or 0)
        if blast is not None and amount > 0:
            total = self._count(tx, agent, AGENT_WIDE, "blast", amount, now, blast.window)
            if total - amount < blast.threshold <= total:
                detail = f"blast radius {total} within {blast.window} s (threshold {blast.threshold})"
                if blast.enforce:
                    self._trip(tx, agent, AGENT_WIDE, f"anomaly blast_radius: {detail}", now)
                fired.append(Alert("blast_radius", agent, target or None, blast.enforce, detail, blast.enforce,
                                   data.get("action_id")))

    def _breaker_outcome(self, tx: Transaction, agent: str, target: str, failed: bool, now: datetime) -> None:
        """Half-open trials close or re-open a breaker whoever tripped it (a detector too); failures and
        rates trip one only when the policy has `breakers:`."""
        cfg = breaker_settings(self.guards)
        found = self._breaker(tx, agent, target)
        state = found.effective(now, cfg.cool_down) if found else State.closed
        if found is not None and state is State.half_open:
            if failed:
                self._trip(tx, agent, target, "a trial action failed while half-open", now)
            elif breakers.count_success(tx, found) >= cfg.half_open_successes:
                self._changed.add((agent, target))
                self._uncommitted += 1
                breakers.close(tx, found, f"{cfg.half_open_successes} successes while half-open", self._log())
                self._streak(tx, agent, target, "failures", 0)
            return
        if state is State.open or self.guards.breakers is None:
            return
        failures = self._streak(tx, agent, target, "failures", +1 if failed else 0)
        calls = self._count(tx, agent, target, "calls", 1, now, cfg.window)
        failed_calls = self._count(tx, agent, target, "failures", 1 if failed else 0, now, cfg.window)
        scope = f"agent {agent}" + (f" on {target}" if target else "")
        if failed and failures == cfg.consecutive_failures:
            self._trip(tx, agent, target, f"{failures} failed executions in a row ({scope})", now)
        elif failed and calls >= cfg.minimum_calls and failed_calls * 100 >= cfg.failure_rate * calls:
            self._trip(tx, agent, target, f"{failed_calls} of the last {calls} executions failed within "
                       f"{cfg.window} s ({scope}; limit {cfg.failure_rate:g}%)", now)

    # --- store helpers --------------------------------------------------------------------------

    def _trip(self, tx: Transaction, agent: str, target: str, reason: str, now: datetime) -> Breaker:
        self._changed.add((agent, target))
        self._uncommitted += 1
        return breakers.trip(tx, agent, target, reason, now, self._log())

    def _log(self) -> GateAudit:
        if self.log is None:
            raise RuntimeError("breaker transitions are recorded in the log: build Counting with log=")
        return self.log

    def _breaker(self, tx: Transaction, agent: str, target: str) -> Breaker | None:
        """The breaker as the log says (guard.breakers.in_force_one); a row closed or moved in the database
        is put back to the log's state first, so the half-open trials that close it count."""
        row = breakers.get(tx, agent, target)
        if (agent, target) in self._changed:
            return row
        committed = tree_size(tx) - self._uncommitted  # this batch's entries are the tree's last ones
        recorded = self._ledger.fold(self._log(), tx, committed).last.get((agent, target))
        found = breakers.in_force_one(row, recorded)
        if found is not None and found is not row:
            _log.warning("breaker of agent %s on %r was changed in the database: restored from the log",
                         agent, target)
            breakers.restore(tx, found)
        return found

    def _streak(self, tx: Transaction, agent: str, target: str, column: str, step: int) -> int:
        """Add one (`step` 1) or reset (`step` 0) a streak; returns its new length."""
        assert column in ("failures", "denials")
        key = (agent, target, column)
        if step == 0:
            if key not in self._zeroed:
                tx.execute(f"UPDATE guard_streaks SET {column} = 0 WHERE agent = ? AND target = ? AND {column} > 0",
                           (agent, target))
                self._zeroed.add(key)
            return 0
        self._zeroed.discard(key)
        row = tx.fetchone(
            f"INSERT INTO guard_streaks(agent, target, failures, denials) VALUES (?, ?, ?, ?) "
            f"ON CONFLICT (agent, target) DO UPDATE SET {column} = guard_streaks.{column} + 1 RETURNING {column}",
            (agent, target, 1 if column == "failures" else 0, 1 if column == "denials" else 0))
        return int(row[column]) if row else 0

    @staticmethod
    def _add(tx: Transaction, agent: str, target: str, metric: str, amount: int, now: datetime) -> None:
        """Add `amount` to this second's bucket."""
        tx.execute("INSERT INTO guard_counts(agent, target, metric, bucket, value) VALUES (?, ?, ?, ?, ?) "
                   "ON CONFLICT (agent, target, metric, bucket) DO UPDATE SET "
                   "value = guard_counts.value + excluded.value", (agent, target, metric, int(now.timestamp()), amount))

    def _count(self, tx: Transaction, agent: str, target: str, metric: str, amount: int, now: datetime,
               window: int) -> int:
        """Add `amount` to this second's bucket and return the sum over the last `window` seconds."""
        second = int(now.timestamp())
        if amount and tx.dialect == "postgresql":
            # One round trip: the sub-statements share a snapshot, so the sum leaves out this second's
            # bucket and the upsert's RETURNING adds it back.
            row = tx.fetchone(
                "WITH up AS (INSERT INTO guard_counts(agent, target, metric, bucket, value) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (agent, target, metric, bucket) DO UPDATE SET value = guard_counts.value + "
                "excluded.value RETURNING value) "
                "SELECT COALESCE((SELECT SUM(value) FROM guard_counts WHERE agent = ? AND target = ? AND metric = ? "
                "AND bucket > ? AND bucket <> ?), 0) + (SELECT value FROM up) AS total",
                (agent, target, metric, second, amount, agent, target, metric, second - window, second))
            return int(row["total"]) if row else 0
        if amount:
            self._add(tx, agent, target, metric, amount, now)
        row = tx.fetchone("SELECT COALESCE(SUM(value), 0) AS total FROM guard_counts WHERE agent = ? AND target = ? "
                          "AND metric = ? AND bucket > ?", (agent, target, metric, second - window))
        return int(row["total"]) if row else 0
