"""The server refuses to start on a policy that fails lint or its own tests (fail closed at start)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent.parent / "examples" / "policy.yaml"

BROKEN = [
    ("hard floor", ("production: {autonomous: read,", "production: {autonomous: destructive,"), "hard floor"),
    ("typo", ("    when: {environment: production, tags: [replace]}", "    when: {enviroment: production, tags: [replace]}"),
     "did you mean 'environment'"),
    ("failing inline test", ('input: "SELECT count(*) FROM invoices", expect: allow',
                             'input: "SELECT count(*) FROM invoices", expect: deny'), "policy tests fail"),
]


@pytest.mark.parametrize(("name", "change", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_serve_refuses_a_bad_policy(tmp_path: Path, name: str, change: tuple[str, str], message: str) -> None:
    policy = tmp_path / "policy.yaml"
    text = EXAMPLE.read_text()
    assert change[0] in text
    policy.write_text(text.replace(*change))
    result = subprocess.run([sys.executable, "-m", "interlock.cli", "serve", "--policy", str(policy), "--db",
                             f"sqlite:///{tmp_path / 'x.db'}", "--port", "1"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "does not start" in result.stderr
    assert not (tmp_path / "x.db").exists()  # refused before touching anything
