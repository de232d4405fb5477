"""Cross-process notifications with a generation fallback (DESIGN.md §9): `publish` and `Subscriber`.

A writer announces a change inside the transaction that makes it:

    with store.transaction() as tx:
        tx.execute("INSERT INTO guard_freezes …")
        events.publish(tx, Channel.freezes, {"id": "frz_1"})

`publish` bumps the channel's generation in `event_generations` in that same transaction, so the
announcement commits with the change or not at all. Every process reads through one `Subscriber` per
store (`events.subscriber(store)`):

- `sub.generation(channel)`: the channel's generation from a cache, never a round trip. A reader keeps
  the generation its cached state was built from and reloads only when it moved;
- `sub.subscribe(channel, callback)`: called after every change, on the subscriber's thread;
- `sub.wait(channel, after, timeout)` and `await sub.wait_async(…)`: until the generation passes `after`.

A payload is a hint (what changed), never the truth: generations can jump (several changes seen at
once, or a change found by a poll, whose payload is None), so a reader reloads from the store.

How the cache learns of changes:

- PostgreSQL: `pg_notify` inside the publishing transaction (PostgreSQL delivers it at commit) to one
  listening connection per process, which reconnects with backoff. After every (re)connect and every
  `poll_interval` seconds the generations are re-read, so a notification missed while disconnected or
  restarting is caught by comparing generations.
- SQLite has no notifications. After commit the publisher appends one byte to a sidecar file
  `<db>-events` and writes 8 fresh random bytes over a second one, `<db>-events-mark`. `generation()`
  compares the mark, mapped into memory (`_Mark`), with what it saw last, and re-reads the generations only
  when it changed: a memory read, no system call. A `stat()` of the sidecar, as before the mark existed,
  released the GIL on every decision, and on the hot path the audit writer thread then took it and the
  event loop waited for it back (docs/benchmarks.md, "Hot path, 2026-11-26 third session"). A poll thread
  stats the sidecar (its size grows with every publish, so two publishes within one tick of the file
  system's coarse clock still differ) to wake waiters and to hear publishers that predate the mark, and
  re-reads unconditionally every second in case a publisher died between its commit and its marks. Where
  the mark cannot be mapped (a read-only folder), `generation()` stats the sidecar itself.
- In the publishing process, the cached generation moves and waiters wake before commit returns;
  callbacks run on whichever thread delivers first (on PostgreSQL the listener may hear the NOTIFY
  before the committing thread gets there, and then runs them on its own thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import mmap
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

from interlock.store.base import Store, Transaction
from interlock.store.errors import StoreError

_log = logging.getLogger("interlock.events")

#: The one PostgreSQL channel every Interlock process listens on; the Interlock channel is in the payload.
PG_CHANNEL = "interlock_events"
#: PostgreSQL refuses NOTIFY payloads of 8,000 bytes or more; keep payloads to a few ids.
MAX_PAYLOAD_BYTES = 4000
#: How often a SQLite subscriber looks at the sidecar file to wake waiters (generation() always looks).
SQLITE_POLL_SECONDS = 0.05
#: How often the generations are re-read whatever the notifications said (the fallback).
FULL_REFRESH_SECONDS = 1.0
#: A SQLite sidecar larger than this is truncated by the next publisher (a change readers see too).
SIDECAR_MAX_BYTES = 64 * 1024

_CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class Channel(StrEnum):
    """The channels Interlock publishes on; add yours here."""

    freezes = "freezes"  # kill-switch freezes (interlock.guard)
    guards = "guards"  # circuit breaker transitions (interlock.guard)
    approvals = "approvals"
    grants = "grants"
    rollouts = "rollouts"
    console = "console"
    actions = "actions"  # an approved action's execution finished, or was marked outcome_unknown
    webhooks = "webhooks"  # a delivery entered the webhook outbox (interlock.gate.webhook): its sender looks
    tokens = "tokens"  # a token stopped being valid (revoked): servers drop their cached lookups (server.state)


@dataclass(frozen=True)
class Event:
    channel: str
    generation: int
    payload: Mapping[str, Any] | None  # None: the change was found by comparing generations


Callback = Callable[[Event], None]


def channel_name(channel: str) -> str:
    name = str(channel)
    if not _CHANNEL_NAME.match(name):
        raise ValueError(f"event channel {name!r} is not a lowercase word (e.g. 'freezes')")
    return name


_BUMP = ("INSERT INTO event_generations(channel, generation, changed_at) VALUES (?, 1, ?) "
         "ON CONFLICT (channel) DO UPDATE SET generation = event_generations.generation + 1, "
         "changed_at = excluded.changed_at RETURNING generation")


def publish(tx: Transaction, channel: str, payload: Mapping[str, Any] | None = None) -> int:
    """Announce a change on `channel` inside the transaction `tx` that makes it; returns the new generation.

    Nothing is announced if the transaction rolls back. Subscribers in other processes hear of it
    after the commit (PostgreSQL: NOTIFY; SQLite: the sidecar file); in this process, its generation
    moves before the commit returns (callbacks may still be running on the listener's thread)."""
    name = channel_name(channel)
    body = dict(payload or {})
    text = json.dumps({"c": name, "g": 0, "p": body}, separators=(",", ":"))
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"event payload for {name!r} is over {MAX_PAYLOAD_BYTES} bytes: send ids, not data")
    if tx.dialect == "postgresql":
        # One round trip: the bump and the NOTIFY (its text built around the new generation, the same
        # JSON as `text`), instead of a read of the generation and a second statement to notify.
        row = tx.fetchone(
            f"WITH bumped AS ({_BUMP}) SELECT generation, pg_notify(?, ? || generation::text || ?) AS sent "
            "FROM bumped",
            (name, _now(), PG_CHANNEL, f'{{"c":{json.dumps(name)},"g":',
             f',"p":{json.dumps(body, separators=(",", ":"))}}}'),
        )
    else:
        row = tx.fetchone(_BUMP, (name, _now()))
    if row is None:  # pragma: no cover - RETURNING always answers
        raise StoreError(f"publishing on {name!r} returned no generation")
    generation = int(row["generation"])
    tx.on_commit(partial(_committed, tx.store, Event(name, generation, body)))
    return generation


def read_generations(store: Store) -> dict[str, int]:
    """Every channel's generation, read from the store now."""
    with store.transaction(readonly=True) as tx:
        rows = tx.fetchall("SELECT channel, generation FROM event_generations")
    return {r["channel"]: int(r["generation"]) for r in rows}


def sidecar_path(store: Store) -> Path | None:
    """Where a SQLite store's publishers leave their mark (None: PostgreSQL or in-memory)."""
    path = getattr(store, "path", None)
    if store.dialect != "sqlite" or not path or path == ":memory:":
        return None
    return Path(f"{path}-events")


def mark_path(sidecar: Path) -> Path:
    """The mapped mark beside a sidecar (`_Mark`)."""
    return sidecar.with_name(sidecar.name + "-mark")


def _committed(store: Store, event: Event) -> None:
    sidecar = sidecar_path(store)
    if sidecar is not None:
        _touch(sidecar)
        _Mark.move(mark_path(sidecar))
    found = _SUBSCRIBERS.get(store)
    if found is not None:
        found.deliver(event)


def _touch(sidecar: Path) -> None:
    fd = os.open(sidecar, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size >= SIDECAR_MAX_BYTES:
            os.ftruncate(fd, 0)
        os.write(fd, b".")
    finally:
        os.close(fd)


class _Mark:
    """`<db>-events-mark`: 8 bytes that every publisher overwrites with fresh random ones after its commit,
    read through a shared memory map, so a look is a memory read (no system call, no GIL hand-off).

    Random bytes, not a counter: two publishers need no read-modify-write between them, and a reader
    only asks "changed since I looked?" (a torn read differs too, and the next look sees the whole value:
    one spare re-read). The file only ever grows to 8 bytes and is never truncated by Interlock; a file
    shrunk under a running process by hand would fault its map (SIGBUS), which is why the mark is a file of
    its own rather than a part of the sidecar, which publishers truncate. Deleted and recreated: the map
    still shows the old inode, so the poll thread remaps when the path's inode changes (`stale`)."""

    SIZE = 8
    __slots__ = ("inode", "map", "seen")

    def __init__(self, map_: mmap.mmap, inode: int) -> None:
        self.map, self.inode = map_, inode
        self.seen = map_[:self.SIZE]

    @classmethod
    def open(cls, path: Path) -> _Mark | None:
        """The mark mapped (created when missing), or None where it cannot be (read-only folder, a file
        someone shrank): the caller then stats the sidecar instead."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if info.st_size < cls.SIZE:
                os.ftruncate(fd, cls.SIZE)  # only ever grows it; a publisher's bytes already there stay
            return cls(mmap.mmap(fd, cls.SIZE, mmap.MAP_SHARED, mmap.PROT_READ), info.st_ino)
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)

    @classmethod
    def move(cls, path: Path) -> None:
        """A publisher's second mark (after the sidecar's: a reader that sees this one finds both)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, os.urandom(cls.SIZE), 0)
        finally:
            os.close(fd)

    def stale(self, path: Path) -> bool:
        """Whether the path now names another file than the one mapped (deleted and recreated)."""
        try:
            return os.stat(path).st_ino != self.inode
        except OSError:
            return True


_SUBSCRIBERS: weakref.WeakKeyDictionary[Store, Subscriber] = weakref.WeakKeyDictionary()
_REGISTRY_LOCK = threading.Lock()


def subscriber(store: Store) -> Subscriber:
    """This process's subscriber for `store`, started on first use (one listener per process and store)."""
    with _REGISTRY_LOCK:
        found = _SUBSCRIBERS.get(store)
        if found is None or found.closed:
            found = Subscriber(store)
            _SUBSCRIBERS[store] = found
            store.on_close(found.close)
        return found


class Subscriber:
    """One per process and store (use `subscriber(store)`): cached generations, callbacks, waiters."""

    def __init__(self, store: Store, *, poll_interval: float | None = None) -> None:
        self.store = store
        self.sidecar = sidecar_path(store)
        self.poll_interval = poll_interval or (SQLITE_POLL_SECONDS if self.sidecar else FULL_REFRESH_SECONDS)
        self._generations: dict[str, int] = {}
        self._cond = threading.Condition()
        self._callbacks: dict[str, list[Callback]] = {}
        self._async: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[int]]]] = {}
        self._closed = threading.Event()
        self._seen: tuple[int, int, int] | None = None
        #: The mapped mark (SQLite), opened before the first read: a publish after it is seen as a change.
        self._mark = _Mark.open(mark_path(self.sidecar)) if self.sidecar is not None else None
        #: PostgreSQL: the listening connection is up (notifications arrive). SQLite: always True.
        self.listening = store.dialect == "sqlite"
        self.refresh()
        self._thread: threading.Thread | None = None
        if store.dialect == "postgresql" or self.sidecar is not None:
            target = self._listen if store.dialect == "postgresql" else self._poll
            self._thread = threading.Thread(target=target, name="interlock-events", daemon=True)
            self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # --- reading ----------------------------------------------------------------------------------

    def generation(self, channel: str, *, look: bool = True) -> int:
        """The channel's generation (0: never published). PostgreSQL: the cache the listener keeps.
        SQLite: the cache, re-read first if the sidecar file changed (raises StoreError if that read fails).
        `look=False`: the cache as it is, for a caller that looked (for any channel: a look re-reads them
        all) a moment ago in the same step; each look reads the mapped mark (or stats the sidecar where it
        could not be mapped)."""
        if look and self.sidecar is not None:
            mark = self._mark
            if mark is None:
                self._check_sidecar()
            else:
                now = mark.map[:_Mark.SIZE]
                if now != mark.seen:
                    # Read before the generations, noted after them: a publish after the read shows at the
                    # next look, and a look on another thread meanwhile re-reads too rather than trust ours.
                    self.refresh()
                    mark.seen = now
        return self._generations.get(channel, 0)

    def refresh(self) -> dict[str, int]:
        """Re-read every generation from the store now and wake whoever waits on a channel that moved."""
        current = read_generations(self.store)
        for name, generation in current.items():
            self.deliver(Event(name, generation, None))
        return current

    def _check_sidecar(self) -> None:
        assert self.sidecar is not None
        try:
            info = os.stat(self.sidecar)
            seen = (info.st_size, info.st_mtime_ns, info.st_ino)
        except FileNotFoundError:
            seen = (-1, 0, 0)
        if seen != self._seen:
            self.refresh()  # the mark is taken before the read: a publish after it is seen next time
            self._seen = seen

    # --- waking -----------------------------------------------------------------------------------

    def deliver(self, event: Event) -> None:
        """Record a (possibly) newer generation and wake its waiters; older or equal ones are ignored."""
        with self._cond:
            if event.generation <= self._generations.get(event.channel, 0):
                return
            self._generations[event.channel] = event.generation
            self._cond.notify_all()
            callbacks = list(self._callbacks.get(event.channel, ()))
            waiters = self._async.pop(event.channel, [])
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_resolve, future, event.generation)
        for callback in callbacks:
            try:
                callback(event)
            except Exception:
                _log.exception("an events callback for %s failed", event.channel)

    def subscribe(self, channel: str, callback: Callback) -> Callable[[], None]:
        """Call `callback(event)` after every change on `channel`; returns the function that stops it."""
        name = channel_name(channel)
        with self._cond:
            self._callbacks.setdefault(name, []).append(callback)

        def unsubscribe() -> None:
            with self._cond, contextlib.suppress(ValueError):
                self._callbacks.get(name, []).remove(callback)

        return unsubscribe

    def wait(self, channel: str, after: int, timeout: float) -> int:
        """Block until the channel's generation is above `after` (or `timeout`); returns the generation."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._generations.get(channel, 0) <= after and not self._closed.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._generations.get(channel, 0)

    async def wait_async(self, channel: str, after: int, timeout: float) -> int:
        """`wait` for asyncio code: the event loop is not blocked and no worker thread is held."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        with self._cond:
            if self._generations.get(channel, 0) > after:
                return self._generations[channel]
            self._async.setdefault(channel, []).append((loop, future))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, timeout)
        finally:
            with self._cond, contextlib.suppress(ValueError):
                self._async.get(channel, []).remove((loop, future))
        return self._generations.get(channel, 0)

    async def wait_any_async(self, after: Mapping[str, int], timeout: float) -> dict[str, int]:
        """`wait_async` on several channels at once: until any channel's generation passes its `after`
        (or `timeout`); returns every channel's generation then. One future, registered on each channel."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        with self._cond:
            if not any(self._generations.get(c, 0) > g for c, g in after.items()):
                for channel in after:
                    self._async.setdefault(channel, []).append((loop, future))
            else:
                future.set_result(0)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, timeout)
        finally:
            with self._cond:
                for channel in after:
                    with contextlib.suppress(ValueError):
                        self._async.get(channel, []).remove((loop, future))
        return {c: self._generations.get(c, 0) for c in after}

    # --- the background thread --------------------------------------------------------------------

    def _listen(self) -> None:
        """PostgreSQL: LISTEN on a connection of our own; reconnect with backoff; re-read after each connect."""
        backoff = 0.05
        while not self._closed.is_set():
            conn: Any = None
            try:
                from interlock.store.postgresql import PostgresStore

                assert isinstance(self.store, PostgresStore)
                conn = self.store.connect()
                conn.execute(f"LISTEN {PG_CHANNEL}")
                self.refresh()  # whatever was published while we were not listening
                self.listening, backoff = True, 0.05
                last = time.monotonic()
                while not self._closed.is_set():
                    for note in conn.notifies(timeout=0.2):
                        self._on_notify(note.payload)
                    if time.monotonic() - last >= self.poll_interval:
                        self.refresh()
                        last = time.monotonic()
            except Exception as exc:
                if not self._closed.is_set():
                    _log.warning("event listener on %s lost its connection (%s); reconnecting",
                                 self.store.url, type(exc).__name__)
            finally:
                self.listening = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
            self._closed.wait(backoff)
            backoff = min(backoff * 2, 2.0)

    def _on_notify(self, payload: str) -> None:
        try:
            note = json.loads(payload)
            event = Event(channel_name(note["c"]), int(note["g"]), note.get("p") or {})
        except (ValueError, KeyError, TypeError):
            self.refresh()  # not ours or garbled: fall back to comparing generations
            return
        self.deliver(event)

    def _poll(self) -> None:
        """SQLite: look at the sidecar file often, re-read the generations now and then."""
        last = time.monotonic()
        while not self._closed.wait(self.poll_interval):
            try:
                if time.monotonic() - last >= FULL_REFRESH_SECONDS:
                    self.refresh()
                    last = time.monotonic()
                else:
                    self._check_sidecar()
                mark = self._mark
                if mark is not None and self.sidecar is not None and mark.stale(mark_path(self.sidecar)):
                    # Deleted and recreated under us: map the new file (the old map is left to the garbage
                    # collector: a look on another thread may be reading it right now).
                    self._mark = _Mark.open(mark_path(self.sidecar))
                    self.refresh()
            except StoreError as exc:
                _log.warning("event poll on %s failed: %s", self.store.url, exc)

    def close(self) -> None:
        self._closed.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with _REGISTRY_LOCK:
            if _SUBSCRIBERS.get(self.store) is self:
                del _SUBSCRIBERS[self.store]


def _resolve(future: asyncio.Future[int], generation: int) -> None:
    if not future.done():
        future.set_result(generation)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
