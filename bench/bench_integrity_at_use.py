"""Integrity at use: what checking freezes, breakers and console sessions against the log costs.

Each row pairs the new read with the table-only read it replaced, interleaved in rounds in one run
(the machine is shared: compare the ratio, not the absolute figures across runs):

- freeze reload (what each process does when the freezes channel's generation moves): the active rows
  alone vs rows + the log's freezes folded incrementally (no new entry since the last fold), and a cold
  fold (a process starting) over a log holding `--freezes` made-and-thawed freezes;
- breaker lookup in the audit batch hook (per finished execution, with `breakers:`): the row alone vs
  the row + the log's transitions folded since the last batch;
- console session lookup (per console request): the joined row alone vs `find_session` (row, its
  console.signed_in entry, the sign-out and revocation lookups).

    .venv/bin/python -m bench.run integrity_at_use      # or: -m bench.bench_integrity_at_use [--n 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg

import interlock.policy  # noqa: F401  first: guard.freezes and policy.testing import each other
from interlock.guard import breakers, freezes
from interlock.guard.detectors import Counting
from interlock.identity import authenticate, create_token
from interlock.policy import load_policy_text
from interlock.runtime import Runtime
from interlock.server.ui.sessions import _hash, find_session, open_session

PG = os.environ.get("INTERLOCK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
POLICY = """
version: 1
humans: {alice: {groups: [sre]}, bob: {groups: [sre]}}
agents: {kiro: {owner: alice, roles: [deployer]}}
environments: {sandbox: {}, production: {protected: true}}
roles: {deployer: {sandbox: {autonomous: destructive}, production: {autonomous: read, approve: {write: 1}}}}
guards: {thaw_by: [sre], breakers: {consecutive_failures: 5}}
"""


def _timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _pair(name: str, old: Callable[[], object], new: Callable[[], object], n: int) -> None:
    before: list[float] = []
    after: list[float] = []
    for _ in range(20):  # interleaved rounds: the machine's load hits both sides alike
        before += _timed(old, max(1, n // 20))
        after += _timed(new, max(1, n // 20))
    a, b = statistics.median(before) * 1e6, statistics.median(after) * 1e6
    print(f"  {name:44s} table only p50 {a:8.1f} µs   with the log p50 {b:8.1f} µs   ratio {b / a:5.2f}  "
          f"(+{b - a:.1f} µs)")


def run(label: str, url: str, tmp: Path, n: int, made: int) -> None:
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    with Runtime(policy, url, tmp / "keys") as rt:
        for k in range(made):  # a history of freezes, each made and thawed
            frozen = rt.guard.freeze(agent=None, environment="sandbox", target=None, reason=f"drill {k}", by="bob")
            rt.guard.thaw(frozen.id, by="alice", groups=("sre",))
        rt.guard.freeze(agent=None, environment="production", target=None, reason="incident", by="bob")
        store, log = rt.store, rt.audit
        print(f"{label}: {made} past freezes in a log of {log.size()} entries")
        warm = freezes.Ledger()

        def table_freezes() -> object:
            with store.transaction(readonly=True) as tx:
                return freezes.active_freezes(tx)

        def log_freezes() -> object:
            with store.transaction(readonly=True) as tx:
                return freezes.in_force(tx, warm, log)

        def cold_freezes() -> object:
            with store.transaction(readonly=True) as tx:
                return freezes.in_force(tx, freezes.Ledger(), log)

        _pair("freeze reload (warm ledger)", table_freezes, log_freezes, n)
        _pair(f"freeze reload (cold: {made + 1} freezes folded)", table_freezes, cold_freezes, max(20, n // 20))

        counting = Counting(rt.guard.guards, rt.guard.clock, lambda alerts: None, log=log)
        with store.transaction() as tx:  # one open breaker, recorded
            breakers.trip(tx, "kiro", breakers.AGENT_WIDE, "bench", datetime.now(UTC), log)

        def table_breaker() -> object:
            with store.transaction(readonly=True) as tx:
                return breakers.get(tx, "kiro", breakers.AGENT_WIDE)

        def log_breaker() -> object:
            with store.transaction(readonly=True) as tx:
                counting._uncommitted, counting._changed = 0, set()
                return counting._breaker(tx, "kiro", breakers.AGENT_WIDE)

        _pair("breaker lookup in the batch hook", table_breaker, log_breaker, n)

        _, secret = create_token(store, "human", "bob", None, log)
        session = open_session(store, authenticate(store, secret, log=log), datetime.now(UTC), log)

        def table_session() -> object:
            with store.transaction(readonly=True) as tx:
                return tx.fetchone("SELECT s.token_id, s.human, s.via, s.expires_at, s.revoked_at, t.revoked_at AS r, "
                                   "t.expires_at AS e, t.kind AS k FROM console_sessions s LEFT JOIN tokens t "
                                   "ON t.id = s.token_id WHERE s.secret_sha256 = ?", (_hash(session.secret),))

        def log_session() -> object:
            assert find_session(store, session.secret, datetime.now(UTC), log) is not None
            return None

        _pair("console session lookup", table_session, log_session, n)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--freezes", type=int, default=200)
    args = parser.parse_args(argv or [])
    load_policy_text(POLICY)  # fail early on a bad policy
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/bench.db", Path(tmp), args.n, args.freezes)
    dbname = f"interlock_bench_atuse_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"'.encode())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run("postgresql", f"{PG}/{dbname}", Path(tmp), args.n, args.freezes)
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'.encode())


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
