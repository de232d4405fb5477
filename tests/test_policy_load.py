"""Loading policies: the hard floor and every kind of bad input are refused with a located message."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.policy import PolicyError, load_policy, load_policy_text
from interlock.policy.lint import lint_file

BASE = """\
version: 1
humans:
  alice: {groups: [sre]}
  bob: {groups: [sre, dba]}
agents:
  kiro: {owner: alice, roles: [deployer]}
environments:
  staging: {promotes_to: production}
  production: {protected: true}
targets:
  db: {environment: production, kind: sql, dsn: env:DB}
roles:
  deployer:
    staging: {autonomous: write}
    production: {autonomous: read, approve: {write: 1, destructive: 2}}
"""


def policy(extra: str = "", base: str = BASE) -> str:
    return base + extra


def refused(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "p.yaml")
    return [str(p) for p in caught.value.problems]


def test_base_policy_loads() -> None:
    loaded = load_policy_text(BASE, "p.yaml")
    assert loaded.doc.agents["kiro"].owner == "alice"
    assert len(loaded.version) == 64


def test_version_ignores_comments_and_key_order_but_not_meaning() -> None:
    a = load_policy_text(BASE, "p.yaml").version
    reordered = BASE.replace("version: 1\n", "") + "version: 1  # moved\n"
    assert load_policy_text(reordered, "p.yaml").version == a
    assert load_policy_text(BASE.replace("approve: {write: 1,", "approve: {write: 2,"), "p.yaml").version != a


# --- the hard floor: destructive in a protected environment is never autonomous ---------------------

FLOOR_VIOLATIONS = [
    ("role grant", BASE.replace("production: {autonomous: read, approve: {write: 1, destructive: 2}}",
                                "production: {autonomous: destructive}"), "p.yaml:15:30", "role 'deployer'"),
    ("wildcard grant covers production", BASE + "  admin:\n    '*': {autonomous: destructive}\n",
     "p.yaml:17:23", "role 'admin'"),
    ("wildcard grant beside an explicit one", BASE + "  admin:\n    staging: {}\n    '*': {autonomous: destructive}\n",
     "p.yaml:18:23", "role 'admin'"),
    ("allow rule without conditions", policy("rules:\n  - {id: yolo, effect: allow}\n"), "p.yaml:17:24", "rule 'yolo'"),
    ("allow rule in production without risk", policy(
        "rules:\n  - id: kube\n    when: {environment: production, kind: kubectl}\n    effect: allow\n"),
        "p.yaml:19:13", "rule 'kube'"),
    ("allow rule naming destructive", policy(
        "rules:\n  - {id: r, when: {environment: production, risk: [write, destructive]}, effect: allow}\n"),
        "p.yaml:17:82", "rule 'r'"),
    ("allow rule naming unknown", policy(
        "rules:\n  - {id: r, when: {environment: production, risk: unknown}, effect: allow}\n"), "p.yaml:17:69", "rule 'r'"),
    ("allow rule on a production target", policy(
        "rules:\n  - {id: r, when: {target: db}, effect: allow}\n"), "p.yaml:17:41", "rule 'r'"),
]


@pytest.mark.parametrize(("name", "text", "where", "what"), FLOOR_VIOLATIONS, ids=[v[0] for v in FLOOR_VIOLATIONS])
def test_hard_floor_refused_with_location(name: str, text: str, where: str, what: str) -> None:
    problems = refused(text)
    assert any(p.startswith(where) and "hard floor" in p and what in p for p in problems), problems


FLOOR_OK = [
    ("allow rule restricted to reads and writes", "rules:\n  - {id: r, when: {environment: production, risk: [read, write]}, effect: allow}\n"),
    ("allow rule in an unprotected environment", "rules:\n  - {id: r, when: {environment: staging}, effect: allow}\n"),
    ("destructive approval in production", ""),
    ("wildcard with production listed apart", "  admin:\n    production: {}\n    '*': {autonomous: destructive}\n"),
]


@pytest.mark.parametrize(("name", "extra"), FLOOR_OK, ids=[v[0] for v in FLOOR_OK])
def test_policies_within_the_floor_load(name: str, extra: str) -> None:
    load_policy_text(policy(extra), "p.yaml")


# --- bad input ------------------------------------------------------------------------------------

BOMB = """\
version: 1
environments: {a: {}}
description: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
"""

BAD_INPUT = [
    ("alias bomb", BOMB, "p.yaml:", "expands to more than"),
    ("duplicate key", BASE + "humans: {}\n", "p.yaml:16:1", "duplicate key"),
    ("duplicate nested key", BASE.replace("  bob: {groups: [sre, dba]}\n", "  bob: {groups: [sre]}\n  bob: {groups: [dba]}\n"),
     "p.yaml:5:3", "duplicate key"),
    ("wrong type", BASE.replace("approve: {write: 1,", "approve: {write: two,"), "p.yaml:15:45", "approve.write: give a number of approvals"),
    ("misspelled key", BASE.replace("kiro: {owner: alice,", "kiro: {ownr: alice,"), "p.yaml:6:10",
     "unknown key 'ownr': did you mean 'owner'?"),
    ("misspelled top-level key", BASE + "rulez: []\n", "p.yaml:16:1", "did you mean 'rules'?"),
    ("unknown owner", BASE.replace("owner: alice", "owner: alcie"), "p.yaml:6:17", "unknown human 'alcie': did you mean 'alice'?"),
    ("unknown role", BASE.replace("roles: [deployer]", "roles: [deploy]"), "p.yaml:6:32", "unknown role 'deploy'"),
    ("unknown environment in a grant", BASE.replace("    staging: {autonomous: write}", "    stagin: {autonomous: write}"),
     "p.yaml:14:5", "unknown environment 'stagin': did you mean 'staging'?"),
    ("unknown target environment", BASE.replace("db: {environment: production", "db: {environment: prod"),
     "p.yaml:11:21", "unknown environment 'prod'"),
    ("unknown group", policy("rules:\n  - {id: r, effect: approve, approvals: {count: 1, from: [dbas]}}\n"),
     "p.yaml:17:59", "unknown group 'dbas': did you mean 'dba'?"),
    ("unknown environment in a rule", policy("rules:\n  - {id: r, when: {environment: prod}, effect: deny}\n"),
     "p.yaml:17:33", "unknown environment 'prod'"),
    ("promotion cycle", BASE.replace("production: {protected: true}", "production: {protected: true, promotes_to: staging}"),
     "p.yaml:", "promotion chain has a cycle"),
    ("duplicate rule id", policy("rules:\n  - {id: r, effect: deny}\n  - {id: r, effect: deny}\n"), "p.yaml:18:10", "duplicate rule id"),
    ("approve without approvals", policy("rules:\n  - {id: r, effect: approve}\n"), "p.yaml:17:5", "needs `approvals"),
    ("zero approvals", policy("rules:\n  - {id: r, effect: approve, approvals: {count: 0}}\n"), "p.yaml:17:49", "count"),
    ("bad regular expression", policy("rules:\n  - {id: r, when: {input: '(unclosed'}, effect: deny}\n"),
     "p.yaml:17:27", "not a valid regular expression"),
    ("unknown effect", policy("rules:\n  - {id: r, effect: permit}\n"), "p.yaml:17:21", "effect"),
    ("unsupported version", BASE.replace("version: 1", "version: 2"), "p.yaml:1:10", "version"),
    ("missing environments", "version: 1\n", "p.yaml:1:1", "'environments' is missing"),
    ("not a mapping", "- just\n- a list\n", "p.yaml:1:1", "a policy is a YAML mapping"),
    ("empty file", "", "p.yaml:1:1", "a policy is a YAML mapping"),
    ("YAML syntax error", BASE + "rules: [\n", "p.yaml:", "YAML"),
    ("non-text key", BASE.replace("  alice: {groups: [sre]}", "  1: {groups: [sre]}"), "p.yaml:3:3", "keys must be text"),
    ("deep nesting", "version: 1\nenvironments: {}\ndescription: " + "[" * 100 + "]" * 100 + "\n", "p.yaml:", "nest"),
    ("bad duration", policy("defaults: {approval_ttl: soon}\n"), "p.yaml:16:26", "not a duration"),
    ("secret value instead of a reference", BASE.replace("dsn: env:DB", "dsn: postgresql://u:hunter2@db/x"),
     "p.yaml:11:49", "postgresql://u:***@db/x' looks like a credential"),
    ("test names an unknown agent", policy("tests:\n  - {agent: kiri, env: staging, kind: shell, input: ls, expect: allow}\n"),
     "p.yaml:17:13", "unknown agent 'kiri'"),
    ("two webhooks with one name", policy("notify:\n  - {name: ops, url: 'https://a.example/'}\n"
                                          "  - {name: ops, url: 'https://b.example/'}\n"),
     "p.yaml:", "two notify entries are named ops"),
    ("a webhook name that is not a word", policy("notify:\n  - {name: 'ops hook', url: 'https://a.example/'}\n"),
     "p.yaml:17:", "name"),
]


@pytest.mark.parametrize(("name", "text", "where", "what"), BAD_INPUT, ids=[v[0] for v in BAD_INPUT])
def test_bad_policy_refused_with_location(name: str, text: str, where: str, what: str) -> None:
    problems = refused(text)
    assert any(p.startswith(where) and what in p for p in problems), problems


def test_secret_values_never_echoed_in_errors() -> None:
    problems = refused(BASE.replace("dsn: env:DB", "dsn: postgresql://u:hunter2@db/x"))
    assert problems  # the value is named as invalid, which is fine; it is the policy author's own text


def test_ten_megabyte_file_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(BASE.encode() + b"# " + b"x" * (10 * 1024 * 1024) + b"\n")
    with pytest.raises(PolicyError, match="larger than 1024 KiB"):
        load_policy(big)
    assert "larger than" in str(lint_file(big)[0])


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy"):
        load_policy(tmp_path / "nope.yaml")


def test_non_utf8_refused() -> None:
    assert "not UTF-8" in refused(b"version: 1\ndescription: \xff\xfe\n")[0]  # type: ignore[arg-type]


def test_unsatisfiable_approvals_fail_lint_but_still_load(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(BASE.replace("destructive: 2}", "destructive: 3}"))
    problems = lint_file(path)
    assert [p.severity for p in problems] == ["unsatisfiable"]  # `policy lint` exits 1 on it
    assert "only 2 human(s) are eligible" in str(problems[0])
    load_policy(path)  # a running server's policy is not refused after an upgrade (design-deviations.md)


def test_example_policy_loads_and_lints_clean() -> None:
    example = Path(__file__).parent.parent / "examples" / "policy.yaml"
    assert lint_file(example) == []
