"""Target groups (policy `groups:`): the members a rollout changes, all of one kind.

A group lists its targets, or selects them by labels (`{selector: {tier: billing}}`: every label
must match). Members come in the order the group lists them (a selector: the policy's target order),
and that order is the rollout's order: wave 1 takes the first ones.
"""

from __future__ import annotations

from interlock.policy.schema import PolicyDocument, TargetGroup


class GroupError(ValueError):
    """A group that cannot be rolled out over: `path` is where in the policy, the message what to do."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


def members(doc: PolicyDocument, name: str) -> list[str]:
    """The group's targets in rollout order, or GroupError (unknown, empty, mixed kinds, unknown member)."""
    group = doc.groups.get(name)
    if group is None:
        known = ", ".join(sorted(doc.groups)) or "none defined"
        raise GroupError(("groups",), f"unknown target group {name!r} (groups: {known}): add it under `groups:`")
    return _members(doc, name, group)


def _members(doc: PolicyDocument, name: str, group: TargetGroup) -> list[str]:
    path: tuple[str | int, ...] = ("groups", name)
    if group.targets and group.selector:
        raise GroupError(path, f"group {name} has both `targets` and `selector`: use one")
    if group.selector:
        found = [t for t, target in doc.targets.items()
                 if all(target.labels.get(k) == v for k, v in group.selector.items())]
    else:
        found = list(group.targets)
    for i, target_name in enumerate(found):
        if target_name not in doc.targets:
            raise GroupError((*path, "targets", i), f"group {name} names unknown target {target_name!r}")
    if len(set(found)) != len(found):
        raise GroupError(path, f"group {name} lists a target twice: each member is changed once")
    if not found:
        what = f"no target has the labels {group.selector}" if group.selector else "it lists no targets"
        raise GroupError(path, f"group {name} is empty ({what}): a rollout needs at least one target")
    kinds = {doc.targets[t].kind.value for t in found}
    if len(kinds) > 1:
        by_kind = "; ".join(f"{k}: {', '.join(t for t in found if doc.targets[t].kind.value == k)}"
                            for k in sorted(kinds))
        raise GroupError(path, f"group {name} mixes target kinds ({by_kind}): a group is all of one kind")
    return found


def problems(doc: PolicyDocument) -> list[GroupError]:
    """Every group's problem, for `policy lint` and loading."""
    found: list[GroupError] = []
    for name, group in doc.groups.items():
        try:
            _members(doc, name, group)
        except GroupError as exc:
            found.append(exc)
    return found
