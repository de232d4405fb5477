"""CPU per audit entry of the proposal's append path, in isolation (issue 18.5, hp-audit).

The entries are real `action.proposed` data, built once by `Gateway.decided` under the example policy, in
two mixes: the hot-path bench's (9 `ls` reads : 1 `kubectl scale` write, the same two actions over and over)
and a varied one (every entry a distinct command drawn from a realistic set of reads and writes, so nothing
repeats from one entry to the next but the policy's words). They are then appended to a bare AuditLog (no
batch hooks: those belong to the guards) with `append_async`, 32 in flight on one event loop, as the HTTP
route does. Figures, each process CPU (every thread) divided by the entries:

- append: the whole path, the loop's `_prepare` and await plus the writer thread's batches and commits;
- prepare: `_prepare` alone (the part the event loop pays), entries not written.

    python -m bench.audit_append_cpu [N] [--pg]     # compare trees: PYTHONPATH=/tmp/before/src vs src
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from interlock.audit import AuditLog
from interlock.gateway import Mode
from interlock.model import Action
from interlock.server.app import create_app
from interlock.server.state import Settings
from interlock.store import open_store

ROOT = Path(__file__).resolve().parent.parent
AT_ONCE = 32
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

_READS = (
    "ls -la /srv/app/releases/{n}",
    "kubectl get pods -n team-{m}",
    "cat /var/log/app/worker-{n}.log",
    "kubectl logs deployment/api-{m} -n billing --tail={n}",
    "grep -rn timeout /etc/app/conf.d/site-{n}.yaml",
    "git log --oneline -n {n}",
    "df -h /data/volume-{n}",
    "kubectl describe pod web-{n} -n shop",
    "tail -n 200 /var/log/nginx/access-{n}.log",
)
_WRITES = (
    "kubectl scale deployment/api-{m} --replicas={r} -n billing",
    "kubectl rollout restart deployment/worker-{m} -n shop",
)


def bench_actions() -> list[Action]:
    """The hot-path bench's mix: the same read nine times, then the same write."""
    read = Action(kind="shell", environment="production", payload={"command": "ls -la /srv/app"},
                  rationale={"intent": "look around"})
    write = Action(kind="shell", environment="production",
                   payload={"command": "kubectl scale deployment/api --replicas=5 -n billing"},
                   rationale={"intent": "more capacity"})
    return [read] * 9 + [write]


def varied_actions(count: int) -> list[Action]:
    """`count` distinct actions, nine reads to one write, each command and intent its own."""
    actions = []
    for n in range(count):
        values = {"n": 1000 + n, "m": n % 97, "r": n % 9 + 1}
        template = _WRITES[n // 10 % len(_WRITES)] if n % 10 == 9 else _READS[n % len(_READS)]
        actions.append(Action(kind="shell", environment="production", payload={"command": template.format(**values)},
                              rationale={"intent": f"ticket OPS-{values['n']}: check the service"}))
    return actions


def entries(settings: Settings, actions: list[Action]) -> list[dict[str, Any]]:
    gateway = create_app(settings).state.server.gateway
    return [gateway.decided("kiro", action, mode=Mode.advisory).entry for action in actions]


def append_cpu(log: AuditLog, data: list[dict[str, Any]]) -> tuple[float, float, float, float]:
    """µs of process CPU per entry appended with `append_async`, 32 in flight: (all, of which in the
    kernel, entries per batch, context switches per entry: the threads' hand-offs)."""

    async def main() -> tuple[float, float, float, float]:
        for item in data[:50]:
            await log.append_async("action.proposed", item)
        todo = list(range(len(data)))

        async def worker() -> None:
            while todo:
                await log.append_async("action.proposed", data[todo.pop()])

        batches, start, switched = log.batches, os.times(), _switches()
        await asyncio.gather(*(worker() for _ in range(AT_ONCE)))
        end = os.times()
        cpu = (end.user - start.user) + (end.system - start.system)
        return (cpu / len(data) * 1e6, (end.system - start.system) / len(data) * 1e6,
                len(data) / max(1, log.batches - batches), (_switches() - switched) / len(data))

    return asyncio.run(main())


def _switches() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process
    return usage.ru_nvcsw + usage.ru_nivcsw


def prepare_cpu(log: AuditLog, data: list[dict[str, Any]]) -> float:
    """µs of CPU per `_prepare` (what the event loop pays before the writer takes over)."""
    start = time.thread_time()
    for item in data:
        log._prepare("action.proposed", item)
    return (time.thread_time() - start) / len(data) * 1e6


def main() -> None:
    logging.getLogger("interlock").disabled = True
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 4000
    import interlock

    print(f"audit append CPU per entry ({interlock.__file__}), {n} entries, {AT_ONCE} in flight")
    with tempfile.TemporaryDirectory(prefix="interlock-audit-cpu-") as scratch:
        work = Path(scratch)
        settings = Settings(policy=ROOT / "examples" / "policy.yaml", db=f"sqlite:///{work / 'gw.db'}",
                            key_dir=work / "keys", allow_missing_secrets=True)
        # Each mix twice over: `prepare` is timed on the second half, so it meets none of the strings and
        # values the append run left in the log's memories (a varied mix never repeats an entry).
        mixes = {"bench mix": entries(settings, (bench_actions() * (n // 5 + 1))[:2 * n]),
                 "varied mix": entries(settings, varied_actions(2 * n))}
        stores = [("SQLite", f"sqlite:///{work / 'audit.db'}")]
        pg_name = None
        if "--pg" in sys.argv:
            import psycopg

            pg_name = f"bench_audit_cpu_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{pg_name}"'.encode())
            stores.append(("PostgreSQL", f"postgresql://postgres@127.0.0.1:5432/{pg_name}"))
        try:
            for label, url in stores:
                store = open_store(url)
                store.migrate()
                with AuditLog(store, key_dir=work / "audit-keys") as log:
                    for mix, data in mixes.items():
                        appended = append_cpu(log, data[:n])
                        prepared = prepare_cpu(log, data[n:])
                        print(f"  {label:<10} {mix:<11} append {appended[0]:6.1f} µs CPU/entry "
                              f"({appended[1]:5.1f} system, {appended[2]:4.1f} per batch, "
                              f"{appended[3]:4.2f} context switches)   "
                              f"prepare (loop side) {prepared:6.1f} µs", flush=True)
                store.close()
        finally:
            if pg_name is not None:
                import psycopg

                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'.encode())


if __name__ == "__main__":
    main()
