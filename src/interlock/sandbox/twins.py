"""Twins: the target of the same kind, in an earlier environment, where a target's actions run first.

A production target names its twin (`targets.billing-db.twin: billing-db-staging`); the twin may name
its own twin further back (staging → sandbox). A `sandbox` rule names the *environment* to run in
first; the twin in that environment is the one found by following the twin chain there.
"""

from __future__ import annotations

from interlock.policy.schema import PolicyDocument


def chain(doc: PolicyDocument, target: str) -> list[str]:
    """The target's twins, nearest first (stops at a missing target or a cycle; lint reports those)."""
    seen = [target]
    current = doc.targets.get(target)
    while current is not None and current.twin is not None and current.twin not in seen:
        seen.append(current.twin)
        current = doc.targets.get(current.twin)
    return seen[1:]


def twin_in(doc: PolicyDocument, target: str, environment: str) -> str | None:
    """The target's twin in `environment`, following the twin chain; None when it has none there."""
    for name in chain(doc, target):
        twin = doc.targets.get(name)
        if twin is not None and twin.environment == environment:
            return name
    return None


def precedes(doc: PolicyDocument, earlier: str, later: str) -> bool:
    """Whether `earlier` comes before `later` in the promotion chain (`promotes_to`, transitively)."""
    seen = {earlier}
    env = doc.environments.get(earlier)
    while env is not None and env.promotes_to is not None and env.promotes_to not in seen:
        if env.promotes_to == later:
            return True
        seen.add(env.promotes_to)
        env = doc.environments.get(env.promotes_to)
    return False
