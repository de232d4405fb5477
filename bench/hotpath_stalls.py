"""When the hot path stalls: one `interlock serve` (this tree, or INTERLOCK_BENCH_PEER_SRC's), one wrk run of
the fixed mix (INTERLOCK_BENCH_MIXES=varied or unique: that mix), then every request the server's log says
took over 100 ms, with its time, and the seconds since the run started. The p99 of `bench_hotpath` says how
often; this says when (docs/benchmarks.md, "The gate on the hot path": a stall of all requests in flight
about 60 s after a server starts, the first audit checkpoint's MAC checks; fixed since).

    python -m bench.hotpath_stalls [SECONDS=75]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

if len(sys.argv) > 1:
    os.environ["INTERLOCK_BENCH_SECONDS"] = sys.argv[1]
else:
    os.environ.setdefault("INTERLOCK_BENCH_SECONDS", "75")

# After the environment: bench_hotpath reads INTERLOCK_BENCH_SECONDS when imported.
from bench import bench_hotpath
from interlock.testing import live_server

SLOW_MS = 100.0


def main() -> None:
    peer = os.environ.get("INTERLOCK_BENCH_PEER_SRC")
    with tempfile.TemporaryDirectory(prefix="interlock-stalls-") as scratch:
        work = Path(scratch)
        env = {"PYTHONPATH": peer} if peer else None
        with live_server(bench_hotpath.POLICY, f"sqlite:///{work / 'i.db'}", work, env=env) as server:
            token = server.token("agent", "kiro")
            started = time.time()
            mix = {"fixed": lambda: bench_hotpath.FIXED, "varied": bench_hotpath.varied_mix,
                   "unique": lambda: bench_hotpath.varied_mix(unique=bench_hotpath.UNIQUE_VARIANTS)}[
                os.environ.get("INTERLOCK_BENCH_MIXES", "fixed").split(",")[0]]()
            row = bench_hotpath._wrk(f"{server.url}/v1/actions", mix, token, work)
            slow: list[tuple[float, float]] = []
            for line in server.logs().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("event") == "request" and entry.get("ms", 0) > SLOW_MS:
                    at = datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()
                    slow.append((at - started, float(entry["ms"])))
    print(f"{peer or 'this tree'}: {row['rps']:.0f} req/s, p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms; "
          f"{len(slow)} requests over {SLOW_MS:.0f} ms")
    for second in sorted({round(at) for at, _ in slow}):
        these = [ms for at, ms in slow if round(at) == second]
        print(f"  at {second:>4} s of the run: {len(these)} requests, up to {max(these):.0f} ms")


if __name__ == "__main__":
    main()
