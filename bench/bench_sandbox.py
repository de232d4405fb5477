"""Sandbox first: what a rehearsal adds over the plain executor, and the promotion lookup.

Measured interleaved in one run (each round runs the plain executor and the rehearsal back to back),
so a loaded machine slows both alike and the difference stays meaningful:
- sql on a throwaway PostgreSQL database: the same UPDATE run directly (committed) vs rehearsed with
  `strategy: rollback` (row counts before/after, per-statement rows, rolled back);
- shell: `true` and `rm -rf build/` run plainly vs in bubblewrap on a kernel overlay (root) and on a
  throwaway copy of a working directory of stated size;
- promotion lookup (`evidence.find` in a fresh read-only transaction, as the Gateway does at decision
  time) with 100,000 evidence records, SQLite and PostgreSQL.

    .venv/bin/python -m bench.bench_sandbox [--n 40] [--records 100000] [--only sql|shell|lookup]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from interlock.execute import ExecutionResult, Status, execute
from interlock.execute.bwrap import overlay_available
from interlock.gate.clock import stamp
from interlock.model import Action, Kind
from interlock.policy.schema import Target
from interlock.sandbox import evidence
from interlock.sandbox.rehearse import rehearse
from interlock.store import open_store

PG = "postgresql://postgres@127.0.0.1:5432"


def act(kind: Kind, payload: dict[str, Any]) -> Action:
    return Action(kind=kind, environment="bench", target="t", payload=payload)


def stats(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    return (statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
            ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))])


def row(name: str, samples: list[float], note: str = "", unit: str = "ms") -> None:
    p50, p95, p99 = stats(samples)
    print(f"| {name:<44} | {len(samples):>6} | {p50:>8.3f} | {p95:>8.3f} | {p99:>8.3f} {unit} | {note}")


def header() -> None:
    print(f"| {'case':<44} | {'n':>6} | {'p50':>8} | {'p95':>8} | {'p99':>8}    | note")


def interleaved(n: int, runs: dict[str, Callable[[], Any]]) -> dict[str, list[float]]:
    """Each round runs every case once, in turn; returns wall times in ms per case."""
    for run in runs.values():
        run()  # warm-up: imports, first connection, page cache
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(n):
        for name, run in runs.items():
            start = time.perf_counter()
            got = run()
            samples[name].append((time.perf_counter() - start) * 1000)
            result = got.result if hasattr(got, "result") else got
            if isinstance(result, ExecutionResult) and result.status is not Status.succeeded:
                raise RuntimeError(f"{name}: {result.status} {result.error}")
    return samples


def bench_sql(n: int) -> None:
    name = f"bench_sandbox_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        with psycopg.connect(f"{PG}/{name}", autocommit=True) as conn:
            conn.execute("CREATE TABLE invoices (id int PRIMARY KEY, amount int)")
            conn.execute("INSERT INTO invoices SELECT g, g FROM generate_series(1, 10000) g")
        os.environ["BENCH_SANDBOX_DSN"] = f"{PG}/{name}"
        twin = Target(environment="bench", kind=Kind.sql, dsn="env:BENCH_SANDBOX_DSN")
        update = act(Kind.sql, {"sql": "UPDATE invoices SET amount = amount WHERE id <= 25"})
        samples = interleaved(n, {"direct": lambda: execute(update, twin), "rollback": lambda: rehearse(update, twin)})
        header()
        row("sql: UPDATE 25 rows, executor (committed)", samples["direct"])
        row("sql: same, rehearsal strategy rollback", samples["rollback"], "counts before/after, rolled back")
        added = statistics.median(samples["rollback"]) - statistics.median(samples["direct"])
        print(f"sql rollback rehearsal adds {added:+.1f} ms at p50 (10,000-row table)")
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def make_workdir(root: Path, files: int, size: int) -> int:
    for i in range(files):
        sub = root / ("build" if i % 2 else "src") / f"d{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.o").write_bytes(os.urandom(size))
    return files * size


def bench_shell(n: int) -> None:
    modes = ["copy", *(["overlay"] if overlay_available() else [])]
    for files, size in ((20, 1024), (400, 4096)):
        shell_round(n, files, size, modes)


def shell_round(n: int, files: int, size: int, modes: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as scratch:
        workdir = Path(scratch) / "app"
        total = make_workdir(workdir, files, size)
        plain = Target(environment="bench", kind=Kind.shell, workdir=str(workdir))
        true = act(Kind.shell, {"command": "true"})
        rm = act(Kind.shell, {"command": "rm -rf build/"})
        runs: dict[str, Callable[[], Any]] = {"plain true": lambda: execute(true, plain)}
        for mode in modes:
            runs[f"{mode} true"] = lambda mode=mode: rehearse(true, plain, shell_mode=mode)
            runs[f"{mode} rm"] = lambda mode=mode: rehearse(rm, plain, shell_mode=mode)
        samples = interleaved(n, runs)
        print(f"\nshell, working directory of {files} files, {total / 1024:.0f} KiB:")
        header()
        row("shell: true, plain executor", samples["plain true"])
        base = statistics.median(samples["plain true"])
        for mode in modes:
            added = statistics.median(samples[f"{mode} true"]) - base
            row(f"shell: true, bubblewrap ({mode})", samples[f"{mode} true"], f"adds {added:+.1f} ms at p50")
            row(f"shell: rm -rf build/, bubblewrap ({mode})", samples[f"{mode} rm"], "effects listed")
        assert (workdir / "build").exists()


def fill(url: str, records: int) -> list[tuple[str, str, str, str]]:
    """`records` evidence rows and the audit entries they index (raw inserts: a bench fixture, not a log)."""
    rng = random.Random(7)
    version = hashlib.sha256(b"policy").hexdigest()
    now = datetime.now(UTC)
    keys = []
    entries, rows = [], []
    for i in range(records):
        agent, twin = f"agent{i % 50}", f"twin{i % 20}"
        body = hashlib.sha256(f"body{i}".encode()).hexdigest()
        ev = evidence.Evidence(id=f"act_{i:020d}", agent=agent, body_fingerprint=body, twin=twin, environment="staging",
                               policy_version=version, status="succeeded", finished_at=now, duration_ms=38,
                               summary="DELETE 25 rows", audit_idx=i, effects={"statements": []})
        text = json.dumps({"event": evidence.EVENT, "time": stamp(now), "data": evidence.entry_data(ev)})
        entries.append((i, evidence.EVENT, stamp(now), agent, "staging", None, None, ev.id, text, "00" * 32))
        rows.append(ev)
        if rng.random() < 0.01:
            keys.append((agent, body, twin, version))
    store = open_store(url)
    try:
        store.migrate()
        with store.transaction() as tx:
            tx.executemany("INSERT INTO audit_entries(idx, event, time, agent, environment, risk, outcome, action_id, "
                           "entry, leaf_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", entries)
            for ev in rows:
                evidence.record(tx, ev)
    finally:
        store.close()
    return keys


def bench_lookup(records: int, n: int) -> None:
    print(f"\npromotion lookup with {records:,} evidence records (find + check against its audit entry, "
          "one read-only transaction each):")
    header()
    with tempfile.TemporaryDirectory(prefix="bench-evidence-") as scratch:
        name = f"bench_evidence_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"'.encode())
        try:
            for label, url in (("sqlite", f"sqlite:///{scratch}/e.db"), ("postgresql", f"{PG}/{name}")):
                keys = fill(url, records)
                store = open_store(url)
                try:
                    samples, cpu = [], []
                    for i in range(n):
                        agent, body, twin, version = keys[i % len(keys)]
                        start, start_cpu = time.perf_counter(), time.thread_time()
                        with store.transaction(readonly=True) as tx:
                            found = evidence.find(tx, agent, body, twin, version)
                        samples.append((time.perf_counter() - start) * 1000)
                        cpu.append((time.thread_time() - start_cpu) * 1000)
                        assert found is not None
                    row(f"lookup, {label} (wall)", samples)
                    # CPU time of this thread: what the lookup itself costs, without waiting for a core
                    # (for PostgreSQL the server's side is not in it).
                    row(f"lookup, {label} (this thread's CPU)", cpu)
                finally:
                    store.close()
        finally:
            with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--only", choices=["sql", "shell", "lookup"], help="run one part")
    args = parser.parse_args(argv or [])
    print("(the machine is shared with other engineers' test runs: compare rows of one run, not across runs)")
    if args.only in (None, "sql"):
        bench_sql(args.n)
    if args.only in (None, "shell"):
        if shutil.which("bwrap"):
            bench_shell(args.n)
        else:
            print("shell: bubblewrap is not installed (scripts/services.sh installs it)")
    if args.only in (None, "lookup"):
        bench_lookup(args.records, args.lookups)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
