"""Audit log: durable appends per second, full verification and proofs at a million entries.

- appends/s with 1, 8 and 64 concurrent writer threads, and one writer appending batches of
  1,000 (append_many), on SQLite (WAL, synchronous=FULL) and PostgreSQL; every append returns
  only after the group commit that holds it is durable.
- full verification (recompute every leaf and the tree, check every checkpoint) of N entries on
  SQLite; the N-entry log is built through the writer's batch path with pre-rendered entries, so
  building it takes seconds, not the minutes redaction and canonicalisation of 10^6 entries would.
- inclusion and consistency proofs at N entries: size and time (including the database reads).

    .venv/bin/python -m bench.bench_audit [--entries 1000000] [--seconds 3] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg

from interlock.audit import AuditLog, merkle, verify
from interlock.audit.log import _Pending
from interlock.store import open_store

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATA = {
    "agent": "kiro",
    "action_id": "a-1f3e9c",
    "outcome": "allow",
    "risk": "read",
    "rules": ["role:deployer@production"],
    "reasons": ["read-only in production"],
}


def _pg_database() -> tuple[str, str]:
    name = f"bench_audit_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return name, f"postgresql://postgres@127.0.0.1:5432/{name}"


def _drop(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def _throughput(log: AuditLog, writers: int, seconds: float) -> tuple[float, float, float, float]:
    """(appends/s, mean batch, p50 ms, p99 ms) for `writers` threads appending for `seconds`."""
    latencies: list[list[float]] = [[] for _ in range(writers)]
    stop = time.monotonic() + seconds
    batches, committed = log.batches, log.committed

    def run(k: int) -> None:
        mine = latencies[k]
        while time.monotonic() < stop:
            started = time.perf_counter()
            log.append("action.proposed", DATA)
            mine.append(time.perf_counter() - started)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(writers)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    flat = sorted(x for mine in latencies for x in mine)
    mean_batch = (log.committed - committed) / max(1, log.batches - batches)
    return (len(flat) / elapsed, mean_batch, 1000 * flat[len(flat) // 2], 1000 * flat[int(len(flat) * 0.99)])


def _batched(log: AuditLog, seconds: float, size: int = 1000) -> float:
    stop, count, began = time.monotonic() + seconds, 0, time.monotonic()
    while time.monotonic() < stop:
        log.append_many([("action.proposed", DATA)] * size)
        count += size
    return count / (time.monotonic() - began)


def appends(url: str, label: str, keys: Path, seconds: float) -> None:
    store = open_store(url, pool_size=4)
    store.migrate()
    with AuditLog(store, key_dir=keys) as log:
        log.append("policy.loaded", {"policy": "bench"})
        for writers in (1, 8, 64):
            rate, batch, p50, p99 = _throughput(log, writers, seconds)
            print(f"{label:<11} {writers:>7} {rate:>11,.0f} {batch:>10.1f} {p50:>9.2f} {p99:>9.2f}", flush=True)
        rate = _batched(log, seconds)
        print(f"{label:<11} {'1×1000':>7} {rate:>11,.0f} {1000:>10.1f} {'':>9} {'':>9}", flush=True)
        report = log.verify()
        assert report.ok, report.describe()
    store.close()


def _build(log: AuditLog, entries: int) -> None:
    """Append `entries` pre-rendered canonical entries through the writer's batch path."""
    stamp = "2026-01-01T00:00:00.000000Z"
    chunk = 20_000
    for start in range(0, entries, chunk):
        batch = []
        for i in range(start, min(entries, start + chunk)):
            text = (
                f'{{"data":{{"action_id":"a{i}","agent":"kiro","outcome":"allow","risk":"read"}},'
                f'"event":"action.proposed","time":"{stamp}"}}'
            )
            batch.append(_Pending("action.proposed", stamp, text.encode(), ("kiro", None, "read", "allow", f"a{i}")))
        log._write(batch)
        if (start // chunk) % 10 == 9 or start + chunk >= entries:
            log.checkpoint()


def large(entries: int, folder: Path) -> None:
    store = open_store(f"sqlite:///{folder / 'large.db'}")
    store.migrate()
    with AuditLog(store, key_dir=folder / "keys", checkpoint_every=10**12, checkpoint_interval_s=10**6) as log:
        began = time.perf_counter()
        _build(log, entries)
        built = time.perf_counter() - began
        began = time.perf_counter()
        report = log.verify()
        checked = time.perf_counter() - began
        assert report.ok and report.entries == entries, report.describe()
        print(f"\nFull verification, SQLite, {entries:,} entries ({report.checkpoints} checkpoints)")
        print(f"  build (batch path)  {built:8.1f} s   {entries / built:,.0f} entries/s")
        print(f"  verify              {checked:8.1f} s   {entries / checked:,.0f} entries/s", flush=True)

        latest = log.latest_checkpoint()
        assert latest is not None
        rng = random.Random(6962)
        times, sizes = [], []
        for _ in range(300):
            index = rng.randrange(entries)
            began = time.perf_counter()
            proof = log.inclusion_proof(index, entries)
            times.append(time.perf_counter() - began)
            sizes.append(len(proof.path))
            assert verify.verify_inclusion(
                index,
                entries,
                bytes.fromhex(proof.leaf_hash),
                [bytes.fromhex(h) for h in proof.path],
                latest.root,
            )
        began = time.perf_counter()
        for _ in range(300):
            verify.verify_inclusion(
                index,
                entries,
                bytes.fromhex(proof.leaf_hash),
                [bytes.fromhex(h) for h in proof.path],
                latest.root,
            )
        check = (time.perf_counter() - began) / 300
        ctimes, csizes = [], []
        for _ in range(100):
            old = rng.randrange(1, entries)
            began = time.perf_counter()
            path = log.consistency_proof(old, entries)
            ctimes.append(time.perf_counter() - began)
            csizes.append(len(path))
        print(f"\nProofs at {entries:,} entries (generation includes the database reads)")
        print(f"{'proof':<12} {'hashes':>7} {'bytes':>6} {'mean ms':>8} {'p99 ms':>7} {'verify ms':>9}")
        print(
            f"{'inclusion':<12} {max(sizes):>7} {32 * max(sizes):>6} {1000 * statistics.mean(times):>8.3f} "
            f"{1000 * sorted(times)[int(len(times) * 0.99)]:>7.3f} {1000 * check:>9.3f}"
        )
        print(
            f"{'consistency':<12} {max(csizes):>7} {32 * max(csizes):>6} "
            f"{1000 * statistics.mean(ctimes):>8.3f} "
            f"{1000 * sorted(ctimes)[int(len(ctimes) * 0.99)]:>7.3f}"
        )
        nodes = len(merkle.needed_nodes(lambda g: merkle.inclusion_proof(entries // 3, entries, g)))
        print(f"  (an inclusion proof reads {nodes} stored nodes in one query)")
    store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.bench_audit", description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args([] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        folder = Path(tmp)
        print("Durable appends (returns after the fsync'd group commit holding it)")
        print(f"{'store':<11} {'writers':>7} {'appends/s':>11} {'mean batch':>10} {'p50 ms':>9} {'p99 ms':>9}")
        appends(f"sqlite:///{folder / 'appends.db'}", "sqlite", folder / "keys", args.seconds)
        if not args.skip_postgres:
            name, url = _pg_database()
            try:
                appends(url, "postgresql", folder / "keys", args.seconds)
            finally:
                _drop(name)
        large(args.entries, folder)


if __name__ == "__main__":
    main(sys.argv[1:])
