"""Inline policy tests (`tests:` in the policy file), run by `interlock policy test` and at server start.

Like `opa test`: a policy carries examples of what it must decide, and a change that breaks one is
caught before it is enforced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from interlock.classify.registry import DEFAULT_CONTEXT, ClassifyContext, classify, payload_from_input
from interlock.guard.freezes import apply_windows
from interlock.model import Action, Classification, Decision
from interlock.policy.engine import decide
from interlock.policy.load import Policy, Problem
from interlock.policy.schema import PolicyTest


@dataclass(frozen=True)
class TestResult:
    index: int
    test: PolicyTest
    decision: Decision | None
    failure: str | None

    @property
    def passed(self) -> bool:
        return self.failure is None

    def location(self, policy: Policy) -> Problem:
        return policy.locations.problem(("tests", self.index), self.failure or "ok")


def context_for(policy: Policy, target: str | None) -> ClassifyContext:
    """What the policy says about a target that changes how its actions are classified (built once per
    policy and target: a frozen model, shared; keyed on names the policy holds, so bounded by it)."""
    contexts: dict[str | None, ClassifyContext] = policy._compiled.setdefault("contexts", {})
    if target is not None and target not in policy.doc.targets:
        target = None  # what an unknown name gets; never a key of its own (the agent picks the name)
    found = contexts.get(target)
    if found is None:
        made = _context(policy, target)
        # The registry's own default when equal: classifiers that cache only under it see it by identity.
        found = contexts[target] = DEFAULT_CONTEXT if made == DEFAULT_CONTEXT else made
    return found


def _context(policy: Policy, target: str | None) -> ClassifyContext:
    rules = policy._compiled.get("paths")
    if rules is None:
        rules = policy._compiled["paths"] = policy.doc.paths.rules()
    t = policy.doc.targets.get(target) if target else None
    if t is None:
        return ClassifyContext(paths=rules)
    return ClassifyContext(sql_dialect=t.dialect, http_methods=t.http_methods, mcp_tools=t.mcp_tools,
                           read_only_functions=frozenset(t.read_only_functions), paths=rules)


def classify_input(policy: Policy, test: PolicyTest) -> tuple[Action, Classification]:
    action = Action(kind=test.kind, environment=test.env, target=test.target,
                    payload=payload_from_input(test.kind, test.input))
    found = classify(test.kind, action.payload, context_for(policy, test.target))
    if test.risk is not None or test.tags is not None:
        found = Classification(
            risk=test.risk if test.risk is not None else found.risk,
            tags=tuple(test.tags) if test.tags is not None else found.tags,
            summary=found.summary, details=found.details,
        )
    return action, found


def run_test(policy: Policy, index: int, test: PolicyTest) -> TestResult:
    try:
        action, found = classify_input(policy, test)
    except ValueError as exc:
        return TestResult(index, test, None, f"input is not valid for kind {test.kind.value}: {exc}")
    decision = decide(policy, test.agent, action, found)
    if test.at is not None:
        decision = apply_windows(policy.doc, test.agent, action, decision,
                                 datetime.fromisoformat(test.at.replace("Z", "+00:00")))
    problems: list[str] = []
    if decision.value is not test.expect:
        problems.append(f"expected {test.expect.value}, got {decision.value.value}")
    if test.approvals is not None:
        got = max((r.count for r in decision.approvals), default=0)
        if got != test.approvals:
            problems.append(f"expected {test.approvals} approvals, got {got}")
    if test.rule is not None and test.rule not in decision.rules:
        problems.append(f"expected rule {test.rule!r} among the deciding rules")
    if problems:
        deciding = ", ".join(decision.rules) or "none"
        why = "; ".join(decision.reasons)
        failure = (f"{'; '.join(problems)} (risk {found.risk.value}"
                   f"{', tags ' + ','.join(found.tags) if found.tags else ''}; deciding: {deciding}; {why})")
        return TestResult(index, test, decision, failure)
    return TestResult(index, test, decision, None)


def run_tests(policy: Policy) -> list[TestResult]:
    return [run_test(policy, i, t) for i, t in enumerate(policy.doc.tests)]
