"""Freezes: the kill switch (freezes in the store) and the policy's change-freeze windows.

A kill-switch freeze names a scope (any of agent, environment, target; none = everything) and a
reason. While it is active every proposal in scope is denied naming it, pending approvals in scope
are suspended, and running executions in scope are cancelled. Creating and thawing one publishes on
`Channel.freezes` in the same transaction, so every process sees it at its next decision.

The log, not the table, says which freezes are in force (DESIGN.md §9): the `guard.frozen` and
`guard.thawed` entries are written in the transaction that writes the row, and `Ledger` folds them.
A freeze the log records as made and not thawed stays in force though its row was deleted, thawed or
narrowed in the database; a row the log does not know (written into the database) freezes too: more
freezes only ever deny more.

A change-freeze window (policy `guards.freezes`) is pure: inside the window every non-read action in
scope needs the freeze's approvers on top of everything else, or is denied when none are named.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from interlock.answers import status_of
from interlock.audit.events import AuditEvent
from interlock.gate.bindings import entries_since, tree_size
from interlock.gate.clock import parse_stamp, stamp
from interlock.gate.events import GateAudit
from interlock.model import Action, ApprovalRequirement, Decision, DecisionValue, Risk
from interlock.policy.schema import ChangeFreeze, PolicyDocument
from interlock.store import Store, Transaction
from interlock.store.events import Channel, publish

MAX_REASON = 500


class FreezeError(Exception):
    """A freeze or thaw that was refused; `status` is its code's HTTP status in the one table
    (`answers.ERROR_STATUS`), as every other error's."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.field = code, field
        self.status = status_of(code)


@dataclass(frozen=True)
class Freeze:
    id: str
    agent: str | None
    environment: str | None
    target: str | None
    reason: str
    created_by: str
    created_at: datetime
    thawed_at: datetime | None = None
    thawed_by: str | None = None

    @property
    def active(self) -> bool:
        return self.thawed_at is None

    def covers(self, agent: str, environment: str, target: str | None) -> bool:
        return ((self.agent is None or self.agent == agent)
                and (self.environment is None or self.environment == environment)
                and (self.target is None or self.target == target))

    def includes(self, other: Freeze) -> bool:
        """Everything `other` freezes, this one freezes already."""
        return all(mine is None or mine == theirs for mine, theirs in
                   ((self.agent, other.agent), (self.environment, other.environment), (self.target, other.target)))

    def scope(self) -> str:
        parts = [f"agent {self.agent}" if self.agent else "every agent",
                 f"in {self.environment}" if self.environment else "in every environment"]
        if self.target:
            parts.append(f"on {self.target}")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "agent": self.agent, "environment": self.environment, "target": self.target,
                "scope": self.scope(), "reason": self.reason, "created_by": self.created_by,
                "created_at": stamp(self.created_at), "active": self.active,
                "thawed_at": stamp(self.thawed_at) if self.thawed_at else None, "thawed_by": self.thawed_by}


def _row(row: dict[str, Any]) -> Freeze:
    return Freeze(id=row["id"], agent=row["agent"], environment=row["environment"], target=row["target"],
                  reason=row["reason"], created_by=row["created_by"], created_at=parse_stamp(row["created_at"]),
                  thawed_at=parse_stamp(row["thawed_at"]) if row["thawed_at"] else None, thawed_by=row["thawed_by"])


def active_freezes(tx: Transaction) -> list[Freeze]:
    """The active rows of guard_freezes, as the table says (see `in_force` for what the gateway honours)."""
    rows = tx.fetchall("SELECT * FROM guard_freezes WHERE thawed_at IS NULL ORDER BY created_at, id")
    return [_row(r) for r in rows]


FROZEN, THAWED = AuditEvent.GUARD_FROZEN.value, AuditEvent.GUARD_THAWED.value


def _from_entry(index: int, found: tuple[str, dict[str, Any]] | None) -> Freeze:
    """The freeze a guard.frozen entry made. One that does not check out (edited or forged in the
    database) freezes everything, naming the entry: a freeze is never undone by damaging its entry."""
    made = found[1].get("freeze") if found is not None else None
    try:
        assert isinstance(made, dict)
        return Freeze(id=str(made["id"]), agent=made["agent"], environment=made["environment"],
                      target=made["target"], reason=str(made["reason"]), created_by=str(made["created_by"]),
                      created_at=parse_stamp(made["created_at"]))
    except (AssertionError, KeyError, TypeError, ValueError):
        return Freeze(id=f"entry-{index}", agent=None, environment=None, target=None,
                      reason=f"audit entry {index} (guard.frozen) does not check out: it was changed in the "
                      "database; run `interlock audit verify` and restore the store",
                      created_by="audit log", created_at=datetime(1970, 1, 1, tzinfo=UTC))


@dataclass
class Ledger:
    """The freezes the log holds as made and not thawed, folded from the guard.frozen / guard.thawed
    entries. The log only grows, so `fold` reads just the entries appended since the last fold: one
    query on two partial indexes (migration 0027) that finds nothing on a decision with no new freeze."""

    size: int = 0
    made: dict[str, Freeze] = dataclasses.field(default_factory=dict)
    thawed: set[str] = dataclasses.field(default_factory=set)

    def fold(self, log: GateAudit, tx: Transaction) -> Ledger:
        size = tree_size(tx)
        for index, found in entries_since(log, tx, (FROZEN, THAWED), self.size, size):
            if found is not None and found[0] == THAWED:
                thawed = found[1].get("freeze")
                if isinstance(thawed, dict):
                    self.thawed.add(str(thawed.get("id")))
                continue  # a thaw entry that does not check out thaws nothing
            freeze = _from_entry(index, found)
            self.made[freeze.id] = freeze
        self.size = max(self.size, size)
        return self

    def in_force(self) -> dict[str, Freeze]:
        return {k: f for k, f in self.made.items() if k not in self.thawed}


def in_force(tx: Transaction, ledger: Ledger, log: GateAudit) -> list[Freeze]:
    """What the gateway honours: every freeze the log holds in force (with the scope its entry says),
    and every active row of guard_freezes the log does not know."""
    recorded = ledger.fold(log, tx).in_force()
    extra = [f for f in active_freezes(tx) if f.id not in recorded and f.id not in ledger.thawed]
    return sorted([*recorded.values(), *extra], key=lambda f: (f.created_at, f.id))


def list_freezes(tx: Transaction, *, include_thawed: bool = False, limit: int = 200) -> list[Freeze]:
    where = "" if include_thawed else "WHERE thawed_at IS NULL "
    rows = tx.fetchall(f"SELECT * FROM guard_freezes {where}ORDER BY created_at DESC, id LIMIT ?", (limit,))
    return [_row(r) for r in rows]


def get_freeze(tx: Transaction, freeze_id: str) -> Freeze | None:
    row = tx.fetchone("SELECT * FROM guard_freezes WHERE id = ?", (freeze_id,))
    return _row(row) if row else None


def check_scope(doc: PolicyDocument, agent: str | None, environment: str | None, target: str | None) -> None:
    """A freeze on a misspelled name would freeze nothing: refuse names the policy does not know."""
    for value, known, field in ((agent, doc.agents, "agent"), (environment, doc.environments, "environment"),
                                (target, doc.targets, "target")):
        if value is not None and value not in known:
            raise FreezeError(f"unknown_{field}", f"{field} {value!r} is not in the policy: "
                              f"use one of {', '.join(sorted(known)) or '(none)'}, or leave it out", field)
    if target is not None and environment is not None and doc.targets[target].environment != environment:
        raise FreezeError("target_environment", f"target {target} is in {doc.targets[target].environment}, "
                          f"not {environment}", "target")


def create_freeze(store: Store, doc: PolicyDocument, log: GateAudit, *, agent: str | None,
                  environment: str | None, target: str | None, reason: str, by: str, now: datetime) -> Freeze:
    """Record an active freeze, its guard.frozen entry and announce it (one transaction). Refuses an
    empty reason and a scope that a freeze in force already covers (409, naming it)."""
    reason = (reason or "").strip()
    if not reason:
        raise FreezeError("reason_required", "a freeze needs a reason: say why, e.g. --reason \"incident 4711\"",
                          "reason")
    if len(reason) > MAX_REASON:
        raise FreezeError("reason_too_long", f"a freeze reason is at most {MAX_REASON} characters", "reason")
    check_scope(doc, agent, environment, target)
    freeze = Freeze(id="frz_" + secrets.token_hex(8), agent=agent, environment=environment, target=target,
                    reason=reason, created_by=by, created_at=now)
    with store.transaction() as tx:
        tx.lock("guard_freezes")
        for other in in_force(tx, Ledger(), log):
            if other.includes(freeze):
                raise FreezeError("overlapping_freeze",
                                  f"freeze {other.id} ({other.scope()}: {other.reason}) already covers "
                                  f"{freeze.scope()}; thaw it first or keep it", "scope")
        tx.execute("INSERT INTO guard_freezes(id, agent, environment, target, reason, created_by, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (freeze.id, agent, environment, target, reason, by, stamp(now)))
        publish(tx, Channel.freezes, {"id": freeze.id, "op": "freeze"})
        log.append_in(tx, FROZEN, {"freeze": freeze.to_json(), "human": by})
    return freeze


def may_thaw(thaw_by: tuple[str, ...], groups: tuple[str, ...] | frozenset[str]) -> bool:
    return not thaw_by or bool(set(thaw_by) & set(groups))


def thaw_freeze(store: Store, log: GateAudit, freeze_id: str, *, by: str, groups: tuple[str, ...],
                thaw_by: tuple[str, ...], now: datetime) -> Freeze:
    """End a freeze in force, with its guard.thawed entry (one transaction). Only members of the policy's
    `guards.thaw_by` groups may (any human when none are named); a second thaw is a 409, never a silent
    success. A freeze whose row was deleted or thawed in the database is still in force, so it is
    thawed here too (the row is put back, thawed)."""
    if not may_thaw(thaw_by, groups):
        raise FreezeError("not_eligible", f"{by} may not thaw freezes: only members of "
                          f"{', '.join(thaw_by)} may (policy guards.thaw_by)")
    with store.transaction() as tx:
        tx.lock("guard_freezes")
        row = get_freeze(tx, freeze_id)
        found = {f.id: f for f in in_force(tx, Ledger(), log)}.get(freeze_id)
        if found is None and row is None:
            raise FreezeError("unknown_freeze", f"no freeze {freeze_id!r}: list them with `interlock guards "
                              "status`", "id")
        if found is None:
            assert row is not None
            raise FreezeError("already_thawed", f"freeze {freeze_id} was thawed by {row.thawed_by} at "
                              f"{stamp(row.thawed_at) if row.thawed_at else '?'}")
        tx.execute("DELETE FROM guard_freezes WHERE id = ?", (freeze_id,))
        tx.execute("INSERT INTO guard_freezes(id, agent, environment, target, reason, created_by, created_at, "
                   "thawed_at, thawed_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (found.id, found.agent, found.environment, found.target, found.reason, found.created_by,
                    stamp(found.created_at), stamp(now), by))
        publish(tx, Channel.freezes, {"id": freeze_id, "op": "thaw"})
        thawed = Freeze(**{**found.__dict__, "thawed_at": now, "thawed_by": by})
        log.append_in(tx, THAWED, {"freeze": thawed.to_json(), "human": by})
    return thawed


# --- change-freeze windows (pure) -----------------------------------------------------------------


def in_scope(freeze: ChangeFreeze, agent: str, action: Action) -> bool:
    return not ((freeze.environments and action.environment not in freeze.environments)
                or (freeze.targets and action.target not in freeze.targets)
                or (freeze.agents and agent not in freeze.agents))


def window_in_force(freeze: ChangeFreeze, agent: str, action: Action, at: datetime) -> bool:
    return in_scope(freeze, agent, action) and any(w.contains(at) for w in freeze.window)


#: Whether the change freeze at an index of `guards.freezes` has a window containing a moment (the Guard
#: answers from its `windows.Steady` caches).
Timely = Callable[[int, datetime], bool]


def apply_windows(doc: PolicyDocument, agent: str, action: Action, decision: Decision, at: datetime | None,
                  timely: Timely | None = None) -> Decision:
    """The decision with the policy's change-freeze windows applied at `at` (None: none applies).
    Reads pass; anything else in a window needs the freeze's approvers too, or is denied. `timely`: the
    time half of the check, when the caller remembers it (else each window is evaluated)."""
    if at is None or not doc.guards.freezes or decision.value is DecisionValue.deny or decision.risk is Risk.read:
        return decision
    for index, freeze in enumerate(doc.guards.freezes):
        if not in_scope(freeze, agent, action):
            continue
        if not (timely(index, at) if timely is not None else any(w.contains(at) for w in freeze.window)):
            continue
        rule = f"freeze-window:{freeze.name or index}"
        windows = ", ".join(w.describe() for w in freeze.window)
        reason = f"change freeze {freeze.name or index} is in force ({windows}): {freeze.reason}"
        if freeze.approvers is None:
            return decision.model_copy(update={"value": DecisionValue.deny, "rules": (*decision.rules, rule),
                "reasons": (*decision.reasons, reason), "approvals": (),
                "remedy": ("wait until the change freeze ends, or ask a human to do it",)})
        spec = freeze.approvers
        req = ApprovalRequirement(count=spec.count, from_groups=spec.from_groups,
                                  at_least=tuple(sorted(spec.at_least.items())), source=rule)
        return add_requirement(decision, req, rule, reason)
    return decision


def add_requirement(decision: Decision, req: ApprovalRequirement, rule: str, reason: str) -> Decision:
    """`decision` now also needs `req` (an allowed action now needs approval; a sandbox or approval
    requirement stays and gains it). A denial stays a denial."""
    if decision.value is DecisionValue.deny:
        return decision.model_copy(update={"rules": (*decision.rules, rule),
                                           "reasons": (*decision.reasons, reason)})
    value = DecisionValue.approval_required if decision.value is DecisionValue.allow else decision.value
    return decision.model_copy(update={"value": value, "rules": (*decision.rules, rule),
        "reasons": (*decision.reasons, reason), "approvals": (*decision.approvals, req),
        "remedy": (*decision.remedy, f"needs {req.describe()} ({rule})")})


def deny(decision: Decision, rule: str, reason: str, remedy: str) -> Decision:
    return decision.model_copy(update={"value": DecisionValue.deny, "rules": (*decision.rules, rule),
                                       "reasons": (*decision.reasons, reason), "approvals": (), "remedy": (remedy,)})
