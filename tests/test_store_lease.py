"""store/lease.py on both stores: one holder per job, takeover after expiry (on the injected clock), release,
a race of threads, and real processes: one runs the job, and another takes over when it is killed."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from interlock.store import Store, open_store
from interlock.store.lease import Lease, run_leased_async


class FakeClock:
    """The injected clock (interlock.gate.clock): tests move time instead of sleeping for a ttl."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_one_holder_and_takeover_after_expiry(store: Store) -> None:
    clock = FakeClock()
    a = Lease(store, "sweep", ttl=10, holder="a", clock=clock)
    b = Lease(store, "sweep", ttl=10, holder="b", clock=clock)
    steps = [
        (a.acquire, True, "a takes the free lease"),
        (b.acquire, False, "b cannot while a holds it"),
        (lambda: clock.advance(9) or a.renew(), True, "a renews before expiry"),
        (lambda: clock.advance(9) or b.acquire(), False, "renewed: still a's 9 s later"),
        (lambda: clock.advance(2) or b.acquire(), True, "a stopped renewing: b takes over after ttl"),
        (a.renew, False, "a learns it lost the lease"),
    ]
    for action, expected, why in steps:
        assert action() is expected, why
    assert (a.held, b.held) == (False, True)
    info = Lease.current(store, "sweep")
    assert info is not None and (info.holder, info.fencing) == ("b", 2)  # fencing grew at the change of holder


def test_release_hands_over_at_once_and_fencing_keeps_growing(store: Store) -> None:
    clock = FakeClock()
    a = Lease(store, "checkpoint", ttl=60, holder="a", clock=clock)
    b = Lease(store, "checkpoint", ttl=60, holder="b", clock=clock)
    assert a.acquire() and a.fencing == 1
    assert a.acquire() and a.fencing == 1  # renewing keeps the token
    a.release()
    assert not a.held
    assert b.acquire() and b.fencing == 2
    b.release()
    assert a.acquire() and a.fencing == 3


def test_leases_are_per_job(store: Store) -> None:
    clock = FakeClock()
    assert Lease(store, "job-1", holder="a", clock=clock).acquire()
    assert Lease(store, "job-2", holder="b", clock=clock).acquire()
    assert Lease.current(store, "job-3") is None


@pytest.mark.parametrize(("job", "ttl"), [("", 5), ("x" * 201, 5), ("ok", 0), ("ok", -1)])
def test_bad_leases_are_refused(store: Store, job: str, ttl: float) -> None:
    with pytest.raises(ValueError):
        Lease(store, job, ttl=ttl)


def test_racing_threads_one_winner(store: Store) -> None:
    leases = [Lease(store, "race", ttl=60, holder=f"t{i}") for i in range(8)]
    start = threading.Barrier(len(leases))
    won: list[str] = []

    def take(lease: Lease) -> None:
        start.wait()
        if lease.acquire():
            won.append(lease.holder)

    threads = [threading.Thread(target=take, args=(lease,)) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1


def test_run_leased_async_runs_only_while_held(store: Store) -> None:
    clock = FakeClock()
    assert Lease(store, "async-job", ttl=3600, holder="someone-else", clock=clock).acquire()
    ran: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()

        async def step() -> None:
            ran.append(1)

        task = asyncio.create_task(run_leased_async(store, "async-job", step, every=0.01, stop=stop, clock=clock))
        await asyncio.sleep(0.1)
        assert ran == []  # someone else holds it
        clock.advance(3601)  # … and stopped renewing
        deadline = time.monotonic() + 10
        while not ran:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        stop.set()
        await task

    asyncio.run(main())
    info = Lease.current(store, "async-job")
    assert info is not None and info.expires_at.year == 1970  # released on stop


_WORKER = textwrap.dedent("""
    import os, sys, threading
    from interlock.store import open_store
    from interlock.store.lease import run_leased
    store = open_store(sys.argv[1])
    log = sys.argv[2]

    def step():
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\\n")

    print("started", flush=True)
    run_leased(store, "singleton", step, every=0.05, ttl=1.0, stop=threading.Event())
""")


def _runs(log: Path) -> list[int]:
    return [int(x) for x in log.read_text().split()] if log.exists() else []


def test_one_process_runs_the_job_and_another_takes_over_when_it_is_killed(store_url: str, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, store_url, str(log)], stdout=subprocess.PIPE)
               for _ in range(2)]
    try:
        deadline = time.monotonic() + 20
        while len(_runs(log)) < 10:
            assert time.monotonic() < deadline, "nobody ran the job"
            time.sleep(0.05)
        holders = set(_runs(log))
        assert len(holders) == 1, f"two processes ran the job at once: {holders}"
        holder = holders.pop()
        victim = next(w for w in workers if w.pid == holder)
        victim.send_signal(signal.SIGKILL)  # dies without releasing: the lease must expire
        victim.wait()
        killed_at = len(_runs(log))
        while not set(_runs(log)[killed_at:]) - {holder}:
            assert time.monotonic() < deadline, "nobody took over after the holder died"
            time.sleep(0.05)
        survivors = set(_runs(log)[killed_at:]) - {holder}
        assert survivors == {next(w.pid for w in workers if w is not victim)}
        # Lease row check from outside: the survivor holds it under a new fencing token.
        with open_store(store_url) as store:
            info = Lease.current(store, "singleton")
        assert info is not None and info.fencing == 2 and info.holder.split(":")[1] == str(survivors.pop())
    finally:
        for w in workers:
            w.kill()
            w.wait()
