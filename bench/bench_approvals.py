"""Approval throughput: requests created and resolved per second, on SQLite and PostgreSQL.

One lifecycle = open_request → approve (bob) → approve (dave, quorum met, grant issued) →
consume_grant: 4 store transactions and 5 durable audit entries (the real AuditLog, fsync'd). Run
sequentially (latency per step) and from several threads at once (throughput).

    .venv/bin/python -m bench.bench_approvals [--n 200] [--threads 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg

from interlock.audit import AuditLog
from interlock.classify.registry import classify
from interlock.gate.service import Gate
from interlock.identity import Principal, authenticate, create_token
from interlock.model import Action, Kind
from interlock.policy import Policy, context_for, decide, load_policy_text
from interlock.store import Store, StoreError, open_store

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


def _lifecycle(
    gate: Gate, policy: Policy, approvers: list[Principal], i: int, timings: dict[str, list[float]]
) -> None:
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


def _measure(
    dialect: str, store: Store, keys: Path, policy: Policy, n: int, threads: int
) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    store.migrate()
    audit = AuditLog(store, key_dir=keys)
    try:
        gate = Gate(store, policy, audit)
        approvers = [
            authenticate(store, create_token(store, "human", h, None, audit)[1]) for h in ("bob", "dave")
        ]
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


def run(n: int, threads: int) -> None:
    policy = load_policy_text(POLICY)
    rows: list[tuple[str, ...]] = []
    for dialect, store, tmp in _stores():
        try:
            rows += _measure(dialect, store, Path(tmp) / "keys", policy, n, threads)
        except StoreError as exc:
            print(f"{dialect}: failed: {exc}")
    header = ("store", "measure", "n", "p50 ms", "p99 ms", "lifecycles/s")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    print("lifecycle = open request, 2 approvals (quorum met, grant issued), consume grant;")
    print("every step's audit entries are durable (AuditLog, group commit) before it returns")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200, help="lifecycles per store and mode")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv or [])
    run(args.n, args.threads)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
