"""A terraform rollback is a configuration revision planned at rollback time (issue 16.6).

A saved plan is made against the state of its moment: after the forward change it is stale, and
terraform refuses it. So a rollout over terraform targets names, as its rollback, the previous
configuration — `{"revision": "revisions/v1", "revision_sha256": "<hex>"}`, a directory inside each
target's workdir bound by the hash of its files — and the runner plans it when the rollback runs.

What the humans approve for the rollback is the **inverse of the forward plan** (what was created is
destroyed, what was updated is updated back, what was replaced is replaced again): each target's
expected rollback is classified and decided like a plan, and shown as "planned at rollback time". At
rollback time the real plan is held against it: a change it does not contain (it would now destroy
something, replace something, touch another resource) or a higher risk pauses the rollout for a human,
naming the change; within it, the plan is applied under the rollout's approval.

    expected = expected_rollback(policy, forward)         # at submission, from the forward plan file
    classification = classify_expected(policy, rollback, expected)
    problems = beyond(expected, planned)                  # at rollback time: [] or what exceeds it
"""

from __future__ import annotations

from typing import Any

from interlock.classify.registry import classify
from interlock.execute.result import ExecutionError
from interlock.model import Action, Classification, Kind
from interlock.policy import Policy
from interlock.policy.testing import context_for

#: A forward change's counted action → the action that undoes it.
_UNDO = {"create": ["delete"], "delete": ["create"], "update": ["update"], "replace": ["delete", "create"]}
_VERB = {"create": "creates", "delete": "destroys", "update": "updates", "replace": "replaces"}
_COUNTED = {("create",): "create", ("delete",): "delete", ("update",): "update",
            ("delete", "create"): "replace", ("create", "delete"): "replace"}


class RevisionError(ValueError):
    """The rollback revision cannot be used (unreadable forward plan, wrong hash, not a directory)."""


def is_revision(kind: Kind, payload: dict[str, Any]) -> bool:
    return kind is Kind.terraform and "revision" in payload and "plan_file" not in payload


def _counted(change: dict[str, Any]) -> str | None:
    actions = change.get("change", {}).get("actions")
    return _COUNTED.get(tuple(actions)) if isinstance(actions, list) else None


def inverse(forward: dict[str, Any]) -> dict[str, Any]:
    """The plan (in `terraform show -json` form) that undoes `forward`: before and after swapped."""
    changes = []
    for change in forward.get("resource_changes") or []:
        counted = _counted(change)
        if counted is None:  # reads, no-ops, forgets: nothing to undo
            continue
        body = change.get("change", {})
        changes.append({**{k: v for k, v in change.items() if k in ("address", "mode", "type", "name",
                                                                     "provider_name", "index")},
                        "change": {"actions": _UNDO[counted], "before": body.get("after"),
                                   "after": body.get("before")}})
    return {"format_version": forward.get("format_version", "1.2"), "resource_changes": changes}


def expected_rollback(policy: Policy, forward: Action) -> dict[str, Any]:
    """The inverse of the forward action's plan file on its target (read and hash-checked now)."""
    from interlock.execute.terraform import load_plan  # terraform support is heavy: only when needed

    target = policy.doc.targets.get(forward.target or "")
    if target is None:
        raise RevisionError(f"target {forward.target!r} is not in the policy")
    try:
        return inverse(load_plan(target, forward.payload))
    except ExecutionError as exc:
        raise RevisionError(f"the forward plan on {forward.target} cannot be read, so its rollback cannot be "
                            f"derived: {exc}") from None


def check_revision(policy: Policy, rollback: Action) -> None:
    """The revision is a directory inside the target's workdir whose files hash to `revision_sha256`."""
    from interlock.execute import terraform

    target = policy.doc.targets.get(rollback.target or "")
    if target is None:
        raise RevisionError(f"target {rollback.target!r} is not in the policy")
    try:
        directory, expected = terraform._revision_dir(terraform._workdir(target), rollback.payload)
        actual = terraform.revision_sha256(directory)
    except ExecutionError as exc:
        raise RevisionError(f"the rollback revision on {rollback.target}: {exc}") from None
    if actual != expected:
        raise RevisionError(f"the rollback revision {rollback.payload['revision']!r} on {rollback.target} has sha256 "
                            f"{actual}, not {expected}: name the revision's current hash, or restore its files")


def classify_expected(policy: Policy, rollback: Action, expected: dict[str, Any]) -> Classification:
    """The rollback as the approvers see it: the expected plan's judgement, said to be planned later."""
    found = classify(Kind.terraform, {"plan": expected}, context_for(policy, rollback.target))
    summary = (f"configuration revision {rollback.payload.get('revision')} (sha256 "
               f"{str(rollback.payload.get('revision_sha256'))[:12]}…), planned at rollback time against the live "
               f"state; expected: {found.summary}")
    return found.model_copy(update={"summary": summary[:1000],
                                    "details": {**found.details, "planned_at_rollback": True,
                                                "expected_changes": changes_of(expected)}})


def changes_of(plan: dict[str, Any]) -> list[dict[str, str]]:
    """[{address, action}] of what a plan changes (reads and no-ops left out)."""
    found = []
    for change in plan.get("resource_changes") or []:
        counted = _counted(change)
        if counted is not None:
            found.append({"address": str(change.get("address")), "action": counted})
    return found


def describe(changes: list[dict[str, str]]) -> str:
    return ", ".join(f"{_VERB[c['action']]} {c['address']}" for c in changes) or "changes nothing"


def beyond(approved: list[dict[str, str]], planned: list[dict[str, str]]) -> list[dict[str, str]]:
    """The planned changes the approved rollback does not contain (empty: within what was approved)."""
    allowed = {(c["address"], c["action"]) for c in approved}
    return [c for c in planned if (c["address"], c["action"]) not in allowed]
