"""Freezes: the kill switch (freezes in the store) and the policy's change-freeze windows.

A kill-switch freeze names a scope (any of agent, environment, target; none = everything) and a
reason. While it is active every proposal in scope is denied naming it, pending approvals in scope
are suspended, and running executions in scope are cancelled. Creating and thawing one publishes on
`Channel.freezes` in the same transaction, so every process sees it at its next decision.

A change-freeze window (policy `guards.freezes`) is pure: inside the window every non-read action in
scope needs the freeze's approvers on top of everything else, or is denied when none are named.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from interlock.answers import status_of
from interlock.gate.clock import parse_stamp, stamp
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
    rows = tx.fetchall("SELECT * FROM guard_freezes WHERE thawed_at IS NULL ORDER BY created_at, id")
    return [_row(r) for r in rows]


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


def create_freeze(store: Store, doc: PolicyDocument, *, agent: str | None, environment: str | None,
                  target: str | None, reason: str, by: str, now: datetime) -> Freeze:
    """Record an active freeze and announce it (one transaction). Refuses an empty reason and a scope
    that an active freeze already covers (409, naming it)."""
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
        for other in active_freezes(tx):
            if other.includes(freeze):
                raise FreezeError("overlapping_freeze",
                                  f"freeze {other.id} ({other.scope()}: {other.reason}) already covers "
                                  f"{freeze.scope()}; thaw it first or keep it", "scope")
        tx.execute("INSERT INTO guard_freezes(id, agent, environment, target, reason, created_by, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (freeze.id, agent, environment, target, reason, by, stamp(now)))
        publish(tx, Channel.freezes, {"id": freeze.id, "op": "freeze"})
    return freeze


def may_thaw(thaw_by: tuple[str, ...], groups: tuple[str, ...] | frozenset[str]) -> bool:
    return not thaw_by or bool(set(thaw_by) & set(groups))


def thaw_freeze(store: Store, freeze_id: str, *, by: str, groups: tuple[str, ...], thaw_by: tuple[str, ...],
                now: datetime) -> Freeze:
    """End an active freeze. Only members of the policy's `guards.thaw_by` groups may (any human when
    none are named); a second thaw is a 409, never a silent success."""
    if not may_thaw(thaw_by, groups):
        raise FreezeError("not_eligible", f"{by} may not thaw freezes: only members of "
                          f"{', '.join(thaw_by)} may (policy guards.thaw_by)")
    with store.transaction() as tx:
        tx.lock("guard_freezes")
        found = get_freeze(tx, freeze_id)
        if found is None:
            raise FreezeError("unknown_freeze", f"no freeze {freeze_id!r}: list them with `interlock guards "
                              "status`", "id")
        if not found.active:
            raise FreezeError("already_thawed", f"freeze {freeze_id} was thawed by {found.thawed_by} at "
                              f"{stamp(found.thawed_at) if found.thawed_at else '?'}")
        tx.execute("UPDATE guard_freezes SET thawed_at = ?, thawed_by = ? WHERE id = ? AND thawed_at IS NULL",
                   (stamp(now), by, freeze_id))
        publish(tx, Channel.freezes, {"id": freeze_id, "op": "thaw"})
    return Freeze(**{**found.__dict__, "thawed_at": now, "thawed_by": by})


# --- change-freeze windows (pure) -----------------------------------------------------------------


def window_in_force(freeze: ChangeFreeze, agent: str, action: Action, at: datetime) -> bool:
    if freeze.environments and action.environment not in freeze.environments:
        return False
    if freeze.targets and action.target not in freeze.targets:
        return False
    if freeze.agents and agent not in freeze.agents:
        return False
    return any(w.contains(at) for w in freeze.window)


def apply_windows(doc: PolicyDocument, agent: str, action: Action, decision: Decision, at: datetime | None) -> Decision:
    """The decision with the policy's change-freeze windows applied at `at` (None: none applies).
    Reads pass; anything else in a window needs the freeze's approvers too, or is denied."""
    if at is None or not doc.guards.freezes or decision.value is DecisionValue.deny or decision.risk is Risk.read:
        return decision
    for index, freeze in enumerate(doc.guards.freezes):
        if not window_in_force(freeze, agent, action, at):
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
