"""Two Interlock servers, this tree's and another source tree's, measured in alternating wrk runs of the hot
path's mix (the order flips every pair): the server's CPU per proposal (whole process, and its event-loop
thread) from /proc. On a machine others load, a pair's ratio moves far less than req/s does.

    PYTHONPATH=$PWD/src python -m bench.hotpath_pairs [SECONDS=5] [PAIRS=8] PEER_SRC
(PEER_SRC e.g. from `git archive main src | tar -x -C /tmp/peer`, then /tmp/peer/src.) The fixed mix by default;
INTERLOCK_BENCH_MIX=varied sends bench_hotpath's varied mix (300 distinct proposals).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

from bench import bench_hotpath as hot
from interlock.testing import live_server


def _thread_cpu(pid: int) -> float:
    """CPU seconds of the process's main thread (the event loop: uvicorn runs it there)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(seconds: int, pairs: int, peer: str) -> None:
    hot.DURATION_S = seconds
    mix = hot.varied_mix() if os.environ.get("INTERLOCK_BENCH_MIX") == "varied" else hot.FIXED
    with tempfile.TemporaryDirectory(prefix="interlock-pairs-") as scratch:
        work = Path(scratch)
        (work / "peer").mkdir()
        with live_server(hot.POLICY, f"sqlite:///{work / 'i.db'}", work) as new, \
                live_server(hot.POLICY, f"sqlite:///{work / 'peer' / 'i.db'}", work / "peer",
                            env={"PYTHONPATH": peer}) as old:
            servers = {"this": new, "peer": old}
            tokens = {name: server.token("agent", "kiro") for name, server in servers.items()}
            for name, server in servers.items():
                for body in mix:
                    httpx.post(f"{server.url}/v1/actions", json=body,
                               headers={"Authorization": f"Bearer {tokens[name]}"}).raise_for_status()
            rows: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
            print(f"{pairs} pairs of {seconds} s, {len(mix)} bodies in the mix, "
                  f"load average {os.getloadavg()[0]:.1f} at the start")
            for i in range(pairs):
                for name in (("this", "peer") if i % 2 == 0 else ("peer", "this")):
                    pid = servers[name].process.pid
                    loop_before = _thread_cpu(pid)
                    row = hot._measured(pid, f"{servers[name].url}/v1/actions", mix, tokens[name], work)
                    row["loop_us"] = (_thread_cpu(pid) - loop_before) / max(1.0, row["rps"] * seconds) * 1e6
                    rows[name].append(row)
                    print(f"{i:>3} {name:<5} {row['rps']:>6.0f} req/s  p99 {row['p99_ms']:>6.1f} ms  "
                          f"CPU/proposal {row['cpu_us']:>5.0f} µs  loop thread {row['loop_us']:>5.0f} µs", flush=True)
            print(f"load average {os.getloadavg()[0]:.1f} at the end")
            for name, got in rows.items():
                print(f"{name:<5} median CPU {statistics.median(r['cpu_us'] for r in got):.0f} µs, loop thread "
                      f"{statistics.median(r['loop_us'] for r in got):.0f} µs, "
                      f"{statistics.median(r['rps'] for r in got):.0f} req/s")
            ratios = [a["cpu_us"] / b["cpu_us"] for a, b in zip(rows["this"], rows["peer"], strict=True)]
            print("this / peer CPU per pair:", " ".join(f"{r:.2f}" for r in ratios),
                  f"(median x{statistics.median(ratios):.2f})")


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    main(int(args[0]) if len(args) > 2 else 5, int(args[1]) if len(args) > 2 else 8, args[-1])
