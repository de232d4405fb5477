"""Input patterns mean what they say: a restriction also matches normalized forms (issue 11.4)."""

from __future__ import annotations

import pytest

from interlock.classify import classify
from interlock.model import Action, DecisionValue, Kind
from interlock.policy import decide, load_policy_text
from interlock.policy.normalize import input_forms, render_sql, strip_shell_comments, strip_sql_comments

POLICY = load_policy_text("""\
version: 1
humans:
  alice: {groups: [sre]}
agents:
  kiro: {owner: alice, roles: [deployer]}
environments:
  lab: {}
targets:
  db: {environment: lab, kind: sql, dsn: env:DB}
roles:
  deployer:
    lab: {autonomous: destructive}
rules:
  - {id: no-drop-table, effect: deny, when: {input: ['DROP TABLE']}}
  - {id: no-rm-root, effect: deny, when: {kind: shell, input: ['rm -rf /srv']}}
  - {id: only-this-select, effect: allow, when: {kind: sql, input: ['^select 1$']}}
""", "p.yaml")


@pytest.mark.parametrize("kind, target, text, value", [
    ("sql", "db", "DROP TABLE users", DecisionValue.deny),
    ("sql", "db", "DROP/**/TABLE users", DecisionValue.deny),
    ("sql", "db", "drop\n  table users -- tidy", DecisionValue.deny),
    ("sql", "db", "DROP /* a */ TABLE /* b */ users", DecisionValue.deny),
    ("sql", "db", "dRoP\ttAbLe users", DecisionValue.deny),  # sqlglot renders keywords upper-case
    ("sql", "db", "SELECT 'DROP/**/TABLE is text'", DecisionValue.allow),  # inside a literal: kept as written
    ("shell", None, 'psql -c "DROP/**/TABLE users"', DecisionValue.deny),
    ("shell", None, "rm  -rf   /srv", DecisionValue.deny),
    ("shell", None, "rm -rf /srv # tidy", DecisionValue.deny),
    ("shell", None, "rm -rf /tmp/x", DecisionValue.allow),
])
def test_restriction_matches_normalized_forms(kind: str, target: str | None, text: str, value: DecisionValue) -> None:
    payload = {"sql": text} if kind == "sql" else {"command": text}
    action = Action(kind=Kind(kind), environment="lab", target=target, payload=payload)
    decision = decide(POLICY, "kiro", action, classify(action.kind, action.payload))
    assert decision.value is value, decision.reasons


def test_allow_patterns_match_the_text_as_written_only() -> None:
    # `select 1` rendered by sqlglot is `SELECT 1`: the permission stays exactly as narrow as written.
    action = Action(kind=Kind.sql, environment="lab", target="db", payload={"sql": "SELECT/**/1"})
    assert "only-this-select" not in decide(POLICY, "kiro", action, classify(action.kind, action.payload)).rules
    action = Action(kind=Kind.sql, environment="lab", target="db", payload={"sql": "select 1"})
    assert "only-this-select" in decide(POLICY, "kiro", action, classify(action.kind, action.payload)).rules


@pytest.mark.parametrize("func, text, expected", [
    (strip_sql_comments, "DROP/**/TABLE x -- why\n", "DROP TABLE x"),
    (strip_sql_comments, "SELECT '--not a comment', \"/*col*/\"", "SELECT '--not a comment', \"/*col*/\""),
    (strip_sql_comments, "SELECT $$ -- kept $$ /* gone */", "SELECT $$ -- kept $$"),
    (strip_shell_comments, "rm  -rf /srv  # tidy\nls", "rm -rf /srv ls"),
    (strip_shell_comments, "echo 'a # b' c#d", "echo 'a # b' c#d"),
])
def test_normalizers(func: object, text: str, expected: str) -> None:
    assert func(text) == expected  # type: ignore[operator]


def test_forms_are_distinct_and_start_with_the_text_as_written() -> None:
    assert input_forms("SELECT 1", Kind.sql) == ("SELECT 1",)
    assert input_forms("drop/**/table t", Kind.sql) == ("drop/**/table t", "drop table t", "DROP TABLE t")
    assert render_sql("SELECT 'unterminated", "postgres") is None
