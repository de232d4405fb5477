"""The decision semantics, as a table: (agent, environment, kind, target, risk, tags, input) → decision value."""

from __future__ import annotations

import time

import pytest

from interlock.model import Action, Classification, DecisionValue, Kind, Risk
from interlock.policy import decide, load_policy_text

POLICY = """\
version: 1
humans:
  alice: {groups: [sre]}
  bob: {groups: [sre, dba]}
  carol: {groups: [dba]}
  dave: {groups: [sre]}
agents:
  kiro: {owner: alice, roles: [deployer]}
  multi: {owner: bob, roles: [reader, deployer]}
  reporter: {owner: carol, roles: [reader]}
  nobody: {owner: carol}
environments:
  sandbox: {}
  staging: {promotes_to: production}
  production: {protected: true}
  lab: {}
targets:
  billing-db: {environment: production, kind: sql, dsn: env:BILLING, twin: billing-staging}
  billing-staging: {environment: staging, kind: sql, dsn: env:BILLING_STAGING}
  lab-db: {environment: lab, kind: sql, dsn: env:LAB}
roles:
  deployer:
    sandbox: {autonomous: destructive}
    staging: {autonomous: write, approve: {destructive: 1}}
    production: {autonomous: read, approve: {write: 1, destructive: 2}}
    lab: {}
  reader:
    "*": {autonomous: read, approve: {}}
rules:
  - id: no-replace
    when: {environment: production, tags: [replace]}
    effect: deny
    reason: no delete-and-recreate in production
  - id: sandbox-ok
    when: {environment: sandbox, kind: shell}
    effect: allow
  - id: dba-for-sql
    when: {environment: production, kind: sql, risk: [write, destructive]}
    effect: approve
    approvals: {count: 2, from: [dba]}
  - id: three-sre-for-mass
    when: {environment: production, tags: [mass]}
    effect: approve
    approvals: {count: 3, from: [sre]}
  - id: schema-first
    when: {environment: production, tags: [schema]}
    effect: sandbox
  - id: forbid-pattern
    when: {input: 'rm\\s+-rf\\s+/$'}
    effect: deny
  - id: slow-pattern
    when: {environment: lab, input: '^(a|aa)+$'}
    effect: approve
    approvals: {count: 1}
  - id: restart
    when: {environment: production, kind: kubectl, risk: [read, write], input: '^kubectl rollout restart'}
    effect: allow
"""

P = load_policy_text(POLICY, "decide.yaml")

R, W, D, U = Risk.read, Risk.write, Risk.destructive, Risk.unknown
ALLOW, DENY, APPROVE, SANDBOX = DecisionValue.allow, DecisionValue.deny, DecisionValue.approval_required, DecisionValue.sandbox_required

# (id, agent, env, kind, target, risk, tags, input, value, approvals, rule)
CASES = [
    ("read alone in production", "kiro", "production", "shell", None, R, (), "ls", ALLOW, 0, "role:deployer@production"),
    ("write needs one", "kiro", "production", "shell", None, W, (), "touch x", APPROVE, 1, "role:deployer@production"),
    ("destructive needs two", "kiro", "production", "shell", None, D, (), "rm x", APPROVE, 2, "role:deployer@production"),
    ("unknown is destructive", "kiro", "production", "shell", None, U, (), "frob", APPROVE, 2, None),
    ("staging write alone", "kiro", "staging", "shell", None, W, (), "touch x", ALLOW, 0, None),
    ("staging destructive one", "kiro", "staging", "shell", None, D, (), "rm x", APPROVE, 1, None),
    ("sandbox anything", "kiro", "sandbox", "sql", None, D, (), "DROP TABLE x", ALLOW, 0, None),
    ("default deny: unknown agent", "mallory", "production", "shell", None, R, (), "ls", DENY, 0, "default-deny"),
    ("default deny: unknown env", "kiro", "prod", "shell", None, R, (), "ls", DENY, 0, "default-deny"),
    ("default deny: unknown target", "kiro", "production", "sql", "nope", R, (), "SELECT 1", DENY, 0, "default-deny"),
    ("default deny: target in another env", "kiro", "staging", "sql", "billing-db", R, (), "SELECT 1", DENY, 0, None),
    ("default deny: target of another kind", "kiro", "production", "shell", "billing-db", R, (), "ls", DENY, 0, None),
    ("default deny: agent without roles", "nobody", "staging", "shell", None, R, (), "ls", DENY, 0, "default-deny"),
    ("default grant asks for reads", "kiro", "lab", "shell", None, R, (), "ls", APPROVE, 1, "role:deployer@lab"),
    ("default grant denies writes", "kiro", "lab", "shell", None, W, (), "touch x", DENY, 0, "default-deny"),
    ("reader wildcard reads", "reporter", "production", "sql", "billing-db", R, (), "SELECT 1", ALLOW, 0, None),
    ("reader cannot write anywhere", "reporter", "staging", "shell", None, W, (), "touch x", DENY, 0, "default-deny"),
    ("allow rule grants without a role", "reporter", "sandbox", "shell", None, D, (), "rm x", ALLOW, 0, "sandbox-ok"),
    ("deny beats allow", "kiro", "sandbox", "shell", None, D, (), "rm -rf /", DENY, 0, "forbid-pattern"),
    ("deny beats role grant", "kiro", "production", "kubectl", None, D, ("replace",), "kubectl replace --force -f x",
     DENY, 0, "no-replace"),
    ("strictest approval: rule above role", "kiro", "production", "sql", "billing-db", W, (), "UPDATE t SET a=1 WHERE id=1",
     APPROVE, 2, "dba-for-sql"),
    ("all matching requirements apply", "kiro", "production", "sql", "billing-db", D, ("mass",), "DELETE FROM t",
     APPROVE, 3, "three-sre-for-mass"),
    ("approve rule does not grant", "reporter", "production", "sql", "billing-db", W, (), "UPDATE t SET a=1",
     DENY, 0, "default-deny"),
    ("most permissive role wins", "multi", "production", "shell", None, W, (), "touch x", APPROVE, 1, None),
    ("sandbox first", "kiro", "production", "sql", "billing-db", W, ("schema",), "ALTER TABLE t ADD c int",
     SANDBOX, 2, "schema-first"),
    ("allow rule narrow pattern", "kiro", "production", "kubectl", None, W, (), "kubectl rollout restart deploy/api",
     ALLOW, 0, "restart"),
    ("allow rule pattern mismatch", "kiro", "production", "kubectl", None, W, (), "kubectl scale deploy/api",
     APPROVE, 1, None),
    ("allow rule risk mismatch", "kiro", "production", "kubectl", None, U, (), "kubectl rollout restart x; rm",
     APPROVE, 2, None),
]


@pytest.mark.parametrize(
    ("name", "agent", "env", "kind", "target", "risk", "tags", "text", "value", "approvals", "rule"),
    CASES, ids=[c[0] for c in CASES],
)
def test_decision(name: str, agent: str, env: str, kind: str, target: str | None, risk: Risk,
                  tags: tuple[str, ...], text: str, value: DecisionValue, approvals: int, rule: str | None) -> None:
    field = {"sql": "sql"}.get(kind, "command")
    action = Action(kind=Kind(kind), environment=env, target=target, payload={field: text})
    decision = decide(P, agent, action, Classification(risk=risk, tags=tags, summary=text))
    assert decision.value is value, decision.reasons
    assert max((r.count for r in decision.approvals), default=0) == approvals
    if rule is not None:
        assert rule in decision.rules
    assert decision.reasons, "every decision says why"
    assert decision.policy_version == P.version
    if value is not ALLOW:
        assert decision.remedy or value is DENY


def _decide(agent: str, env: str, text: str, risk: Risk = W, tags: tuple[str, ...] = ()) -> object:
    action = Action(kind=Kind.shell, environment=env, payload={"command": text})
    return decide(P, agent, action, Classification(risk=risk, tags=tags, summary=text))


def test_remedies_say_what_would_allow_it() -> None:
    sandbox = decide(P, "kiro", Action(kind=Kind.sql, environment="production", target="billing-db",
                                       payload={"sql": "ALTER TABLE t ADD c int"}),
                     Classification(risk=W, tags=("schema",), summary="alter"))
    assert sandbox.sandbox == "staging"
    assert "run in staging first" in sandbox.remedy[0]
    assert any("needs 2 approvals from dba (dba-for-sql)" in r for r in sandbox.remedy)
    no_grant = _decide("kiro", "lab", "touch x")
    assert "role deployer allows nothing alone in lab and up to read with approval" in no_grant.remedy[0]  # type: ignore[attr-defined]


def test_multiple_requirements_are_all_kept_when_neither_implies_the_other() -> None:
    d = decide(P, "kiro", Action(kind=Kind.sql, environment="production", target="billing-db",
                                 payload={"sql": "DELETE FROM t"}), Classification(risk=D, tags=("mass",), summary="x"))
    assert sorted((r.count, r.from_groups) for r in d.approvals) == [(2, ("dba",)), (3, ("sre",))]


def test_catastrophic_pattern_fails_closed_and_fast() -> None:
    start = time.perf_counter()
    d = decide(P, "kiro", Action(kind=Kind.shell, environment="lab", payload={"command": "a" * 64 + "!"}),
               Classification(risk=R, summary="x"))
    assert time.perf_counter() - start < 1.0
    # The approve rule's pattern could not finish: treated as matched (a restriction), never as an allow.
    assert d.value is APPROVE and "slow-pattern" in d.rules


def test_decide_is_pure_and_repeatable() -> None:
    a = _decide("kiro", "production", "touch x")
    b = _decide("kiro", "production", "touch x")
    assert a == b


def test_the_fast_decision_is_the_one_model_construct_builds() -> None:
    from interlock.model import ApprovalRequirement, Decision, DecisionValue, Risk, built_decision

    values = {"value": DecisionValue.approval_required, "risk": Risk.write, "tags": ("mass",), "summary": "s",
              "rules": ("r",), "reasons": ("why",), "remedy": ("needs",), "sandbox": None, "policy_version": "v",
              "approvals": (ApprovalRequirement(count=2, from_groups=("dba",), source="r"),)}
    fast = built_decision(**values)  # type: ignore[arg-type]
    slow = Decision.model_construct(**values)
    assert fast == slow
    assert fast.model_dump() == slow.model_dump() and fast.model_dump(mode="json") == slow.model_dump(mode="json")
    assert fast.model_fields_set == slow.model_fields_set
    assert Decision.model_validate(fast.model_dump()) == fast
