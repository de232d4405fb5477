"""Approval throughput (requests created and resolved per second) and release latency (last
approval → waiting agent released, through a real `interlock serve`), on SQLite and PostgreSQL.

One lifecycle = open_request → approve (bob) → approve (dave, quorum met, grant issued) →
consume_grant: 4 store transactions and 5 durable audit entries (the real AuditLog, fsync'd). Run
sequentially (latency per step) and from several threads at once (throughput).

Release latency: an agent long-polls `POST /v1/actions/{id}/wait`; the clock starts when the last
approver's `POST /v1/approvals/{id}/approve` is sent and stops when the agent's wait returns.

    .venv/bin/python -m bench.bench_approvals [--n 200] [--threads 4] [--releases 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg

from interlock.audit import AuditLog
from interlock.classify.registry import classify
from interlock.gate.service import Gate
from interlock.identity import Principal, authenticate, create_token
from interlock.model import Action, Kind
from interlock.policy import Policy, context_for, decide, load_policy_text
from interlock.store import Store, StoreError, open_store
from interlock.testing import live_server

POLICY = """
version: 1
humans: {alice: {groups: [sre]}, bob: {groups: [sre, dba]}, dave: {groups: [sre]}}
agents: {kiro: {owner: alice, roles: [deployer]}}
environments: {production: {protected: true}}
targets: {billing-db: {environment: production, kind: sql, dsn: env:BILLING_DSN}}
roles: {deployer: {production: {autonomous: read, approve: {write: 1, destructive: 2}}}}
rules:
  - id: prod-sql-dba
    when: {environment: production, kind: sql, risk: [write, destructive]}
    effect: approve
    approvals: {count: 2, from: [dba, sre], at_least: {dba: 1}}
"""
PG = os.environ.get("INTERLOCK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


def _stores() -> Iterator[tuple[str, Store, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/bench.db")
        yield "sqlite", store, tmp
        store.close()
    name = f"interlock_bench_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
    except psycopg.Error as exc:
        print(f"postgresql: skipped, cannot create a database at {PG}: {type(exc).__name__}")
        return
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(f"{PG}/{name}")
            yield "postgresql", store, tmp
            store.close()
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def _lifecycle(gate: Gate, policy: Policy, approvers: list[Principal], i: int, timings: dict[str, list[float]]) -> None:
    action = Action(
        kind=Kind.sql,
        environment="production",
        target="billing-db",
        payload={"sql": f"DELETE FROM invoices WHERE id = {i}"},
    )
    t0 = time.perf_counter()
    classification = classify(action.kind, action.payload, context_for(policy, action.target))
    decision = decide(policy, "kiro", action, classification)
    request = gate.open_request("kiro", action, decision, classification)
    t1 = time.perf_counter()
    for principal in approvers:
        gate.approve(request.id, principal)
    t2 = time.perf_counter()
    gate.consume_grant("kiro", action)
    t3 = time.perf_counter()
    for key, value in (
        ("open", t1 - t0),
        ("approve x2", t2 - t1),
        ("consume", t3 - t2),
        ("lifecycle", t3 - t0),
    ):
        timings.setdefault(key, []).append(value)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _measure(dialect: str, store: Store, keys: Path, policy: Policy, n: int, threads: int) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    store.migrate()
    audit = AuditLog(store, key_dir=keys)
    try:
        gate = Gate(store, policy, audit)
        approvers = [authenticate(store, create_token(store, "human", h, None, audit)[1]) for h in ("bob", "dave")]
        timings: dict[str, list[float]] = {}
        start = time.perf_counter()
        for i in range(n):
            _lifecycle(gate, policy, approvers, i, timings)
        sequential = n / (time.perf_counter() - start)
        for step in ("open", "approve x2", "consume", "lifecycle"):
            values = timings[step]
            rate = f"{sequential:.0f}" if step == "lifecycle" else ""
            rows.append(
                (
                    dialect,
                    f"sequential: {step}",
                    f"{len(values)}",
                    f"{statistics.median(values) * 1000:.2f}",
                    f"{_pct(values, 0.99):.2f}",
                    rate,
                )
            )
        concurrent: dict[str, list[float]] = {}
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda i: _lifecycle(gate, policy, approvers, i, concurrent), range(n, 2 * n)))
        parallel = n / (time.perf_counter() - start)
        values = concurrent["lifecycle"]
        rows.append(
            (
                dialect,
                f"{threads} threads: lifecycle",
                f"{len(values)}",
                f"{statistics.median(values) * 1000:.2f}",
                f"{_pct(values, 0.99):.2f}",
                f"{parallel:.0f}",
            )
        )
    finally:
        audit.close()
    return rows


@contextmanager
def _server(store_url: str, tmp: Path) -> Iterator[str]:
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    with live_server(policy, store_url, tmp) as server:
        yield server.url


def _release_latency(store: Store, store_url: str, tmp: Path, releases: int) -> list[float]:
    """Seconds from the last approval being sent to the waiting agent's long poll returning."""
    policy = load_policy_text(POLICY)
    with AuditLog(store, key_dir=tmp / "keys") as audit:
        secrets = {
            n: create_token(store, k, n, None, audit, policy=policy)[1]  # type: ignore[arg-type]
            for k, n in [("agent", "kiro"), ("human", "bob"), ("human", "dave")]
        }
    latencies: list[float] = []
    with _server(store_url, tmp) as url:
        clients = {
            n: httpx.Client(base_url=url, headers={"Authorization": f"Bearer {s}"}, timeout=30)
            for n, s in secrets.items()
        }
        try:
            for i in range(releases):
                proposed = (
                    clients["kiro"]
                    .post(
                        "/v1/actions",
                        json={
                            "kind": "shell",
                            "environment": "production",
                            "mode": "advisory",
                            "payload": {"command": f"rm -rf /srv/cache-{i}"},
                        },
                    )
                    .json()
                )
                request_id = proposed["approval"]["id"]
                clients["bob"].post(f"/v1/approvals/{request_id}/approve").raise_for_status()
                released: list[float] = []

                def wait(action_id: str = proposed["id"], out: list[float] = released) -> None:
                    answer = clients["kiro"].post(f"/v1/actions/{action_id}/wait", params={"timeout": 20})
                    out.append(time.perf_counter())
                    if answer.json().get("state") != "approved":
                        raise RuntimeError(f"agent released in state {answer.json().get('state')}")

                waiter = threading.Thread(target=wait)
                waiter.start()
                time.sleep(0.05)  # the long poll is parked on the server
                start = time.perf_counter()
                clients["dave"].post(f"/v1/approvals/{request_id}/approve").raise_for_status()
                waiter.join(30)
                latencies.append(released[0] - start)
        finally:
            for client in clients.values():
                client.close()
    return latencies


def run(n: int, threads: int, releases: int = 50) -> None:
    policy = load_policy_text(POLICY)
    rows: list[tuple[str, ...]] = []
    for dialect, store, tmp in _stores():
        try:
            rows += _measure(dialect, store, Path(tmp) / "keys", policy, n, threads)
            if releases:
                server_db = _fresh_twin(dialect, Path(tmp))
                with server_db as (url, twin):
                    values = _release_latency(twin, url, Path(tmp) / "server", releases)
                rows.append(
                    (
                        dialect,
                        "release: last approval -> agent",
                        f"{len(values)}",
                        f"{statistics.median(values) * 1000:.2f}",
                        f"{_pct(values, 0.99):.2f}",
                        "",
                    )
                )
        except (StoreError, RuntimeError, httpx.HTTPError) as exc:
            print(f"{dialect}: failed: {type(exc).__name__}: {exc}")
    header = ("store", "measure", "n", "p50 ms", "p99 ms", "lifecycles/s")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    print("lifecycle = open request, 2 approvals (quorum met, grant issued), consume grant;")
    print("every step's audit entries are durable (AuditLog, group commit) before it returns")


@contextmanager
def _fresh_twin(dialect: str, tmp: Path) -> Iterator[tuple[str, Store]]:
    """A second, empty database of the same kind for the server (its own tables, its own tokens)."""
    (tmp / "server").mkdir(exist_ok=True)
    if dialect == "sqlite":
        url = f"sqlite:///{tmp / 'server' / 'interlock.db'}"
        store = open_store(url)
        store.migrate()
        try:
            yield url, store
        finally:
            store.close()
        return
    name = f"interlock_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        store = open_store(f"{PG}/{name}")
        store.migrate()
        try:
            yield f"{PG}/{name}", store
        finally:
            store.close()
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200, help="lifecycles per store and mode")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--releases", type=int, default=50, help="release latency samples per store (0: skip)")
    args = parser.parse_args(argv or [])
    run(args.n, args.threads, args.releases)


if __name__ == "__main__":
    main(sys.argv[1:])
