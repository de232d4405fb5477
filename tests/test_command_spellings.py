"""Small operability gaps: the same option means the same thing in every command (DESIGN.md §9).

`policy lint|test` take their FILE from INTERLOCK_POLICY when none is given, as `--policy` does
everywhere; the standalone `verify.py` answers `--format json` like every `interlock` command
(`--json`, its older spelling, still works).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interlock.audit import AuditLog
from interlock.cli import app
from interlock.store import Store

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "policy.yaml"
VERIFY_PY = Path(__file__).resolve().parents[1] / "src" / "interlock" / "audit" / "verify.py"


@pytest.mark.parametrize(
    ("args", "env", "code", "said"),
    [
        # (arguments, INTERLOCK_POLICY, exit code, text on stdout or stderr)
        (["policy", "lint", str(EXAMPLE)], None, 0, "ok"),
        (["policy", "lint"], str(EXAMPLE), 0, f"{EXAMPLE}: ok"),
        (["policy", "lint"], None, 2, "INTERLOCK_POLICY"),
        (["policy", "lint", "/nonexistent/p.yaml"], str(EXAMPLE), 1, "p.yaml"),  # the argument wins
        (["policy", "test"], str(EXAMPLE), 0, "passed, 0 failed"),
        (["policy", "test", str(EXAMPLE)], "/nonexistent/p.yaml", 0, "passed, 0 failed"),
        (["policy", "test"], None, 2, "give FILE, or set INTERLOCK_POLICY"),
    ],
)
def test_policy_lint_and_test_fall_back_to_interlock_policy(args: list[str], env: str | None, code: int,
                                                             said: str) -> None:
    result = CliRunner().invoke(app, args, env={"INTERLOCK_POLICY": env})  # type: ignore[dict-item]
    assert result.exit_code == code, result.output
    assert said in result.stdout + result.stderr


@pytest.fixture
def export(store: Store, tmp_path: Path) -> tuple[Path, Path]:
    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        log.append_many([("policy.loaded", {"k": k}) for k in range(5)])
        log.checkpoint()
        exported = tmp_path / "audit.jsonl"
        with exported.open("w") as out:
            log.export(out)
    return exported, tmp_path / "keys" / "audit-ed25519.pub.pem"


def verify_py(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-I", str(VERIFY_PY), *args], capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    ("spelling", "code", "answer"),
    [
        (["--format", "json"], 0, "json"),
        (["--format=json"], 0, "json"),
        (["--json"], 0, "json"),  # the older spelling, kept and no longer in the usage
        (["--format", "text"], 0, "text"),
        ([], 0, "text"),
        (["--format", "xml"], 2, "usage"),
        (["--format"], 2, "usage"),
    ],
)
def test_verify_py_takes_format_json_like_every_command(export: tuple[Path, Path], spelling: list[str], code: int,
                                                        answer: str) -> None:
    exported, pem = export
    run = verify_py(*spelling, str(exported), str(pem))
    assert run.returncode == code, run.stdout + run.stderr
    if answer == "json":
        assert json.loads(run.stdout)["ok"] is True
    elif answer == "text":
        assert run.stdout.startswith("OK: 5 entries"), run.stdout
    else:
        assert "--format text|json" in run.stderr and "--json" not in run.stderr


def test_verify_py_proof_answers_json_too(export: tuple[Path, Path], tmp_path: Path) -> None:
    _, pem = export
    bundle = tmp_path / "proof.json"
    bundle.write_text(json.dumps({"index": 0}))
    run = verify_py("--format", "json", "--proof", str(bundle), str(pem))
    answer = json.loads(run.stdout)
    assert run.returncode == 1 and answer["ok"] is False and answer["problems"], run.stdout + run.stderr
