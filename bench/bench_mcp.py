"""Latency the MCP proxy adds per `tools/call`, against calling the same upstream directly, in one run.

The upstream is the real `@modelcontextprotocol/server-filesystem` from npm; the call is
`read_text_file` of a small file (an allowed read: proposal → decision → forward → report). Each
round calls direct, through the in-process proxy (`--policy`, SQLite) and through the remote proxy
(`--gateway`, a real `interlock serve` on SQLite), interleaved (each round starting at the next route)
so machine load, and each proxy's outcome report after its answer, hit all routes alike.
The last rows are the Gateway's own share as the in-process proxy pays it, timed alone: its gate's
`propose` (classify, decide, and the durable, fsync'd proposal with its `execution.started` before
anything may run) and the outcome report after the answer (in-process: held, then queued with the next
proposal's entries, so its cost shows in the proposal's row; its own row is the holding alone).

The proxies' CPU per call (user + system time of the proxy process alone, its upstream not counted)
is printed beside: on this shared 2-core machine it moves far less with load than wall time does.
`--baseline-src DIR` adds one more in-process proxy run from another checkout's `src` (e.g.
`git archive REV src | tar -x -C /tmp/base`), interleaved in the same run: a before/after comparison.

    .venv/bin/python -m bench.bench_mcp [--n 300] [--warmup 30] [--baseline-src /tmp/base/src]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

from interlock.audit import AuditLog
from interlock.identity import create_token
from interlock.integrations.mcp_gate import LocalGate
from interlock.integrations.mcp_npm import ensure_servers
from interlock.policy import load_policy
from interlock.store import open_store
from interlock.testing import live_server

REPO = Path(__file__).resolve().parent.parent
POLICY = """\
version: 1
humans: {alice: {groups: [sre]}, bob: {groups: [sre]}}
agents: {kiro: {owner: alice, roles: [developer]}}
environments: {workspace: {}}
roles: {developer: {workspace: {autonomous: read, approve: {write: 1, destructive: 1}}}}
"""
GOAL_MS = 2.0


@contextmanager
def _serve(policy: Path, db: str, tmp: Path) -> Iterator[str]:
    with live_server(policy, db, tmp) as server:
        yield server.url


def _agent_token(policy: Path, db: str, tmp: Path) -> str:
    store = open_store(db)
    try:
        store.migrate()
        with AuditLog(store, key_dir=tmp / "keys") as audit:
            return create_token(store, "agent", "kiro", None, audit, policy=load_policy(policy))[1]  # type: ignore[arg-type]
    finally:
        store.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu_seconds(marker: str) -> float | None:
    """User + system CPU of the process whose command line holds `marker` (a proxy's own --db or
    --gateway argument), or None if there is none."""
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if marker.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            continue
    return None


async def _measure(routes: dict[str, StdioServerParameters], path: str, n: int, warmup: int,
                   markers: dict[str, str]) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Each route's call times (ms), and each marked route's process CPU per measured call (ms)."""
    timings: dict[str, list[float]] = {name: [] for name in routes}
    cpu: dict[str, float] = {}
    async with AsyncExitStack() as stack:
        clients = [(name, await stack.enter_async_context(Client(params, cache=None)))
                   for name, params in routes.items()]
        for i in range(warmup + n):
            if i == warmup:
                cpu = {name: _cpu_seconds(marker) or 0.0 for name, marker in markers.items()}
            # Each round starts at the next route, so none always follows another: a proxy's outcome
            # report, written after its answer, lands on each route's next call alike.
            turn = i % len(clients)
            for name, client in clients[turn:] + clients[:turn]:
                started = time.perf_counter()
                result = await client.call_tool("read_text_file", {"path": path})
                took = (time.perf_counter() - started) * 1000
                if result.is_error:
                    raise RuntimeError(f"{name}: read_text_file failed: {result.content}")
                if i >= warmup:
                    timings[name].append(took)
        cpu = {name: ((_cpu_seconds(marker) or 0.0) - cpu[name]) * 1000 / n for name, marker in markers.items()}
    return timings, cpu


def _gate_alone(policy: Path, db: str, tmp: Path, path: str, n: int) -> tuple[list[float], list[float]]:
    """The Gateway's share of a call as the in-process proxy pays it: its gate's propose (decide, and the
    proposal with its `execution.started` and the previous call's held report, durable; in a worker thread)
    and the outcome report after the answer, each timed alone."""
    payload = {"server": "mcp-server-filesystem", "tool": "read_text_file", "arguments": {"path": path},
               "annotations": {"readOnlyHint": True}}

    async def run() -> tuple[list[float], list[float]]:
        gate = LocalGate(policy, "kiro", db=db, key_dir=tmp / "keys")
        proposals, reports = [], []
        try:
            await gate.open()
            for _ in range(n):
                started = time.perf_counter()
                proposal = await gate.propose("mcp", "workspace", payload, mode="advisory")
                proposals.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                await gate.report(str(proposal["id"]), "succeeded", duration_ms=1.0, output_excerpt="1 block")
                reports.append((time.perf_counter() - started) * 1000)
        finally:
            await gate.aclose()
        return proposals, reports

    return anyio.run(run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="measured calls per route")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="another checkout's src/: its in-process proxy is measured too, interleaved")
    args = parser.parse_args(argv if argv is not None else [])
    npm_bin = ensure_servers(REPO / ".interlock" / "npm")
    upstream = [str(npm_bin / "mcp-server-filesystem")]
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "data").mkdir()
        target = tmp / "data" / "notes.txt"
        target.write_text("hello from the workspace\n" * 10)
        policy = tmp / "policy.yaml"
        policy.write_text(POLICY)
        local_db, server_db = f"sqlite:///{tmp / 'local.db'}", f"sqlite:///{tmp / 'server.db'}"
        token = _agent_token(policy, server_db, tmp)
        proxy = [sys.executable, "-m", "interlock.cli", "mcp-proxy", "--agent", "kiro", "--env", "workspace"]
        # The SDK's client passes a server only PATH, HOME and a few more: without PYTHONPATH the proxies
        # would run whatever `interlock` the venv has installed, not this tree.
        here = {"PYTHONPATH": str(REPO / "src")}
        with _serve(policy, server_db, tmp) as url:
            routes = {
                "direct": StdioServerParameters(command=upstream[0], args=[str(tmp / "data")]),
                "proxy, in-process": StdioServerParameters(
                    command=proxy[0], args=[*proxy[1:], "--policy", str(policy), "--db", local_db, "--key-dir",
                                            str(tmp / "keys"), "--", *upstream, str(tmp / "data")], cwd=str(tmp),
                    env=here),
                "proxy, remote": StdioServerParameters(
                    command=proxy[0], args=[*proxy[1:], "--gateway", url, "--policy", str(policy), "--",
                                            *upstream, str(tmp / "data")],
                    cwd=str(tmp), env={"INTERLOCK_TOKEN": token, **here}),
            }
            markers = {"proxy, in-process": local_db, "proxy, remote": url}
            if args.baseline_src is not None:
                baseline_db = f"sqlite:///{tmp / 'baseline.db'}"
                routes["in-process, baseline"] = StdioServerParameters(
                    command=proxy[0], args=[*proxy[1:], "--policy", str(policy), "--db", baseline_db, "--key-dir",
                                            str(tmp / "keys"), "--", *upstream, str(tmp / "data")], cwd=str(tmp),
                    env={"PYTHONPATH": str(args.baseline_src.resolve())})
                markers["in-process, baseline"] = baseline_db
            timings, cpu = anyio.run(_measure, routes, str(target), args.n, args.warmup, markers)
        timings["gateway propose alone"], timings["outcome report alone"] = _gate_alone(
            policy, local_db, tmp, str(target), args.n)

    direct = statistics.median(timings["direct"])
    print(f"MCP proxy latency per tools/call (read_text_file, server-filesystem; n={args.n} per route, interleaved)")
    print(f"{'route':<24} {'p50 ms':>8} {'p99 ms':>8} {'added p50 ms':>13} {'proxy CPU ms/call':>18}")
    for route, values in timings.items():
        alone = route in ("direct", "gateway propose alone", "outcome report alone")
        added = "" if alone else f"{statistics.median(values) - direct:13.2f}"
        used = f"{cpu[route]:18.2f}" if route in cpu else ""
        print(f"{route:<24} {statistics.median(values):8.2f} {_percentile(values, 0.99):8.2f} {added:>13} {used:>18}")
    added_local = statistics.median(timings["proxy, in-process"]) - direct
    verdict = "meets" if added_local <= GOAL_MS else "misses"
    print(f"in-process proxy adds {added_local:.2f} ms at p50: {verdict} the {GOAL_MS:g} ms goal "
          f"(the durable audit entry alone is {statistics.median(timings['gateway propose alone']):.2f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
