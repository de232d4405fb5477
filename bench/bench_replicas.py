"""Several `interlock serve` replicas on one PostgreSQL (issue 18), real processes on loopback:

- approval-to-release across replicas: an agent long-polls on replica A, bob approves on B, carol on
  C; the clock starts when carol's approve is sent and stops when A's wait returns (advisory mode:
  the release itself, no execution). Goal p99 ≤ 100 ms.
- `POST /v1/actions` throughput with 1, 2 and 3 replicas: one wrk per replica (32 connections split
  between them), the same allowed read as `bench_server`. The machine has 2 cores shared by the load
  generator and every replica: these figures show contention, not scaling.

    .venv/bin/python -m bench.bench_replicas        (INTERLOCK_BENCH_SECONDS=5 for shorter runs)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg

from bench.bench_server import BODY
from interlock.testing import LiveServer, live_server

PG = "postgresql://postgres@127.0.0.1:5432"
DURATION_S = int(os.environ.get("INTERLOCK_BENCH_SECONDS", "10"))
CONNECTIONS = 32
RELEASES = int(os.environ.get("INTERLOCK_BENCH_RELEASES", "40"))
POLICY = """\
version: 1
humans: {alice: {groups: [sre]}, bob: {groups: [sre]}, carol: {groups: [sre]}}
agents: {kiro: {owner: alice, roles: [deployer]}}
environments: {production: {protected: true}}
roles: {deployer: {production: {autonomous: read, approve: {write: 2, destructive: 2}}}}
tests:
  - {agent: kiro, env: production, kind: shell, input: "touch /tmp/x", expect: approval_required}
"""


@contextmanager
def _replicas(n: int) -> Iterator[list[LiveServer]]:
    workdir = Path(tempfile.mkdtemp(prefix="interlock-bench-replicas-"))
    (workdir / "policy.yaml").write_text(POLICY)
    dbname = f"interlock_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {dbname}")
    try:
        with ExitStack() as stack:
            yield [stack.enter_context(live_server(workdir / "policy.yaml", f"{PG}/{dbname}", workdir))
                   for _ in range(n)]
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        shutil.rmtree(workdir, ignore_errors=True)


def releases(servers: list[LiveServer]) -> dict[str, list[float]]:
    """Interleaved: votes on B and C (across replicas), and votes on A itself (the in-process baseline)."""
    a, b, c = servers
    kiro, bob, carol = a.token("agent", "kiro"), a.token("human", "bob"), a.token("human", "carol")
    found: dict[str, list[float]] = {"across": [], "same": []}
    with a.client(kiro, timeout=60) as agent, ExitStack() as stack:
        across = stack.enter_context(b.client(bob)), stack.enter_context(c.client(carol))
        same = stack.enter_context(a.client(bob)), stack.enter_context(a.client(carol))
        for i in range(2 * RELEASES):
            kind = "across" if i % 2 else "same"
            on_b, on_c = across if kind == "across" else same
            seconds = found[kind]
            proposed = agent.post("/v1/actions", json={"kind": "shell", "environment": "production", "mode": "advisory",
                                                       "payload": {"command": f"touch /tmp/bench-{i}"}}).json()
            request = proposed["approval"]["id"]
            done: dict[str, Any] = {}

            def wait(action: str = proposed["id"], out: dict[str, Any] = done) -> None:
                with a.client(kiro, timeout=60) as waiter:
                    out["body"] = waiter.post(f"/v1/actions/{action}/wait", params={"timeout": 30}).json()
                out["at"] = time.perf_counter()

            thread = threading.Thread(target=wait)
            thread.start()
            time.sleep(0.05)  # the long poll is parked on A (a benchmark; tests never sleep)
            on_b.post(f"/v1/approvals/{request}/approve", json={}).raise_for_status()
            start = time.perf_counter()
            on_c.post(f"/v1/approvals/{request}/approve", json={}).raise_for_status()
            thread.join()
            assert done["body"]["state"] == "approved", done["body"]
            seconds.append(done["at"] - start)
    return found


def _wrk(url: str, token: str, connections: int, workdir: Path) -> subprocess.Popen[str]:
    script = workdir / f"post-{uuid.uuid4().hex[:6]}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("P50 %d\\nP99 %d\\nNON2XX %d\\n", latency:percentile(50), '
        "latency:percentile(99), summary.errors.status))\n"
        "end\n")
    return subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{DURATION_S}s", "--timeout", "5s", "-s",
                             str(script), f"{url}/v1/actions"], stdout=subprocess.PIPE, text=True)


def throughput(servers: list[LiveServer]) -> dict[str, float]:
    token = servers[0].token("agent", "kiro")
    with tempfile.TemporaryDirectory() as scratch:
        runs = [_wrk(s.url, token, CONNECTIONS // len(servers), Path(scratch)) for s in servers]
        outs = [r.communicate()[0] for r in runs]
    rps = sum(float(re.search(r"Requests/sec:\s+([\d.]+)", o).group(1)) for o in outs)  # type: ignore[union-attr]
    values = [dict(re.findall(r"^(P50|P99|NON2XX) (\d+)$", o, re.M)) for o in outs]
    return {"rps": rps, "p50_ms": max(int(v["P50"]) for v in values) / 1000,
            "p99_ms": max(int(v["P99"]) for v in values) / 1000, "non2xx": sum(int(v["NON2XX"]) for v in values)}


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run scripts/bench (it installs it) or apt-get install wrk")
    with _replicas(3) as servers:
        found = releases(servers)
    print("\napproval-to-release (the last approve sent → the waiting agent's answer; PostgreSQL, 3 replicas, "
          "interleaved; includes the approve request's own time):")
    for kind, label in (("across", "wait on A, votes on B and C"), ("same", "wait on A, votes on A")):
        seconds = sorted(found[kind])
        p50 = statistics.median(seconds) * 1000
        p99 = seconds[min(len(seconds) - 1, round(0.99 * (len(seconds) - 1)))] * 1000
        print(f"  {label:<28} n={len(seconds)}  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms (goal p99 ≤ 100 ms)")
    print(f"\nPOST /v1/actions (allowed read, advisory), {CONNECTIONS} connections split over the replicas, "
          f"{DURATION_S} s, PostgreSQL; 2 cores shared with wrk: contention, not scaling")
    print(f"{'replicas':>8} {'req/s':>9} {'p50':>9} {'p99':>9} {'non-2xx':>8}")
    for n in (1, 2, 3):
        with _replicas(n) as servers:
            row = throughput(servers)
        print(f"{n:>8} {row['rps']:>9.0f} {row['p50_ms']:>7.1f}ms {row['p99_ms']:>7.1f}ms {row['non2xx']:>8}",
              flush=True)


if __name__ == "__main__":
    main()
