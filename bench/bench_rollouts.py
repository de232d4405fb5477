"""Rollout runner overhead: a 100-target rollout with trivial actions and checks, on SQLite and PostgreSQL.

The actions go through the real Gateway (decide, consume the target's grant, audit) with a stand-in
executor that succeeds at once, and the checks are an instant `Successful`: what is left when the time
inside `Gateway.propose` and inside the checks is taken away is the runner's own work (its durable
state writes, its audit entries, its bookkeeping). Goal (issue 16): ≤ 5 ms per target.

`maxParallel: 10` is measured too, as the whole rollout's wall time only: a wave's actions then run in
10 threads (their target states riding in whatever audit batches they share), so the time inside the
actions overlaps and cannot be subtracted.

Steps: setTargets 1, analysis, percent 10, analysis, percent 50, analysis, percent 100, analysis
(8 steps, 4 waves). The approval that issues the 200 grants (100 targets × forward and rollback) is
timed apart. The baseline is the same 100 actions proposed one by one with their own grants (what an
agent does without a rollout); rollouts and baseline alternate in one run so the loaded machine hits
both alike.

The runner's statements and transactions per target (outside the actions, on the runner's thread)
are counted too: on PostgreSQL each statement is a round trip unless it goes out in pipeline mode
with the next one (`Transaction.pipelined`: the runner's row, audit and event writes), and on a loaded
machine the count is steadier than the time.

The target states that ride in the Gateway's own batches (`gateway.riding`: `started` with
`execution.started`, `changed` with `execution.finished`) are the runner's work done inside
`Gateway.propose`: the time of the riders and of the batch hook that writes the row (`_ride_batch`,
on the audit writer's thread) is added back to the runner's overhead, never hidden in the actions'.
Durable commits per target (every write transaction and audit batch, any thread) are set against a
proposal alone's in the baseline: the difference is what the runner adds.

    .venv/bin/python -m bench.bench_rollouts [--targets 100] [--rounds 3]

`--replicas N [--server-src TREE/src]` measures something else: how soon a rollout started on one
replica takes its first step when the runner's lease is held by another (store events vs the poll).

    .venv/bin/python -m bench.bench_rollouts --replicas 20
"""

from __future__ import annotations

import argparse
import queue
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg

from interlock.audit import AuditLog
from interlock.gate.service import Gate
from interlock.gateway import Gateway
from interlock.identity import Principal
from interlock.model import Action
from interlock.policy import Policy, load_policy_text
from interlock.rollout.checks import Measurement, Phase
from interlock.rollout.model import Check
from interlock.rollout.service import RolloutPhase, Rollouts
from interlock.store import Store, Transaction, open_store

PG = "postgresql://postgres@127.0.0.1:5432"
BOB = Principal(kind="human", name="bob", token_id="tok_bob")


def policy(n: int) -> Policy:
    targets = "\n".join(f"  web-{i}: {{environment: production, kind: http, url: 'http://127.0.0.1:9', "
                        "http_methods: {POST: write}, labels: {tier: web}}" for i in range(n))
    return load_policy_text(f"""
version: 1
humans: {{alice: {{groups: [sre]}}, bob: {{groups: [sre]}}}}
agents: {{deployer: {{owner: alice, roles: [deployer]}}}}
environments: {{production: {{protected: true}}}}
targets:
{targets}
groups: {{fleet: {{selector: {{tier: web}}}}}}
roles: {{deployer: {{production: {{autonomous: read, approve: {{write: 1}}}}}}}}
""")


DOC = {
    "kind": "http", "group": "fleet", "rationale": {"intent": "bench"},
    "payload": {"method": "POST", "url": "{target.url}/deploy", "body": {"version": "v2"}},
    "rollback": {"payload": {"method": "POST", "url": "{target.url}/deploy", "body": {"version": "v1"}}},
    "steps": [step for pct in (None, 10, 50, 100) for step in (
        {"setTargets": 1} if pct is None else {"percent": pct},
        {"analysis": {"checks": [{"name": "ok", "http": {"path": "/health"}, "successCondition": "status == 200"}]}})],
}


class Statements:
    """Counts the statements and transactions the calling thread runs while `counting` is set (the
    bench wraps the store's transaction class for this; the audit writer's own thread is not counted)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.statements = self.transactions = self.writes = 0

    def install(self, store: Store) -> None:
        with store.transaction(readonly=True) as tx:
            kind = type(tx)
        if getattr(kind, "_bench_counted", False):
            return
        # a PostgreSQL lock is a statement (pg_advisory_xact_lock); SQLite's is a no-op
        for name in ("execute", "executemany", "fetchone", "fetchall", "send",
                     *(("lock",) if store.dialect == "postgresql" else ())):
            if hasattr(kind, name):  # `send` is new: the bench also runs against older trees
                setattr(kind, name, self._wrap(getattr(kind, name)))
        kind._bench_counted = True  # type: ignore[attr-defined]
        original = type(store).transaction

        def transaction(this: Store, *, readonly: bool = False) -> Any:
            if getattr(self.local, "on", False):
                self.transactions += 1
            if not readonly:
                self.writes += 1  # any thread's: the audit writer's batches, the gate's, the runner's
            return original(this, readonly=readonly)

        type(store).transaction = transaction  # type: ignore[method-assign,assignment]

    def _wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def counted(tx: Transaction, *args: Any, **kwargs: Any) -> Any:
            inside = getattr(self.local, "inside", False)  # `send` may run `execute`: one statement
            if getattr(self.local, "on", False) and not inside:
                self.statements += 1
            self.local.inside = True
            try:
                return fn(tx, *args, **kwargs)
            finally:
                self.local.inside = inside
        return counted

    def counting(self, on: bool) -> None:
        self.local.on = on


COUNT = Statements()


class Timed:
    """Wall time spent inside a callable (the action, the checks), summed, and the calling thread's CPU
    time in it (`cpu`)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.seconds, self.calls, self.cpu = fn, 0.0, 0, 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        cpu = time.thread_time()
        was = getattr(COUNT.local, "on", False)
        COUNT.counting(False)  # what the action itself runs is not the runner's
        try:
            return self.fn(*args, **kwargs)
        finally:
            COUNT.counting(was)
            self.seconds += time.perf_counter() - start
            self.cpu += time.thread_time() - cpu
            self.calls += 1


def trivial_executor(action: Action, target: Any, *, timeout: float | None = None) -> dict[str, Any]:
    return {"status": "succeeded", "http_status": 200, "duration_ms": 0.0}


def trivial_check(check: Check, target_name: str, target: Any) -> Measurement:
    return Measurement(check.name, target_name, Phase.successful, "instant", None)


@contextmanager
def stores() -> Iterator[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        name = f"interlock_bench_rollouts_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        try:
            yield f"sqlite:///{tmp}/bench.db", f"{PG}/{name}"
        finally:
            with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def assemble(store: Store, pol: Policy, keys: Path) -> tuple[AuditLog, Gateway, Timed]:
    audit = AuditLog(store, key_dir=keys)
    gate = Gate(store, pol, audit)
    gateway = Gateway(store, pol, audit, gate, executor=trivial_executor, check_credentials=False)
    propose = Timed(gateway.propose)
    gateway.propose = propose  # type: ignore[method-assign]
    return audit, gateway, propose


def time_rides(rollouts: Rollouts, audit: AuditLog) -> Timed:
    """The runner's work inside `Gateway.propose`: its riders (runner thread) and its batch hook (the audit
    writer's thread) timed into one sum. Nothing on a tree without rides."""
    rides = Timed(lambda fn, *args: fn(*args))
    hook = getattr(rollouts, "_ride_batch", None)
    if hook is None:
        return rides
    audit.hooks = tuple(partial(rides, h) if h == hook else h for h in audit.hooks)
    make_rider = rollouts._rider

    def rider(*args: Any) -> Any:
        return partial(rides, make_rider(*args))

    rollouts._rider = rider  # type: ignore[method-assign,assignment]
    return rides


def one_rollout(store: Store, pol: Policy, keys: Path, n: int, parallel: int = 1) -> dict[str, float]:
    audit, gateway, propose = assemble(store, pol, keys)
    checks = Timed(trivial_check)
    rollouts = Rollouts(store, pol, audit, gateway, measure=checks, check_prometheus=False)
    rides = time_rides(rollouts, audit)
    try:
        rollout = rollouts.submit("deployer", {**DOC, "maxParallel": parallel})
        start = time.perf_counter()
        rollouts.approve(rollout.id, BOB)
        approve_s = time.perf_counter() - start
        statements, transactions, writes = COUNT.statements, COUNT.transactions, COUNT.writes
        COUNT.counting(True)
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            rollouts.tick(rollout.id)
        finally:
            total, cpu = time.perf_counter() - start, time.thread_time() - cpu
            COUNT.counting(False)
        statements, transactions = COUNT.statements - statements, COUNT.transactions - transactions
        writes = COUNT.writes - writes
        assert rollouts.get(rollout.id).phase is RolloutPhase.succeeded, rollouts.get(rollout.id).state["reason"]
    finally:
        audit.close()
    overhead = total - propose.seconds - checks.seconds + rides.seconds
    # the runner's own CPU: its thread's outside the actions and checks, plus the rides' (its riders, inside
    # the actions, and its batch hook, on the audit writer's thread); PostgreSQL's own work is not in it
    own_cpu = cpu - propose.cpu - checks.cpu + rides.cpu
    return {"total_ms": total * 1000, "action_ms": (propose.seconds - rides.seconds) * 1000,
            "check_ms": checks.seconds * 1000, "rides_ms": rides.seconds * 1000,
            "cpu_per_target_ms": own_cpu * 1000 / n, "commits_per_target": writes / n,
            "overhead_per_target_ms": overhead * 1000 / n, "overhead_per_step_ms": overhead * 1000 / len(DOC["steps"]),
            "approve_ms": approve_s * 1000, "action_per_target_ms": (propose.seconds - rides.seconds) * 1000 / n,
            "statements_per_target": statements / n, "transactions_per_target": transactions / n}


def baseline(store: Store, pol: Policy, keys: Path, n: int) -> dict[str, float]:
    """The same n actions proposed one by one, each with a grant already issued (as if approved)."""
    audit, gateway, _propose = assemble(store, pol, keys)
    rollouts = Rollouts(store, pol, audit, gateway, check_prometheus=False)
    try:
        rollout = rollouts.submit("deployer", {**DOC, "steps": [{"percent": 100}]})
        rollouts.approve(rollout.id, BOB)  # issues the grants; the loop below uses them like a rollout would
        plan = rollouts.plan_of(rollouts.get(rollout.id))
        writes = COUNT.writes
        start = time.perf_counter()
        for target in plan.members:
            assert gateway.propose("deployer", plan.forward(target, pol.doc)).state.value == "succeeded"
        total = time.perf_counter() - start
        writes = COUNT.writes - writes
    finally:
        audit.close()
    return {"per_action_ms": total * 1000 / n, "commits_per_action": writes / n}


class Deploys:
    """A local HTTP target that notes when each POST arrives (time.monotonic: one clock for the host)."""

    def __init__(self) -> None:
        arrived = self.arrived = queue.SimpleQueue[float]()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived.put(time.monotonic())
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def replicas_latency(src: str, n: int) -> list[float]:
    """Start→first step across replicas: two `interlock serve` processes (code from `src`) on one
    PostgreSQL database; A holds the runner's lease; n one-target rollouts (no approval needed) are
    started one after another on B. Each: ms from just before B's POST /v1/rollouts to the target's POST."""
    from interlock.testing import eventually, live_server

    deploys = Deploys()
    with tempfile.TemporaryDirectory() as tmp, stores() as (_, pg_url), ExitStack() as stack:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(f"""
version: 1
humans: {{bob: {{groups: [sre]}}}}
agents: {{deployer: {{owner: bob, roles: [deployer]}}}}
environments: {{staging: {{}}}}
targets:
  web-0: {{environment: staging, kind: http, url: '{deploys.url}', http_methods: {{POST: write}}}}
groups: {{fleet: [web-0]}}
roles: {{deployer: {{staging: {{autonomous: write}}}}}}
""")
        env = {"PYTHONPATH": src}
        a = stack.enter_context(live_server(policy, pg_url, Path(tmp), env=env))

        def holder() -> str | None:
            with open_store(pg_url) as store, store.transaction(readonly=True) as tx:
                row = tx.fetchone("SELECT holder FROM leases WHERE job = 'rollout-runner'")
            return str(row["holder"]) if row else None

        assert eventually(holder, what="A to hold the runner's lease").split(":")[1] == str(a.process.pid)
        b = stack.enter_context(live_server(policy, pg_url, Path(tmp), env=env))
        agent = b.token("agent", "deployer")
        doc = {**DOC, "group": "fleet", "steps": [{"percent": 100}]}
        found: list[float] = []
        with b.client(agent) as http:
            for _ in range(n):
                time.sleep(0.2)  # not in step with the poll of the old runner
                start = time.monotonic()
                answer = http.post("/v1/rollouts", json=doc)
                assert answer.status_code == 201, answer.text
                found.append((deploys.arrived.get(timeout=30) - start) * 1000)
                rollout = answer.json()["id"]
                eventually(lambda: http.get(f"/v1/rollouts/{rollout}").json()["phase"] == "succeeded",  # noqa: B023
                           what="the rollout to finish")
        assert (holder() or "").split(":")[1:2] == [str(a.process.pid)], "A held the lease throughout"
    deploys.server.shutdown()
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=0,
                        help="instead: start→first step latency across two replicas, this many rollouts")
    parser.add_argument("--server-src", default="src", help="with --replicas: the servers' source tree")
    args, _ = parser.parse_known_args()
    if args.replicas:
        found = replicas_latency(str(Path(args.server_src).resolve()), args.replicas)
        print(f"start on replica B -> first step by replica A's runner ({args.server_src}, {len(found)} rollouts): "
              f"p50 {statistics.median(found):.1f} ms, min {min(found):.1f}, max {max(found):.1f}")
        return
    pol = policy(args.targets)
    started = datetime.now(UTC)
    print(f"{args.targets}-target rollout, {len(DOC['steps'])} steps, {args.rounds} rounds, trivial actions and "
          f"checks; medians (the machine is shared: other engineers' tests run alongside)")
    with stores() as (sqlite_url, pg_url):
        for label, url in (("sqlite", sqlite_url), ("postgresql", pg_url)):
            store = open_store(url)
            store.migrate()
            COUNT.install(store)
            keys = Path(tempfile.mkdtemp())
            runs, wide, bases = [], [], []
            try:
                for _ in range(args.rounds):  # rollouts and baseline interleaved
                    runs.append(one_rollout(store, pol, keys, args.targets))
                    wide.append(one_rollout(store, pol, keys, args.targets, parallel=10))
                    bases.append(baseline(store, pol, keys, args.targets))
            finally:
                store.close()

            def med(key: str, found: list[dict[str, float]] = runs) -> float:
                return statistics.median(r[key] for r in found)

            print(f"\n[{label}]")
            print(f"  whole rollout (tick to succeeded)      {med('total_ms'):9.1f} ms")
            print(f"  inside Gateway.propose (the actions)   {med('action_ms'):9.1f} ms "
                  f"({med('action_per_target_ms'):.2f} ms per target)")
            print(f"  inside the checks                      {med('check_ms'):9.1f} ms")
            print(f"  runner's rides inside the actions      {med('rides_ms'):9.1f} ms (counted as overhead)")
            print(f"  runner overhead per target             {med('overhead_per_target_ms'):9.2f} ms   (goal <= 5 ms)")
            print(f"  runner CPU per target (its threads)    {med('cpu_per_target_ms'):9.2f} ms")
            print(f"  runner overhead per step               {med('overhead_per_step_ms'):9.2f} ms")
            print(f"  runner statements / transactions       {med('statements_per_target'):9.2f} / "
                  f"{med('transactions_per_target'):.2f} per target (maxParallel 1)")
            print(f"  durable commits per target             {med('commits_per_target'):9.2f}   (a proposal alone: "
                  f"{med('commits_per_action', bases):.2f})")
            print(f"  maxParallel 10: whole rollout          {med('total_ms', wide):9.1f} ms (wall)")
            print(f"  approval issuing {2 * args.targets} grants            {med('approve_ms'):9.1f} ms")
            print(f"  baseline: one proposal alone           {med('per_action_ms', bases):9.2f} ms per action")
    print(f"\n(started {started:%Y-%m-%d %H:%M} UTC)")


if __name__ == "__main__":
    main()
