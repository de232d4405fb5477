"""`POST /v1/actions` throughput and latency: an autonomously allowed read (decision + durable audit,
no execution), 32 concurrent connections on loopback, SQLite and PostgreSQL, one worker and two.

Load generator: wrk (Debian), bounded in time (10 s a run) and aimed only at 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from interlock.testing import LiveServer, live_server

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "examples" / "policy.yaml"
PG = "postgresql://postgres@127.0.0.1:5432"
BODY = {"kind": "shell", "environment": "production", "payload": {"command": "ls -la /srv/app"},
        "rationale": {"intent": "look around"}, "mode": "advisory"}
DURATION_S = int(os.environ.get("INTERLOCK_BENCH_SECONDS", "10"))
CONNECTIONS = 32


def _wrk(url: str, token: str, workdir: Path) -> dict[str, float]:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("P50 %d\\nP99 %d\\nERRORS %d\\nNON2XX %d\\n", latency:percentile(50), '
        "latency:percentile(99), summary.errors.connect + summary.errors.read + summary.errors.write + "
        "summary.errors.timeout, summary.errors.status))\n"
        "end\n")
    out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "--timeout", "5s", "-s",
                          str(script), f"{url}/v1/actions"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    values = dict(re.findall(r"^(P50|P99|ERRORS|NON2XX) (\d+)$", out, re.M))
    return {"rps": rps, "p50_ms": int(values["P50"]) / 1000, "p99_ms": int(values["P99"]) / 1000,
            "errors": int(values["ERRORS"]), "non2xx": int(values["NON2XX"])}


@contextmanager
def _server(dialect: str, workers: int) -> Iterator[LiveServer]:
    """A real `interlock serve` on loopback on a fresh store."""
    workdir = Path(tempfile.mkdtemp(prefix="interlock-bench-"))
    dbname = None
    if dialect == "sqlite":
        store_url = f"sqlite:///{workdir / 'interlock.db'}"
    else:
        dbname = f"interlock_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {dbname}")
        store_url = f"{PG}/{dbname}"
    try:
        with live_server(POLICY, store_url, workdir, workers=workers) as server:
            yield server
    finally:
        if dbname:
            with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        shutil.rmtree(workdir, ignore_errors=True)


def run_one(dialect: str, workers: int) -> dict[str, Any]:
    with _server(dialect, workers) as server:
        token = server.token("agent", "kiro")
        probe = httpx.post(f"{server.url}/v1/actions", json=BODY, headers={"Authorization": f"Bearer {token}"}).json()
        assert probe["state"] == "allowed", probe
        with tempfile.TemporaryDirectory() as scratch:
            result = _wrk(server.url, token, Path(scratch))
        return {"store": dialect, "workers": workers, **result}


def main() -> list[dict[str, Any]]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run scripts/bench (it installs it) or apt-get install wrk")
    print(f"\nPOST /v1/actions, autonomously allowed read (decision + durable audit), {CONNECTIONS} connections, "
          f"{DURATION_S} s each, loopback")
    print(f"{'store':<11} {'workers':>7} {'req/s':>9} {'p50':>9} {'p99':>9} {'errors':>7} {'non-2xx':>8}")
    rows = []
    for dialect in ("sqlite", "postgresql"):
        for workers in (1, 2):
            row = run_one(dialect, workers)
            rows.append(row)
            print(f"{dialect:<11} {workers:>7} {row['rps']:>9.0f} {row['p50_ms']:>7.1f}ms {row['p99_ms']:>7.1f}ms "
                  f"{row['errors']:>7} {row['non2xx']:>8}", flush=True)
    print("goal: ≥ 2,500 req/s with one worker on SQLite, p99 ≤ 25 ms (approval release: bench_approvals)")
    return rows


if __name__ == "__main__":
    main()
