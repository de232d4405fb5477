"""The decision: a pure function of (policy, agent, action, classification).

Semantics (docs/policy.md):
1. Default deny: an unknown agent, environment or target, or no role grant, is a denial.
2. Deny wins: a matching `deny` rule beats every other rule and grant.
3. Grants come from roles (per environment: what the agent may do alone, and with which approvals)
   and from `allow` rules (explicit autonomy for a narrow case; the hard floor keeps them away from
   destructive actions in protected environments). `approve` and `sandbox` rules only tighten.
4. Every matching approval requirement applies: the approvers must satisfy all of them, so the
   strictest one always holds; requirements that another one implies are dropped for display.
5. `unknown` risk is judged as `destructive` (invariant 3).

Speed: rules are indexed by (agent, environment, kind) on first use, so a decision only looks at rules
that could match that agent there; the per-action work is risk, tags, target and input patterns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import regex

from interlock.classify.registry import TEXT_FIELD
from interlock.fingerprint import canonical_json
from interlock.model import Action, ApprovalRequirement, Classification, Decision, DecisionValue, Risk, built_decision
from interlock.policy.load import Policy, _predecessor
from interlock.policy.normalize import input_forms
from interlock.policy.schema import Approvals, Rule

#: A policy's input pattern gets this long over hostile input before it counts as matched (fail closed).
PATTERN_TIMEOUT_SECONDS = 0.05
_LEVELS = (Risk.read, Risk.write, Risk.destructive)


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: Rule
    risks: frozenset[Risk] | None
    tags: frozenset[str]
    targets: frozenset[str] | None
    patterns: tuple[Any, ...]

    def matches(self, risk: Risk, tags: frozenset[str], target: str | None,
                forms: Callable[[], tuple[str, ...]], written: Callable[[], str]) -> bool:
        if self.risks is not None and risk not in self.risks:
            return False
        if self.tags and not self.tags <= tags:
            return False
        if self.targets is not None and target not in self.targets:
            return False
        if self.patterns:
            # A restriction matches the text as written or any normalized form (policy/normalize.py);
            # a permission only the text as written (the first form), so normalizing never widens what is
            # allowed, and a permission needs no normalizing at all.
            return self._pattern_matches(forms() if self.rule.effect != "allow" else (written(),))
        return True

    def _pattern_matches(self, texts: tuple[str, ...]) -> bool:
        for text in texts:
            for pattern in self.patterns:
                try:
                    if pattern.search(text, timeout=PATTERN_TIMEOUT_SECONDS):
                        return True
                except TimeoutError:
                    # Fail closed: a pattern that cannot finish counts as matching a restriction and as
                    # not matching a permission.
                    return self.rule.effect != "allow"
        return False


@dataclass(frozen=True, slots=True)
class _Baseline:
    """What the agent's roles say about one risk level in one environment."""

    value: DecisionValue
    source: str
    requirement: ApprovalRequirement | None
    reason: str
    remedy: str


def _compile_rule(rule: Rule) -> _Compiled:
    risks: frozenset[Risk] | None = None
    if rule.when.risk:
        given = set(rule.when.risk)
        if Risk.destructive in given:
            given.add(Risk.unknown)  # unknown is judged as destructive
        risks = frozenset(given)
    return _Compiled(
        rule=rule,
        risks=risks,
        tags=frozenset(rule.when.tags),
        targets=frozenset(rule.when.target) if rule.when.target else None,
        patterns=tuple(regex.compile(p) for p in rule.when.input),
    )


def _candidates(policy: Policy, agent: str, env: str, kinds: tuple[str, ...]) -> tuple[_Compiled, ...]:
    """Rules whose agent, role, environment and kind conditions hold, in policy order (memoised).
    `kinds` is the action's own kind and the kinds found inside it (a shell line running psql is sql too)."""
    cache: dict[tuple[str, str, tuple[str, ...]], tuple[_Compiled, ...]] = policy._compiled.setdefault("candidates", {})
    key = (agent, env, kinds)
    found = cache.get(key)
    if found is None:
        compiled: list[_Compiled] = policy._compiled.get("rules") or [_compile_rule(r) for r in policy.doc.rules]
        policy._compiled["rules"] = compiled
        roles = set(policy.doc.agents[agent].roles)
        found = tuple(
            c for c in compiled
            if (not c.rule.when.agent or agent in c.rule.when.agent)
            and (not c.rule.when.role or roles & set(c.rule.when.role))
            and (not c.rule.when.environment or env in c.rule.when.environment)
            and (not c.rule.when.kind or any(k in c.rule.when.kind for k in kinds))
        )
        cache[key] = found
    return found


def _requirement(spec: Approvals, source: str) -> ApprovalRequirement:
    return ApprovalRequirement(count=spec.count, from_groups=spec.from_groups,
                               at_least=tuple(sorted(spec.at_least.items())), source=source)


def _baseline(policy: Policy, agent: str, env: str, risk: Risk) -> _Baseline:
    cache: dict[tuple[str, str, Risk], _Baseline] = policy._compiled.setdefault("baseline", {})
    key = (agent, env, risk)
    if key not in cache:
        cache[key] = _compute_baseline(policy, agent, env, risk)
    return cache[key]


def _compute_baseline(policy: Policy, agent: str, env: str, risk: Risk) -> _Baseline:
    """The most permissive of the agent's role grants for this risk in this environment."""
    doc = policy.doc
    best: _Baseline | None = None
    ceilings: list[str] = []
    for role in doc.agents[agent].roles:
        grants = doc.roles.get(role, {})
        grant = grants.get(env) or grants.get("*")
        if grant is None:
            continue
        source = f"role:{role}@{env}"
        if grant.autonomous != "ask" and risk.at_most(Risk(grant.autonomous)):
            return _Baseline(DecisionValue.allow, source, None,
                             f"role {role} may take {risk.value} actions alone in {env}", "")
        spec = grant.approve.get(risk.value)  # type: ignore[call-overload]
        if spec is not None:
            req = _requirement(spec, source)
            if best is None or (best.requirement is not None and req.count < best.requirement.count):
                best = _Baseline(DecisionValue.approval_required, source, req,
                                 f"{risk.value} actions in {env} need approval (role {role})", "")
        top = max((Risk(r) for r in grant.approve), key=lambda r: r.rank, default=None)
        alone = "nothing" if grant.autonomous == "ask" else f"{grant.autonomous} actions"
        ceilings.append(f"role {role} allows {alone} alone in {env}"
                        + (f" and up to {top.value} with approval" if top else ""))
    if best is not None:
        return best
    roles = ", ".join(doc.agents[agent].roles) or "none"
    if ceilings:
        return _Baseline(DecisionValue.deny, "default-deny", None,
                         f"no role of agent {agent} grants {risk.value} actions in {env}",
                         "; ".join(ceilings) + ": a human must do this, or the policy must grant it")
    return _Baseline(DecisionValue.deny, "default-deny", None,
                     f"agent {agent} has no grant in environment {env} (roles: {roles})",
                     f"add a grant for {env} to one of its roles in the policy")


def _strictest(reqs: list[ApprovalRequirement]) -> tuple[ApprovalRequirement, ...]:
    """Drop requirements implied by another (more approvals from a narrower or equal pool)."""

    def implies(a: ApprovalRequirement, b: ApprovalRequirement) -> bool:
        narrower = (bool(a.from_groups) and set(a.from_groups) <= set(b.from_groups)) or not b.from_groups
        return a.count >= b.count and narrower and set(b.at_least) <= set(a.at_least)

    kept: list[ApprovalRequirement] = []
    for i, req in enumerate(reqs):
        dominated = any(
            implies(other, req) and (not implies(req, other) or j < i)
            for j, other in enumerate(reqs) if j != i
        )
        if not dominated:
            kept.append(req)
    return tuple(kept)


def action_text(action: Action) -> str:
    """The text input patterns match against: the command or SQL, else the payload's canonical JSON."""
    field = TEXT_FIELD.get(action.kind)
    value = action.payload.get(field) if field else None
    if isinstance(value, str):
        return value
    return canonical_json(action.payload).decode()


def _deny(classification: Classification, policy: Policy, rules: tuple[str, ...], reason: str,
          remedy: str) -> Decision:
    return built_decision(
        value=DecisionValue.deny, risk=classification.risk, tags=classification.tags, summary=classification.summary,
        rules=rules, reasons=(reason,), remedy=(remedy,) if remedy else (), approvals=(), sandbox=None,
        policy_version=policy.version,
    )


def decide(policy: Policy, agent: str, action: Action, classification: Classification, *,
           sandboxed: bool = False) -> Decision:
    """Decide one action. `sandboxed` says evidence from the sandbox environment is attached."""
    doc = policy.doc
    env = action.environment
    if agent not in doc.agents:
        return _deny(classification, policy, ("default-deny",), f"agent {agent!r} is not in the policy",
                     "add the agent to the policy's agents, with an owner and roles")
    if env not in doc.environments:
        return _deny(classification, policy, ("default-deny",), f"environment {env!r} is not in the policy",
                     f"use one of: {', '.join(doc.environments)}")
    if action.target is not None:
        target = doc.targets.get(action.target)
        if target is None:
            return _deny(classification, policy, ("default-deny",), f"target {action.target!r} is not in the policy",
                         "name a target from the policy's targets")
        if target.environment != env:
            return _deny(classification, policy, ("default-deny",),
                         f"target {action.target} is in {target.environment}, not {env}",
                         f"propose it in environment {target.environment}")
        if target.kind != action.kind:
            return _deny(classification, policy, ("default-deny",),
                         f"target {action.target} takes {target.kind.value} actions, not {action.kind.value}", "")

    risk = classification.risk
    level = risk.effective
    tags = frozenset(classification.tags)
    kinds = (action.kind.value, *classification.kinds) if classification.kinds else (action.kind.value,)
    forms_cache: list[tuple[str, ...]] = []
    text_cache: list[str] = []

    def written() -> str:
        if not text_cache:
            text_cache.append(action_text(action))
        return text_cache[0]

    def forms() -> tuple[str, ...]:
        if not forms_cache:
            target = doc.targets.get(action.target) if action.target else None
            forms_cache.append(input_forms(written(), action.kind, tuple(classification.kinds or ()),
                                           target.dialect if target else "postgres"))
        return forms_cache[0]

    matched = [c.rule for c in _candidates(policy, agent, env, kinds)
               if c.matches(risk, tags, action.target, forms, written)]
    denies = [r for r in matched if r.effect == "deny"]
    if denies:
        return _deny(classification, policy, tuple(r.id for r in denies),
                     "; ".join(r.reason or f"rule {r.id} forbids it" for r in denies),
                     "no approval can allow this: the policy forbids it for agents")

    base = _baseline(policy, agent, env, level)
    allows = [r for r in matched if r.effect == "allow"]
    approves = [r for r in matched if r.effect == "approve"]
    sandboxes = [r for r in matched if r.effect == "sandbox"]

    rules: list[str] = []
    reasons: list[str] = []
    reqs: list[ApprovalRequirement] = []
    if allows:
        value = DecisionValue.allow
        rules += [r.id for r in allows]
        reasons += [r.reason or f"rule {r.id} allows it" for r in allows]
    elif base.value is DecisionValue.deny:
        tighter = [f"rule {r.id} would also require {_requirement(r.approvals, r.id).describe()}"
                   for r in approves if r.approvals]
        return _deny(classification, policy, (base.source, *(r.id for r in approves)), base.reason,
                     "; ".join([base.remedy, *tighter]))
    else:
        value = base.value
        rules.append(base.source)
        reasons.append(base.reason)
        if base.requirement is not None:
            reqs.append(base.requirement)

    for r in approves:
        assert r.approvals is not None
        value = DecisionValue.approval_required
        rules.append(r.id)
        reasons.append(r.reason or f"rule {r.id} requires approval")
        reqs.append(_requirement(r.approvals, r.id))

    if value is DecisionValue.allow and level is Risk.destructive and doc.environments[env].protected:
        # The loader refuses policies that could get here; this keeps invariant 6 even if one slipped by.
        value = DecisionValue.approval_required
        rules.append("hard-floor")
        reasons.append(f"destructive actions in protected environment {env} always need a human")
        reqs.append(ApprovalRequirement(count=1, source="hard-floor"))

    sandbox_env: str | None = None
    if sandboxes and not sandboxed:
        value = DecisionValue.sandbox_required
        first = sandboxes[0]
        sandbox_env = first.sandbox or _predecessor(doc, env)
        rules += [r.id for r in sandboxes]
        reasons += [r.reason or f"rule {r.id} requires a sandbox run first" for r in sandboxes]

    approvals = _strictest(reqs)
    remedy: list[str] = []
    if value is DecisionValue.sandbox_required:
        remedy.append(f"run in {sandbox_env} first, then propose it in {env} again with the evidence")
    if approvals and value is not DecisionValue.allow:
        remedy += [f"needs {req.describe()} ({req.source})" for req in approvals]
    return built_decision(
        value=value, risk=risk, tags=classification.tags, summary=classification.summary,
        rules=tuple(rules), reasons=tuple(reasons), remedy=tuple(remedy),
        approvals=approvals if value is not DecisionValue.allow else (), sandbox=sandbox_env,
        policy_version=policy.version,
    )
