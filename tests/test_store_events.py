"""store/events.py on both stores: generations bump with the commit, subscribers wake in this process and in
another one, and a missed notification is caught by comparing generations."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import psycopg
import pytest

from interlock.store import Store, StoreError, events, open_store
from interlock.store.events import Channel, Event, Subscriber, channel_name, publish, read_generations, subscriber
from interlock.testing import eventually


def _publish(store: Store, channel: str = Channel.freezes, payload: dict[str, str] | None = None) -> int:
    with store.transaction() as tx:
        return publish(tx, channel, payload)


@pytest.mark.parametrize(
    ("name", "ok"),
    [("freezes", True), ("rollouts", True), ("a_b2", True), ("Freezes", False), ("", False), ("x y", False),
     ("1st", False), ("drop table;", False)],
)
def test_channel_names(name: str, ok: bool) -> None:
    if ok:
        assert channel_name(name) == name
    else:
        with pytest.raises(ValueError, match="lowercase word"):
            channel_name(name)


def test_generation_commits_with_the_change(store: Store) -> None:
    assert _publish(store) == 1
    assert _publish(store) == 2
    assert _publish(store, Channel.approvals) == 1
    with pytest.raises(RuntimeError), store.transaction() as tx:
        publish(tx, Channel.freezes, {"id": "frz_lost"})
        raise RuntimeError("rolled back")
    assert read_generations(store) == {"freezes": 2, "approvals": 1}


def test_payload_too_large_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="send ids"), store.transaction() as tx:
        publish(tx, Channel.freezes, {"blob": "x" * 5000})


def test_this_process_is_woken_right_after_commit(store: Store) -> None:
    sub = subscriber(store)
    seen: list[Event] = []
    stop = sub.subscribe(Channel.freezes, seen.append)
    generation = _publish(store, payload={"id": "frz_1"})
    # No poll, no notification round trip: the publishing process hears it before publish() returns.
    assert sub._generations[Channel.freezes] == generation
    # Delivered once. The listener's generation check on another thread may get there first, and it
    # carries no payload: subscribers must treat the payload as a hint (store/events.py).
    assert [(e.channel, e.generation) for e in seen] == [("freezes", generation)]
    assert seen[0].payload in ({"id": "frz_1"}, None)
    stop()
    _publish(store)
    assert len(seen) == 1


def test_wait_and_wait_async(store: Store) -> None:
    sub = subscriber(store)
    before = sub.generation(Channel.approvals)
    threading.Timer(0.05, _publish, (store, Channel.approvals)).start()
    assert sub.wait(Channel.approvals, before, timeout=10) == before + 1
    assert sub.wait(Channel.approvals, before + 1, timeout=0.01) == before + 1  # nothing new: times out

    async def waiter() -> int:
        task = asyncio.create_task(sub.wait_async(Channel.approvals, before + 1, timeout=10))
        await asyncio.sleep(0.01)
        await asyncio.to_thread(_publish, store, Channel.approvals)
        return await task

    assert asyncio.run(waiter()) == before + 2


_CHILD = textwrap.dedent("""
    import sys
    from interlock.store import open_store
    from interlock.store.events import subscriber
    store = open_store(sys.argv[1])
    sub = subscriber(store)
    start = sub.generation("freezes")
    print("ready", start, flush=True)
    got = sub.wait("freezes", start, timeout=30)
    print("woke", got, flush=True)
    store.close()
""")


def test_a_publish_in_one_process_wakes_a_waiter_in_another(store_url: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", _CHILD, store_url], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        ready = child.stdout.readline().split()
        assert ready[0] == "ready"
        with open_store(store_url) as store:
            generation = _publish(store)
        assert child.stdout.readline().split() == ["woke", str(generation)]
        assert child.wait(timeout=10) == 0
    finally:
        child.kill()
        child.wait()


def test_sqlite_sees_every_publish_at_once(tmp_path: object) -> None:
    """generation() stats the sidecar: two publishes within one tick of the file system clock still differ
    in size, so the second is seen by the very next read, without waiting for a poll."""
    url = f"sqlite:///{tmp_path}/events.db"
    with open_store(url) as writer, open_store(url) as reader:
        writer.migrate()
        sub = Subscriber(reader, poll_interval=3600)  # no help from the poll thread
        try:
            for expected in range(1, 6):
                _publish(writer)
                assert sub.generation(Channel.freezes) == expected
        finally:
            sub.close()


def test_sqlite_look_makes_no_system_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot path's look is a read of the mapped mark: a stat() (or any call that releases the GIL) per
    decision let the audit writer take the GIL and the event loop wait for it back."""
    url = f"sqlite:///{tmp_path}/events.db"
    with open_store(url) as writer, open_store(url) as reader:
        writer.migrate()
        sub = Subscriber(reader, poll_interval=3600)
        try:
            _publish(writer)

            def no_stat(*args: object, **kwargs: object) -> None:
                raise AssertionError("generation() made a stat() call")

            monkeypatch.setattr(events.os, "stat", no_stat)
            assert sub.generation(Channel.freezes) == 1
            assert sub.generation(Channel.freezes) == 1
        finally:
            monkeypatch.undo()
            sub.close()


@pytest.mark.parametrize(
    ("mark", "looks"),
    [
        ("a directory", "stats the sidecar"),  # cannot be mapped (as in a read-only folder)
        ("shorter than 8 bytes", "maps it grown to 8"),  # grown, never shrunk
    ],
)
def test_sqlite_mark_that_cannot_be_mapped_as_is(tmp_path: Path, mark: str, looks: str) -> None:
    url = f"sqlite:///{tmp_path}/events.db"
    path = tmp_path / "events.db-events-mark"
    if mark == "a directory":
        path.mkdir()
    else:
        path.write_bytes(b"abc")
    with open_store(url) as writer, open_store(url) as reader:
        writer.migrate()
        sub = Subscriber(reader, poll_interval=3600)
        try:
            assert (sub._mark is None) == (looks == "stats the sidecar")
            for expected in range(1, 4):
                _publish(writer)
                assert sub.generation(Channel.freezes) == expected
        finally:
            sub.close()
    if mark != "a directory":
        assert path.stat().st_size == 8


def test_sqlite_mark_deleted_and_recreated_is_mapped_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/events.db"
    path = tmp_path / "events.db-events-mark"
    with open_store(url) as writer, open_store(url) as reader:
        writer.migrate()
        sub = Subscriber(reader, poll_interval=0.01)
        try:
            first = sub._mark
            assert first is not None
            path.unlink()
            _publish(writer)  # recreates it: the old map no longer hears publishers
            eventually(lambda: sub._mark is not None and sub._mark.inode == path.stat().st_ino, every=0.01)
            assert sub.generation(Channel.freezes) == 1
            _publish(writer)
            assert sub.generation(Channel.freezes) == 2
        finally:
            sub.close()


def test_sqlite_publisher_without_a_mark_is_heard_by_the_poll(tmp_path: Path) -> None:
    """A publisher that only appends to the sidecar (Interlock before the mark) still wakes waiters and moves
    generations, at the poll thread's pace."""
    url = f"sqlite:///{tmp_path}/events.db"
    with open_store(url) as writer, open_store(url) as reader:
        writer.migrate()
        sub = Subscriber(reader, poll_interval=0.01)
        try:
            with writer.transaction() as tx:
                tx.execute("INSERT INTO event_generations(channel, generation, changed_at) VALUES ('freezes', 3, 'x')")
            with open(tmp_path / "events.db-events", "ab") as sidecar:
                sidecar.write(b".")
            assert sub.wait(Channel.freezes, 0, timeout=0.5) == 3
        finally:
            sub.close()


def test_sqlite_publisher_that_died_before_its_mark_is_caught_by_the_refresh(tmp_path: object) -> None:
    """A row written straight into the store (as if the publisher died between commit and sidecar append)
    is still seen: the poll thread re-reads the generations every second."""
    url = f"sqlite:///{tmp_path}/events.db"
    with open_store(url) as writer, open_store(url) as reader:
        writer.migrate()
        sub = subscriber(reader)
        with writer.transaction() as tx:
            tx.execute("INSERT INTO event_generations(channel, generation, changed_at) VALUES ('freezes', 7, 'x')")
        assert sub.wait(Channel.freezes, 0, timeout=10) == 7


def test_postgres_listener_reconnects_and_catches_what_it_missed(pg_database: str) -> None:
    with open_store(pg_database) as store:
        store.migrate()
        sub = subscriber(store)
        eventually(lambda: sub.listening, every=0.01)
        with psycopg.connect(pg_database, autocommit=True) as admin:
            # Kill the listening connection, then publish while nobody listens: the NOTIFY is lost.
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE query LIKE 'LISTEN%' AND datname = current_database()")
            eventually(lambda: not sub.listening, every=0.01)
            with open_store(pg_database) as other:
                generation = _publish(other)
        # After reconnecting, the listener re-reads the generations and wakes the waiter.
        assert sub.wait(Channel.freezes, generation - 1, timeout=10) == generation
        eventually(lambda: sub.listening, every=0.01)


def test_a_failing_callback_does_not_stop_the_others(store: Store) -> None:
    sub = subscriber(store)
    seen: list[int] = []

    def broken(event: Event) -> None:
        raise RuntimeError("bug in a subscriber")

    sub.subscribe(Channel.guards, broken)
    sub.subscribe(Channel.guards, lambda e: seen.append(e.generation))
    assert _publish(store, Channel.guards) == 1
    # On PostgreSQL the listener thread may hear the NOTIFY first and run the callbacks there; the
    # committing thread then finds the generation already recorded. Either way the second one runs.
    eventually(lambda: seen == [1], every=0.01)


def test_closing_the_store_stops_its_subscriber(store_url: str) -> None:
    store = open_store(store_url)
    sub = subscriber(store)
    store.close()
    assert sub.closed
    with pytest.raises(StoreError):
        sub.refresh()


def test_after_commit_callbacks_run_only_after_a_commit_and_may_open_transactions(store: Store) -> None:
    ran: list[str] = []
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.on_commit(lambda: ran.append("rolled back"))
        raise RuntimeError("no")

    def reads_again() -> None:
        ran.append(str(read_generations(store).get("freezes", 0)))  # a transaction of its own: not nested

    with store.transaction() as tx:
        publish(tx, Channel.freezes)
        tx.on_commit(reads_again)
    assert ran == ["1"]
