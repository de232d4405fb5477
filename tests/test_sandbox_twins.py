"""Twins in the policy: where a target's actions are rehearsed, and what `policy lint` refuses (file:line)."""

from __future__ import annotations

import pytest

from interlock.policy import PolicyError, load_policy_text
from interlock.sandbox import twins

BASE = """\
version: 1
humans:
  alice: {groups: [sre]}
agents:
  kiro: {owner: alice, roles: [deployer]}
environments:
  sandbox: {promotes_to: staging}
  staging: {promotes_to: production}
  production: {protected: true}
  lab: {}
targets:
  db: {environment: production, kind: sql, dsn: env:DB, twin: db-staging}
  db-staging: {environment: staging, kind: sql, dsn: env:DB_STAGING, twin: db-sandbox}
  db-sandbox: {environment: sandbox, kind: sql, dsn: env:DB_SANDBOX}
  stack: {environment: production, kind: terraform, workdir: /srv/prod, twin: stack-sandbox}
  stack-sandbox: {environment: sandbox, kind: terraform, workdir: /srv/sandbox}
  other-prod: {environment: production, kind: sql, dsn: env:OTHER}
  lab-db: {environment: lab, kind: sql, dsn: env:LAB}
roles:
  deployer:
    production: {autonomous: read, approve: {write: 1, destructive: 2}}
"""


def refused(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "p.yaml")
    return [str(p) for p in caught.value.problems]


def test_twins_follow_the_chain() -> None:
    doc = load_policy_text(BASE, "p.yaml").doc
    assert twins.chain(doc, "db") == ["db-staging", "db-sandbox"]
    assert twins.twin_in(doc, "db", "staging") == "db-staging"
    assert twins.twin_in(doc, "db", "sandbox") == "db-sandbox"
    assert twins.twin_in(doc, "stack", "staging") is None
    assert twins.twin_in(doc, "other-prod", "staging") is None
    assert twins.precedes(doc, "sandbox", "production")
    assert not twins.precedes(doc, "production", "staging")
    assert not twins.precedes(doc, "lab", "production")


SANDBOX_RULE = """\
rules:
  - id: sql-first
    when: {environment: production, kind: sql, target: db}
    effect: sandbox
"""

#: (name, policy text, where, what the message says)
REFUSED = [
    ("unknown twin", BASE.replace("twin: db-staging}", "twin: db-stagign}"), "p.yaml:12:63",
     "unknown target 'db-stagign': did you mean 'db-staging'?"),
    ("twin of another kind", BASE.replace("twin: stack-sandbox}", "twin: db-sandbox}"), "p.yaml:15:79",
     "twin 'db-sandbox' takes sql actions, target 'stack' takes terraform"),
    ("twin in a later environment", BASE.replace("workdir: /srv/sandbox}", "workdir: /srv/sandbox, twin: stack-staging}\n"
                                                 "  stack-staging: {environment: staging, kind: terraform}"),
     "p.yaml:16:87", "twin 'stack-staging' is in 'staging', which does not come before 'sandbox'"),
    ("twin outside the chain", BASE.replace("twin: db-staging}", "twin: lab-db}"), "p.yaml:12:63",
     "twin 'lab-db' is in 'lab', which does not come before 'production'"),
    ("twin in a protected environment", BASE.replace("dsn: env:LAB}", "dsn: env:LAB, twin: other-prod}"),
     "p.yaml:18:61", "twin 'other-prod' is in protected environment 'production'"),
    ("twin chain with a cycle", BASE.replace("kind: sql, dsn: env:DB_SANDBOX}",
                                             "kind: sql, dsn: env:DB_SANDBOX, twin: db}"),
     "p.yaml:12:63", "twin chain has a cycle: db -> db-staging -> db-sandbox -> db"),
    ("sandbox rule reaches a target without a twin", BASE + SANDBOX_RULE.replace("target: db}", "target: other-prod}"),
     "p.yaml:25:13", "rule 'sql-first' sends actions on target 'other-prod' to 'staging' first, but 'other-prod' "
     "has no twin there"),
    ("sandbox rule without a target reaches every target of its kind", BASE + SANDBOX_RULE.replace(", target: db}", "}"),
     "p.yaml:25:13", "target 'other-prod'"),
    ("sandbox rule naming an environment the target has no twin in",
     BASE + SANDBOX_RULE.replace("effect: sandbox", "effect: sandbox\n    sandbox: lab"), "p.yaml:25:13",
     "'db' has no twin there: add `twin: NAME` to targets.db (a sql target in lab)"),
]


@pytest.mark.parametrize(("name", "text", "where", "says"), REFUSED, ids=[r[0] for r in REFUSED])
def test_lint_refuses_bad_twins(name: str, text: str, where: str, says: str) -> None:
    problems = refused(text)
    assert any(p.startswith(where) and says in p for p in problems), problems


@pytest.mark.parametrize("rule", [SANDBOX_RULE, SANDBOX_RULE.replace("effect: sandbox", "effect: sandbox\n    sandbox: sandbox"),
                                  SANDBOX_RULE.replace("kind: sql, target: db}", "kind: terraform}\n    sandbox: sandbox")])
def test_sandbox_rules_with_twins_load(rule: str) -> None:
    load_policy_text(BASE + rule, "p.yaml")


def test_twin_settings_on_the_wrong_kind_are_warned_about() -> None:
    from interlock.policy.load import check_policy_text

    text = BASE.replace("workdir: /srv/sandbox}", "workdir: /srv/sandbox, strategy: apply, network: true}")
    problems, loaded = check_policy_text(text, "p.yaml")
    assert loaded is not None  # warnings only
    said = [str(p) for p in problems]
    assert any(p.startswith("p.yaml:16:") and "`strategy` only applies to sql twins" in p for p in said), said
    assert any("`network` only applies to shell twins" in p for p in said), said
