"""`POST /v1/actions` throughput and latency: an autonomously allowed read (decision + durable audit,
no execution), 32 concurrent connections on loopback, SQLite and PostgreSQL, one worker and two.

Load generator: wrk (Debian), bounded in time (10 s a run) and aimed only at 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from interlock.audit import AuditLog
from interlock.identity import create_token
from interlock.policy import load_policy
from interlock.store import open_store

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "examples" / "policy.yaml"
PG = "postgresql://postgres@127.0.0.1:5432"
BODY = {"kind": "shell", "environment": "production", "payload": {"command": "ls -la /srv/app"},
        "rationale": {"intent": "look around"}, "mode": "advisory"}
DURATION_S = int(os.environ.get("INTERLOCK_BENCH_SECONDS", "10"))
CONNECTIONS = 32


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
def _server(dialect: str, workers: int) -> Iterator[tuple[str, str, str]]:
    """A real `interlock serve` on loopback; yields (url, store_url, key_dir)."""
    workdir = Path(tempfile.mkdtemp(prefix="interlock-bench-"))
    dbname = None
    if dialect == "sqlite":
        store_url = f"sqlite:///{workdir / 'interlock.db'}"
    else:
        dbname = f"interlock_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {dbname}")
        store_url = f"{PG}/{dbname}"
    key_dir = workdir / "keys"
    store = open_store(store_url)
    store.migrate()
    store.close()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (workdir / "serve.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "interlock.cli", "serve", "--policy", str(POLICY), "--db",
                               store_url, "--port", str(port), "--workers", str(workers), "--key-dir", str(key_dir)],
                              stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError((workdir / "serve.log").read_text())
            time.sleep(0.2)
        yield url, store_url, str(key_dir)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        if dbname:
            with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        shutil.rmtree(workdir, ignore_errors=True)


def _token(store_url: str, key_dir: str, kind: str = "agent", name: str = "kiro") -> str:
    store = open_store(store_url)
    try:
        with AuditLog(store, key_dir=Path(key_dir)) as audit:
            _, secret = create_token(store, kind, name, None, audit, policy=load_policy(POLICY))  # type: ignore[arg-type]
    finally:
        store.close()
    return secret


def run_one(dialect: str, workers: int) -> dict[str, Any]:
    with _server(dialect, workers) as (url, store_url, key_dir):
        token = _token(store_url, key_dir)
        probe = httpx.post(f"{url}/v1/actions", json=BODY, headers={"Authorization": f"Bearer {token}"}).json()
        assert probe["state"] == "allowed", probe
        with tempfile.TemporaryDirectory() as scratch:
            result = _wrk(url, token, Path(scratch))
        return {"store": dialect, "workers": workers, **result}


def approval_release(dialect: str, rounds: int = 40) -> dict[str, float]:
    """Time from sending the last approval to the waiting agent's long poll returning."""
    with _server(dialect, 1) as (url, store_url, key_dir):
        agent = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {_token(store_url, key_dir)}"},
                             timeout=30)
        humans = [httpx.Client(base_url=url, timeout=30,
                               headers={"Authorization": f"Bearer {_token(store_url, key_dir, 'human', h)}"})
                  for h in ("bob", "dave")]
        samples: list[float] = []
        for i in range(rounds):
            proposed = agent.post("/v1/actions", json={
                "kind": "shell", "environment": "production", "mode": "advisory",
                "payload": {"command": f"rm -rf /srv/cache/{i}"}}).json()
            released: list[float] = []

            def wait(action_id: str = proposed["id"], out: list[float] = released) -> None:
                agent.post(f"/v1/actions/{action_id}/wait", params={"timeout": 30})
                out.append(time.perf_counter())

            waiter = threading.Thread(target=wait)
            waiter.start()
            time.sleep(0.05)  # the agent is waiting
            humans[0].post(f"/v1/approvals/{proposed['approval']['id']}/approve")
            t0 = time.perf_counter()
            humans[1].post(f"/v1/approvals/{proposed['approval']['id']}/approve")
            waiter.join()
            samples.append((released[0] - t0) * 1000)
        qs = statistics.quantiles(samples, n=100, method="inclusive")
        return {"p50_ms": qs[49], "p99_ms": qs[98]}


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
    print("goal: ≥ 2,500 req/s with one worker on SQLite, p99 ≤ 25 ms")
    print("\nApproval release: last approval sent → the waiting agent's long poll returns (40 rounds)")
    for dialect in ("sqlite", "postgresql"):
        release = approval_release(dialect)
        print(f"{dialect:<11} p50 {release['p50_ms']:6.1f} ms   p99 {release['p99_ms']:6.1f} ms")
        rows.append({"store": dialect, "approval_release": release})
    print("goal: p99 ≤ 100 ms")
    return rows


if __name__ == "__main__":
    main()
