"""Guards: the added cost per decision, and how fast a freeze reaches another server process.

1. Per-decision cost, in process, measured interleaved in the same run (rounds alternate, so the
   machine's load hits both sides alike):
   - `review`: `Guard.review` alone with every guard on (a freeze cache hit, an open-breaker lookup,
     a change-freeze window, working hours, first action on a seen target) against nothing;
   - `propose`: `Gateway.propose` (advisory: classify, decide, record durably, no execution) with the
     guards on (review + the counters in the audit batch) against the same Gateway without guards.
2. Freeze propagation on PostgreSQL across two real `interlock serve` processes: the time from the
   `POST /v1/freezes` 2xx on one to the first denial of a proposal sent in a loop to the other.

    .venv/bin/python -m bench.bench_guards [--n 2000] [--freezes 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

from interlock.audit import AuditLog
from interlock.classify.registry import classify
from interlock.gate.service import Gate
from interlock.gateway import Gateway, Mode
from interlock.guard.service import Guard
from interlock.model import Action, Kind
from interlock.policy import context_for, decide, load_policy_text
from interlock.store import Store, open_store
from interlock.testing import live_server

GUARDS = """
guards:
  thaw_by: [sre]
  freezes:
    - {environments: [production], window: "2027-12-23 18:00 to 2028-01-03 08:00 Europe/Berlin", reason: year-end}
  breakers: {consecutive_failures: 5, consecutive_denials: 10000}
  anomalies:
    burst: {threshold: 1000000, window: 1m}
    denial_streak: {threshold: 100000}
    first_action: {environments: [sandbox]}
    working_hours: {agents: {kiro: "mon-sun 00:00-24:00 UTC"}}
    blast_radius: {threshold: 1000000, window: 1h}
"""
POLICY = """
version: 1
humans: {alice: {groups: [sre]}, bob: {groups: [sre]}}
agents: {kiro: {owner: alice, roles: [deployer]}}
environments: {sandbox: {}, production: {protected: true}}
roles: {deployer: {sandbox: {autonomous: destructive}, production: {autonomous: read, approve: {write: 1}}}}
"""
PG = os.environ.get("INTERLOCK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


def _us(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered) * 1e6
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1e6
    return f"p50 {p50:8.1f} µs  p99 {p99:9.1f} µs"


def _timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def per_decision(name: str, store: Store, tmp: str, n: int) -> None:
    guarded_policy = load_policy_text(POLICY + GUARDS)
    plain_policy = load_policy_text(POLICY)
    audit = AuditLog(store, key_dir=Path(tmp) / "keys")
    guard = Guard(store, guarded_policy, audit)
    action = Action(kind=Kind.shell, environment="sandbox", payload={"command": "ls -l"})
    found = classify(action.kind, action.payload, context_for(guarded_policy, None))
    decision = decide(guarded_policy, "kiro", action, found)
    guard.review("kiro", action, found, decision)  # first action seen by this process: one read
    with guard.store.transaction() as tx:
        tx.execute("INSERT INTO guard_seen(agent, target, first_at) VALUES ('kiro', 'sandbox', 'x') "
                   "ON CONFLICT (agent, target) DO NOTHING")
    guard._seen.add(("kiro", "sandbox"))
    with_guards = Gateway(store, guarded_policy, audit, Gate(store, guarded_policy, audit), guard=guard)
    without = Gateway(store, plain_policy, audit, Gate(store, plain_policy, audit))
    review: list[float] = []
    baseline: list[float] = []
    guarded: list[float] = []
    plain: list[float] = []
    rounds = 20
    for _ in range(rounds):  # interleaved: the machine's load hits both sides alike
        baseline += _timed(lambda: decide(guarded_policy, "kiro", action, found), n // rounds)
        review += _timed(lambda: (decide(guarded_policy, "kiro", action, found),
                                  guard.review("kiro", action, found, decision)), n // rounds)
        for _ in range(n // (rounds * 4)):  # pairs, so a load spike hits both sides
            plain += _timed(lambda: without.propose("kiro", action, mode=Mode.advisory), 1)
            guarded += _timed(lambda: with_guards.propose("kiro", action, mode=Mode.advisory), 1)
    added = statistics.median(review) - statistics.median(baseline)
    print(f"{name:10s} decide alone            {_us(baseline)}")
    print(f"{name:10s} decide + Guard.review   {_us(review)}   added p50 {added * 1e6:6.1f} µs")
    entry = {"action_id": "act_bench", "agent": "kiro", "action": action.model_dump(mode="json"),
             "classification": {"risk": "destructive"}, "decision": {"decision": "allow", "rules": []}}
    assert guard.counting is not None
    hook: list[float] = []
    with store.transaction() as tx:  # the hook's statements alone, inside one batch (commit not counted)
        hook = _timed(lambda: guard.counting.on_batch(tx, [("action.proposed", entry)]), 200)  # type: ignore[union-attr]
    print(f"{name:10s} counters in the batch   {_us(hook)}   per destructive proposal entry (no commit)")
    added = statistics.median(guarded) - statistics.median(plain)
    print(f"{name:10s} propose without guards  {_us(plain)}")
    print(f"{name:10s} propose with guards     {_us(guarded)}   added p50 {added * 1e6:6.1f} µs")
    guard.close()
    audit.close()


def propagation(freezes: int) -> None:
    dbname = f"interlock_bench_guards_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"'.encode())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            policy = Path(tmp) / "policy.yaml"
            policy.write_text(POLICY + "guards: {thaw_by: [sre]}\n")
            url = f"{PG}/{dbname}"
            with live_server(policy, url, Path(tmp)) as one, live_server(policy, url, Path(tmp)) as two:
                agent = two.client(two.token("agent", "kiro"))
                human = one.client(one.token("human", "alice"))
                body = {"kind": "shell", "environment": "sandbox", "payload": {"command": "ls"}, "mode": "advisory"}
                samples: list[float] = []
                for _ in range(freezes):
                    made = human.post("/v1/freezes", json={"environment": "sandbox", "reason": "bench"})
                    start = time.perf_counter()
                    assert made.status_code == 201, made.text
                    while agent.post("/v1/actions", json=body).json()["decision"] != "deny":
                        pass
                    samples.append(time.perf_counter() - start)
                    human.delete(f"/v1/freezes/{made.json()['id']}")
                    while agent.post("/v1/actions", json=body).json()["decision"] == "deny":
                        pass
                one_proposal = _timed(lambda: agent.post("/v1/actions", json=body), 50)
        ordered = sorted(samples)
        print(f"postgresql freeze 2xx on one → first denial on the other: p50 {statistics.median(ordered) * 1e3:.1f} ms"
              f"  p99 {ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1e3:.1f} ms  max {ordered[-1] * 1e3:.1f} ms"
              f"  (n={len(ordered)}; one proposal round trip p50 {statistics.median(one_proposal) * 1e3:.1f} ms)")
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'.encode())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--freezes", type=int, default=40)
    args = parser.parse_args(argv or [])
    print("(the machine is shared with other engineers' test runs: compare rows of one run, not across runs)")
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/bench.db")
        store.migrate()
        per_decision("sqlite", store, tmp, args.n)
        store.close()
    dbname = f"interlock_bench_guards_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"'.encode())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(f"{PG}/{dbname}")
            store.migrate()
            per_decision("postgresql", store, tmp, args.n)
            store.close()
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'.encode())
    propagation(args.freezes)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
