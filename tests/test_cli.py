"""The CLI contract (DESIGN.md §5): exit codes, JSON shapes, located errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interlock.cli import app

ROOT = Path(__file__).parent.parent
EXAMPLE = str(ROOT / "examples" / "policy.yaml")
runner = CliRunner()


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


CHECKS = [
    # (args, exit code, decision)
    (["--agent", "kiro", "--env", "production", "--kind", "sql", "--target", "billing-db", "SELECT 1"], 0, "allow"),
    (["--agent", "kiro", "--env", "production", "--kind", "sql", "--target", "billing-db", "DELETE FROM invoices"], 3,
     "approval_required"),
    (["--agent", "kiro", "--env", "sandbox", "--kind", "sql", "DROP DATABASE billing"], 1, "deny"),
    (["--agent", "kiro", "--env", "production", "--kind", "sql", "--target", "billing-db",
      "ALTER TABLE invoices ADD COLUMN note text"], 3, "sandbox_required"),
    (["--agent", "mallory", "--env", "production", "--kind", "sql", "SELECT 1"], 1, "deny"),
    (["--agent", "kiro", "--env", "production", "--kind", "shell", "--risk", "read", "anything"], 0, "allow"),
    (["--agent", "kiro", "--env", "production", "--kind", "kubectl", "--risk", "write", "--tag", "replace",
      "kubectl apply -f x"], 1, "deny"),
]


@pytest.mark.parametrize(("args", "code", "decision"), CHECKS, ids=[" ".join(c[0][-1:]) + f"->{c[2]}" for c in CHECKS])
def test_check_exit_codes_and_json(args: list[str], code: int, decision: str) -> None:
    exit_code, out, _ = run("check", "--policy", EXAMPLE, "--format", "json", *args)
    assert exit_code == code, out
    body = json.loads(out)
    assert body["decision"] == decision
    assert set(body) >= {"decision", "risk", "tags", "reasons", "rules", "fingerprint", "remedy", "approvals"}
    assert len(body["fingerprint"]) == 64


def test_check_text_explains_itself() -> None:
    code, out, _ = run("check", "--policy", EXAMPLE, "--agent", "kiro", "--env", "production", "--kind", "sql",
                       "--target", "billing-db", "DELETE FROM invoices")
    assert code == 3
    assert "needs 2 approvals from dba or sre, at least 1 from dba (prod-sql-dba)" in out


def test_check_reads_stdin() -> None:
    code, out, _ = run("check", "--policy", EXAMPLE, "--agent", "kiro", "--env", "production", "--kind", "sql",
                       "--target", "billing-db", "--format", "json", "-", stdin="SELECT 1")
    assert code == 0 and json.loads(out)["decision"] == "allow"


USAGE_ERRORS = [
    (["check", "--policy", EXAMPLE, "--agent", "kiro", "--env", "production", "--kind", "telnet", "x"], "telnet"),
    (["check", "--policy", EXAMPLE, "--agent", "kiro", "--env", "prod uction", "--kind", "shell", "ls"], "environment"),
    (["check", "--policy", EXAMPLE, "--agent", "kiro", "--env", "production", "--kind", "http", "{not json"], "JSON"),
    (["check", "--policy", "/nonexistent.yaml", "--agent", "kiro", "--env", "production", "--kind", "shell", "ls"],
     "cannot read the policy"),
]


@pytest.mark.parametrize(("args", "message"), USAGE_ERRORS, ids=[u[1] for u in USAGE_ERRORS])
def test_usage_and_input_errors_exit_2(args: list[str], message: str) -> None:
    code, out, err = run(*args)
    assert code == 2
    assert message in out + err


def test_oversized_payload_refused(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(Path(EXAMPLE).read_text().replace("max_payload_bytes: 1048576", "max_payload_bytes: 2048"))
    code, _, err = run("check", "--policy", str(policy), "--agent", "kiro", "--env", "production", "--kind", "shell",
                       "echo " + "x" * 4000)
    assert code == 2 and "over the policy's max_payload_bytes of 2048" in err


def test_policy_refused_exit_2_with_location(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(EXAMPLE).read_text().replace("production: {autonomous: read,", "production: {autonomous: destructive,"))
    code, _, err = run("check", "--policy", str(bad), "--agent", "kiro", "--env", "production", "--kind", "shell", "ls")
    line = _line_of(bad, "production: {autonomous: destructive,")
    assert code == 2
    assert f"{bad}:{line}:30:" in err and "hard floor" in err


def test_policy_lint_and_test_on_the_example() -> None:
    assert run("policy", "lint", EXAMPLE)[0] == 0
    code, out, err = run("policy", "test", EXAMPLE)
    assert code == 0, out + err
    assert " 0 failed" in out


def test_policy_test_failure_shows_expected_vs_got(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(Path(EXAMPLE).read_text().replace(
        'input: "SELECT count(*) FROM invoices", expect: allow', 'input: "SELECT count(*) FROM invoices", expect: deny'))
    code, _, err = run("policy", "test", str(p))
    assert code == 1
    assert "expected deny, got allow" in err and "deciding: role:reader@production" in err
    assert f"{p}:" in err


def test_policy_lint_reports_file_line_col(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(Path(EXAMPLE).read_text().replace("    when: {environment: production, tags: [replace]}",
                                                   "    when: {enviroment: production, tags: [replace]}"))
    code, _, err = run("policy", "lint", str(p))
    assert code == 1
    assert f"{p}:{_line_of(p, 'enviroment')}:12: unknown key 'enviroment': did you mean 'environment'?" in err


def test_policy_schema_is_json_schema() -> None:
    code, out, _ = run("policy", "schema")
    schema = json.loads(out)
    assert code == 0 and schema["title"] == "Interlock policy"
    assert schema["additionalProperties"] is False
    assert "environments" in schema["required"]


def test_classify_jsonl_keeps_order_and_survives_bad_lines() -> None:
    lines = [{"kind": "sql", "input": "SELECT 1"}, {"kind": "nope", "input": "x"}, {"kind": "sql", "input": "DROP TABLE t"}]
    stdin = "\n".join(json.dumps(x) for x in lines) + "\nnot json\n"
    code, out, _ = run("classify", "--jsonl", stdin=stdin)
    answers = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [a["risk"] for a in answers] == ["read", "unknown", "destructive", "unknown"]
    assert all(set(a) == {"kind", "risk", "tags", "summary"} for a in answers)


def test_entry_point_runs_as_a_real_process() -> None:
    result = subprocess.run([sys.executable, "-m", "interlock.cli", "check", "--policy", EXAMPLE, "--agent", "kiro",
                             "--env", "sandbox", "--kind", "sql", "DROP DATABASE x"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 1, result.stderr
    assert "deny" in result.stdout


@pytest.mark.parametrize(("argv", "not_imported"), [
    (["--version"], ["interlock.server.app", "fastapi", "interlock.integrations.hooks_cli"]),
    (["hook", "--help"], ["interlock.server.app", "fastapi", "interlock.rollout.service"]),
    (["policy", "--help"], ["interlock.server.app", "fastapi"]),
])
def test_a_command_imports_only_what_it_runs(argv: list[str], not_imported: list[str]) -> None:
    """Sub-commands are imported when run (cli.Mounted): `interlock hook` runs before each tool call an agent
    makes, and importing the server and console with it cost ~1.1 s of CPU each time."""
    probe = ("import sys\nfrom interlock.cli import app\n"
             f"try:\n    app({argv!r})\nexcept SystemExit:\n    pass\n"
             f"print([m for m in {not_imported!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
