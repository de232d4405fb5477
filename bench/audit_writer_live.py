"""The audit writer thread's CPU per request on a live server under wrk (issue 18.5, walframes).

Starts `interlock serve` (SQLite, example policy) on the tree on PYTHONPATH, finds the audit writer's thread
as the one seen in `fdatasync` while a few clients post (it alone syncs the store), then reads that thread's
user and system time (/proc/PID/task/TID/stat) before and after one wrk run of the hot-path bench's fixed mix,
and divides by the requests served. Per-request figures move with the batch size (load), so compare trees
interleaved, each run in its own process (the server migrates its store with its own tree):

    for src in /tmp/before src /tmp/before src; do PYTHONPATH=$src:. .venv/bin/python -m bench.audit_writer_live; done
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import httpx

import interlock
from bench.bench_hotpath import DURATION_S, FIXED, POLICY, _cpu_seconds, _wrk
from interlock.testing import live_server

#: fdatasync's number on x86_64 and aarch64, as /proc/PID/task/TID/syscall shows it.
FDATASYNC = {"x86_64": "75", "aarch64": "83"}[os.uname().machine]


def thread_cpu(pid: int, tid: str) -> tuple[float, float]:
    """(user, system) CPU seconds of one thread."""
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def find_writer(pid: int, url: str, token: str, seconds: float = 5.0) -> str:
    """The thread id most often caught in fdatasync while 8 clients post reads."""
    seen: dict[str, int] = {}
    stop = time.monotonic() + seconds

    def post() -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
            while time.monotonic() < stop:
                client.post("/v1/actions", json=FIXED[0])

    clients = [threading.Thread(target=post) for _ in range(8)]
    for client in clients:
        client.start()
    while time.monotonic() < stop:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                if Path(f"/proc/{pid}/task/{tid}/syscall").read_text().split()[0] == FDATASYNC:
                    seen[tid] = seen.get(tid, 0) + 1
            except (OSError, IndexError):
                continue
        time.sleep(0.001)
    for client in clients:
        client.join()
    if not seen:
        raise SystemExit("no thread was seen in fdatasync: is the store SQLite with synchronous=FULL?")
    return max(seen, key=lambda t: seen[t])


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="interlock-writer-live-") as scratch:
        work = Path(scratch)
        with live_server(POLICY, f"sqlite:///{work / 'i.db'}", work) as server:
            token = server.token("agent", "kiro")
            pid = server.process.pid
            tid = find_writer(pid, server.url, token)
            (user, system), process = thread_cpu(pid, tid), _cpu_seconds(pid)
            row = _wrk(f"{server.url}/v1/actions", FIXED, token, work)
            (user2, system2), process2 = thread_cpu(pid, tid), _cpu_seconds(pid)
            served = max(1.0, row["rps"] * DURATION_S)
            print(f"{interlock.__file__}: {row['rps']:.0f} req/s (fixed mix, {DURATION_S} s, non-2xx "
                  f"{row['non2xx']:.0f}); audit writer thread {(user2 - user) / served * 1e6:.1f} µs user + "
                  f"{(system2 - system) / served * 1e6:.1f} µs system per request; the whole server "
                  f"{(process2 - process) / served * 1e6:.0f} µs", flush=True)


if __name__ == "__main__":
    main()
