"""Quorum arithmetic: pure functions of the requirements, the policy's humans and the votes so far.

A request's requirements all apply at once (the policy engine keeps only the strictest ones). For one
requirement, a human *counts* when they are a member of one of its `from_groups` or `at_least` groups
(anyone, when `from_groups` is empty), and are neither the agent nor the agent's owner. The
requirement is met when at least `count` distinct counting humans approved and every `at_least`
minimum is met among them. Distinctness comes from the set of names: approving twice counts once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from interlock.model import ApprovalRequirement

#: human name → their groups, from the policy
Humans = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class Quorum:
    satisfied: bool
    counted: tuple[str, ...]
    missing: tuple[str, ...]

    def describe(self) -> str:
        """'satisfied' or 'still needs 1 from dba (prod-sql-dba); …'."""
        return "satisfied" if self.satisfied else "still needs " + "; ".join(self.missing)


def counts_for(human: str, requirement: ApprovalRequirement, humans: Humans, agent: str, owner: str) -> bool:
    """Whether one human's approval counts toward one requirement."""
    if human in (agent, owner) or human not in humans:
        return False
    if not requirement.from_groups:
        return True
    pool = set(requirement.from_groups) | {group for group, _ in requirement.at_least}
    return bool(pool & set(humans[human]))


def ineligible_reason(
    human: str, requirements: Sequence[ApprovalRequirement], humans: Humans, agent: str, owner: str
) -> str | None:
    """None when the human's approval counts toward at least one requirement, else why not."""
    if human == agent:
        return f"{human} is the agent that proposed this action and can never approve it"
    if human == owner:
        return f"{human} owns agent {agent} and never counts as its approver (separation of duties)"
    if human not in humans:
        return f"{human} is not a human in the current policy"
    if any(counts_for(human, r, humans, agent, owner) for r in requirements):
        return None
    wanted = sorted({g for r in requirements for g in (*r.from_groups, *(g for g, _ in r.at_least))})
    groups = ", ".join(humans[human]) or "none"
    return f"{human} (groups: {groups}) is not in an eligible group ({', '.join(wanted)})"


def eligible_humans(
    requirements: Sequence[ApprovalRequirement], humans: Humans, agent: str, owner: str
) -> tuple[str, ...]:
    return tuple(
        sorted(h for h in humans if ineligible_reason(h, requirements, humans, agent, owner) is None)
    )


def evaluate(
    requirements: Sequence[ApprovalRequirement],
    humans: Humans,
    agent: str,
    owner: str,
    approvers: Iterable[str],
) -> Quorum:
    """Whether the approvals so far satisfy every requirement, and what is still missing."""
    voters = set(approvers)
    counted: set[str] = set()
    missing: list[str] = []
    for req in requirements:
        valid = {h for h in voters if counts_for(h, req, humans, agent, owner)}
        counted |= valid
        short = req.count - len(valid)
        pool = " or ".join(req.from_groups) if req.from_groups else "any eligible human"
        if short > 0:
            missing.append(f"{short} more from {pool} ({req.source})")
        for group, minimum in req.at_least:
            have = sum(1 for h in valid if group in humans[h])
            if have < minimum:
                missing.append(f"{minimum - have} more from {group} ({req.source})")
    return Quorum(satisfied=not missing, counted=tuple(sorted(counted)), missing=tuple(missing))


def possible(requirements: Sequence[ApprovalRequirement], humans: Humans, agent: str, owner: str) -> Quorum:
    """The quorum if every eligible human approved: unsatisfied means the request can never pass."""
    return evaluate(requirements, humans, agent, owner, eligible_humans(requirements, humans, agent, owner))


def humans_of(groups_by_human: Mapping[str, object]) -> dict[str, tuple[str, ...]]:
    """{name: Human(groups=…)} from the policy → {name: groups}."""
    return {name: tuple(getattr(h, "groups", ())) for name, h in groups_by_human.items()}
