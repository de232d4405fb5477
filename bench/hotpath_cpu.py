"""CPU per proposal of the hot path, without sockets or wrk (the profile behind docs/benchmarks.md, issue 18.5).

Four figures, each the process CPU time (every thread: request threads, the audit writer) divided by the
proposals served, with the bench's mixes (9 allowed reads : 1 approval-required write, advisory, guards on,
example policy, SQLite; `--mix fixed`: the same read and write repeated, the mix of every earlier figure;
`--mix varied`: 300 distinct proposals, bench_hotpath.varied_mix; `--mix unique`: 12,000 distinct
proposals, none repeated within any cache's reach; all three by default) and 32 at a time:

- gateway: `Gateway.propose` called from 32 threads in process (what the SDK, hooks and CLI use);
- gateway on a loop: `Gateway.propose_async` from 32 asyncio tasks (what the HTTP route uses since the
  hot path's third pass: decided on the event loop, the gate on a worker thread);
- app: the whole ASGI app (middleware, the plain route, the gateway) called directly by 32 asyncio tasks;
- HTTP side alone: the same app with the gateway's answers made beforehand (`app_cpu`'s gateway_beforehand).

CPU per request is what the ratio to the floor comes down to on a CPU-bound machine, and it moves less with
other engineers' load than req/s does. Compare two source trees in one run, interleaved:

    git archive <commit> src | tar -x -C /tmp/before
    for src in /tmp/before/src src; do PYTHONPATH=$src .venv/bin/python -m bench.hotpath_cpu; done

    python -m bench.hotpath_cpu [N=3000] [--mix fixed|varied|unique]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
import threading
import time
from pathlib import Path

import anyio
import orjson

from bench.bench_hotpath import FIXED, UNIQUE_VARIANTS, varied_mix
from interlock.gateway import Mode, Proposal
from interlock.identity import create_token
from interlock.model import Action
from interlock.server.app import create_app
from interlock.server.state import Settings

ROOT = Path(__file__).resolve().parent.parent
AT_ONCE = 32
Mix = list[dict[str, object]]


def gateway_cpu(settings: Settings, n: int, mix: Mix) -> float:
    """µs of CPU per `Gateway.propose`, 32 threads."""
    app = create_app(settings)
    gateway = app.state.server.gateway
    actions = [Action(**{k: v for k, v in body.items() if k != "mode"}) for body in mix]  # type: ignore[arg-type]
    for action in actions[:20]:
        gateway.propose("kiro", action, mode=Mode.advisory)
    each = n // AT_ONCE

    def run(first: int) -> None:  # each thread its own stretch of the mix (varied: not the same body at once)
        for i in range(first, first + each):
            gateway.propose("kiro", actions[i % len(actions)], mode=Mode.advisory)

    threads = [threading.Thread(target=run, args=(t * each,)) for t in range(AT_ONCE)]
    start = time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spent = time.process_time() - start
    app.state.server.close()  # its threads (audit writer, events) stop before the next figure's start
    return spent / (each * AT_ONCE) * 1e6


def gateway_loop_cpu(settings: Settings, n: int, mix: Mix) -> float:
    """µs of CPU per `Gateway.propose_async`, 32 tasks on one event loop."""
    app = create_app(settings)
    gateway = app.state.server.gateway
    actions = [Action(**{k: v for k, v in body.items() if k != "mode"}) for body in mix]  # type: ignore[arg-type]

    async def main() -> float:
        for action in actions[:20]:
            await gateway.propose_async("kiro", action, mode=Mode.advisory, offload=anyio.to_thread.run_sync)
        queue = list(range(n))

        async def worker() -> None:
            while queue:
                i = queue.pop()
                await gateway.propose_async("kiro", actions[i % len(actions)], mode=Mode.advisory,
                                            offload=anyio.to_thread.run_sync)

        start = time.process_time()
        await asyncio.gather(*(worker() for _ in range(AT_ONCE)))
        return (time.process_time() - start) / n * 1e6

    try:
        return asyncio.run(main())
    finally:
        app.state.server.close()  # its threads (audit writer, events) stop before the next figure's start


def app_cpu(settings: Settings, n: int, mix: Mix, gateway_beforehand: bool = False) -> float:
    """µs of CPU per `POST /v1/actions` through the whole ASGI app, 32 tasks. `gateway_beforehand`: each
    distinct proposal goes through the gateway once before the clock starts, and the app's calls of
    `Gateway.propose_async` are then answered with that proposal: what is left is the HTTP side alone
    (middleware, parsing, validation, metrics, the answer's bytes), with none of the gateway's CPU."""
    app = create_app(settings)
    server = app.state.server
    _, token = create_token(server.store, "agent", "kiro", None, server.audit, policy=server.policy)
    bodies = [json.dumps(b).encode() for b in mix]
    if gateway_beforehand:
        gateway = server.gateway
        made: dict[bytes, Proposal] = {}

        async def beforehand() -> None:
            for body in mix:
                action = Action(**{k: v for k, v in body.items() if k != "mode"})  # type: ignore[arg-type]
                made[orjson.dumps([action.kind, action.payload])] = await gateway.propose_async(
                    "kiro", action, mode=Mode.advisory, offload=anyio.to_thread.run_sync)

        async def answered(agent: str, action: Action, **_: object) -> Proposal:
            return made[orjson.dumps([action.kind, action.payload])]

        asyncio.run(beforehand())
        gateway.propose_async = answered  # type: ignore[method-assign]

    async def one(i: int) -> None:
        body = bodies[i % len(bodies)]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/actions", "raw_path": b"/v1/actions", "query_string": b"",
                 "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {},
                 "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode()),
                             (b"authorization", f"Bearer {token}".encode())]}
        sent = False
        status: list[int] = []

        async def receive() -> dict[str, object]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # no disconnect while the answer is written
            raise AssertionError("unreachable")

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))  # type: ignore[call-overload]

        await app(scope, receive, send)
        assert status == [200], status

    async def main() -> float:
        for i in range(20):
            await one(i)
        queue = list(range(n))

        async def worker() -> None:
            while queue:
                await one(queue.pop())

        start = time.process_time()
        await asyncio.gather(*(worker() for _ in range(AT_ONCE)))
        return (time.process_time() - start) / n * 1e6

    try:
        return asyncio.run(main())
    finally:
        app.state.server.close()  # its threads (audit writer, events) stop before the next figure's start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=3000, help="proposals per figure")
    parser.add_argument("--mix", choices=("fixed", "varied", "unique"), action="append",
                        help="the proposals sent (default: all three, fixed first)")
    args = parser.parse_args()
    logging.getLogger("interlock").disabled = True  # one log line per request would be measured too
    import interlock

    for mix_name in args.mix or ["fixed", "varied", "unique"]:
        mix = {"fixed": lambda: FIXED, "varied": varied_mix,
               "unique": lambda: varied_mix(unique=UNIQUE_VARIANTS)}[mix_name]()
        print(f"hot path CPU per proposal ({interlock.__file__}), {args.n} proposals, {AT_ONCE} at a time, SQLite, "
              f"{mix_name} mix ({len({json.dumps(b, sort_keys=True) for b in mix})} distinct proposals)")
        figures: list[float] = []
        for name, measure in (("gateway (in process)", gateway_cpu), ("gateway on a loop", gateway_loop_cpu),
                              ("app (ASGI, no sockets)", app_cpu)):
            with tempfile.TemporaryDirectory(prefix="interlock-hotpath-cpu-") as scratch:
                work = Path(scratch)
                settings = Settings(policy=ROOT / "examples" / "policy.yaml", db=f"sqlite:///{work / 'i.db'}",
                                    key_dir=work / "keys", allow_missing_secrets=True)
                figures.append(measure(settings, args.n, mix))
                print(f"  {name:<24} {figures[-1]:7.0f} µs CPU per proposal", flush=True)
        # What the HTTP side adds (middleware, route, metrics): the part issue 18.5 cuts. The route calls the
        # gateway on its loop, so that is the figure to take away. A difference of two noisy figures: the
        # next line measures the same part directly.
        print(f"  {'HTTP side (app - loop)':<24} {figures[2] - figures[1]:7.0f} µs CPU per proposal", flush=True)
        with tempfile.TemporaryDirectory(prefix="interlock-hotpath-cpu-") as scratch:
            work = Path(scratch)
            settings = Settings(policy=ROOT / "examples" / "policy.yaml", db=f"sqlite:///{work / 'i.db'}",
                                key_dir=work / "keys", allow_missing_secrets=True)
            alone = app_cpu(settings, args.n * 3, mix, gateway_beforehand=True)
        print(f"  {'HTTP side alone':<24} {alone:7.0f} µs CPU per proposal (the app, gateway answered beforehand)",
              flush=True)


if __name__ == "__main__":
    main()
