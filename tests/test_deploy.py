"""docs/deploy.md's files are real: the systemd unit passes `systemd-analyze verify` and names only
options `serve` has; the container file says it is untested here (no container runtime)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from interlock.cli import app

DEPLOY = Path(__file__).parent.parent / "examples" / "deploy"
UNIT = DEPLOY / "interlock.service"


def exec_start() -> list[str]:
    line = next(x for x in UNIT.read_text().splitlines() if x.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    # systemd checks that ExecStart's program exists: point it at this checkout's interlock.
    program = str(Path(sys.executable).parent / "interlock")
    unit = tmp_path / "interlock.service"
    unit.write_text(UNIT.read_text().replace(exec_start()[0], program))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "interlock.service" not in result.stderr, result.stderr  # no warning about our unit


def test_unit_uses_only_options_serve_has() -> None:
    argv = exec_start()
    assert argv[1] == "serve"
    help_text = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).output
    for flag in (a for a in argv[2:] if a.startswith("--")):
        assert flag in help_text, flag


def test_container_file_is_marked_untested() -> None:
    assert "UNTESTED" in (DEPLOY / "Containerfile").read_text()
    assert "untested here" in (Path(__file__).parent.parent / "docs" / "deploy.md").read_text()
