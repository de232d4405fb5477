"""`policy lint` never leaks a secret and always says what to do (issue 11.3, 11.4's tag hint)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from interlock.cli import app
from interlock.policy.lint import LINT_ERRORS, lint_file
from interlock.policy.load import check_policy_text, mask_secret, statement_tag_named

HEAD = """\
version: 1
humans:
  alice: {groups: [sre]}
  bob: {groups: [sre, dba]}
  carol: {groups: [dba]}
agents:
  kiro: {owner: alice, roles: [deployer]}
environments:
  staging: {promotes_to: production}
  production: {protected: true}
targets:
  db: {environment: production, kind: sql, dsn: env:DB}
roles:
  deployer: {production: {autonomous: read}}
"""


def problems(text: str) -> list[str]:
    return [f"{p.line}:{p.severity}:{p.message}" for p in check_policy_text(text, "p.yaml")[0]]


# (case, policy text, expected fragments of ONE reported problem: line, severity, text)
CASES = [
    ("indentation one column too far",
     "version: 1\nenvironments:\n  production:\n    protected: true\n   staging: {}\n",
     ("5:error:", "check the indentation of line 5")),
    ("value on a key indented under a scalar",
     "version: 1\nenvironments:\n  production: {}\ntargets:\n  db:\n    environment: production\n     kind: sql\n",
     ("7:error:", "check the indentation of line 7")),
    ("tab indentation", "version: 1\nenvironments:\n\tproduction: {}\n",
     ("3:error:", "tabs", "check the indentation of line 3")),
    ("unknown kind of a target", HEAD.replace("kind: sql,", "kind: sqll,"),
     ("12:error:", "did you mean 'sql'?")),
    ("unknown kind in a rule", HEAD + "rules:\n  - {id: r, effect: deny, when: {kind: shel}}\n",
     ("16:error:", "did you mean 'shell'?")),
    ("unknown environment in a rule", HEAD + "rules:\n  - {id: r, effect: deny, when: {environment: prodution}}\n",
     ("16:error:", "did you mean 'production'?")),
    ("unknown target in a rule", HEAD + "rules:\n  - {id: r, effect: deny, when: {target: dbb}}\n",
     ("16:error:", "did you mean 'db'?")),
    ("unknown group in approvals",
     HEAD + "rules:\n  - {id: r, effect: approve, approvals: {count: 1, from: [dbas]}}\n",
     ("16:error:", "did you mean 'dba'?")),
    ("unknown tag", HEAD + "rules:\n  - {id: r, effect: deny, when: {tags: [replac]}}\n",
     ("16:warning:", "did you mean 'replace'?", "never matches")),
    ("invalid regex shown as written", HEAD + "rules:\n  - {id: r, effect: deny, when: {input: ['DROP\\s+TABLE(']}}\n",
     ("16:error:", "`DROP\\s+TABLE(`", "missing )")),
    ("4 approvals from 3 humans",
     HEAD + "rules:\n  - {id: r, effect: approve, approvals: {count: 4}}\n",
     ("16:unsatisfiable:", "needs 4 approvals", "only 3 human(s)", "never be approved")),
    ("3 approvals from 3 humans, the owner excluded",
     HEAD + "rules:\n  - {id: r, effect: approve, approvals: {count: 3}}\n",
     ("16:unsatisfiable:", "agent 'kiro'", "owner 'alice' never counts")),
    ("at_least a group whose only other member is the owner",
     HEAD.replace("alice: {groups: [sre]}", "alice: {groups: [sre, dba]}").replace("carol: {groups: [dba]}", "carol: {}")
     + "rules:\n  - {id: r, effect: approve, approvals: {count: 2, at_least: {dba: 2}}}\n",
     ("16:unsatisfiable:", "2 approvals from dba")),
    ("deny regex naming a statement", HEAD + "rules:\n  - {id: r, effect: deny, when: {input: ['(?i)drop\\s+table']}}\n",
     ("16:hint:", "tags: [drop]")),
]


@pytest.mark.parametrize("case, text, expected", CASES, ids=[c[0] for c in CASES])
def test_lint_problem(case: str, text: str, expected: tuple[str, ...]) -> None:
    found = problems(text)
    assert any(all(part in p for part in expected) for p in found), found


def test_satisfiable_approvals_have_no_problem() -> None:
    assert problems(HEAD + "rules:\n  - {id: r, effect: approve, approvals: {count: 2, from: [dba]}}\n") == []


def test_an_approval_for_a_risk_taken_alone_is_never_needed() -> None:
    # The default `approve: {read: 1}` of a role that reads alone never applies: one human is enough.
    alone = ("version: 1\nhumans: {alice: {}}\nagents: {kiro: {owner: alice, roles: [dev]}}\n"
             "environments: {lab: {}}\nroles: {dev: {lab: {autonomous: write}}}\n")
    assert problems(alone) == []
    assert any("unsatisfiable" in p for p in problems(alone.replace("autonomous: write", "autonomous: ask")))


# (written value, expected masked form) — the secret never appears
MASKS = [
    ("postgresql://app:hunter2@db.internal/shop", "postgresql://app:***@db.internal/shop"),
    ("host=db password=hunter2 user=app", "host=db password=*** user=app"),
    ("https://hooks.example/services/T0/B0/hunter2", "https://hooks.example/***"),
    ("hunter2", "***"),
]


@pytest.mark.parametrize("value, masked", MASKS)
def test_mask_secret(value: str, masked: str) -> None:
    assert mask_secret(value) == masked


@pytest.mark.parametrize("field, value, expected", [
    ("dsn", '"postgresql://app:hunter2@db.internal/shop"', "'postgresql://app:***@db.internal/shop' looks like a credential"),
    ("dsn", "hunter2", "'***' looks like a credential"),
    ("dsn", "$SHOP_DSN", "env:SHOP_DSN"),
    ("kubeconfig", "/etc/kube/config", "file:/etc/kube/config"),
])
def test_literal_secret_refused_without_echo(field: str, value: str, expected: str) -> None:
    text = HEAD.replace("dsn: env:DB", f"{field}: {value}")
    found = problems(text)
    assert len(found) == 1 and expected in found[0] and found[0].startswith("12:error:"), found
    assert "hunter2" not in found[0]


def test_a_password_in_a_url_is_refused_masked() -> None:
    text = HEAD.replace("\nroles:\n", "\n  api: {environment: production, kind: http, "
                                      "url: 'https://svc:hunter2@api.internal/v1'}\nroles:\n")
    (found,) = problems(text)
    assert found.startswith("13:error:") and "'https://svc:***@api.internal/v1' carries a password" in found
    assert "hunter2" not in found


@pytest.mark.parametrize("pattern, tag", [
    (r"DROP\s+TABLE", "drop"), (r"(?i)\btruncate\b", "truncate"), (r"DELETE\s+FROM\s+users", "delete"),
    (r"(?i)grant\s+all", "grant"), (r"ALTER\s+TABLE", "alter"), (r"kubectl\s+delete", None), (r"rm -rf", None),
    ("drop_backup", None),
])
def test_statement_tag_named(pattern: str, tag: str | None) -> None:
    assert statement_tag_named(pattern) == tag


def test_lint_command_fails_on_unsatisfiable_and_never_prints_the_secret(tmp_path: Path) -> None:
    runner = CliRunner()
    unsatisfiable = tmp_path / "u.yaml"
    unsatisfiable.write_text(HEAD + "rules:\n  - {id: r, effect: approve, approvals: {count: 4}}\n")
    result = runner.invoke(app, ["policy", "lint", str(unsatisfiable)])
    assert result.exit_code == 1 and "never be approved" in result.output
    assert [p.severity for p in lint_file(unsatisfiable)] == ["unsatisfiable"] and "unsatisfiable" in LINT_ERRORS
    leaking = tmp_path / "s.yaml"
    leaking.write_text(HEAD.replace("env:DB", '"postgresql://app:hunter2@db.internal/shop"'))
    result = runner.invoke(app, ["policy", "lint", str(leaking)])
    assert result.exit_code == 1 and "app:***@db.internal" in result.output and "hunter2" not in result.output
    hinted = tmp_path / "h.yaml"
    hinted.write_text(HEAD + "rules:\n  - {id: r, effect: deny, when: {input: ['DROP\\s+TABLE']}}\n")
    result = runner.invoke(app, ["policy", "lint", str(hinted)])
    assert result.exit_code == 0 and "tags: [drop]" in result.output and "1 hint(s)" in result.output
