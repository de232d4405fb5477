"""Policy replay (shadow mode): past proposals re-decided under a new policy, before it is enforced.

Reads `action.proposed` entries ({action_id, agent, action, decision?}) and the outcome recorded
with them or, failing that, in an `action.decided` entry of the same action_id, re-classifies each action with
the classifiers of today (`classify_action`, as the gateway does) and decides it under the new
policy. Pure apart from reading the log (and a terraform action's plan file, as the gateway reads it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from interlock.audit.log import AuditLog, outcome_of
from interlock.model import Action
from interlock.policy import Policy, decide
from interlock.policy.classifying import classify_action


@dataclass(frozen=True)
class Change:
    index: int
    time: str
    action_id: str | None
    agent: str
    environment: str
    kind: str
    summary: str
    before: str
    after: str
    rules: tuple[str, ...]
    reasons: tuple[str, ...]


@dataclass
class ReplayResult:
    proposals: int = 0
    unchanged: int = 0
    undecided: int = 0  # proposals with no recorded decision (compared against nothing)
    unreadable: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "proposals": self.proposals,
            "unchanged": self.unchanged,
            "undecided": self.undecided,
            "unreadable": self.unreadable,
            "changes": [change.__dict__ for change in self.changes],
        }

    def describe(self) -> str:
        lines = [
            f"{self.proposals} past proposals replayed: {len(self.changes)} would change, {self.unchanged} "
            f"unchanged, {self.undecided} had no recorded decision, {len(self.unreadable)} unreadable"
        ]
        for c in self.changes:
            lines.append(
                f"#{c.index} {c.time} {c.agent} {c.kind}@{c.environment}: {c.before} → {c.after} "
                f"[{', '.join(c.rules)}] {c.summary}"
            )
            lines.extend(f"    because {reason}" for reason in c.reasons)
        lines.extend(f"unreadable: {u}" for u in self.unreadable)
        return "\n".join(lines)


def replay(
    log: AuditLog, policy: Policy, *, since: str | None = None, until: str | None = None, limit: int = 100_000
) -> ReplayResult:
    proposals = log.search(event="action.proposed", since=since, until=until, limit=limit)
    decided = log.search(event="action.decided", since=since, limit=10 * limit)
    before: dict[str, str] = {}
    for row in decided:
        action_id, outcome = row["data"].get("action_id"), outcome_of(row["data"])
        if isinstance(action_id, str) and outcome is not None:
            before.setdefault(action_id, outcome)  # the first decision is the one that was enforced
    result = ReplayResult()
    for row in proposals:
        result.proposals += 1
        data = row["data"]
        try:
            action = Action.model_validate(data["action"])
            agent = str(data["agent"])
        except (KeyError, TypeError, ValidationError) as exc:
            result.unreadable.append(f"entry {row['index']}: {type(exc).__name__}: {str(exc)[:120]}")
            continue
        classification = classify_action(policy, action)
        decision = decide(policy, agent, action, classification)
        action_id = data.get("action_id") if isinstance(data.get("action_id"), str) else None
        # The decision recorded with the proposal itself (gateway.py), else a later action.decided.
        old = outcome_of(data) or (before.get(action_id) if action_id else None)
        if old is None:
            result.undecided += 1
            continue
        if old == decision.value.value:
            result.unchanged += 1
            continue
        result.changes.append(
            Change(
                index=row["index"],
                time=row["time"],
                action_id=action_id,
                agent=agent,
                environment=action.environment,
                kind=action.kind.value,
                summary=classification.summary,
                before=old,
                after=decision.value.value,
                rules=decision.rules,
                reasons=decision.reasons,
            )
        )
    return result
