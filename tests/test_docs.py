"""Every ```bash block in README.md and docs/ runs, as written (issue 11.7; docs/README.md).

Each block runs with `bash -e` in a scratch directory holding links to the checkout's `examples/`,
`.venv/` and `scripts/` and a copy of the example policy as `policy.yaml`, with this checkout's
`interlock` first on PATH. A block that cannot run here is listed in EXCEPTIONS, by its file and
the start of its first line, with the reason; an exception that matches no block fails the test,
so the list cannot go stale. Output shown to readers belongs in comments or ```console/```text
blocks, which are not run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)

#: (file, start of the block's first line) → why it does not run in CI.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("README.md", "scripts/run"): "starts a server that runs until stopped (its start is tested by test_server_*)",
    ("docs/benchmarks.md", "scripts/bench"): "benchmarks take minutes and are never part of the test suite",
    ("docs/benchmarks.md", "git worktree add --detach"): "a benchmark across checkouts: minutes, and new worktrees",
    ("docs/incidents.md", "scripts/demo"): "each replay is run by tests/test_incidents.py",
    ("docs/deploy.md", "sudo useradd"): "installs system-wide as root (/opt, a system user)",
    ("docs/deploy.md", "sudo -u postgres"): "creates a PostgreSQL role and database on the host",
    ("docs/deploy.md", "sudo install -d"): "writes /etc/interlock as root",
    ("docs/deploy.md", "sudo install -m 0644"): "needs systemd as PID 1; the unit is checked by tests/test_deploy.py",
    ("docs/deploy.md", "pg_dump"): "backs up a deployed store at /var/lib/interlock",
    ("docs/approvals.md", "curl -s -X POST localhost:8700/v1/actions"): "needs a running server and an agent token",
    ("docs/approvals.md", "interlock approvals approve apr_"): "needs a pending request's id and a server",
    ("docs/integrations.md", "echo '{\"hook_event_name\""): "needs a running server and a pending request's id",
    ("docs/integrations.md", "interlock exec"): "needs kubectl and a cluster",
    ("docs/integrations.md", "# in-process"): "starts npx MCP servers on /srv/data (tested by test_mcp_proxy.py)",
    ("docs/sandbox.md", "curl -s -X POST localhost:8700/v1/actions/act_"): "needs a running server and an action id",
    ("docs/server.md", "interlock token create --agent kiro"): "revokes a placeholder token id (tok_…)",
    ("docs/server.md", "export BILLING_DSN"): "starts servers that run until stopped",
    ("docs/server.md", "source .interlock/demo-tokens.env"): "needs scripts/run's server and request ids",
}

#: Blocks whose last command documents a non-zero exit: `interlock check` exits 3 for "approval required".
EXPECTED_EXIT: dict[tuple[str, str], int] = {
    ("README.md", ".venv/bin/interlock check"): 3,
    ("docs/policy.md", ".venv/bin/interlock policy lint examples/policy.yaml"): 3,
}


def blocks() -> list[tuple[str, str, str]]:
    found = []
    for path in DOCS:
        name = str(path.relative_to(ROOT))
        for match in BLOCK.finditer(path.read_text()):
            code = match.group(1)
            found.append((name, code.strip().splitlines()[0] if code.strip() else "", code))
    return found


def exception_for(name: str, first: str) -> str | None:
    return next((why for (file, start), why in EXCEPTIONS.items() if file == name and first.startswith(start)), None)


RUNNABLE = [(n, f, c) for n, f, c in blocks() if exception_for(n, f) is None]


def test_every_exception_names_a_block_and_a_reason() -> None:
    all_blocks = blocks()
    for (file, start), why in EXCEPTIONS.items():
        assert why.strip(), (file, start)
        assert any(n == file and f.startswith(start) for n, f, _ in all_blocks), f"stale exception: {file}: {start}"
    assert RUNNABLE, "no doc block runs at all"


@pytest.mark.parametrize(("name", "first", "code"), RUNNABLE, ids=[f"{n}:{f[:40]}" for n, f, _ in RUNNABLE])
def test_doc_block_runs(name: str, first: str, code: str, tmp_path: Path) -> None:
    for part in ("examples", ".venv", "scripts"):
        (tmp_path / part).symlink_to(ROOT / part)
    shutil.copy(ROOT / "examples" / "policy.yaml", tmp_path / "policy.yaml")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "HOME": str(tmp_path), "INTERLOCK_PORT": "0"}
    for leaked in ("INTERLOCK_URL", "INTERLOCK_TOKEN", "INTERLOCK_DB", "INTERLOCK_KEY_DIR", "INTERLOCK_POLICY"):
        env.pop(leaked, None)
    log = tmp_path / "block.log"
    with log.open("wb") as out:  # a file, not a pipe: a background process keeps a pipe open
        process = subprocess.Popen(["bash", "-e", "-c", code], cwd=tmp_path, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        process.wait(timeout=120)
    finally:
        # A block may leave a background process (`interlock serve … &`): end its whole group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    expected = next((code for (file, start), code in EXPECTED_EXIT.items()
                     if file == name and first.startswith(start)), 0)
    assert process.returncode == expected, (f"{name}: block starting {first!r} exited {process.returncode}, "
                                            f"expected {expected}:\n{log.read_text(errors='replace')}")
