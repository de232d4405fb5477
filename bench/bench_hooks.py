"""Agent hook round trip: what a Claude Code tool call waits for before an allowed Bash command runs.

A real `interlock serve` (SQLite, loopback) and real hook processes fed the PreToolUse JSON on stdin,
process start included, timed from spawn to exit. Rows, to see where the time goes:

- `python -c pass`: the floor, the interpreter's own start (same virtualenv);
- import only: `python -c "import interlock.integrations.hooks"` (the hook's imports, no request);
- propose only: the hook's HTTP client from this process (the gateway's share: decide + durable audit);
- `interlock-hook claude-code`: the lean console script the installer writes into the settings;
- `interlock hook claude-code`: the same through the full CLI (typer, rich, pydantic …), for contrast.

    .venv/bin/python -m bench.bench_hooks [--n 100]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from interlock.audit import AuditLog
from interlock.identity import create_token
from interlock.integrations.hooks import GatewayClient
from interlock.policy import load_policy
from interlock.store import open_store

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "examples" / "policy.yaml"
PYTHON = sys.executable
HOOK = str(Path(PYTHON).parent / "interlock-hook")
EVENT = json.dumps({"session_id": "bench", "cwd": "/srv", "hook_event_name": "PreToolUse", "tool_name": "Bash",
                    "tool_input": {"command": "ls /srv"}, "tool_use_id": "toolu_bench"})
GOAL_P99_MS = 50.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(tmp: Path) -> Iterator[tuple[str, str]]:
    """(url, agent token) of a real `interlock serve` on SQLite."""
    db = f"sqlite:///{tmp / 'bench.db'}"
    store = open_store(db)
    store.migrate()
    with AuditLog(store, key_dir=tmp / "keys") as audit:
        _, token = create_token(store, "agent", "kiro", None, audit, policy=load_policy(POLICY))
    store.close()
    port = _free_port()
    log = (tmp / "serve.log").open("wb")
    process = subprocess.Popen([PYTHON, "-m", "interlock.cli", "serve", "--policy", str(POLICY), "--db", db,
                                "--port", str(port), "--key-dir", str(tmp / "keys"),
                                "--allow-missing-secrets"],  # the example's targets have no credentials here
                               stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"interlock serve exited: {(tmp / 'serve.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("interlock serve did not become ready")
            time.sleep(0.1)
        yield url, token
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def _timed(n: int, once: Callable[[], None]) -> list[float]:
    once()  # warm the page cache and the server's first-request paths
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        once()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _process(argv: list[str], env: dict[str, str], stdin: str = "", expect: str | None = None) -> Callable[[], None]:
    def once() -> None:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env)
        if done.returncode != 0 or (expect is not None and expect not in done.stdout):
            raise RuntimeError(f"{argv[:3]} exited {done.returncode}: {done.stdout[:200]} {done.stderr[:300]}")

    return once


def _row(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"{name:<44} {len(samples):>4} {statistics.median(ordered):>8.1f} {p99:>8.1f} {ordered[-1]:>8.1f}")


def run(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, _server(Path(tmp)) as (url, token):
        # As installed: bytecode caches written and used (a PYTHONDONTWRITEBYTECODE left in the shell
        # would recompile any module edited since its cache was written, at every hook call).
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("INTERLOCK_") and k != "PYTHONDONTWRITEBYTECODE"}
        env["INTERLOCK_TOKEN"] = token
        subprocess.run([PYTHON, "-m", "compileall", "-q", str(ROOT / "src" / "interlock")], env=env, check=False)
        args = ["claude-code", "--gateway", url, "--env", "production"]
        client = GatewayClient(url, token)

        def propose() -> None:
            if client.propose("shell", "production", {"command": "ls /srv"}, mode="advisory")["state"] != "allowed":
                raise RuntimeError("the benchmark command was not allowed")

        rows = [
            ("python -c pass (interpreter start)", _timed(n, _process([PYTHON, "-c", "pass"], env))),
            ("import interlock.integrations.hooks", _timed(n, _process(
                [PYTHON, "-c", "import interlock.integrations.hooks"], env))),
            ("propose only (in this process, HTTP)", _timed(n, propose)),
            ("interlock-hook claude-code (lean script)", _timed(n, _process(
                [HOOK, *args], env, EVENT, '"allow"'))),
            ("interlock hook claude-code (full CLI)", _timed(max(n // 5, 5), _process(
                [PYTHON, "-m", "interlock.cli", "hook", *args], env, EVENT, '"allow"'))),
        ]
    print(f"hook round trip, allowed Bash `ls /srv`, real interlock serve on SQLite over loopback "
          f"(goal: p99 <= {GOAL_P99_MS:g} ms for the lean script)")
    print(f"{'what':<44} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, samples in rows:
        print(_row(name, samples))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100, help="runs per row")
    args = parser.parse_args(argv or [])
    run(args.n)


if __name__ == "__main__":
    main(sys.argv[1:])
