"""Kinds inside kinds: policy rules about SQL, kubectl or AWS apply however the action is proposed."""

from __future__ import annotations

import pytest

from interlock.classify import classify
from interlock.model import Action, Classification, DecisionValue, Kind, Risk
from interlock.policy import decide, load_policy_text

FOUND = [
    # (kind, payload, kinds found inside)
    (Kind.shell, {"command": "psql -c 'DROP DATABASE billing'"}, ("sql",)),
    (Kind.shell, {"command": "sudo -u postgres psql <<'EOF'\nDELETE FROM invoices;\nEOF"}, ("sql",)),
    (Kind.shell, {"command": "kubectl delete ns billing && aws s3 rb s3://x --force"}, ("aws", "kubectl")),
    (Kind.shell, {"command": "bash -c \"kubectl get pods\""}, ("kubectl",)),
    (Kind.shell, {"command": "ls -la /srv"}, ()),
    (Kind.mcp, {"server": "db", "tool": "run_query", "arguments": {"sql": "DELETE FROM invoices"}}, ("sql",)),
    (Kind.sql, {"sql": "SELECT 1"}, ()),
]


@pytest.mark.parametrize(("kind", "payload", "kinds"), FOUND, ids=[str(f[1])[:40] for f in FOUND])
def test_kinds_found_inside(kind: Kind, payload: dict[str, object], kinds: tuple[str, ...]) -> None:
    first = classify(kind, payload)
    again = classify(kind, payload)  # cached classifications keep what they found
    assert first.kinds == kinds
    assert again.kinds == kinds


POLICY = load_policy_text("""
version: 1
humans: {alice: {groups: [sre]}, bob: {groups: [dba]}}
agents: {kiro: {owner: alice, roles: [dev]}}
environments: {sandbox: {}}
roles:
  dev:
    sandbox: {autonomous: destructive}
rules:
  - {id: no-drop-db, when: {kind: sql, input: '(?i)drop\\s+database'}, effect: deny}
  - {id: dba-for-sql, when: {kind: sql, risk: destructive}, effect: approve, approvals: {count: 1, from: [dba]}}
""", "kinds.yaml")

DECISIONS = [
    ("psql -c 'DROP DATABASE billing'", DecisionValue.deny, "no-drop-db"),
    ("psql -c 'DELETE FROM invoices'", DecisionValue.approval_required, "dba-for-sql"),
    ("rm -rf /tmp/build", DecisionValue.allow, None),
]


@pytest.mark.parametrize(("command", "value", "rule"), DECISIONS, ids=[d[0] for d in DECISIONS])
def test_sql_rules_apply_to_sql_run_from_a_shell(command: str, value: DecisionValue, rule: str | None) -> None:
    action = Action(kind=Kind.shell, environment="sandbox", payload={"command": command})
    decision = decide(POLICY, "kiro", action, classify(Kind.shell, action.payload))
    assert decision.value is value
    if rule:
        assert rule in decision.rules


def test_kinds_given_explicitly_are_matched() -> None:
    action = Action(kind=Kind.shell, environment="sandbox", payload={"command": "x"})
    with_sql = Classification(risk=Risk.destructive, summary="x", kinds=("sql",))
    without = Classification(risk=Risk.destructive, summary="x")
    assert decide(POLICY, "kiro", action, with_sql).value is DecisionValue.approval_required
    assert decide(POLICY, "kiro", action, without).value is DecisionValue.allow
