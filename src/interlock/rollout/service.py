"""Rollouts: submit (decide every member, one approval), humans' commands, and the runner's `tick`.

A rollout sits above the Gateway (DESIGN.md §9): each target's step is `Gateway.propose`, decided,
gated and audited like any action. What the rollout adds:

- **one approval** for the whole rollout: every member's forward and rollback action is decided at
  submission (a deny on any member refuses the rollout, nothing runs); the humans approve once, and
  that approval issues one single-use grant per (target, payload) fingerprint, forward and rollback,
  valid until the rollout's `progressDeadline` (invariant 5 per target: docs/design-deviations.md);
- **durable progress**: the `rollouts` row is updated compare-and-set, and a target is marked
  `started` (durably, audited) before its action runs, so a runner that dies mid-step leaves `started`
  behind, which the next runner turns into `outcome_unknown` and a pause: never a repeat. The target's
  `started` and `changed` ride in the Gateway's own durable batches (`execution.started`,
  `execution.finished`: gateway.riding, `_ride_batch`): a target costs the runner no commit of its own;
- **rollback** in reverse order of change, without analysis, of changed targets only.

`tick` moves one rollout as far as it can without waiting (a pause, an analysis interval) and is what
the server's leased runner calls; times come from the injected clock.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any

import orjson

from interlock.audit.events import AuditEvent
from interlock.classify.registry import classify
from interlock.execute.result import ExecutionError
from interlock.fingerprint import fingerprint as action_fingerprint
from interlock.gate import repo as gate_repo
from interlock.gate.clock import Clock, parse_stamp, stamp, system_clock
from interlock.gate.events import GRANT_CONSUMED, GRANT_ISSUED
from interlock.gate.quorum import eligible_humans, evaluate, humans_of, possible
from interlock.gate.requests import ApprovalRequest, Grant, RequestState, RequestStatus
from interlock.gate.service import Gate, GateError
from interlock.gateway import Gateway, GatewayError, GatewayUnavailable, Riders, State, riding
from interlock.guard import freezes
from interlock.guard.rollback_pass import Pass
from interlock.identity import AuthError, Principal, require_human
from interlock.model import Action, ApprovalRequirement, Classification, DecisionValue, Kind, Risk
from interlock.policy import Policy, decide
from interlock.policy.testing import context_for
from interlock.rollout import checks, model, rehearsals
from interlock.rollout import terraform as tf_rollback
from interlock.rollout.checks import Measurement, Phase
from interlock.rollout.model import Plan, RolloutError, RolloutSpec
from interlock.store import Store, StoreError, Transaction
from interlock.store.events import Channel, publish


class RolloutPhase(StrEnum):
    pending_approval = "pending_approval"
    progressing = "progressing"
    paused = "paused"
    rolling_back = "rolling_back"
    succeeded = "succeeded"
    rolled_back = "rolled_back"
    failed = "failed"  # a rollback step failed: a human takes over
    denied = "denied"  # a human denied the approval
    aborted = "aborted"  # aborted before anything changed
    expired = "expired"  # nobody approved it within the policy's approval_ttl
    invalidated = "invalidated"  # the policy changed before it was approved: submitted again or not at all


TERMINAL = frozenset({RolloutPhase.succeeded, RolloutPhase.rolled_back, RolloutPhase.failed,
                      RolloutPhase.denied, RolloutPhase.aborted, RolloutPhase.expired, RolloutPhase.invalidated})

#: Target states. `changed` / `failed` / `outcome_unknown` are what a rollback takes back.
UNTOUCHED, STARTED, CHANGED, FAILED, UNKNOWN = "untouched", "started", "changed", "failed", "outcome_unknown"
ROLLBACK_STARTED, ROLLED_BACK, ROLLBACK_FAILED = "rollback_started", "rolled_back", "rollback_failed"
TAKEN_BACK = (CHANGED, FAILED, UNKNOWN, ROLLBACK_STARTED)

MeasureFn = Callable[..., Measurement]


class CommandError(Exception):
    """A refused command (promote, pause, …): `code` names it, the message says what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Rollout:
    id: str
    agent: str
    fingerprint: str
    policy_version: str
    spec: RolloutSpec
    phase: RolloutPhase
    state: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int = 0
    #: The members' decisions (state["decisions"], most of the state, fixed at submission) are stored in a
    #: column of their own and not rewritten with the state; False for a row from before that column.
    decisions_apart: bool = True
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list, repr=False)
    #: writes a change makes in its own transaction besides the row and its events (a grant exchange)
    in_tx: list[Callable[[Transaction], None]] = field(default_factory=list, repr=False)

    @property
    def targets(self) -> dict[str, dict[str, Any]]:
        targets: dict[str, dict[str, Any]] = self.state["targets"]
        return targets

    def to_json(self) -> dict[str, Any]:
        members = list(self.state["members"])
        steps = []
        for i, step in enumerate(self.spec.steps):
            body = step.model_dump(mode="json", by_alias=True, exclude_none=True)
            count = self.state["counts"][i]
            steps.append({"index": i, "step": body, **({"targets": count, "wave": self.state["waves"][i]}
                                                       if count is not None else {}),
                          "state": "done" if i < self.state["step"] else
                          ("current" if i == self.state["step"] else "next")})
        return {
            "id": self.id, "name": self.spec.name, "agent": self.agent, "fingerprint": self.fingerprint,
            "phase": self.phase.value, "reason": self.state.get("reason", ""), "step": self.state["step"],
            "group": self.spec.group, "kind": self.spec.kind.value,
            "members": members, "steps": steps,
            "targets": [{"name": t, **self.targets[t]} for t in members],
            "analysis": self.state.get("analysis"), "approval": self.state.get("approval"),
            "deadline": self.state.get("deadline"), "abort_policy": self.spec.abort_policy,
            "rollout": self.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
            "created_at": stamp(self.created_at), "updated_at": stamp(self.updated_at),
        }


_COLUMNS = ("id, agent, fingerprint, policy_version, spec_json, state_json, phase, created_at, updated_at, version, "
            "decisions_json")


def _dumps(value: Any) -> str:
    # orjson: the state holds every member's decisions and is written once per target (10x json.dumps)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")


_SPECS: dict[str, RolloutSpec] = {}


def _spec(text: str) -> RolloutSpec:
    """The parsed rollout document (immutable once stored: parsed once per process, not per unit of work)."""
    found = _SPECS.get(text)
    if found is None:
        if len(_SPECS) > 1000:
            _SPECS.clear()
        found = _SPECS[text] = RolloutSpec.model_validate_json(text)
    return found


class _Stale(Exception):
    """The rollout's row moved on since the version a change started from (rolled back, then retried)."""


def _copy(rollout: Rollout) -> Rollout:
    """A rollout to change without touching the one kept in memory (a rolled back change leaves it as it was)."""
    # a JSON round trip: the state is plain JSON, and this is several times faster than copy.deepcopy; the
    # decisions, fixed at submission and never changed in place, are shared
    state = orjson.loads(orjson.dumps(_without_decisions(rollout.state)))
    state["decisions"] = rollout.state["decisions"]
    return replace(rollout, state=state, events=[], in_tx=[])


def _without_decisions(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k != "decisions"}


def _state_json(rollout: Rollout) -> str:
    """The state as its row's `state_json` holds it: without the decisions once they have a column."""
    return _dumps(_without_decisions(rollout.state) if rollout.decisions_apart else rollout.state)


def _row(row: Any) -> Rollout:
    state = orjson.loads(row["state_json"])
    decisions = row["decisions_json"]
    if decisions is not None:
        state["decisions"] = orjson.loads(decisions)
    return Rollout(id=row["id"], agent=row["agent"], fingerprint=row["fingerprint"],
                   policy_version=row["policy_version"], spec=_spec(row["spec_json"]),
                   phase=RolloutPhase(row["phase"]), state=state,
                   created_at=parse_stamp(row["created_at"]), updated_at=parse_stamp(row["updated_at"]),
                   version=int(row["version"]), decisions_apart=decisions is not None)


class Rollouts:
    def __init__(self, store: Store, policy: Policy, audit: Any, gateway: Gateway, *,
                 clock: Clock = system_clock, measure: MeasureFn = checks.measure,
                 check_prometheus: bool = True) -> None:
        self.store, self.policy, self.audit, self.gateway = store, policy, audit, gateway
        self.clock, self.measure, self.check_prometheus = clock, measure, check_prometheus
        self._plans: dict[str, Plan] = {}
        self._written: dict[str, Rollout] = {}
        self._written_lock = threading.Lock()
        #: Rollouts whose targets' states ride in the Gateway's batches right now, each as last written
        #: (the base `_ride_batch` changes), and the (rollout, target, state) rides committed since.
        self._riding: dict[str, Rollout] = {}
        self._rode: set[tuple[str, str, str]] = set()
        #: Riding needs the batch hook of the log the Gateway records in; without it (another sink) the
        #: runner marks and records each target in commits of its own, as it did before.
        self._rides = callable(getattr(audit, "add_hook", None)) and gateway.audit is audit
        if self._rides:
            audit.add_hook(self._ride_batch)
        #: The one approval path: a rollout's approval is an ordinary request of the gate (same votes,
        #: quorum, expiry, webhooks), read on this service's clock.
        self.gate = gateway.gate if gateway.gate.clock is clock else Gate(
            store, policy, audit, clock=clock, notifier=gateway.gate.notifier)

    # --- submission -----------------------------------------------------------------------------

    def submit(self, agent: str, body: Any) -> Rollout:
        """Check, decide and store a rollout; RolloutError (audited) before anything runs."""
        try:
            return self._submit(agent, body)
        except RolloutError as exc:
            group = body.get("group") if isinstance(body, dict) else None
            self.audit.append(AuditEvent.ROLLOUT_REFUSED.value, {
                "agent": agent, "code": exc.code, "error": str(exc), "field": exc.field,
                "group": group if isinstance(group, str) else None})
            raise

    def _submit(self, agent: str, body: Any) -> Rollout:
        doc = self.policy.doc
        if agent not in doc.agents:
            raise RolloutError("unknown_agent", f"agent {agent!r} is not in the policy")
        spec = model.parse(body)
        plan = model.plan(spec, doc)
        if self.check_prometheus:
            for i, step in enumerate(spec.steps):
                for check in step.analysis.checks if step.analysis else ():
                    if check.prometheus is not None:
                        problem = checks.prometheus_answers(check.prometheus)
                        if problem is not None:
                            raise RolloutError("prometheus_unreachable", f"steps[{i}] check {check.name}: "
                                               f"{problem}: fix the url or start the server", f"steps[{i}].analysis")
        decisions: dict[str, Any] = {}
        requirements: list[ApprovalRequirement] = []
        needs: list[rehearsals.Needed] = []
        seen: list[Classification] = []
        rules: list[str] = []
        for target in plan.members:
            for direction, action in (("forward", plan.forward(target, doc)), ("rollback", plan.backward(target, doc))):
                try:
                    classification = self._classify(plan, target, direction, action)
                except tf_rollback.RevisionError as exc:
                    raise RolloutError("bad_revision", f"{exc}: nothing ran", "rollback.payload") from None
                decision = decide(self.policy, agent, action, classification)
                seen.append(classification)
                rules.extend(r for r in decision.rules if r not in rules)
                decisions.setdefault(target, {})[direction] = {
                    "decision": decision.value.value, "risk": decision.risk.value, "rules": list(decision.rules),
                    "summary": classification.summary, **_planned_at_rollback(classification)}
                if decision.value is DecisionValue.deny:
                    raise RolloutError("policy_denied", f"the {direction} action on {target} is denied "
                                       f"({', '.join(decision.rules)}: {'; '.join(decision.reasons)}): a deny on any "
                                       "member denies the rollout; nothing ran", "group")
                if decision.value is DecisionValue.sandbox_required:
                    needs.append(rehearsals.Needed(target, direction, action, decision.sandbox))
                    rehearsals.twin_for(doc, needs[-1])  # a member without a twin: refused before any rehearsal
                    continue
                requirements.extend(r for r in decision.approvals if r not in requirements)
        rollout_id = "rol_" + secrets.token_hex(10)
        evidence: dict[str, Any] | None = None
        if needs:
            templated = {"forward": "{target" in str(spec.payload.get("url", "")),
                         "rollback": "{target" in str(spec.rollback.payload.get("url", ""))}
            proven = rehearsals.rehearse(self.gateway, agent, rollout_id, needs, templated)
            for need in needs:  # decided again as the Gateway decides a promotion: with the evidence attached
                classification = self.gateway.classify(need.action)
                decision = decide(self.policy, agent, need.action, classification, sandboxed=True)
                shown = proven[(need.target, need.direction)]
                decisions[need.target][need.direction].update(
                    decision=decision.value.value, risk=decision.risk.value, sandboxed=True,
                    rules=list(decision.rules), evidence=shown["id"], rehearsal=shown.get("description", ""))
                rules.extend(r for r in decision.rules if r not in rules)
                if decision.value is DecisionValue.deny:
                    raise RolloutError("policy_denied", f"the {need.direction} action on {need.target} is denied "
                                       f"after its rehearsal ({', '.join(decision.rules)}: "
                                       f"{'; '.join(decision.reasons)}): a deny on any member denies the rollout; "
                                       "nothing ran", "group")
                requirements.extend(r for r in decision.approvals if r not in requirements)
            ids = sorted({e["id"] for e in proven.values()})
            evidence = {"id": ids[0], "rehearsals": ids, "summary": f"{len(ids)} rehearsal(s) on twins succeeded",
                        "description": "rehearsed on the twins before this request opened: " + "; ".join(
                            sorted({str(e.get("description") or e.get("summary")) for e in proven.values()}))[:2000]}
        owner = doc.agents[agent].owner
        humans = humans_of(doc.humans)
        if requirements and not possible(requirements, humans, agent, owner).satisfied:
            raise RolloutError("unsatisfiable", "no set of eligible humans can approve this rollout "
                               f"({possible(requirements, humans, agent, owner).describe()}; the owner {owner} never "
                               "counts): fix the policy's humans or groups")
        now = self.clock()
        fp = model.fingerprint(agent, plan, self.policy.version)
        phase = RolloutPhase.pending_approval if requirements else RolloutPhase.progressing
        state: dict[str, Any] = {
            "members": list(plan.members), "counts": list(plan.counts),
            "waves": [plan.wave_of(i) if c is not None else None for i, c in enumerate(plan.counts)],
            "step": 0, "order": [], "analysis": None, "pause": None, "reason": "", "resume_to": None,
            "targets": {t: {"state": UNTOUCHED} for t in plan.members},
            "decisions": decisions,
            "approval": {"request_id": None, "requirements": [r.describe() for r in requirements],
                         "eligible": list(eligible_humans(requirements, humans, agent, owner)),
                         "approved_by": [], "still_needs": "" if not requirements else
                         evaluate(requirements, humans, agent, owner, []).describe()} if requirements else None,
            "deadline": None if requirements else stamp(now + timedelta(seconds=spec.progress_deadline)),
        }
        rollout = Rollout(rollout_id, agent, fp, self.policy.version, spec, phase, state, now, now)
        with self.store.transaction() as tx:
            tx.execute(f"INSERT INTO rollouts({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (rollout_id, agent, fp, self.policy.version, spec.model_dump_json(by_alias=True),
                        _state_json(rollout), phase.value, stamp(now), stamp(now), 0, _dumps(decisions)))
            self.audit.append_in(tx, AuditEvent.ROLLOUT_PROPOSED.value, {
                "rollout_id": rollout_id, "agent": agent, "fingerprint": fp, "policy_version": self.policy.version,
                "group": spec.group, "members": list(plan.members),
                "rollout": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
                "decisions": decisions, "requirements": state["approval"]["requirements"] if requirements else [],
                "phase": phase.value})
            if requirements:
                request = self.gate.open_rollout(
                    tx, agent=agent, rollout_id=rollout_id, fingerprint=fp, action=_group_action(plan, doc),
                    classification=_summed(rollout, seen), rules=tuple(rules), requirements=tuple(requirements),
                    rollout=approver_view(rollout), evidence=evidence)
                state["approval"]["request_id"] = request.id
                tx.execute("UPDATE rollouts SET state_json = ? WHERE id = ?", (_state_json(rollout), rollout_id))
            publish(tx, Channel.rollouts, {"id": rollout_id})
        return rollout

    # --- reading --------------------------------------------------------------------------------

    def get(self, rollout_id: str) -> Rollout:
        with self.store.transaction(readonly=True) as tx:
            row = tx.fetchone(f"SELECT {_COLUMNS} FROM rollouts WHERE id = ?", (rollout_id,))
        if row is None:
            raise CommandError("unknown_rollout", f"no rollout {rollout_id!r}: see `interlock rollout list`")
        return _row(row)

    def all(self, limit: int = 100) -> list[Rollout]:
        with self.store.transaction(readonly=True) as tx:
            rows = tx.fetchall(f"SELECT {_COLUMNS} FROM rollouts ORDER BY created_at DESC, id LIMIT ?", (limit,))
        return [_row(r) for r in rows]

    def due(self) -> list[str]:
        """Rollouts the runner has work on (it waits out pauses and intervals inside `tick`)."""
        with self.store.transaction(readonly=True) as tx:
            rows = tx.fetchall("SELECT id FROM rollouts WHERE phase IN ('progressing', 'rolling_back', "
                               "'pending_approval') ORDER BY created_at, id")
        return [str(r["id"]) for r in rows]

    def plan_of(self, rollout: Rollout) -> Plan:
        found = self._plans.get(rollout.id)
        if found is None:
            counts = tuple(rollout.state["counts"])
            found = self._plans[rollout.id] = Plan(rollout.spec, tuple(rollout.state["members"]), counts)
        return found

    # --- writing --------------------------------------------------------------------------------

    @contextmanager
    def _change(self, rollout_id: str) -> Iterator[Rollout]:
        """Read, let the caller change, and write back one rollout in one transaction under its lock,
        with the audit entries it queued (`rollout.events`) in the same transaction."""
        with self._changing(rollout_id) as (rollout, _tx):
            yield rollout

    def _update(self, known: Rollout, change: Callable[[Rollout], None]) -> Rollout:
        """`change` applied to the rollout as this process last wrote it (`known`), without reading its row:
        the write is a compare-and-set on its version. If anyone wrote it since (a human's command), the
        transaction rolls back and `change` runs again on the row read under its lock. The runner's
        per-target writes go this way: one round trip fewer each on PostgreSQL. Returns the written rollout."""
        try:
            with self._changing(known.id, known=known) as (rollout, _tx):
                change(rollout)
        except _Stale:
            with self._changing(known.id) as (rollout, _tx):
                change(rollout)
        return rollout

    @contextmanager
    def _changing(self, rollout_id: str, *, known: Rollout | None = None) -> Iterator[tuple[Rollout, Transaction]]:
        """`_change`, with the transaction (the gate's records change in it too). With `known`: a copy of it
        instead of a read, and _Stale (rolled back) when its version is no longer the row's (see `_update`)."""
        with self.store.transaction() as tx:
            # Every writer of a rollout's row takes the audit lock before the row's: the log's writer holds
            # it when its batch writes the rows of riding targets (`_ride_batch`). A `known` copy's first
            # statement on the row is its update, below, in the pipeline after the lock.
            if known is not None:
                rollout = _copy(known)
            else:
                tx.lock("audit")
                # PostgreSQL: the row lock is the rollout's lock (one round trip, not an advisory lock and a
                # read); SQLite: the transaction already holds the database's only write lock.
                row = tx.fetchone(f"SELECT {_COLUMNS} FROM rollouts WHERE id = ?"
                                  + (" FOR UPDATE" if tx.dialect == "postgresql" else ""), (rollout_id,))
                if row is None:
                    raise CommandError("unknown_rollout", f"no rollout {rollout_id!r}: see `interlock rollout list`")
                rollout = _row(row)
            before, step_before = rollout.phase, rollout.state["step"]
            yield rollout, tx
            now = self.clock()
            for index in range(step_before, min(rollout.state["step"], len(rollout.spec.steps))):
                step = rollout.spec.steps[index]
                rollout.events.append((AuditEvent.ROLLOUT_STEP.value, {
                    "step": index, "state": "finished", "wave": rollout.state["waves"][index],
                    "what": step.model_dump(mode="json", by_alias=True, exclude_none=True)}))
            if rollout.phase is not before and not any(e == AuditEvent.ROLLOUT_TRANSITION.value
                                                       for e, _ in rollout.events):
                self._transition(rollout, before, "runner")
            self._issue_grants(tx, rollout)
            for write in rollout.in_tx:
                write(tx)
            # PostgreSQL: the row, the audit lock and head go out in one round trip, the entries and the
            # event in a second (pipeline mode); the row's count is checked once they are all answered.
            with tx.pipelined():
                tx.lock("audit")
                written = tx.send("UPDATE rollouts SET state_json = ?, phase = ?, updated_at = ?, "
                                  "version = version + 1 WHERE id = ? AND version = ?",
                                  (_state_json(rollout), rollout.phase.value, stamp(now), rollout_id,
                                   rollout.version))
                self.audit.append_many_in(tx, [(event, {"rollout_id": rollout_id, **data})
                                               for event, data in rollout.events])
                publish(tx, Channel.rollouts, {"id": rollout_id, "phase": rollout.phase.value})
                if written() != 1:  # read under the row lock it is always 1; a `known` copy may be outdated
                    raise _Stale(rollout_id)
        rollout.events, rollout.in_tx, rollout.version, rollout.updated_at = [], [], rollout.version + 1, now
        self._remember(rollout)

    def _remember(self, rollout: Rollout) -> None:
        """Keep the rollout as this process last wrote it, so the runner's next unit needs no read of its
        own (every change still reads the row under its lock). Never replaced by an older version."""
        with self._written_lock:
            known = self._written.get(rollout.id)
            if rollout.phase in TERMINAL:
                self._written.pop(rollout.id, None)
            elif known is None or known.version < rollout.version:
                self._written[rollout.id] = rollout

    def _transition(self, rollout: Rollout, before: RolloutPhase, by: str) -> None:
        rollout.events.append((AuditEvent.ROLLOUT_TRANSITION.value, {
            "from": before.value, "to": rollout.phase.value, "step": rollout.state["step"],
            "reason": rollout.state.get("reason", ""), "by": by}))

    def _issue_grants(self, tx: Transaction, rollout: Rollout) -> None:
        """On the approval that satisfied the quorum: one single-use grant per (target, payload) whose
        decision needs approval, forward and rollback, valid until the progress deadline."""
        pending = rollout.state.pop("issue_grants", None)
        if not pending:
            return
        now = self.clock()
        expires = parse_stamp(rollout.state["deadline"])
        doc = self.policy.doc
        plan = self.plan_of(rollout)
        owner = doc.agents[rollout.agent].owner
        humans = humans_of(doc.humans)
        issued = 0
        decided = rollout.state["decisions"]
        for target in plan.members:
            for direction, action in (("forward", plan.forward(target, doc)), ("rollback", plan.backward(target, doc))):
                try:
                    classification = self._classify(plan, target, direction, action)
                except tf_rollback.RevisionError:
                    continue  # changed since submission: no grant; at rollback time the plan is decided alone
                sandboxed = bool(decided.get(target, {}).get(direction, {}).get("sandboxed"))
                decision = decide(self.policy, rollout.agent, action, classification, sandboxed=sandboxed)
                if decision.value is not DecisionValue.approval_required:
                    continue
                fp = action_fingerprint(rollout.agent, action, self.policy.version)
                request = ApprovalRequest(
                    id="apr_" + secrets.token_hex(10), agent=rollout.agent, owner=owner, action=action,
                    fingerprint=fp, policy_version=self.policy.version, classification=classification,
                    rules=decision.rules, requirements=decision.approvals,
                    eligible=eligible_humans(decision.approvals, humans, rollout.agent, owner),
                    state=RequestState.approved, state_reason=f"approved with rollout {rollout.id} by "
                    f"{', '.join(pending)}", created_at=now, expires_at=expires, decided_at=now,
                    rollout_id=rollout.id)
                gate_repo.insert_request(tx, request)
                grant = Grant(id="gnt_" + secrets.token_hex(10), request_id=request.id, agent=rollout.agent,
                              fingerprint=fp, policy_version=self.policy.version, created_at=now, expires_at=expires)
                gate_repo.insert_grant(tx, grant)
                receipt = self.audit.append_in(tx, GRANT_ISSUED, {
                    "grant_id": grant.id, "request_id": request.id, "action_id": None, "agent": rollout.agent,
                    "fingerprint": fp, "expires_at": stamp(expires), "approved_by": list(pending),
                    "rollout_id": rollout.id, "target": target})
                gate_repo.bind_grant(tx, grant.id, issued_idx=receipt.index)
                issued += 1
        rollout.state["approval"]["grants"] = issued

    def _classify(self, plan: Plan, target: str, direction: str, action: Action) -> Classification:
        """What a member's action would do. A terraform rollback revision is judged by the inverse of the
        forward plan: it is planned only when the rollback runs (rollout/terraform.py)."""
        if direction == "rollback" and tf_rollback.is_revision(action.kind, action.payload):
            tf_rollback.check_revision(self.policy, action)
            expected = tf_rollback.expected_rollback(self.policy, plan.forward(target, self.policy.doc))
            return tf_rollback.classify_expected(self.policy, action, expected)
        return self.gateway.classify(action)

    # --- humans ---------------------------------------------------------------------------------

    def approve(self, rollout_id: str, principal: Principal, comment: str = "") -> Rollout:
        """A vote on the rollout's approval request: the same as `interlock approvals approve REQUEST`."""
        return self._vote(rollout_id, principal, "approve", comment)

    def deny(self, rollout_id: str, principal: Principal, reason: str) -> Rollout:
        return self._vote(rollout_id, principal, "deny", reason)

    def _vote(self, rollout_id: str, principal: Principal, verdict: str, reason: str) -> Rollout:
        _human(principal)
        rollout = self.get(rollout_id)
        request_id = (rollout.state.get("approval") or {}).get("request_id")
        if rollout.phase is not RolloutPhase.pending_approval or request_id is None:
            raise CommandError(rollout.phase.value,
                               f"rollout {rollout_id} is {rollout.phase.value}: nothing to approve")
        vote = self.gate.approve if verdict == "approve" else self.gate.deny
        try:
            vote(request_id, principal, reason)
        except GateError as exc:
            self.follow(rollout_id)  # a refusal may have recorded the request's expiry
            raise CommandError(exc.code, str(exc)) from None
        self.follow(rollout_id)
        return self.get(rollout_id)

    def follow(self, rollout_id: str) -> Rollout:
        """Bring a rollout waiting for its approval up to date with its request (votes may come through
        `/v1/approvals`, the console or `interlock approvals`): the runner does this each round."""
        rollout = self.get(rollout_id)
        if rollout.phase is RolloutPhase.pending_approval:
            self._approval_unit(rollout)
            rollout = self.get(rollout_id)
        return rollout

    def _approval_unit(self, rollout: Rollout) -> bool:
        """A pending rollout follows its approval request: still pending (its votes so far shown), or
        approved (its grant used once, here, to start it and issue the per-target grants), denied,
        expired or invalidated. True when the rollout moved on."""
        request_id = rollout.state["approval"]["request_id"]
        try:
            status: RequestStatus | None = self.gate.status(request_id)
        except GateError:
            status = None  # its request is gone from the store: never approved (fail closed)
        if status is not None and status.request.state is RequestState.pending:
            approval = rollout.state["approval"]
            if approval["approved_by"] == list(status.approved_by) and approval["still_needs"] == status.still_needs:
                return False
            with self._change(rollout.id) as r:
                if r.phase is RolloutPhase.pending_approval:
                    r.state["approval"].update(approved_by=list(status.approved_by), still_needs=status.still_needs)
            return False
        with self._changing(rollout.id) as (r, tx):
            if r.phase is not RolloutPhase.pending_approval:
                return True
            self._settle(tx, r, status)
        return True

    def _settle(self, tx: Transaction, rollout: Rollout, status: RequestStatus | None) -> None:
        before = rollout.phase
        request = status.request if status is not None else None
        state = request.state if request is not None else RequestState.invalidated
        by = "gate"
        if state is RequestState.approved and status is not None:
            grant = self.gate.use_grant_in(tx, rollout.agent, rollout.fingerprint, consumer=rollout.id)
            if grant is None:
                rollout.phase = RolloutPhase.expired
                rollout.state["reason"] = ("approved, but its grant expired before the rollout could start: "
                                           "submit it again")
            else:
                counted = list(status.approved_by)
                by = ", ".join(counted)
                rollout.phase = RolloutPhase.progressing
                rollout.state["reason"] = f"approved by {by}"
                rollout.state["approval"].update(approved_by=counted, still_needs=status.still_needs,
                                                 grant=grant.id)
                rollout.state["deadline"] = stamp(self.clock() + timedelta(seconds=rollout.spec.progress_deadline))
                rollout.state["issue_grants"] = counted
        elif state is RequestState.denied and request is not None:
            rollout.phase = RolloutPhase.denied
            rollout.state["reason"] = request.state_reason
        elif state is RequestState.expired:
            rollout.phase = RolloutPhase.expired
            rollout.state["reason"] = "nobody approved it within the policy's approval_ttl: submit it again"
        else:  # invalidated (a policy change), gone, or consumed by anything but this rollout: never start
            rollout.phase = RolloutPhase.invalidated
            why = request.state_reason if request is not None else "its approval request is missing from the store"
            rollout.state["reason"] = f"its approval request ended ({why}): submit it again"
        self._transition(rollout, before, by)

    def promote(self, rollout_id: str, principal: Principal) -> Rollout:
        """Go past the current pause or analysis step (Argo's promote)."""
        _human(principal)
        with self._change(rollout_id) as rollout:
            step = rollout.state["step"]
            current = rollout.spec.steps[step] if step < len(rollout.spec.steps) else None
            waiting = rollout.phase in (RolloutPhase.paused, RolloutPhase.progressing) and current is not None and \
                (current.pause is not None or current.analysis is not None) and \
                rollout.state.get("resume_to") in (None, RolloutPhase.progressing.value) and \
                not any(t["state"] in (UNKNOWN, FAILED) for t in rollout.targets.values())
            if not waiting:
                raise CommandError("not_promotable", f"rollout {rollout_id} is {rollout.phase.value} at step {step}: "
                                   "promote passes a pause or analysis step; use resume after a human pause or "
                                   "abort to roll back")
            before = rollout.phase
            rollout.state.update(step=step + 1, pause=None, analysis=None, resume_to=None,
                                 reason=f"promoted past step {step} by {principal.name}")
            rollout.phase = RolloutPhase.progressing
            self._transition(rollout, before, principal.name)
        return self.get(rollout_id)

    def pause(self, rollout_id: str, principal: Principal, reason: str = "") -> Rollout:
        _human(principal)
        with self._change(rollout_id) as rollout:
            if rollout.phase not in (RolloutPhase.progressing, RolloutPhase.rolling_back,
                                     RolloutPhase.pending_approval):
                raise CommandError("not_running", f"rollout {rollout_id} is {rollout.phase.value}: nothing to pause")
            before = rollout.phase
            if before is RolloutPhase.pending_approval:
                raise CommandError("not_running", f"rollout {rollout_id} waits for its approval: nothing runs yet")
            rollout.state["resume_to"] = before.value
            rollout.phase = RolloutPhase.paused
            rollout.state["reason"] = f"paused by {principal.name}" + (f": {reason}" if reason else "")
            self._transition(rollout, before, principal.name)
        return self.get(rollout_id)

    def resume(self, rollout_id: str, principal: Principal) -> Rollout:
        """Continue after a pause. Targets left `outcome_unknown` count as changed: the human checked them."""
        _human(principal)
        with self._change(rollout_id) as rollout:
            if rollout.phase is not RolloutPhase.paused:
                raise CommandError("not_paused", f"rollout {rollout_id} is {rollout.phase.value}: nothing to resume")
            for target in rollout.targets.values():
                if target["state"] == UNKNOWN:
                    target["state"] = CHANGED
                    target["message"] = f"outcome unknown; counted as changed by {principal.name}"
            before = rollout.phase
            rollout.phase = RolloutPhase(rollout.state.get("resume_to") or RolloutPhase.progressing.value)
            rollout.state.update(resume_to=None, reason=f"resumed by {principal.name}")
            self._transition(rollout, before, principal.name)
        return self.get(rollout_id)

    def abort(self, rollout_id: str, principal: Principal, reason: str = "", *, under_freeze: bool = False) -> Rollout:
        """Roll back every changed target now (fast track), whatever the abortPolicy. `under_freeze`: a
        human who may thaw the freezes lets exactly these rollbacks past them (guard.rollback_pass)."""
        _human(principal)
        if not under_freeze:
            return self._abort(rollout_id, principal, reason, under_freeze=False)
        try:
            return self._abort(rollout_id, principal, reason, under_freeze=True)
        except CommandError as exc:  # a refused attempt to pass a freeze is audited, as a refused thaw is
            with suppress(Exception):
                self.audit.append(AuditEvent.GUARD_REFUSED.value, {
                    "op": "abort_under_freeze", "rollout_id": rollout_id[:64], "human": principal.name,
                    "code": exc.code, "message": str(exc)})
            raise

    def _abort(self, rollout_id: str, principal: Principal, reason: str, *, under_freeze: bool) -> Rollout:
        if under_freeze and not reason.strip():
            raise CommandError("reason_required", "an abort under freeze needs a reason: say why, e.g. "
                               "--reason \"incident 4711: take v2 back\"")
        with self._changing(rollout_id) as (rollout, tx):
            if rollout.phase in TERMINAL:
                raise CommandError(rollout.phase.value, f"rollout {rollout_id} is {rollout.phase.value} already")
            before = rollout.phase
            why = f"aborted by {principal.name}" + (" under freeze" if under_freeze else "") + \
                (f": {reason}" if reason else "")
            if under_freeze:
                rollout.state["freeze_pass"] = self._freeze_pass(tx, rollout, principal, reason)
            if before is RolloutPhase.pending_approval:
                rollout.phase = RolloutPhase.aborted
                self.gate.withdraw_in(tx, rollout.state["approval"]["request_id"],
                                                  f"rollout {rollout_id} was {why}")
            else:
                rollout.phase = RolloutPhase.rolling_back
                rollout.state["explicit_rollback"] = True
            rollout.state.update(reason=why, resume_to=None)
            self._transition(rollout, before, principal.name)
        return self.get(rollout_id)

    def _freeze_pass(self, tx: Transaction, rollout: Rollout, principal: Principal, reason: str) -> int:
        """Write the rollout.abort_under_freeze entry (its index): the human, the freezes and windows in force
        over the rollbacks to run, and their exact fingerprints. Refuses a human outside `guards.thaw_by`
        and a rollout no freeze covers (a plain abort does)."""
        doc = self.policy.doc
        human = doc.humans.get(principal.name)
        if not freezes.may_thaw(doc.guards.thaw_by, human.groups if human else ()):
            raise CommandError("not_eligible", f"{principal.name} may not roll back under a freeze: only members of "
                               f"{', '.join(doc.guards.thaw_by)} may (policy guards.thaw_by), as for a thaw")
        in_force = freezes.in_force(tx, freezes.Ledger(), self.audit)  # as the Gateway reads them: the log's
        plan = self.plan_of(rollout)
        now = self.clock()
        rollbacks, frozen, windows = [], set(), set()
        for target in reversed(rollout.state["order"]):
            if rollout.targets[target]["state"] not in (*TAKEN_BACK, STARTED):
                continue
            action = plan.backward(target, doc)
            rollbacks.append({"target": target,
                              "fingerprint": action_fingerprint(rollout.agent, action, self.policy.version)})
            frozen |= {f.id for f in in_force if f.covers(rollout.agent, action.environment, action.target)}
            windows |= {f.name or str(i) for i, f in enumerate(doc.guards.freezes)
                        if freezes.window_in_force(f, rollout.agent, action, now)}
        if not rollbacks:
            raise CommandError("nothing_to_roll_back", f"rollout {rollout.id} changed no target yet: abort it "
                               "without --under-freeze")
        if not frozen and not windows:
            raise CommandError("not_frozen", f"no freeze or change-freeze window covers the rollbacks of rollout "
                               f"{rollout.id}: abort it without --under-freeze")
        receipt = self.audit.append_in(tx, AuditEvent.ROLLOUT_ABORT_UNDER_FREEZE.value, {
            "rollout_id": rollout.id, "agent": rollout.agent, "human": principal.name, "reason": reason,
            "freezes": sorted(frozen), "windows": sorted(windows), "rollbacks": rollbacks,
            "fingerprints": [r["fingerprint"] for r in rollbacks]})
        return int(receipt.index)

    # --- the runner -----------------------------------------------------------------------------

    def run_due(self, keep_going: Callable[[], bool] = lambda: True) -> int:
        """One round of the runner: every rollout with work, as far as each goes without waiting.
        `keep_going` (the lease's renewal) is asked between units: False stops the round."""
        moved = 0
        for rollout_id in self.due():
            if not keep_going():
                break
            moved += self.tick(rollout_id, keep_going)
        return moved

    def tick(self, rollout_id: str, keep_going: Callable[[], bool] = lambda: True) -> int:
        """Advance one rollout until it must wait; the number of units of work done."""
        units = 0
        rollout = self.get(rollout_id)
        while keep_going() and self._unit(rollout):
            units += 1
            with self._written_lock:
                written = self._written.pop(rollout_id, None)
            rollout = written if written is not None and written.version >= rollout.version else \
                self.get(rollout_id)
        return units

    def _unit(self, rollout: Rollout) -> bool:
        if rollout.phase is RolloutPhase.pending_approval:
            return self._approval_unit(rollout)
        if rollout.phase is RolloutPhase.progressing:
            return self._forward_unit(rollout)
        if rollout.phase is RolloutPhase.rolling_back:
            return self._rollback_unit(rollout)
        return False

    def _forward_unit(self, rollout: Rollout) -> bool:
        state, steps = rollout.state, rollout.spec.steps
        stuck = [t for t, s in rollout.targets.items() if s["state"] in (STARTED, ROLLBACK_STARTED)]
        if stuck:  # a runner died mid-step: the outcome is unknown, a human decides (never repeated)
            with self._change(rollout.id) as r:
                for t in stuck:
                    r.targets[t]["message"] = _no_outcome(r.targets[t])
                    r.targets[t]["state"] = UNKNOWN
                    r.events.append(_target_event(t, "forward", UNKNOWN, r, r.targets[t]["message"]))
                r.phase = RolloutPhase.paused
                r.state["reason"] = (f"outcome unknown on {', '.join(stuck)}: check them, then resume (counts them "
                                     "as changed) or abort (rolls them back)")
            return True
        if state["deadline"] and self.clock() >= parse_stamp(state["deadline"]) and state["step"] < len(steps):
            with self._change(rollout.id) as r:
                r.phase = RolloutPhase.paused
                r.state["reason"] = ("the progressDeadline passed and the rollout's grants expired: abort rolls "
                                     "back (with new approvals where the policy asks)")
            return True
        index = state["step"]
        if index >= len(steps):
            with self._change(rollout.id) as r:
                r.phase = RolloutPhase.succeeded
                r.state["reason"] = f"all {len(r.targets)} targets changed"
            return True
        step = steps[index]
        count = state["counts"][index]
        if count is not None:
            todo = [t for t in state["members"][:count] if rollout.targets[t]["state"] == UNTOUCHED]
            if not todo:
                with self._change(rollout.id) as r:
                    r.state["step"] = index + 1
                return True
            self._run_targets(rollout, todo[: rollout.spec.max_parallel], "forward")
            return True
        if step.pause is not None:
            return self._pause_unit(rollout, index, step.pause.duration)
        assert step.analysis is not None
        return self._analysis_unit(rollout, index)

    def _pause_unit(self, rollout: Rollout, index: int, duration: int | None) -> bool:
        pause = rollout.state.get("pause")
        now = self.clock()
        if pause is None or pause["step"] != index:
            with self._change(rollout.id) as r:
                r.state["pause"] = {"step": index, "until": stamp(now + timedelta(seconds=duration))
                                    if duration is not None else None}
                if duration is None:
                    r.phase = RolloutPhase.paused
                    r.state["reason"] = f"step {index} is `pause: {{}}`: waits for a human's promote"
            return True
        if pause["until"] is None:
            with self._change(rollout.id) as r:  # resumed at a pause {}: only promote passes it
                r.phase = RolloutPhase.paused
                r.state["reason"] = f"step {index} is `pause: {{}}`: waits for a human's promote"
            return True
        if now < parse_stamp(pause["until"]):
            return False
        with self._change(rollout.id) as r:
            r.state.update(step=index + 1, pause=None)
        return True

    def _analysis_unit(self, rollout: Rollout, index: int) -> bool:
        analysis = rollout.spec.steps[index].analysis
        assert analysis is not None
        run = rollout.state.get("analysis")
        now = self.clock()
        if run is None or run["step"] != index:
            run = {"step": index, "taken": 0, "failed": 0, "errors": 0, "consecutive_errors": 0,
                   "inconclusive": 0, "next_at": stamp(now), "last": []}
        if now < parse_stamp(run["next_at"]):
            return False
        doc = self.policy.doc
        changed = [t for t in rollout.state["order"] if rollout.targets[t]["state"] == CHANGED]
        found = [self.measure(check, t, doc.targets[t]) for check in analysis.checks for t in changed]
        phases = {m.phase for m in found}
        verdict = Phase.failed if Phase.failed in phases else Phase.error if Phase.error in phases else \
            Phase.inconclusive if Phase.inconclusive in phases else Phase.successful
        run = {**run, "taken": run["taken"] + 1, "last": [m.to_json() for m in found]}
        if verdict is Phase.failed:
            run["failed"] += 1
        if verdict is Phase.error:
            run["errors"] += 1
            run["consecutive_errors"] += 1
        else:
            run["consecutive_errors"] = 0
        if verdict is Phase.inconclusive:
            run["inconclusive"] += 1
        run["next_at"] = stamp(now + timedelta(seconds=analysis.interval or 0))
        run["verdict"] = verdict.value
        with self._change(rollout.id) as r:
            r.state["analysis"] = run
            r.events.append((AuditEvent.ROLLOUT_MEASUREMENT.value, {
                "step": index, "round": run["taken"], "phase": verdict.value,
                "measurements": run["last"]}))
            failing = [f"{m.check} on {m.target}: {m.message}" for m in found if m.phase in (Phase.failed, Phase.error)]
            if run["failed"] > analysis.failure_limit:
                self._fail(r, f"analysis at step {index} failed ({'; '.join(failing)[:1000]})")
            elif run["consecutive_errors"] > analysis.consecutive_error_limit:
                self._fail(r, f"analysis at step {index} errored {run['consecutive_errors']} times in a row "
                           f"({'; '.join(failing)[:1000]})")
            elif verdict is Phase.inconclusive:
                r.phase = RolloutPhase.paused
                r.state["reason"] = (f"analysis at step {index} is Inconclusive: promote continues, abort rolls "
                                     "back")
            elif run["taken"] >= analysis.count:
                r.state["step"] = index + 1
        return True

    def _fail(self, rollout: Rollout, why: str) -> None:
        if rollout.spec.abort_policy == "pause":
            rollout.phase = RolloutPhase.paused
            rollout.state["reason"] = f"{why}; abortPolicy pause: abort rolls back, resume continues"
            rollout.state["resume_to"] = RolloutPhase.progressing.value
        else:
            rollout.phase = RolloutPhase.rolling_back
            rollout.state["reason"] = f"{why}; rolling back the changed targets"

    def _rollback_unit(self, rollout: Rollout) -> bool:
        never_ran = [t for t, s in rollout.targets.items() if s["state"] == STARTED]
        if never_ran:  # its runner died mid-step: the outcome is unknown, and a rollback takes it back
            with self._change(rollout.id) as r:
                for t in never_ran:
                    r.targets[t]["message"] = _no_outcome(r.targets[t])
                    r.targets[t]["state"] = UNKNOWN
                    r.events.append(_target_event(t, "forward", UNKNOWN, r, r.targets[t]["message"]))
            return True
        todo = [t for t in reversed(rollout.state["order"]) if rollout.targets[t]["state"] in TAKEN_BACK]
        stuck = [t for t in todo if rollout.targets[t]["state"] == ROLLBACK_STARTED]
        if stuck:
            with self._change(rollout.id) as r:
                for t in stuck:
                    r.targets[t]["message"] = _no_outcome(r.targets[t])
                    r.targets[t]["state"] = ROLLBACK_FAILED
                    r.events.append(_target_event(t, "rollback", UNKNOWN, r, r.targets[t]["message"]))
                r.phase = RolloutPhase.paused
                r.state["resume_to"] = RolloutPhase.rolling_back.value
                r.state["reason"] = f"rollback outcome unknown on {', '.join(stuck)}: check them; resume continues"
            return True
        if not todo:
            with self._change(rollout.id) as r:
                r.phase = RolloutPhase.rolled_back
                taken = [t for t in r.state["order"] if r.targets[t]["state"] == ROLLED_BACK]
                r.state["reason"] = f"rolled back {len(taken)} target(s) ({', '.join(reversed(taken))}); " \
                    f"{len(r.targets) - len(taken)} never touched. Why: {r.state.get('reason', '')}"[:2000]
            return True
        target = todo[0]
        guard = self.gateway.guard
        if guard is not None and not rollout.state.get("explicit_rollback"):
            freeze = guard.freeze_for(rollout.agent, self.plan_of(rollout).backward(target, self.policy.doc))
            if freeze is not None:
                with self._change(rollout.id) as r:
                    r.phase = RolloutPhase.paused
                    r.state["resume_to"] = RolloutPhase.rolling_back.value
                    r.state["reason"] = (f"freeze {freeze.id} covers {target}: under a freeze a rollback runs only "
                                         "on a human's explicit `rollout abort`")
                return True
        if tf_rollback.is_revision(rollout.spec.kind, rollout.spec.rollback.payload):
            return self._revision_unit(rollout, target)
        self._run_targets(rollout, [target], "rollback")
        return True

    def _revision_unit(self, rollout: Rollout, target: str) -> bool:
        """A terraform rollback: plan the configuration revision now, against the live state (once: the
        plan is recorded), hold it against the rollback the humans approved, then apply it under the
        rollout's approval — or pause, naming what it would do beyond that."""
        doc = self.policy.doc
        revision = self.plan_of(rollout).backward(target, doc)
        recorded = rollout.targets[target].get("rollback_plan")
        if recorded is not None:
            action = revision.model_copy(update={"payload": {"plan_file": recorded["plan_file"],
                                                             "plan_sha256": recorded["plan_sha256"]}})
            self._run_targets(rollout, [target], "rollback", actions={target: action})
            return True
        from interlock.execute.terraform import plan_revision

        try:
            payload, shown = plan_revision(doc.targets[target], revision.payload, f"{rollout.id}-{target}")
        except ExecutionError as exc:
            with self._change(rollout.id) as r:
                r.phase = RolloutPhase.paused
                r.state["resume_to"] = RolloutPhase.rolling_back.value
                r.state["reason"] = (f"the rollback revision for {target} could not be planned ({exc}); fix it, "
                                     "then resume (plans it again)")[:2000]
                r.events.append(_target_event(target, "rollback", r.targets[target]["state"], r, r.state["reason"]))
            return True
        action = revision.model_copy(update={"payload": payload})
        # judged exactly as the Gateway judges a plan file (classify_action), from the JSON already shown
        planned = classify(Kind.terraform, {"plan": shown}, context_for(self.policy, target))
        approved = rollout.state["decisions"][target]["rollback"]
        changes = tf_rollback.changes_of(shown)
        problems = [f"{tf_rollback.describe(extra)}"] if (extra := tf_rollback.beyond(approved["expected"], changes)) \
            else []
        if Risk(planned.risk.value).rank > Risk(approved["risk"]).rank:
            problems.append(f"is {planned.risk.value}, the approved rollback {approved['risk']}")
        if new_tags := sorted(set(planned.tags) - set(approved.get("tags", []))):
            problems.append(f"is tagged {', '.join(new_tags)}")
        with self._change(rollout.id) as r:
            r.targets[target]["rollback_plan"] = {**payload, "changes": changes, "risk": planned.risk.value,
                                                  "beyond": "; ".join(problems)}
            message = (f"planned revision {revision.payload.get('revision')} at rollback time: "
                       f"{tf_rollback.describe(changes)} ({planned.summary})")
            r.events.append(_target_event(target, "rollback", "planned", r, message[:2000], plan=payload,
                                          changes=changes, risk=planned.risk.value, beyond=problems))
            if problems:
                r.phase = RolloutPhase.paused
                r.state["resume_to"] = RolloutPhase.rolling_back.value
                r.state["reason"] = (
                    f"the rollback plan for {target} {'; '.join(problems)}: beyond the approved rollback "
                    f"({tf_rollback.describe(approved['expected'])}, {approved['risk']}). Check it; resume proposes "
                    "this plan on its own (the policy decides it, with its own approval where it asks), or take "
                    "over by hand")[:2000]
            else:
                r.in_tx.append(partial(self._exchange_grant, rollout=r, target=target, revision=revision,
                                       planned=action, classification=planned))
        return True

    def _exchange_grant(self, tx: Transaction, *, rollout: Rollout, target: str, revision: Action, planned: Action,
                        classification: Classification) -> None:
        """The revision's grant (issued by the rollout's approval) is used up, and a grant for exactly the
        planned file issued in its place, expiring with it: the plan runs under the rollout's approval."""
        agent = rollout.agent
        now = self.clock()
        at = stamp(now)
        revision_fp = action_fingerprint(agent, revision, self.policy.version)
        unused = [g for g in gate_repo.grants_for(tx, agent, revision_fp)
                  if g.consumed_at is None and g.expires_at > now]
        decision = decide(self.policy, agent, planned, classification)
        if not unused or decision.value is not DecisionValue.approval_required:
            return  # nothing approved to exchange, or the policy lets it run (or refuses it) on its own
        old = unused[0]
        if not gate_repo.consume(tx, old.id, at, f"rollout {rollout.id}"):
            return
        gate_repo.set_state(tx, old.request_id, RequestState.consumed, f"exchanged by rollout {rollout.id} for "
                            "the plan of its revision", at, expected=RequestState.approved)
        receipt = self.audit.append_in(tx, GRANT_CONSUMED, {
            "grant_id": old.id, "request_id": old.request_id, "action_id": None, "agent": agent,
            "fingerprint": revision_fp, "by": f"rollout {rollout.id}"})
        gate_repo.bind_grant(tx, old.id, consumed_idx=receipt.index)
        doc = self.policy.doc
        owner = doc.agents[agent].owner
        fp = action_fingerprint(agent, planned, self.policy.version)
        approvers = list((rollout.state.get("approval") or {}).get("approved_by", []))
        request = ApprovalRequest(
            id="apr_" + secrets.token_hex(10), agent=agent, owner=owner, action=planned, fingerprint=fp,
            policy_version=self.policy.version, classification=classification, rules=decision.rules,
            requirements=decision.approvals,
            eligible=eligible_humans(decision.approvals, humans_of(doc.humans), agent, owner),
            state=RequestState.approved, state_reason=f"the plan of the rollback revision approved with rollout "
            f"{rollout.id} by {', '.join(approvers)}", created_at=now, expires_at=old.expires_at, decided_at=now)
        gate_repo.insert_request(tx, request)
        grant = Grant(id="gnt_" + secrets.token_hex(10), request_id=request.id, agent=agent, fingerprint=fp,
                      policy_version=self.policy.version, created_at=now, expires_at=old.expires_at)
        gate_repo.insert_grant(tx, grant)
        receipt = self.audit.append_in(tx, GRANT_ISSUED, {
            "grant_id": grant.id, "request_id": request.id, "action_id": None, "agent": agent, "fingerprint": fp,
            "expires_at": stamp(old.expires_at), "approved_by": approvers, "rollout_id": rollout.id,
            "target": target, "derived_from": old.id})
        gate_repo.bind_grant(tx, grant.id, issued_idx=receipt.index)

    def _mark(self, r: Rollout, *, targets: list[str], direction: str) -> None:
        """Mark targets started (durably, audited, in the caller's transaction) before anything runs them."""
        started = STARTED if direction == "forward" else ROLLBACK_STARTED
        index = r.state["step"]
        wave = r.state["waves"][index] if direction == "forward" and index < len(r.state["waves"]) else None
        for t in targets:
            r.targets[t]["state"] = started
            if direction == "forward":
                r.targets[t]["wave"] = wave
                r.targets[t]["step"] = index
                r.state["order"].append(t)
            r.events.append(_target_event(t, direction, started, r, ""))

    def _run_targets(self, rollout: Rollout, targets: list[str], direction: str, *,
                     actions: dict[str, Action] | None = None) -> None:
        """Propose each target's action through the Gateway and record the outcomes. Riding (the usual
        case), a target's `started` commits with its `execution.started` and a success with its
        `execution.finished`; what did not ride (a failure, a refusal, an outcome the log could not
        record) is recorded here afterwards, with what follows from it, in one commit."""
        rides = self._rides
        if not rides:
            rollout = self._update(rollout, partial(self._mark, targets=targets, direction=direction))
        plan = self.plan_of(rollout)
        actions = actions or {t: plan.forward(t, self.policy.doc) if direction == "forward" else
                              plan.backward(t, self.policy.doc) for t in targets}
        ticket = rollout.state.get("freeze_pass")
        passing = Pass(rollout.id, int(ticket)) if direction == "rollback" and ticket is not None else None
        index = rollout.state["step"]

        def run(target: str) -> tuple[str, str | None, str]:
            if not rides:
                return self._propose(rollout.agent, actions[target], passing)
            entry = rollout.targets[target]
            step, wave = (index, rollout.state["waves"][index]) if direction == "forward" else \
                (entry.get("step"), entry.get("wave"))
            with riding(self._rider(rollout.id, target, direction, step, wave)):
                return self._propose(rollout.agent, actions[target], passing)

        if rides:
            self._riding[rollout.id] = rollout
        try:
            if len(targets) == 1:
                outcomes = {targets[0]: run(targets[0])}
            else:
                with ThreadPoolExecutor(max_workers=len(targets)) as pool:
                    futures = {t: pool.submit(run, t) for t in targets}
                    outcomes = {t: f.result() for t, f in futures.items()}
        finally:
            if rides:
                rollout = self._riding.pop(rollout.id, rollout)
        done = CHANGED if direction == "forward" else ROLLED_BACK
        left = [t for t in targets if not (outcomes[t][0] == "succeeded" and (rollout.id, t, done) in self._rode)]
        self._rode.difference_update((rollout.id, t, state) for t in targets
                                     for state in (STARTED, ROLLBACK_STARTED, done))
        if left or not rides:
            self._update(rollout, partial(self._record, targets=left if rides else targets, direction=direction,
                                          outcomes=outcomes))
        else:
            self._remember(rollout)

    def _rider(self, rollout_id: str, target: str, direction: str, step: int | None,
               wave: int | None) -> Riders:
        """The target's `rollout.target` entries, riding with its action's entries: `started` with
        `execution.started` (durable before the executor runs, as a mark of our own was), and the
        success with `execution.finished`. `_ride_batch` writes the row from them in the same batch."""
        started, done = (STARTED, CHANGED) if direction == "forward" else (ROLLBACK_STARTED, ROLLED_BACK)

        def ride(event: str, data: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
            if event == AuditEvent.EXECUTION_STARTED.value:
                state, message = started, ""
            elif event == AuditEvent.EXECUTION_FINISHED.value and data.get("outcome") == "succeeded":
                result = data.get("result")
                state, message = done, f"succeeded ({_result_summary(result if isinstance(result, dict) else {})})"
            else:
                return []
            return [(AuditEvent.ROLLOUT_TARGET.value, {
                "rollout_id": rollout_id, "target": target, "direction": direction, "state": state, "step": step,
                "wave": wave, "action": data.get("action_id"), "message": message})]

        return ride

    def _ride_batch(self, tx: Transaction, batch: list[tuple[str, Mapping[str, Any]]]) -> None:
        """The audit writer's batch hook: the `rollout.target` entries that rode in this batch, applied
        to their rollouts' rows in its transaction (the row and its entries commit together or not at
        all). Only this process's riding rollouts: no other writer sends `rollout.target` to the writer."""
        if not self._riding:
            return
        rides: dict[str, list[Mapping[str, Any]]] = {}
        for event, data in batch:
            if event == AuditEvent.ROLLOUT_TARGET.value and data.get("rollout_id") in self._riding:
                rides.setdefault(str(data["rollout_id"]), []).append(data)
        for rollout_id, entries in rides.items():
            self._write_rides(tx, self._riding[rollout_id], entries)

    def _write_rides(self, tx: Transaction, known: Rollout, entries: list[Mapping[str, Any]]) -> None:
        """Write `entries` onto the rollout as it was last written (compare-and-set on its version), or,
        if anyone wrote it since (a human's command), onto its row read under its lock. A failure raises:
        the batch fails and every caller in it hears so, the Gateway denies the step (fail closed)."""
        rollout_id = known.id
        for base in (known, None):
            if base is not None:
                rollout = _ride_copy(base, [str(d["target"]) for d in entries])
            else:
                row = tx.fetchone(f"SELECT {_COLUMNS} FROM rollouts WHERE id = ?"
                                  + (" FOR UPDATE" if tx.dialect == "postgresql" else ""), (rollout_id,))
                if row is None:
                    raise StoreError(f"rollout {rollout_id} is gone from the store")
                rollout = _row(row)
            for data in entries:
                _apply_ride(rollout, data)
            now = self.clock()
            # One round trip (PostgreSQL) for the compare-and-set, not a pipeline: its enter and exit syncs
            # cost a second one, and in the writer's batch every round trip holds up the log's other callers.
            if tx.execute("UPDATE rollouts SET state_json = ?, updated_at = ?, version = version + 1 "
                          "WHERE id = ? AND version = ?",
                          (_state_json(rollout), stamp(now), rollout_id, rollout.version)) == 1:
                if any(d["state"] in (STARTED, ROLLBACK_STARTED) for d in entries):
                    # one event per target, as before: a success is seen with the next target's start, or
                    # with the runner's own write that ends the step (watchers re-read the whole rollout)
                    publish(tx, Channel.rollouts, {"id": rollout_id, "phase": rollout.phase.value})
                break
        else:  # read under its lock, the row is at the version read
            raise StoreError(f"rollout {rollout_id} changed under its row lock")
        rollout.version, rollout.updated_at = rollout.version + 1, now
        tx.on_commit(partial(self._rode_with, rollout, [(str(d["target"]), str(d["state"])) for d in entries]))

    def _rode_with(self, rollout: Rollout, states: list[tuple[str, str]]) -> None:
        """After a batch with rides committed: the rollout as written is the base of the next ride."""
        if rollout.id in self._riding:
            self._riding[rollout.id] = rollout
        self._rode.update((rollout.id, target, state) for target, state in states)

    def _record(self, r: Rollout, *, targets: list[str], direction: str,
                outcomes: dict[str, tuple[str, str | None, str]]) -> None:
        """The targets' outcomes and what follows from them."""
        problems: list[str] = []
        unknown: list[str] = []
        refused: list[str] = []
        for t in targets:
            kind, action_id, message = outcomes[t]
            entry = r.targets[t]
            entry["message"] = message
            if direction == "rollback":
                entry["rollback_action"] = action_id
                if kind == "refused":  # not run (a freeze, the kill switch, an expired grant): ask
                    entry["state"] = CHANGED
                    refused.append(f"{t}: {message}")
                else:
                    entry["state"] = ROLLED_BACK if kind == "succeeded" else ROLLBACK_FAILED
                if kind not in ("succeeded", "refused"):
                    problems.append(f"{t}: {message}")
            else:
                entry["action"] = action_id
                entry["state"] = {"succeeded": CHANGED, "failed": FAILED, "unknown": UNKNOWN}.get(kind, UNTOUCHED)
                (problems if kind == "failed" else unknown if kind == "unknown" else
                 refused if kind == "refused" else []).append(f"{t}: {message}")
            r.events.append(_target_event(t, direction, entry["state"], r, message, action_id))
        if direction == "rollback" and problems:
            r.phase = RolloutPhase.failed
            r.state["reason"] = f"rollback failed on {'; '.join(problems)}: a human takes over"[:2000]
        elif unknown:
            r.phase = RolloutPhase.paused
            r.state["resume_to"] = RolloutPhase.progressing.value
            r.state["reason"] = (f"outcome unknown on {'; '.join(unknown)}: check them, then resume (counts them "
                                 "as changed) or abort (rolls them back)")[:2000]
        elif problems:
            self._fail(r, f"the step failed on {'; '.join(problems)}"[:2000])
        elif refused and direction == "rollback":
            r.phase = RolloutPhase.paused
            r.state["resume_to"] = RolloutPhase.rolling_back.value
            again = ("; or abort --under-freeze again: the last one let each of its rollbacks past the freeze once, "
                     "whatever became of it") if r.state.get("freeze_pass") is not None else ""
            r.state["reason"] = (f"rollback not run: {'; '.join(refused)}; resume retries it (after a thaw)"
                                 f"{again}")[:2000]
        elif refused:
            r.phase = RolloutPhase.paused
            r.state["resume_to"] = RolloutPhase.progressing.value
            r.state["reason"] = (f"not run: {'; '.join(refused)}; resume retries, abort rolls back")[:2000]

    def _propose(self, agent: str, action: Action, rollback: Pass | None = None) -> tuple[str, str | None, str]:
        """(succeeded | failed | unknown | refused, action id, message) of one target's step."""
        try:
            proposal = self.gateway.propose(agent, action, rollback=rollback)
        except GatewayError as exc:
            return "refused", None, f"{exc.code}: {exc}"
        except GatewayUnavailable as exc:
            return "unknown", None, f"the gateway could not record the step: {exc}"
        except Exception as exc:  # the executor crashed: whether it changed the target is unknown
            return "unknown", None, f"{type(exc).__name__}: {exc}"
        result = proposal.result or {}
        if proposal.state is State.succeeded:
            return "succeeded", proposal.id, f"succeeded ({_result_summary(result)})"
        if proposal.state is State.failed:
            return "failed", proposal.id, f"failed ({_result_summary(result)})"
        if proposal.state is State.cancelled:
            return "unknown", proposal.id, "cancelled while it ran (a freeze or the kill switch)"
        reasons = "; ".join(proposal.decision.reasons) or proposal.state.value
        if proposal.state is State.pending_approval:
            request = (proposal.approval or {}).get("id")
            reasons = (f"no usable grant: approval request {request} is open for this exact action (the "
                       "rollout's grant expired, the policy changed, or this step needs its own approval)")
        return "refused", proposal.id, f"{proposal.state.value}: {reasons}"


def _result_summary(result: dict[str, Any]) -> str:
    parts = [f"{k} {result[k]}" for k in ("http_status", "exit_code", "rows_affected", "error") if
             result.get(k) not in (None, "")]
    return ", ".join(parts) or str(result.get("status", ""))


def _ride_copy(rollout: Rollout, targets: list[str]) -> Rollout:
    """A copy to apply rides to, new only where a ride writes (the targets' entries, the order): the rest
    (every member's decisions: most of the state) is shared with `rollout`, which is never changed in
    place (every change starts from a copy), at a fraction of `_copy`'s cost in the log's writer."""
    state = dict(rollout.state)
    entries = state["targets"] = dict(state["targets"])
    for target in targets:
        entries[target] = dict(entries[target])
    state["order"] = list(state["order"])
    return replace(rollout, state=state, events=[], in_tx=[])


def _no_outcome(entry: dict[str, Any]) -> str:
    """Why a target left `started` is outcome_unknown, naming its action (its timeline in the audit log)."""
    rollback = entry["state"] == ROLLBACK_STARTED
    action = entry.get("rollback_action" if rollback else "action")
    seen = f" (action {action}: `interlock audit show --action {action}`)" if action else ""
    return f"its {'rollback' if rollback else 'step'} started{seen} and no outcome was recorded (the runner stopped)"


def _apply_ride(rollout: Rollout, data: Mapping[str, Any]) -> None:
    """A `rollout.target` entry that rode in the Gateway's batch, applied to the rollout's state (what
    `_mark` and `_record` write for the same states when the runner records them itself)."""
    target, state = str(data["target"]), str(data["state"])
    entry = rollout.targets[target]
    entry["state"] = state
    if state == STARTED:
        entry.update(step=data.get("step"), wave=data.get("wave"), action=data.get("action"))
        if target not in rollout.state["order"]:
            rollout.state["order"].append(target)
    elif state == CHANGED:
        entry.update(action=data.get("action"), message=data.get("message", ""))
    elif state == ROLLBACK_STARTED:
        entry["rollback_action"] = data.get("action")
    elif state == ROLLED_BACK:
        entry.update(rollback_action=data.get("action"), message=data.get("message", ""))


def _target_event(target: str, direction: str, state: str, rollout: Rollout, message: str,
                  action_id: str | None = None, **more: Any) -> tuple[str, dict[str, Any]]:
    entry = rollout.targets[target]
    return AuditEvent.ROLLOUT_TARGET.value, {
        "target": target, "direction": direction, "state": state, "step": entry.get("step"),
        "wave": entry.get("wave"), "action": action_id, "message": message[:2000], **more}


def _planned_at_rollback(classification: Classification) -> dict[str, Any]:
    """What approvers see of a rollback planned at rollback time: the expected changes and the summary."""
    if not classification.details.get("planned_at_rollback"):
        return {}
    return {"planned_at_rollback": True, "summary": classification.summary, "tags": list(classification.tags),
            "expected": classification.details["expected_changes"]}


def _human(principal: Principal) -> None:
    try:
        require_human(principal)
    except AuthError as exc:
        raise CommandError("agent_token", str(exc)) from None


def _group_action(plan: Plan, doc: Any) -> Action:
    """The rollout's action as one approval request names it: its kind and payload over the group (no one
    target; the request's `rollout` lists them), in the first member's environment."""
    first = plan.forward(plan.members[0], doc)
    return Action(kind=plan.spec.kind, environment=first.environment, payload=plan.spec.payload,
                  rationale=plan.spec.rationale)


def _summed(rollout: Rollout, seen: list[Classification]) -> Classification:
    """The rollout as one thing to approve: its riskiest member action, every tag, and what it is."""
    spec = rollout.spec
    members = rollout.state["members"]
    waves = len([c for c in rollout.state["counts"] if c is not None])
    tags = tuple(sorted({t for c in seen for t in c.tags}))
    label = f"rollout {spec.name!r}" if spec.name else "rollout"
    return Classification(
        risk=Risk.highest([c.risk for c in seen]), tags=tags,
        summary=f"{label}: {spec.kind.value} on {len(members)} target(s) of group {spec.group} in {waves} wave(s), "
                "with its rollback")


def approver_view(rollout: Rollout) -> dict[str, Any]:
    """What a rollout's approvers see (the request's `rollout`): every target with its wave and the policy's
    decision on its forward and rollback action, the steps with their analysis checks, the rollback, the
    progress deadline. Recorded in the request's `approval.requested` entry."""
    spec, state = rollout.spec, rollout.state
    doc_steps = []
    for i, step in enumerate(spec.steps):
        body = step.model_dump(mode="json", by_alias=True, exclude_none=True)
        count = state["counts"][i]
        doc_steps.append({"index": i, "step": body, **({"targets": count, "wave": state["waves"][i]}
                                                      if count is not None else {})})
    targets = []
    for position, name in enumerate(state["members"]):
        wave = next((state["waves"][i] for i, c in enumerate(state["counts"]) if c is not None and position < c), None)
        targets.append({"name": name, "wave": wave, **state["decisions"][name]})
    return {
        "id": rollout.id, "name": spec.name, "group": spec.group, "kind": spec.kind.value,
        "payload": spec.payload, "rationale": spec.rationale.model_dump(mode="json", exclude_none=True),
        "rollback": spec.rollback.model_dump(mode="json", exclude_none=True),
        "targets": targets, "steps": doc_steps, "max_parallel": spec.max_parallel,
        "progress_deadline": spec.progress_deadline, "abort_policy": spec.abort_policy,
    }
