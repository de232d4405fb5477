"""The one way an action is classified under a policy: the gateway, `check`, `policy replay`,
inline policy tests, the gate's re-decision on a policy change and the MCP proxy's tool listing
all call `classify_action`, so none of them can judge an action differently from what runs."""

from __future__ import annotations

from interlock.classify.registry import classify
from interlock.model import Action, Classification, Kind, Risk
from interlock.policy.load import Policy
from interlock.policy.testing import context_for


def classify_action(policy: Policy, action: Action) -> Classification:
    """What the action would do, with what the policy says about its target.

    A terraform action is judged by the plan file Interlock will apply (its hash is checked),
    never by a plan JSON the agent sent alongside; a plan file that cannot be read is unknown.
    """
    if action.kind is Kind.terraform and "plan_file" in action.payload:
        return _classify_plan_file(policy, action)
    return classify(action.kind, action.payload, context_for(policy, action.target))


def _classify_plan_file(policy: Policy, action: Action) -> Classification:
    target = policy.doc.targets.get(action.target or "")
    if target is None:
        return Classification(risk=Risk.unknown, summary="terraform plan file without a known target")
    try:
        from interlock.execute.terraform import load_plan  # terraform support is heavy: only when needed

        plan = load_plan(target, action.payload)
    except Exception as exc:
        return Classification(risk=Risk.unknown, summary=f"cannot read the plan file: {exc}"[:300])
    return classify(Kind.terraform, {"plan": plan}, context_for(policy, action.target))
