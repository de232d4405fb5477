"""Decision latency for already-classified actions, Interlock vs cedarpy, with 10/100/1,000 rules.

Both engines get the equivalent policy and the same questions, parsed once (Interlock's `Policy`,
cedarpy's `PolicySet` and `Entities` handles). The equivalence is checked, not assumed: every
question must get the same allowed/not-allowed answer from both, or the bench fails.

Mapping: roles' grants → `permit` on the environment; `allow` rules → `permit`; `deny` rules →
`forbid`; `approve` rules → `forbid … unless { context.approvals >= N }` (the question asked is
"may it run now, with no approvals yet?").
"""

from __future__ import annotations

import json
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any

import cedarpy

from interlock.model import Action, Classification, DecisionValue, Kind, Risk
from interlock.policy import Policy, decide, load_policy_text

ENVS = ("dev", "sandbox", "staging", "production")
KINDS = ("shell", "sql", "kubectl", "terraform", "aws", "http", "mcp")
RISKS = ("read", "write", "destructive")
TAGS = ("replace", "mass", "privilege")
AGENTS = {"kiro": "deployer", "scout": "reader"}


@dataclass(frozen=True)
class Question:
    agent: str
    action: Action
    classification: Classification
    cedar: dict[str, Any]


def _targets(n_rules: int) -> list[tuple[str, str, str]]:
    """(name, environment, kind): enough targets that rules spread over them like a real estate."""
    count = max(8, n_rules // 4)
    return [(f"t{i}", ENVS[i % len(ENVS)], KINDS[(i // len(ENVS)) % len(KINDS)]) for i in range(count)]


def build(n_rules: int, seed: int = 7) -> tuple[str, str, list[dict[str, Any]], list[tuple[str, str, str]]]:
    """The policy as Interlock YAML and as Cedar text, the Cedar entities, and the targets."""
    rng = random.Random(seed)
    targets = _targets(n_rules)
    yaml_rules: list[str] = []
    cedar: list[str] = [
        # Role grants: deployer reads alone everywhere, writes alone outside production; reader reads.
        'permit(principal in Role::"deployer", action, resource) when { context.risk == "read" };',
        'permit(principal in Role::"deployer", action, resource) when { context.risk == "write" && '
        '!(resource in Env::"production") };',
        'permit(principal in Role::"reader", action, resource) when { context.risk == "read" };',
    ]
    for i in range(n_rules):
        name, env, kind = targets[rng.randrange(len(targets))]
        effect = ("deny", "approve", "allow")[i % 3]
        risks = rng.sample(RISKS, k=rng.randint(1, 2))
        if effect == "allow" and env == "production":
            risks = [r for r in risks if r != "destructive"] or ["write"]
        tag = rng.choice(TAGS) if rng.random() < 0.3 else None
        when = f"environment: {env}, kind: {kind}, target: {name}, risk: [{', '.join(risks)}]"
        when += f", tags: [{tag}]" if tag else ""
        risk_expr = " || ".join(f'context.risk == "{r}"' for r in risks)
        if "destructive" in risks:
            risk_expr += ' || context.risk == "unknown"'
        cond = f"({risk_expr})" + (f' && context.tags.contains("{tag}")' if tag else "")
        head = f'(principal, action == Action::"{kind}", resource == Target::"{name}")'
        if effect == "deny":
            yaml_rules.append(f"  - {{id: r{i}, when: {{{when}}}, effect: deny}}")
            cedar.append(f"forbid{head} when {{ {cond} }};")
        elif effect == "approve":
            count = rng.randint(1, 3)
            yaml_rules.append(f"  - {{id: r{i}, when: {{{when}}}, effect: approve, approvals: {{count: {count}}}}}")
            cedar.append(f"forbid{head} when {{ {cond} }} unless {{ context.approvals >= {count} }};")
        else:
            yaml_rules.append(f"  - {{id: r{i}, when: {{{when}}}, effect: allow}}")
            cedar.append(f"permit{head} when {{ {cond} }};")
    yaml = "\n".join([
        "version: 1",
        "humans: {alice: {groups: [sre]}, bob: {groups: [sre]}, carol: {groups: [sre]}, dave: {groups: [sre]}}",
        "agents: {kiro: {owner: alice, roles: [deployer]}, scout: {owner: alice, roles: [reader]}}",
        "environments: {dev: {}, sandbox: {}, staging: {promotes_to: production}, production: {protected: true}}",
        "targets:",
        *[f"  {n}: {{environment: {e}, kind: {k}}}" for n, e, k in targets],
        "roles:",
        "  deployer:",
        "    production: {autonomous: read, approve: {write: 1, destructive: 2}}",
        "    '*': {autonomous: write, approve: {destructive: 1}}",
        "  reader:",
        "    '*': {autonomous: read, approve: {}}",
        "rules:" if yaml_rules else "rules: []",
        *yaml_rules,
    ])
    entities: list[dict[str, Any]] = [{"uid": {"type": "Env", "id": e}, "attrs": {}, "parents": []} for e in ENVS]
    entities += [{"uid": {"type": "Role", "id": r}, "attrs": {}, "parents": []} for r in ("deployer", "reader")]
    entities += [{"uid": {"type": "Agent", "id": a}, "attrs": {}, "parents": [{"type": "Role", "id": r}]}
                 for a, r in AGENTS.items()]
    entities += [{"uid": {"type": "Target", "id": n}, "attrs": {}, "parents": [{"type": "Env", "id": e}]}
                 for n, e, _ in targets]
    return yaml, "\n".join(cedar), entities, targets


def questions(targets: list[tuple[str, str, str]], n: int, seed: int = 11) -> list[Question]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        name, env, kind = targets[rng.randrange(len(targets))]
        agent = rng.choice(list(AGENTS))
        risk = rng.choice((*RISKS, "unknown"))
        tags = tuple(t for t in TAGS if rng.random() < 0.2)
        action = Action(kind=Kind(kind), environment=env, target=name, payload={"command": f"op {rng.random()}"})
        classification = Classification(risk=Risk(risk), tags=tags, summary="bench")
        cedar = {"principal": f'Agent::"{agent}"', "action": f'Action::"{kind}"', "resource": f'Target::"{name}"',
                 "context": {"risk": risk, "tags": list(tags), "approvals": 0}}
        out.append(Question(agent, action, classification, cedar))
    return out


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    qs = statistics.quantiles(samples_ns, n=100, method="inclusive")
    return qs[49] / 1000, qs[98] / 1000


def time_interlock(policy: Policy, qs: list[Question], rounds: int) -> list[int]:
    for q in qs:  # warm the per-(agent, environment, kind) index, as a running server would be
        decide(policy, q.agent, q.action, q.classification)
    samples = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for q in qs:
            t0 = clock()
            decide(policy, q.agent, q.action, q.classification)
            samples.append(clock() - t0)
    return samples


def time_cedar(policy_set: Any, entities: Any, qs: list[Question], rounds: int) -> list[int]:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for q in qs:
            t0 = clock()
            cedarpy.is_authorized(q.cedar, policy_set, entities)
            samples.append(clock() - t0)
    return samples


def check_equivalence(policy: Policy, policy_set: Any, entities: Any, qs: list[Question]) -> int:
    """Number of questions both engines answer the same way; the bench refuses to report otherwise."""
    same = 0
    for q in qs:
        ours = decide(policy, q.agent, q.action, q.classification).value is DecisionValue.allow
        theirs = cedarpy.is_authorized(q.cedar, policy_set, entities).allowed
        same += ours == theirs
    return same


def main(sizes: tuple[int, ...] = (10, 100, 1000), n_questions: int = 400) -> list[dict[str, Any]]:
    rows = []
    print(f"\nPolicy decision latency (already-classified actions; {n_questions} distinct questions per size)")
    print(f"{'rules':>6} {'interlock p50':>14} {'p99':>9} {'cedarpy p50':>12} {'p99':>9} {'p50 ratio':>10} "
          f"{'p99 ratio':>10} {'agree':>7}")
    for size in sizes:
        yaml, cedar_text, entity_list, targets = build(size)
        policy = load_policy_text(yaml, f"bench-{size}.yaml")
        policy_set = cedarpy.PolicySet.from_str(cedar_text) if hasattr(cedarpy.PolicySet, "from_str") \
            else cedarpy.PolicySet(cedar_text)
        entities = cedarpy.Entities.from_json_str(json.dumps(entity_list))
        qs = questions(targets, n_questions)
        agree = check_equivalence(policy, policy_set, entities, qs)
        if agree != len(qs):
            raise SystemExit(f"policies are not equivalent at {size} rules: {agree}/{len(qs)} agree")
        ours = _percentiles(time_interlock(policy, qs, rounds=50))
        theirs = _percentiles(time_cedar(policy_set, entities, qs, rounds=5))
        row = {"rules": size, "interlock_p50_us": ours[0], "interlock_p99_us": ours[1], "cedarpy_p50_us": theirs[0],
               "cedarpy_p99_us": theirs[1], "ratio_p50": theirs[0] / ours[0], "ratio_p99": theirs[1] / ours[1]}
        rows.append(row)
        print(f"{size:>6} {ours[0]:>12.1f}µs {ours[1]:>7.1f}µs {theirs[0]:>10.1f}µs {theirs[1]:>7.1f}µs "
              f"{row['ratio_p50']:>9.1f}× {row['ratio_p99']:>9.1f}× {agree:>4}/{len(qs)}")
    print("goal: p99 ≤ 50 µs at 1,000 rules and ≥ 3× faster than cedarpy")
    return rows


if __name__ == "__main__":
    main()
