"""`Guard`: what the Gateway asks before it answers, and everything the guards keep per process.

Per decision (`review`), all from memory: the active kill-switch freezes and the breakers are cached
and reloaded only when their channel's generation moved (store.events: LISTEN/NOTIFY on PostgreSQL,
a sidecar file's stat on SQLite), so a freeze through any process is honoured by the next decision
here. Change-freeze windows and working hours are pure time checks; the first-action detector reads
the store only the first time this process meets an (agent, target) pair. Counters are written by the
audit batch hook (guard.detectors) in the proposal's own transaction.

Fall back to humans: when a guard cannot tell (the store fails while reloading), the decision is a
denial, never an allow (docs/guards.md lists each case).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from interlock.audit.events import AuditEvent
from interlock.execute.cancel import Cancellation, cancellable
from interlock.fingerprint import fingerprint
from interlock.gate.bindings import tree_size
from interlock.gate.clock import Clock, stamp, system_clock
from interlock.guard import breakers, freezes, rollback_pass
from interlock.guard.breakers import AGENT_WIDE, Breaker, State
from interlock.guard.detectors import Alert, Counting, breaker_settings
from interlock.guard.freezes import Freeze, FreezeError
from interlock.guard.rollback_pass import Pass
from interlock.guard.windows import Steady
from interlock.model import Action, ApprovalRequirement, Classification, Decision, DecisionValue
from interlock.policy import Policy
from interlock.store import Store, StoreError
from interlock.store.events import Channel, Event, subscriber

_log = logging.getLogger("interlock.guard")

GUARD_TRIPPED = AuditEvent.GUARD_TRIPPED
GUARD_REFUSED = AuditEvent.GUARD_REFUSED


class GuardUnavailable(Exception):
    """A guard could not be evaluated (store failure): the Gateway denies (fail closed)."""


@dataclass
class Running:
    agent: str
    action: Action
    cancellation: Cancellation
    passed: frozenset[str] = frozenset()  # freezes a rollback passed (guard.rollback_pass): they do not cancel it


@dataclass
class _Cache:
    generation: int = -1
    value: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class Guard:
    def __init__(self, store: Store, policy: Policy, audit: Any, *, clock: Clock = system_clock) -> None:
        self.store, self.policy, self.audit, self.clock = store, policy, audit, clock
        self.guards = policy.doc.guards
        #: The Gateway's records (proposal, execution start, …) must be durable within this, or it denies.
        self.decision_timeout: float | None = self.guards.decision_timeout
        self.events = subscriber(store)
        self._freezes = _Cache(value=())
        self._ledger = freezes.Ledger()  # the freezes folded from the log; grows under _freezes.lock
        self._breaker_ledger = breakers.Ledger()  # likewise, under _breakers.lock
        self._breakers = _Cache(value={})
        self._seen: set[tuple[str, str]] = set()
        self._running: dict[str, Running] = {}
        self._running_lock = threading.Lock()
        self.counts: dict[tuple[str, ...], int] = {}  # Prometheus counters (see collector())
        self._counts_lock = threading.Lock()
        self._alerts: queue.SimpleQueue[list[Alert] | None] = queue.SimpleQueue()
        self._alert_thread: threading.Thread | None = None
        self._unsubscribe = self.events.subscribe(Channel.freezes, self._on_freeze_event)
        # The time half of the change-freeze windows and working hours, remembered between the moments
        # their answers can change (windows.Steady): per proposal a tuple comparison, not a zone lookup each.
        self._freeze_windows = tuple(Steady(f.window) for f in self.guards.freezes)
        hours = self.guards.anomalies.working_hours
        self._hours = {agent: (Steady(windows), ", ".join(w.describe() for w in windows))
                       for agent, windows in (hours.agents.items() if hours is not None else ()) if windows}
        anomalies = self.guards.anomalies
        self.counting: Counting | None = None
        if self.guards.breakers is not None or any(
                getattr(anomalies, name) is not None for name in ("burst", "denial_streak", "first_action",
                                                                   "working_hours", "blast_radius")):
            self.counting = Counting(self.guards, clock, self._queue_alerts, self._seen, log=audit)
            audit.add_hook(self.counting.on_batch)

    def close(self) -> None:
        self._unsubscribe()
        if self._alert_thread is not None:
            self._alerts.put(None)
            self._alert_thread.join(timeout=10)

    # --- cached state -------------------------------------------------------------------------

    def active_freezes(self) -> tuple[Freeze, ...]:
        """The freezes in force: what the log holds (a row thawed or deleted in the database stays
        frozen) and every active row; reloaded when the freezes channel's generation moves."""
        found: tuple[Freeze, ...] = self._cached(self._freezes, Channel.freezes,
                                                 lambda tx: tuple(freezes.in_force(tx, self._ledger, self.audit)))
        return found

    def breakers(self, *, look: bool = True) -> dict[tuple[str, str], Breaker]:
        """The breakers in force (`look`: as `events.generation`'s)."""
        if self.guards.breakers is None and self.counting is None:
            return {}
        table: dict[tuple[str, str], Breaker] = self._cached(self._breakers, Channel.guards, self._load_breakers,
                                                             look=look)
        return table

    def _load_breakers(self, tx: Any) -> dict[tuple[str, str], Breaker]:
        """The breakers in force: the rows, and every breaker the log holds open though its row says
        otherwise (folded from committed entries, under the cache's lock)."""
        self._breaker_ledger.fold(self.audit, tx, tree_size(tx))
        return breakers.in_force(breakers.load(tx), self._breaker_ledger, sorted(self.policy.doc.agents))

    def _cached(self, cache: _Cache, channel: str, load: Callable[[Any], Any], *, look: bool = True) -> Any:
        try:
            generation = self.events.generation(channel, look=look)
            # PostgreSQL without a listening connection hears of no freeze: read the store every time
            # until it is back (fail closed: slower, never stale for long).
            if generation == cache.generation and self.events.listening:
                return cache.value
            with cache.lock:
                if generation != cache.generation or not self.events.listening:
                    with self.store.transaction(readonly=True) as tx:
                        cache.value = load(tx)
                    cache.generation = generation
                return cache.value
        except StoreError as exc:
            raise GuardUnavailable(f"the guards could not read their state: {exc}") from exc

    def freeze_for(self, agent: str, action: Action) -> Freeze | None:
        for found in self.active_freezes():
            if found.covers(agent, action.environment, action.target):
                return found
        return None

    # --- the decision -------------------------------------------------------------------------

    def review(self, agent: str, action: Action, classification: Classification, decision: Decision,
               rollback: Pass | None = None) -> tuple[Decision, list[dict[str, Any]]]:
        """The decision after the guards, and the findings to record in the proposal's entry.
        `rollback`: a rollout's rollback under a human's abort under freeze (guard.rollback_pass),
        which passes the freezes and windows that entry names, once; every other guard still applies."""
        found = self.freeze_for(agent, action)
        findings: list[dict[str, Any]] = []
        passed: dict[str, Any] | str | None = None
        if rollback is not None and (found is not None or self._windows_for(agent, action)):
            passed = self._pass(agent, action, rollback)
        if isinstance(passed, dict):
            findings.append(passed)
        elif found is not None:
            self._count("freeze_denials", found.id)
            why = f"; {passed}" if passed else ""
            return freezes.deny(decision, f"freeze:{found.id}",
                                f"frozen: {found.reason} (freeze {found.id} by {found.created_by}, "
                                f"{found.scope()}){why}",
                                f"wait until a human thaws freeze {found.id}"), [{"guard": "freeze", "id": found.id}]
        now = self.clock()
        if not isinstance(passed, dict):
            decision = freezes.apply_windows(self.policy.doc, agent, action, decision, now, self._timely)
        if decision.value is DecisionValue.deny:
            return decision, findings
        decision = self._breakers_review(agent, action, decision, now)
        decision = self._working_hours(agent, action, decision, now, findings)
        decision = self._first_action(agent, action, classification, decision, findings)
        return decision, findings

    def _timely(self, index: int, now: datetime) -> bool:
        return any(self._freeze_windows[index].contains(now))

    def _windows_for(self, agent: str, action: Action) -> list[str]:
        now = self.clock()
        return [f.name or str(i) for i, f in enumerate(self.guards.freezes)
                if freezes.window_in_force(f, agent, action, now)]

    def _pass(self, agent: str, action: Action, rollback: Pass) -> dict[str, Any] | str:
        """Use the rollback's pass past every freeze and window covering it (the finding), or why not."""
        covering = sorted(f.id for f in self.active_freezes() if f.covers(agent, action.environment, action.target))
        windows = self._windows_for(agent, action)
        fp = fingerprint(agent, action, self.policy.version)
        try:
            with self.store.transaction() as tx:
                why = rollback_pass.use(self.audit, tx, rollback, agent, fp, covering, windows)
        except StoreError as exc:
            raise GuardUnavailable(f"the abort under freeze could not be checked: {exc}") from exc
        if why is not None:
            return why
        self._count("freeze_passes", rollback.rollout_id)
        return {"guard": "freeze_pass", "rollout_id": rollback.rollout_id, "entry": rollback.entry,
                "freezes": covering, "windows": windows}

    def _breakers_review(self, agent: str, action: Action, decision: Decision, now: datetime) -> Decision:
        # `review` looked at the store's generations for the freezes a moment ago: one look per proposal
        # (on SQLite a stat() of the sidecar, which on the event loop lets the audit writer take the GIL).
        table = self.breakers(look=False)
        if not table:
            return decision
        cool_down = breaker_settings(self.guards).cool_down
        for target in (AGENT_WIDE, action.target or None):
            if target is None:
                continue
            found = table.get((agent, target))
            if found is None or found.effective(now, cool_down) is not State.open:
                continue
            rule = f"breaker:{agent}" + (f"@{target}" if target else "")
            reason = f"circuit breaker open for {found.scope()} since {stamp(found.opened_at)}: {found.reason}; " \
                     f"autonomy returns after the cool-down and {self._successes()} successful actions"
            return freezes.add_requirement(decision, ApprovalRequirement(count=1, source=rule), rule, reason)
        return decision

    def _successes(self) -> int:
        return breaker_settings(self.guards).half_open_successes

    def _working_hours(self, agent: str, action: Action, decision: Decision, now: datetime,
                       findings: list[dict[str, Any]]) -> Decision:
        detector = self.guards.anomalies.working_hours
        hours = self._hours.get(agent)
        if detector is None or hours is None or any(hours[0].contains(now)):
            return decision
        detail = f"outside its working hours ({hours[1]})"
        findings.append({"detector": "working_hours", "enforce": detector.enforce, "trip": True, "detail": detail})
        if not detector.enforce:
            return decision
        rule = "anomaly:working_hours"
        return freezes.add_requirement(decision, ApprovalRequirement(count=1, source=rule), rule,
                                       f"agent {agent} is acting {detail}")

    def _first_action(self, agent: str, action: Action, classification: Classification, decision: Decision,
                      findings: list[dict[str, Any]]) -> Decision:
        detector = self.guards.anomalies.first_action
        if detector is None or (detector.environments and action.environment not in detector.environments):
            return decision
        target = action.target or action.environment
        if (agent, target) in self._seen or not self._first_time(agent, target):
            return decision
        detail = f"first action of agent {agent} on {target}"
        findings.append({"detector": "first_action", "enforce": detector.enforce, "trip": False, "detail": detail})
        if not detector.enforce or decision.value is not DecisionValue.allow:
            return decision
        rule = "anomaly:first_action"
        return freezes.add_requirement(decision, ApprovalRequirement(count=1, source=rule), rule,
                                       f"{detail}: a human looks at the first one (only this action)")

    def _first_time(self, agent: str, target: str) -> bool:
        try:
            with self.store.transaction(readonly=True) as tx:
                row = tx.fetchone("SELECT 1 AS seen FROM guard_seen WHERE agent = ? AND target = ?", (agent, target))
        except StoreError as exc:
            raise GuardUnavailable(f"the first-action detector could not read the store: {exc}") from exc
        if row is not None:
            self._seen.add((agent, target))
            return False
        return True

    # --- running executions ---------------------------------------------------------------------

    @contextlib.contextmanager
    def running(self, action_id: str, agent: str, action: Action,
                passed: frozenset[str] = frozenset()) -> Iterator[Cancellation]:
        """Run an execution under a Cancellation that a freeze in its scope triggers (but one in `passed`:
        a rollback past the freezes a human's abort under freeze named)."""
        cancellation = Cancellation()
        with self._running_lock:
            self._running[action_id] = Running(agent, action, cancellation, passed)
        try:
            # a freeze that landed between decision and start
            found = next((f for f in self.active_freezes() if f.id not in passed
                          and f.covers(agent, action.environment, action.target)), None)
            if found is not None:
                cancellation.cancel(f"freeze {found.id}: {found.reason}")
            with cancellable(cancellation):
                yield cancellation
        finally:
            with self._running_lock:
                self._running.pop(action_id, None)

    def _on_freeze_event(self, event: Event) -> None:
        try:
            active = self.active_freezes()
        except GuardUnavailable:
            _log.exception("could not reload freezes after a freeze event")
            return
        with self._running_lock:
            running = list(self._running.values())
        for item in running:
            for found in active:
                if found.id not in item.passed and \
                        found.covers(item.agent, item.action.environment, item.action.target):
                    if item.cancellation.cancel(f"freeze {found.id}: {found.reason}"):
                        self._count("cancelled", found.id)
                    break

    # --- kill switch ----------------------------------------------------------------------------

    def freeze(self, *, agent: str | None, environment: str | None, target: str | None, reason: str,
               by: str) -> Freeze:
        found = freezes.create_freeze(self.store, self.policy.doc, self.audit, agent=agent, environment=environment,
                                      target=target, reason=reason, by=by, now=self.clock())
        self._on_freeze_event(Event(Channel.freezes, 0, None))
        return found

    def thaw(self, freeze_id: str, *, by: str, groups: tuple[str, ...]) -> Freeze:
        try:
            found = freezes.thaw_freeze(self.store, self.audit, freeze_id, by=by, groups=groups,
                                        thaw_by=self.guards.thaw_by, now=self.clock())
        except FreezeError as exc:
            with contextlib.suppress(Exception):
                self.audit.append(GUARD_REFUSED, {"op": "thaw", "freeze_id": freeze_id[:64], "human": by,
                                                  "code": exc.code, "message": str(exc)})
            raise
        return found

    def listing(self, *, include_thawed: bool = False, limit: int = 200) -> list[Freeze]:
        """Freezes newest first as `GET /v1/freezes` shows them: what is in force comes from the log
        (a row deleted or marked thawed in the database still shows, as the gateway still honours it);
        `include_thawed` adds the rows thawed through the API."""
        active = self.active_freezes()
        if not include_thawed:
            return sorted(active, key=lambda f: (f.created_at, f.id), reverse=True)[:limit]
        with self.store.transaction(readonly=True) as tx:
            rows = freezes.list_freezes(tx, include_thawed=True, limit=limit)
        seen = {f.id for f in active}
        found = [*active, *(f for f in rows if f.id not in seen and f.thawed_at is not None)]
        return sorted(found, key=lambda f: (f.created_at, f.id), reverse=True)[:limit]

    def status(self) -> dict[str, Any]:
        now = self.clock()
        cool_down = breaker_settings(self.guards).cool_down
        active = self.active_freezes()
        table = self._cached(self._breakers, Channel.guards, self._load_breakers)
        windows = [{"name": f.name, "environments": list(f.environments), "targets": list(f.targets),
                    "agents": list(f.agents), "window": [w.describe() for w in f.window], "reason": f.reason,
                    "in_force": any(w.contains(now) for w in f.window),
                    "approvers": f.approvers.model_dump(by_alias=True) if f.approvers else None}
                   for f in self.guards.freezes]
        anomalies = {name: getattr(self.guards.anomalies, name).model_dump(mode="json")
                     for name in type(self.guards.anomalies).model_fields
                     if getattr(self.guards.anomalies, name) is not None}
        return {
            "time": stamp(now),
            "freezes": [f.to_json() for f in active],
            "change_freezes": windows,
            "breakers": [b.to_json(now, cool_down) for b in table.values()
                         if b.effective(now, cool_down) is not State.closed],
            "breaker_settings": self.guards.breakers.model_dump(mode="json") if self.guards.breakers else None,
            "anomalies": anomalies,
            "thaw_by": list(self.guards.thaw_by),
            "decision_timeout": self.guards.decision_timeout,
        }

    # --- alerts ---------------------------------------------------------------------------------

    def _queue_alerts(self, alerts: list[Alert]) -> None:
        """Called after the batch that fired them committed (on the audit writer's thread, which must
        not wait for its own queue): the audit entry (whose batch stages its webhooks, interlock.gate.webhook)
        and counters go on a thread of ours."""
        for alert in alerts:
            self._count("alerts", alert.detector, "enforced" if alert.enforce else "shadow")
            if alert.tripped:
                self._count("trips", alert.detector)
        self._alerts.put(alerts)
        if self._alert_thread is None or not self._alert_thread.is_alive():
            self._alert_thread = threading.Thread(target=self._send_alerts, name="interlock-guard-alerts",
                                                  daemon=True)
            self._alert_thread.start()

    def _send_alerts(self) -> None:
        while (alerts := self._alerts.get()) is not None:
            for alert in alerts:
                try:
                    self.audit.append(GUARD_TRIPPED, alert.to_json())
                except Exception:
                    _log.exception("could not audit a guard alert (%s)", alert.detector)

    # --- metrics ----------------------------------------------------------------------------------

    def _count(self, *key: str) -> None:
        with self._counts_lock:  # request threads, the listener and the audit writer all count
            self.counts[key] = self.counts.get(key, 0) + 1

    def collector(self) -> Collector:
        return _Metrics(self)


class _Metrics(Collector):
    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    def collect(self) -> Iterator[Any]:
        counts = dict(self.guard.counts)
        alerts = CounterMetricFamily("interlock_guard_alerts", "Anomaly detector alerts", labels=["detector", "mode"])
        trips = CounterMetricFamily("interlock_guard_trips", "Breakers tripped by detectors", labels=["detector"])
        denials = CounterMetricFamily("interlock_guard_freeze_denials", "Proposals denied by a freeze")
        cancelled = CounterMetricFamily("interlock_guard_cancelled", "Executions cancelled by a freeze")
        for key, value in counts.items():
            if key[0] == "alerts":
                alerts.add_metric([key[1], key[2]], value)
            elif key[0] == "trips":
                trips.add_metric([key[1]], value)
        denials.add_metric([], sum(v for k, v in counts.items() if k[0] == "freeze_denials"))
        cancelled.add_metric([], sum(v for k, v in counts.items() if k[0] == "cancelled"))
        frozen = GaugeMetricFamily("interlock_guard_active_freezes", "Active kill-switch freezes (cached)")
        frozen.add_metric([], len(self.guard._freezes.value or ()))
        yield from (alerts, trips, denials, cancelled, frozen)


