"""Webhooks through the durable outbox: how long from an alert's audit entry being durable on one
"replica" to its delivery reaching a loopback receiver, sent by another "replica" holding the
`webhook-delivery` lease, against posting the same body straight to the receiver.

Two store connections stand for two replicas (each its own `open_store`, so the wake-up crosses them
the way it crosses processes: PostgreSQL `LISTEN/NOTIFY`, SQLite's sidecar file polled every 50 ms).
Rounds alternate outbox / direct, so the machine's load hits both alike.

    .venv/bin/python -m bench.bench_webhooks [--n 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg

from interlock.audit import AuditLog
from interlock.gate.webhook import Notifier
from interlock.policy import load_policy_text
from interlock.store import open_store

PG = os.environ.get("INTERLOCK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
POLICY = """
version: 1
environments: {production: {}}
notify:
  - {name: bench, url: 'RECEIVER', events: [guard.tripped]}
"""


class Receiver:
    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                at = time.perf_counter()
                with receiver.cond:
                    receiver.arrived[int(body["alert"]["i"])] = at
                    receiver.cond.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, i: int, timeout: float = 30.0) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: i in self.arrived, timeout):
                raise TimeoutError(f"delivery {i} did not arrive within {timeout} s")
            return self.arrived[i]


@contextmanager
def database(dialect: str, tmp: Path) -> Iterator[str]:
    if dialect == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    name = f"interlock_bench_webhooks_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield f"{PG}/{name}"
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def run(dialect: str, n: int) -> None:
    receiver = Receiver()
    policy = load_policy_text(POLICY.replace("RECEIVER", receiver.url), "bench.yaml")
    with tempfile.TemporaryDirectory() as folder, database(dialect, Path(folder)) as url:
        keys = Path(folder) / "keys"
        sender_store, stager_store = open_store(url), open_store(url)
        sender_store.migrate()
        sender_audit = AuditLog(sender_store, key_dir=keys)
        stager_audit = AuditLog(stager_store, key_dir=keys)
        sender = Notifier(policy.doc.notify, sender_audit, sender_store, lease_ttl=15)
        Notifier(policy.doc.notify, stager_audit, stager_store, autostart=False)  # stages through its audit hook
        sender.start()
        outbox: list[float] = []
        appended: list[float] = []
        direct: list[float] = []
        try:
            with httpx.Client(timeout=10) as client:
                for i in range(2 * n):
                    data = {"detector": "bench", "agent": "kiro", "detail": "x" * 40, "i": i}
                    start = time.perf_counter()
                    if i % 2 == 0:
                        stager_audit.append("guard.tripped", data)  # durable, its delivery staged with it
                        appended.append(time.perf_counter() - start)
                        outbox.append(receiver.wait(i) - start)
                    else:
                        body = json.dumps({"event": "guard.tripped", "alert": data, "delivery": str(i),
                                           "timestamp": int(time.time())}).encode()
                        client.post(receiver.url, content=body, headers={"Content-Type": "application/json"})
                        direct.append(receiver.wait(i) - start)
        finally:
            sender.close()
            stager_audit.close()
            sender_audit.close()
            stager_store.close()
            sender_store.close()
            receiver.server.shutdown()
    for name, values in (("outbox (append → received)", outbox), ("  of which the append", appended),
                         ("direct POST", direct)):
        ordered = sorted(values)
        print(f"{dialect:10} {name:28} p50 {statistics.median(ordered) * 1e3:7.2f} ms   "
              f"p99 {ordered[int(0.99 * (len(ordered) - 1))] * 1e3:7.2f} ms   (n={len(ordered)})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200, help="deliveries per side and store")
    args = parser.parse_args(argv)
    for dialect in ("sqlite", "postgresql"):
        run(dialect, args.n)


if __name__ == "__main__":
    main()
