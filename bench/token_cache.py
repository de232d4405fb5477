"""The server's token cache under load, this tree against another (`INTERLOCK_BENCH_PEER_SRC`, e.g.
`git archive <commit> src | tar -x -C /tmp/peer`), interleaved in one run (docs/benchmarks.md, "The token cache"):

- the hot route, fixed mix (bench_hotpath's wrk run: 32 connections, one worker, SQLite): token store
  lookups per second (`interlock.identity._authenticate` calls, counted in the server process by a
  `sitecustomize` this script writes; both trees have that function) and CPU per request;
- a FastAPI route with a token, `GET /v1/approvals` as a human: CPU per request (the dependency that
  finds the principal).

Run: `INTERLOCK_BENCH_PEER_SRC=/tmp/peer/src python -m bench.token_cache` (INTERLOCK_BENCH_SECONDS, default 10;
INTERLOCK_BENCH_ROUNDS, default 2).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.bench_hotpath import DURATION_S, FIXED, POLICY, ROUNDS, _cpu_seconds, _measured
from interlock.testing import LiveServer, live_server

ROOT = Path(__file__).resolve().parent.parent
COUNTER = '''
import os, threading, time
_out = os.environ.get("TOKEN_LOOKUPS_FILE")
if _out:
    import interlock.identity as _identity
    _real, _n = _identity._authenticate, [0]
    def _counted(*args, **kwargs):
        _n[0] += 1
        return _real(*args, **kwargs)
    _identity._authenticate = _counted
    def _dump():
        while True:
            time.sleep(0.1)
            with open(_out + ".tmp", "w") as f:
                f.write(str(_n[0]))
            os.replace(_out + ".tmp", _out)
    threading.Thread(target=_dump, daemon=True).start()
'''


def _lookups(counter: Path) -> int:
    time.sleep(0.3)  # the counter is written every 0.1 s
    return int(counter.read_text()) if counter.exists() else 0


def _get_cpu(server: LiveServer, token: str) -> tuple[float, float]:
    """wrk on GET /v1/approvals: (req/s, server CPU µs per request)."""
    before = _cpu_seconds(server.process.pid)
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{DURATION_S}s", "-H", f"Authorization: Bearer {token}",
                          f"{server.url}/v1/approvals"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rps, (_cpu_seconds(server.process.pid) - before) / max(1.0, rps * DURATION_S) * 1e6


def main() -> None:
    trees = {"this": str(ROOT / "src")}
    if os.environ.get("INTERLOCK_BENCH_PEER_SRC"):
        trees["peer"] = os.environ["INTERLOCK_BENCH_PEER_SRC"]
    with tempfile.TemporaryDirectory(prefix="interlock-tokens-") as scratch, contextlib.ExitStack() as stack:
        work = Path(scratch)
        (work / "site").mkdir()
        (work / "site" / "sitecustomize.py").write_text(COUNTER)
        servers: dict[str, LiveServer] = {}
        counters: dict[str, Path] = {}
        agents: dict[str, str] = {}
        humans: dict[str, str] = {}
        for name, src in trees.items():
            folder = work / name
            folder.mkdir()
            counters[name] = folder / "lookups"
            servers[name] = stack.enter_context(live_server(
                POLICY, f"sqlite:///{folder / 'interlock.db'}", folder,
                env={"PYTHONPATH": f"{work / 'site'}:{src}", "TOKEN_LOOKUPS_FILE": str(counters[name])}))
            agents[name], humans[name] = servers[name].token("agent", "kiro"), servers[name].token("human", "bob")
            with httpx.Client(base_url=servers[name].url, headers={"Authorization": f"Bearer {agents[name]}"}) as c:
                for body in FIXED:  # warmed, and answered as the mix says
                    assert c.post("/v1/actions", json=body).status_code == 200
        print(f"token cache: {DURATION_S} s a run, {ROUNDS} rounds interleaved, load average {os.getloadavg()[0]:.1f}")
        print(f"{'round':>5} {'tree':<5} {'fixed req/s':>11} {'CPU/req':>8} {'lookups/s':>9} "
              f"{'GET req/s':>9} {'CPU/req':>8}")
        for i in range(ROUNDS):
            for name, server in servers.items():
                seen = _lookups(counters[name])
                row = _measured(server.process.pid, f"{server.url}/v1/actions", FIXED, agents[name], work)
                per_second = (_lookups(counters[name]) - seen) / DURATION_S
                get_rps, get_cpu = _get_cpu(server, humans[name])
                print(f"{i + 1:>5} {name:<5} {row['rps']:>11.0f} {row['cpu_us']:>6.0f}µs {per_second:>9.1f} "
                      f"{get_rps:>9.0f} {get_cpu:>6.0f}µs", flush=True)
        print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
