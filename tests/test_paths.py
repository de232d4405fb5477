"""The shared judge of protected paths, secret files and scratch space (classify/paths.py).

The corpus holds each door's input → risk lines. Here: the same path gets the same answer through
every door (file, shell, mcp), the policy's `paths:` section reaches every classifier (through
`interlock classify --policy` and `interlock check`), and a bad `paths:` entry is a located error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from interlock.classify import ClassifyContext, classify
from interlock.classify.paths import DEFAULT_RULES, PathRules, in_scratch, protected, secret
from interlock.cli import app
from interlock.model import Kind, Risk
from interlock.policy import PolicyError, context_for, load_policy_text

runner = CliRunner()


def through_every_door(operation: str, path: str, context: ClassifyContext | None = None) -> dict[str, tuple[Risk, set[str]]]:
    """One change or read of `path`, as a file action, a shell command and an MCP filesystem call."""
    quoted = "'" + path.replace("'", "'\"'\"'") + "'"
    shell = {"write": f"echo x > {quoted}", "read": f"cat {quoted}", "delete": f"rm -f {quoted}"}[operation]
    tool = {"write": "write_file", "read": "read_text_file", "delete": "delete_file"}[operation]
    calls = {
        Kind.file: {"operation": operation, "path": path},
        Kind.shell: {"command": shell},
        Kind.mcp: {"server": "fs", "tool": tool, "arguments": {"path": path}},
    }
    answers = {}
    for kind, payload in calls.items():
        found = classify(kind, payload, context)
        answers[kind.value] = (found.risk, set(found.tags))
    return answers


DOORS = [
    # (operation, path, risk, tag) — the same through the file kind, shell and MCP
    ("write", ".claude/settings.json", Risk.destructive, "protected-target"),
    ("write", ".claude/settings.local.json", Risk.destructive, "protected-target"),
    ("write", ".git/hooks/pre-commit", Risk.destructive, "protected-target"),
    ("write", "repo/.codex/hooks.json", Risk.destructive, "protected-target"),
    ("write", ".gemini/settings.json", Risk.destructive, "protected-target"),
    ("write", ".github/hooks/pre-tool.json", Risk.destructive, "protected-target"),
    ("write", "ops/interlock-policy.yaml", Risk.destructive, "protected-target"),
    ("write", "/home/u/.ssh/authorized_keys", Risk.destructive, "protected-target"),
    ("delete", ".git/config", Risk.destructive, "protected-target"),
    ("read", ".env", Risk.write, "secrets"),
    ("read", "/home/u/.aws/credentials", Risk.write, "secrets"),
    ("read", "deploy/tls/server.key", Risk.write, "secrets"),
    ("write", "docs/notes.md", Risk.write, None),
    ("read", "docs/notes.md", Risk.read, None),
    ("delete", "docs/notes.md", Risk.destructive, None),
]


@pytest.mark.parametrize(("operation", "path", "risk", "tag"), DOORS, ids=[f"{o} {p}" for o, p, _, _ in DOORS])
def test_the_same_path_gets_the_same_answer_through_every_door(
    operation: str, path: str, risk: Risk, tag: str | None
) -> None:
    for door, (got, tags) in through_every_door(operation, path).items():
        assert got is risk, f"{door}: {got.value}"
        if tag is not None:
            assert tag in tags, f"{door}: {sorted(tags)}"


_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.lists(_NAME, max_size=3), st.sampled_from([".claude/settings.json", ".git/hooks/pre-push", ".codex/x.toml"]))
def test_a_protected_path_below_any_directory_is_protected_in_every_door(parents: list[str], tail: str) -> None:
    path = "/".join([*parents, tail])
    for door, (got, tags) in through_every_door("write", path).items():
        assert got is Risk.destructive and "protected-target" in tags, (door, path)


@settings(max_examples=60, deadline=None)
@given(st.lists(_NAME, min_size=1, max_size=3))
def test_an_ordinary_path_is_an_ordinary_write_in_every_door(parts: list[str]) -> None:
    path = "/".join(["work", *parts])
    for door, (got, tags) in through_every_door("write", path).items():
        assert got is Risk.write and "protected-target" not in tags, (door, path)


SCRATCH = [
    ("/tmp/build", True),
    ("/var/tmp/cache/x", True),
    ("${TMPDIR:?}/build", True),
    ("/tmp", False),
    ("/tmp/", False),
    ("/tmp/*", False),
    ("/tmp/.*", False),
    ("/tmp/../etc", False),
    ("/tmp/a/../b", False),
    ("/tmp/$X", False),
    ("$TMPDIR/build", False),
    ("/tmpx/build", False),
    ("/srv/tmp/build", False),
]


@pytest.mark.parametrize(("path", "inside"), SCRATCH)
def test_scratch_is_strictly_below_a_root_and_never_escapes(path: str, inside: bool) -> None:
    assert in_scratch(path) is inside


HARMLESS = ["/dev/null", "/dev/stdout", "/dev/stderr", "/dev/fd/1", "/dev/fd/2"]


@pytest.mark.parametrize("path", HARMLESS)
def test_harmless_sinks_are_never_protected(path: str) -> None:
    assert protected(path) is None
    assert not secret(path)


POLICY = """
version: 1
environments: {dev: {}}
agents: {bot: {owner: alice, roles: [dev]}}
humans: {alice: {}}
roles: {dev: {dev: {autonomous: read}}}
paths:
  protected: ["deploy/prod/*"]
  secret: ["**/vault-token"]
  scratch: ["/scratch", "$BUILD_TMP"]
"""


def test_the_policy_paths_add_to_the_defaults() -> None:
    rules = context_for(load_policy_text(POLICY), None).paths
    assert "deploy/prod/*" in rules.protected and set(DEFAULT_RULES.protected) <= set(rules.protected)
    assert "**/vault-token" in rules.secret and "/scratch" in rules.scratch
    assert in_scratch("/scratch/build", rules) and in_scratch("${BUILD_TMP:?}/x", rules)


def test_defaults_false_replaces_the_lists() -> None:
    text = POLICY.replace('scratch: ["/scratch", "$BUILD_TMP"]', 'scratch: ["/scratch"]\n  defaults: false')
    rules = context_for(load_policy_text(text), None).paths
    assert rules == PathRules(protected=("deploy/prod/*",), secret=("**/vault-token",), scratch=("/scratch",))
    assert protected(".claude/settings.json", rules) is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('scratch: ["tmp"]', "paths.scratch"),
        ('scratch: ["/"]', "paths.scratch"),
        ('protected: [""]', "paths.protected"),
        ('secrets: ["x"]', "secrets"),
    ],
)
def test_a_bad_paths_entry_is_a_located_error(entry: str, message: str) -> None:
    text = POLICY.split("paths:")[0] + "paths:\n  " + entry + "\n"
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "p.yaml")
    shown = str(caught.value)
    assert "p.yaml:" in shown and message in shown, shown


@pytest.mark.parametrize(
    ("kind", "text", "without", "with_policy"),
    [
        ("shell", "echo x > deploy/prod/app.yaml", "write", "destructive"),
        ("shell", "cat ~/vault-token", "read", "write"),
        ("shell", "rm -rf /scratch/build", "destructive", "write"),
        ("file", '{"operation": "write", "path": "deploy/prod/app.yaml"}', "write", "destructive"),
        ("mcp", '{"server": "fs", "tool": "read_file", "arguments": {"path": "/home/u/vault-token"}}', "read", "write"),
    ],
)
def test_interlock_classify_uses_the_policy_paths(tmp_path: Path, kind: str, text: str, without: str, with_policy: str) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    plain = runner.invoke(app, ["classify", "--kind", kind, "--format", "json", text])
    ruled = runner.invoke(app, ["classify", "--kind", kind, "--format", "json", "--policy", str(policy), text])
    assert json.loads(plain.stdout)["risk"] == without, plain.stdout
    assert json.loads(ruled.stdout)["risk"] == with_policy, ruled.stdout
    batch = runner.invoke(
        app, ["classify", "--jsonl", "--policy", str(policy)], input=json.dumps({"kind": kind, "input": text}) + "\n"
    )
    assert json.loads(batch.stdout)["risk"] == with_policy


def test_interlock_check_uses_the_policy_paths(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    result = runner.invoke(
        app, ["check", "--policy", str(policy), "--agent", "bot", "--env", "dev", "--kind", "shell",
              "--format", "json", "cat ~/vault-token"],
    )
    assert result.exit_code == 1, result.stdout
    assert json.loads(result.stdout)["risk"] == "write"


def test_a_declared_mcp_tool_risk_is_still_raised_by_a_protected_path() -> None:
    context = ClassifyContext(mcp_tools={"write_file": Risk.write})
    plain = classify(Kind.mcp, {"tool": "write_file", "arguments": {"path": "notes.md"}}, context)
    settings_file = classify(Kind.mcp, {"tool": "write_file", "arguments": {"path": ".claude/settings.json"}}, context)
    assert plain.risk is Risk.write
    assert settings_file.risk is Risk.destructive and "protected-target" in settings_file.tags


@pytest.mark.parametrize(
    ("path", "privilege"),
    [("/etc/sudoers.d/agent", True), ("/home/u/.ssh/authorized_keys", True), ("/etc/passwd", True),
     ("/etc/hosts", False), (".claude/settings.json", False)],
)
def test_writes_that_grant_power_carry_privilege_in_every_door(path: str, privilege: bool) -> None:
    for door, (got, tags) in through_every_door("write", path).items():
        if door == "mcp":
            continue  # an MCP write is judged by the tool's name and the protected path; no privilege judge
        assert got is Risk.destructive, door
        assert ("privilege" in tags) is privilege, (door, sorted(tags))
