"""The audit log: redacted canonical JSON entries in an RFC 6962 Merkle tree, group-committed.

    log = AuditLog(store, key_dir=Path("/var/lib/interlock/keys"))  # None: beside the store
    receipt = log.append(AuditEvent.APPROVAL_APPROVED, {"request_id": "r1", "principal": "bob"})  # durable on return

Many threads call `append`; one writer thread per AuditLog drains their entries into a single
transaction (one fsync) and answers each caller once that batch has committed. Every batch runs
under `tx.lock("audit")`, reading the tree size and its right edge inside the lock, so several
processes (or replicas on one PostgreSQL) interleave into one valid tree.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import enum
import hashlib
import json
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel

from interlock.audit import merkle
from interlock.audit.checkpoint import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, EntryKey, Signer, now
from interlock.audit.events import AuditEvent
from interlock.audit.redact import MASK, Redactor, secret_key
from interlock.audit.verify import (
    EXPORT_FORMAT,
    Checkpoint,
    Keys,
    Problem,
    Report,
    load_public_key,
    verify_log,
)
from interlock.fingerprint import MAX_SAFE_INT, canonical_json, fast_key, fast_text
from interlock.store import Store, StoreError, StoreUnavailable, Transaction
from interlock.vocabulary import default_key_dir

#: The events Interlock writes (docs/audit.md describes their data); append refuses any other.
EVENTS = tuple(AuditEvent)

_INSERT_ENTRY = (
    "INSERT INTO audit_entries(idx, event, time, agent, environment, risk, outcome, action_id, entry, "
    "leaf_hash, mac) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: The columns kept beside each entry for queries; `audit verify` checks them against the entry.
SIDE_COLUMNS = ("event", "time", "agent", "environment", "risk", "outcome", "action_id")
_ROW_COLUMNS = "idx, " + ", ".join(SIDE_COLUMNS) + ", entry, leaf_hash, mac"
_INSERT_NODE = "INSERT INTO audit_tree(id, hash) VALUES (?, ?)"
_INSERT_CHECKPOINT = (
    "INSERT INTO audit_checkpoints(tree_size, root, time, key_id, body, signature) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (tree_size) DO NOTHING"
)


class AuditError(Exception):
    """An entry cannot be written (bad event name, data that is not JSON, log closed, …)."""


class KeyMismatch(AuditError):
    """The key directory does not hold the keys this log is bound to (or holds none for a log that
    has them): the message names the expected key id and where it looked."""


@dataclass(frozen=True)
class Receipt:
    """Proof of a durable append: the entry's position and leaf hash."""

    index: int
    leaf_hash: str
    event: str
    time: str


@dataclass(frozen=True)
class InclusionProof:
    index: int
    tree_size: int
    leaf_hash: str
    root: str
    path: list[str]
    entry: str
    checkpoint: Checkpoint | None
    #: When the checkpoint covers more than tree_size: proof that tree_size is a prefix of it.
    consistency: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["checkpoint"] = self.checkpoint.to_json() if self.checkpoint else None
        return data


class _Pending:
    """One entry waiting for the writer: its canonical bytes (`raw`, hashed) and their text (the row).
    `done` is a held lock the writer releases once the entry's batch committed or failed: a latch far
    cheaper than a Future at tens of thousands per second, made only for a caller that blocks on it
    (`append`). `wake`: set (before queueing) by a caller awaiting on an event loop (`append_async`): the
    writer completes that future, on its loop, once per batch and loop."""

    __slots__ = ("columns", "data", "done", "error", "event", "raw", "receipt", "text", "time", "wake")

    def __init__(self, event: str, time: str, raw: bytes, columns: tuple[str | None, ...],
                 data: Mapping[str, Any] | None = None) -> None:
        self.event, self.time, self.raw, self.columns, self.data = event, time, raw, columns, data
        self.text = raw.decode("utf-8")
        self.receipt: Receipt | None = None
        self.error: BaseException | None = None
        self.wake: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None
        self.done: threading.Lock | None = None

    def latch(self) -> _Pending:
        """Make `done` (before queueing): the caller will block on it."""
        self.done = threading.Lock()
        self.done.acquire()
        return self

    def resolve(self, receipt: Receipt | None, error: BaseException | None = None) -> None:
        self.receipt, self.error = receipt, error
        if self.done is not None:
            self.done.release()


def _wake(batch: list[_Pending]) -> None:
    """Complete the futures of a resolved batch's async waiters: one hand-off per event loop, not one
    per entry (each `call_soon_threadsafe` wakes the loop through its self-pipe)."""
    futures: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for pending in batch:
        if pending.wake is not None:
            futures.setdefault(pending.wake[0], []).append(pending.wake[1])
    for loop, waiting in futures.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits on it any more
            loop.call_soon_threadsafe(_settle, waiting)


class _Deadlines:
    """The `append_async` waiters of one event loop, each failed with TimeoutError once its limit has passed:
    one timer per distinct limit at a time instead of one per entry (a TimerHandle pushed on the loop's heap
    and cancelled per proposal, with asyncio's clean-ups of cancelled handles, was ~3% of the loop's time).
    Waiters of one limit come in the order of their deadlines, so each limit's queue is a FIFO whose head
    expires first; answered waiters leave from its head as new ones come: it holds about those in flight.
    Used on its loop's thread only."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queues: dict[float, collections.deque[tuple[float, asyncio.Future[None]]]] = {}
        self.timers: dict[float, asyncio.TimerHandle] = {}

    def add(self, limit: float, future: asyncio.Future[None]) -> None:
        queue = self.queues.get(limit)
        if queue is None:
            queue = self.queues[limit] = collections.deque()
        while queue and queue[0][1].done():
            queue.popleft()
        deadline = self.loop.time() + limit
        queue.append((deadline, future))
        if limit not in self.timers:
            self.timers[limit] = self.loop.call_at(deadline, self._expire, limit)

    def _expire(self, limit: float) -> None:
        queue = self.queues[limit]
        now = self.loop.time()
        while queue:
            deadline, future = queue[0]
            if not future.done():
                if deadline > now:  # the next to expire: wake then
                    self.timers[limit] = self.loop.call_at(deadline, self._expire, limit)
                    return
                future.set_exception(TimeoutError())  # the writer has not answered within the caller's limit
            queue.popleft()
        del self.timers[limit]


def _settle(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():  # a waiter that timed out cancelled its future
            future.set_result(None)


class Appending:
    """An entry queued by `AuditLog.append_later`, until the caller collects its outcome (once)."""

    __slots__ = ("_log", "_pending")

    def __init__(self, log: AuditLog, pending: _Pending) -> None:
        self._log, self._pending = log, pending

    def done(self) -> bool:
        """Whether the writer has committed its batch, or failed it (then `receipt` raises); asked before
        `receipt`, which takes the answer."""
        done = self._pending.done
        return done is not None and not done.locked()

    def receipt(self, timeout: float | None = None) -> Receipt:
        """Its receipt once durable (waiting up to `timeout`, default the log's append timeout); raises as
        `append` does when it is not. Call it once."""
        return self._log._wait(self._pending, timeout)


_STOP = object()
_KNOWN = frozenset(AuditEvent)

#: Called inside every batch's transaction with the batch's (event, redacted data): state derived
#: from the log (guard counters) commits with the entries or not at all. It may write; if it raises,
#: the batch fails and every caller hears so (fail closed).
BatchHook = Callable[[Transaction, list[tuple[str, Mapping[str, Any]]]], None]


class AuditLog:
    """The transparency log over a Store (migrated: the tables come from migration 0002)."""

    def __init__(
        self,
        store: Store,
        key_dir: Path | None = None,
        redact_patterns: Iterable[str] = (),
        *,
        checkpoint_every: int = 10_000,
        checkpoint_interval_s: float = 60.0,
        max_batch: int = 5_000,
        create_key: bool = True,
        sign: bool = True,
        append_timeout_s: float = 30.0,
    ) -> None:
        """`create_key`: this process writes (it may create the keys of a store that has none yet);
        False for readers (verify, show, export). `sign`: this process signs checkpoints (the server,
        the local modes, `audit checkpoint`); False for commands that only append (`token create`,
        the approvals CLI), which then need only the entry key."""
        self.store = store
        self.redactor = Redactor(redact_patterns)
        self.key_dir = Path(key_dir) if key_dir else default_key_dir(store.url)
        self._signer: Signer | None = None
        self._entry_key: EntryKey | None = None
        self._tainted: int | None = None  # an entry appended by another process failed its MAC
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval_s = checkpoint_interval_s
        self.max_batch = max_batch
        self.append_timeout_s = append_timeout_s
        #: Sign checkpoints from the writer thread (every `checkpoint_every` entries or
        #: `checkpoint_interval_s`). The server turns it off and signs from one leased job instead, so
        #: several replicas do not each sign (interlock.server.background).
        self.auto_checkpoint = True
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        #: append_async's waiters by event loop (weakly: a closed loop's entry goes with it).
        self._deadlines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = (
            weakref.WeakKeyDictionary())
        #: append_async's entries of the current turn, by event loop, until `_hand` queues them.
        self._handing: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[_Pending]] = (
            weakref.WeakKeyDictionary())
        self._start_lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._closed = False
        #: (tree size, frontier) this process last committed: the writer thread's, and append_many_in's
        self._cache: tuple[int, dict[tuple[int, int], bytes]] | None = None
        self._last_checkpoint: tuple[int, float] | None = None  # (tree size, monotonic time)
        self.hooks: tuple[BatchHook, ...] = ()
        self.batches = 0  # committed batches and entries, for metrics and benchmarks
        self.committed = 0
        try:
            with store.transaction(readonly=True) as tx:
                migrated = tx.fetchone("SELECT 1 AS x FROM schema_migrations WHERE version = 2") is not None
        except StoreUnavailable:
            raise
        except StoreError:
            migrated = False
        if not migrated:
            raise AuditError(
                f"the store {store.url} has no Interlock tables yet: start `interlock serve` on it once "
                "(it creates them), or check --db (INTERLOCK_DB)"
            )
        self._bind_keys(create_key=create_key, sign=sign)

    def _bind_keys(self, *, create_key: bool, sign: bool) -> None:
        """One signing key and one entry key per log, recorded in the store (audit_keys). A process
        whose key directory holds other keys refuses to start, and no key is created for a log that
        already has one: a stray key would sign a checkpoint nobody can verify with the log's key."""
        with self.store.transaction(readonly=True) as tx:
            recorded = recorded_keys(tx)
        key_dir = self.key_dir
        held: Signer | None = None  # the private key in key_dir, whether or not this process signs
        if (key_dir / PRIVATE_KEY_FILE).exists() and (sign or create_key):
            held = Signer.load_or_create(key_dir)
        elif create_key and not recorded:
            held = Signer.load_or_create(key_dir)  # a store with no key yet: create the pair where it looked
        entry = EntryKey.load(key_dir)
        if entry is None and create_key and (not recorded or (held is not None and "entry" not in recorded)):
            entry = EntryKey.load_or_create(key_dir)  # new log, or a log from before entry MACs (its signer)
        signer = held if sign else None
        mine = {"signing": held.key_id if held else None, "entry": entry.key_id if entry else None}
        for role, theirs in recorded.items():
            if mine.get(role) not in (None, theirs):
                raise KeyMismatch(
                    f"the audit log of {self.store.url} is bound to {role} key {theirs}, but {key_dir} holds "
                    f"{role} key {mine[role]}: point --key-dir (INTERLOCK_KEY_DIR) at the signer's key "
                    "directory; a different key would fork the log"
                )
        if create_key and entry is None:
            expected = ", ".join(f"{role} key {kid}" for role, kid in sorted(recorded.items()))
            raise KeyMismatch(
                f"the audit log of {self.store.url} is bound to {expected}, and {key_dir} holds no entry key "
                f"(looked in {key_dir}): pass --key-dir (INTERLOCK_KEY_DIR) with the signer's key directory; "
                "no new key is created for a log that already has one"
            )
        self._signer, self._entry_key = signer, entry
        # Recorded by the first batch this process writes (under the audit lock), not here: opening a
        # log never waits for another writer.
        self._unrecorded = {
            role: kid for role, kid in mine.items() if kid is not None and role not in recorded and create_key
        }
        self._public_pem = held.public_pem().decode("ascii") if held is not None else None

    def _record_keys(self, tx: Transaction) -> None:
        for role, kid in self._unrecorded.items():
            tx.execute(
                "INSERT INTO audit_keys(role, key_id, public_key, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (role) DO NOTHING",
                (role, kid, self._public_pem if role == "signing" else None, now()),
            )
        bound = recorded_keys(tx)
        for role, kid in self._unrecorded.items():
            if bound.get(role) != kid:  # another process bound the log first, with another key
                raise KeyMismatch(
                    f"the audit log of {self.store.url} is bound to {role} key {bound.get(role)} (recorded by "
                    f"another process); {self.key_dir} holds {kid}: use one key directory for the log"
                )
        self._unrecorded = {}

    @property
    def has_entry_key(self) -> bool:
        """True when this process holds the entry key (it can check entry MACs)."""
        return self._entry_key is not None

    @property
    def signs(self) -> bool:
        """True when this process signs checkpoints (it holds the private key and was asked to)."""
        return self._signer is not None

    @property
    def entry_key(self) -> EntryKey:
        if self._entry_key is None:
            raise AuditError(
                f"no audit entry key in {self.key_dir}: appending to the log needs the key directory "
                "of the log's signer (--key-dir)"
            )
        return self._entry_key

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            raise AuditError(
                f"this process does not sign checkpoints (no signing key in {self.key_dir}, or it only "
                "appends): the server signs them, or run `interlock audit checkpoint` with the signer's --key-dir"
            )
        return self._signer

    def public_key(self) -> Ed25519PublicKey:
        """This log's public key: from the signing key, or the exported public key file."""
        if self._signer is not None:
            return self._signer.public_key
        path = self.key_dir / PUBLIC_KEY_FILE
        try:
            return load_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise AuditError(f"cannot read the audit public key {path}: {exc}; pass --public-key") from exc

    # --- writing -----------------------------------------------------------------------------

    def append(self, event: str, data: Mapping[str, Any], *, timeout: float | None = None) -> Receipt:
        """Append one entry; returns once it is durably committed. Raises AuditError for bad
        input and StoreError when the store fails or is not durable within `timeout` (default
        `append_timeout_s`; callers fail closed)."""
        return self._wait(self._enqueue([self._prepare(event, data).latch()])[0], timeout)

    async def append_async(self, event: str, data: Mapping[str, Any], *, timeout: float | None = None) -> Receipt:
        """`append` for a caller on an event loop: the same entry, checks, errors and durability, awaited
        without parking a thread on it. The writer completes the caller's future once the batch committed
        (the HTTP hot path: no worker-thread hop and its GIL hand-offs per proposal)."""
        pending = self._prepare(event, data)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        pending.wake = (loop, future)  # before queueing: the writer cannot resolve it unseen
        # Handed to the writer with the rest of this loop turn's entries, once the turn's callbacks have
        # run (`_hand`), not one by one: a put wakes the writer thread, which then wants the GIL while the
        # loop is still deciding the turn's other requests (a hand-off each way, and a batch that misses
        # the entries decided after it woke).
        self._turn(loop).append(pending)
        self._ensure_writer()
        await self._awaited(loop, future, timeout)
        return self._outcome(pending)

    async def append_many_async(self, items: Iterable[tuple[str, Mapping[str, Any]]], *,
                                timeout: float | None = None) -> list[Receipt]:
        """`append_many` for a caller on an event loop: the same entries, checks (one bad entry refuses the
        whole call, nothing written), order and errors, awaited as `append_async` awaits one. Only the last
        entry wakes the caller: the writer commits batches in queue order, so every earlier entry's batch
        has resolved by then; each entry's outcome is then checked (an error raises)."""
        pending = [self._prepare(event, data) for event, data in items]
        if not pending:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        pending[-1].wake = (loop, future)  # before queueing: the writer cannot resolve it unseen
        self._turn(loop).extend(pending)  # with the turn's others, in order (append_async)
        self._ensure_writer()
        await self._awaited(loop, future, timeout)
        return [self._outcome(p) for p in pending]

    async def _awaited(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None],
                       timeout: float | None) -> None:
        """Wait for the writer to complete `future`, up to `timeout` (default the log's append timeout);
        StoreUnavailable past it (the caller treats its step as not audited)."""
        limit = self.append_timeout_s if timeout is None else timeout
        deadlines = self._deadlines.get(loop)
        if deadlines is None:
            deadlines = self._deadlines.setdefault(loop, _Deadlines(loop))
        deadlines.add(limit, future)
        try:
            await future
        except TimeoutError:
            raise self._late(limit) from None

    def _turn(self, loop: asyncio.AbstractEventLoop) -> list[_Pending]:
        """This loop turn's entries, handed to the writer by `_hand` once the turn's callbacks have run."""
        handing = self._handing.get(loop)
        if handing is None:
            handing = self._handing[loop] = []
            loop.call_soon(self._hand, loop)
        return handing

    def _hand(self, loop: asyncio.AbstractEventLoop) -> None:
        """Queue one event loop's entries of the turn that ended (in the order they were made)."""
        handing = self._handing.pop(loop, [])
        if self._closed and (self._writer is None or not self._writer.is_alive()):
            error = AuditError("the audit log is closed")  # nobody left to write them: fail them now
            for pending in handing:
                pending.resolve(None, error)
            _wake(handing)
            return
        put = self._queue.put
        for pending in handing:
            put(pending)

    def append_later(self, event: str, data: Mapping[str, Any]) -> Appending:
        """`append` without the wait: the entry is checked (AuditError at once, as `append`) and queued for
        the writer's next batch; the caller looks at its outcome later (`Appending`). For an entry that must
        be durable before a later step, not before this call returns (the in-process MCP proxy's outcome
        report: durable before its next call goes upstream): it costs no thread and no wake-up of its own."""
        return Appending(self, self._enqueue([self._prepare(event, data).latch()])[0])

    def append_many(self, items: Iterable[tuple[str, Mapping[str, Any]]], *,
                    timeout: float | None = None) -> list[Receipt]:
        """Append several entries in order (one transaction when they fit one batch). All are
        checked first: one bad entry refuses the whole call and nothing is written. `timeout` as in
        `append`, for each entry."""
        pending = [self._prepare(event, data).latch() for event, data in items]
        return [self._wait(p, timeout) for p in self._enqueue(pending)]

    def add_hook(self, hook: BatchHook) -> None:
        """Run `hook` inside every later batch's transaction (see BatchHook)."""
        self.hooks = (*self.hooks, hook)

    def append_in(self, tx: Transaction, event: str, data: Mapping[str, Any]) -> Receipt:
        """Append one entry inside the caller's open write transaction, so a row and the entry that
        records it commit together or not at all (the gate's votes and grants). Takes the audit lock
        for the rest of that transaction: call it last, after the caller's own locks."""
        return self.append_many_in(tx, [(event, data)])[0]

    def append_many_in(self, tx: Transaction, items: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Receipt]:
        """`append_in` for several entries in order, with one lock, one read of the tree's head and one
        insert (a rollout's per-target entries: each round trip counts on PostgreSQL). All are checked
        first: one bad entry raises before anything is written."""
        batch = [self._prepare(event, data) for event, data in items]
        if not batch:
            return []
        key = self.entry_key
        tx.lock("audit")
        if self._unrecorded:
            self._record_keys(tx)
        size = _size(tx)
        cached = self._cache
        if cached is None or cached[0] != size:
            return _insert_batch(tx, key, batch, size, _fetch_nodes(tx, set(merkle.frontier(size))))
        # Nobody appended since this process's last batch: its frontier saves a read (a round trip on
        # PostgreSQL). The cache then moves past our own entries only, once they are committed, so the
        # signer's check of other processes' entries (_check_foreign) still starts where they begin.
        nodes = dict(cached[1])
        receipts = _insert_batch(tx, key, batch, size, nodes)
        end = size + len(receipts)
        tx.on_commit(partial(self._advance_cache, cached, (end, {n: nodes[n] for n in merkle.frontier(end)})))
        return receipts

    def _advance_cache(self, seen: tuple[int, dict[tuple[int, int], bytes]],
                       after: tuple[int, dict[tuple[int, int], bytes]]) -> None:
        """After an `append_many_in` commit: the frontier it ended at, unless the writer moved on already
        (any committed frontier is right for its size: an older one only costs the next batch a read)."""
        if self._cache is seen:
            self._cache = after

    def entry_at(self, tx: Transaction, index: int | None) -> tuple[str, dict[str, Any]] | None:
        """(event, data) of the entry at `index` when it is inside the tree and checks out (leaf hash,
        MAC when this process holds the entry key, side columns); None otherwise."""
        if index is None:
            return None
        size, mac_from = _head(tx)
        if not 0 <= index < size:
            return None
        row = tx.fetchone(f"SELECT {_ROW_COLUMNS} FROM audit_entries WHERE idx = ?", (index,))
        return self._checked(row, mac_from)

    def entries_at(self, tx: Transaction, indexes: list[int]) -> dict[int, tuple[str, dict[str, Any]] | None]:
        """`entry_at` for many indexes in a few reads (the guards fold their entries with it)."""
        size, mac_from = _head(tx)
        found: dict[int, tuple[str, dict[str, Any]] | None] = dict.fromkeys(indexes)
        inside = [i for i in indexes if 0 <= i < size]
        for start in range(0, len(inside), 500):
            chunk = inside[start:start + 500]
            rows = tx.fetchall(f"SELECT {_ROW_COLUMNS} FROM audit_entries WHERE idx IN "
                               f"({', '.join('?' * len(chunk))})", tuple(chunk))
            for row in rows:
                found[int(row["idx"])] = self._checked(row, mac_from)
        return found

    def _checked(self, row: Mapping[str, Any] | None, mac_from: int) -> tuple[str, dict[str, Any]] | None:
        if row is None or merkle.leaf_hash(row["entry"].encode("utf-8")).hex() != row["leaf_hash"]:
            return None
        if row_problems(row, self._entry_key, mac_from):
            return None
        entry = json.loads(row["entry"])
        return str(entry["event"]), dict(entry["data"])

    def _enqueue(self, pending: list[_Pending]) -> list[_Pending]:
        for item in pending:
            self._queue.put(item)
        self._ensure_writer()
        return pending

    def _prepare(self, event: str, data: Mapping[str, Any]) -> _Pending:
        if self._closed:
            raise AuditError("the audit log is closed")
        key = self.entry_key  # fail before queueing: an unauthenticated entry would fail verification
        del key
        if event not in _KNOWN:
            raise AuditError(
                f"unknown audit event {event!r}: the log takes only the events of "
                "interlock.audit.events.AuditEvent (add a new one there and to docs/audit.md)"
            )
        if not isinstance(data, Mapping):
            raise AuditError(f"audit data for {event!r} must be a JSON object, not {type(data).__name__}")
        stamp = now()
        try:
            clean, fast = cleaned(data, self.redactor)
            entry = {"data": clean, "event": str(event), "time": stamp}
            raw = _sorted_json(entry) if fast else canonical_json(entry)
        except (ValueError, TypeError) as exc:
            raise AuditError(f"audit data for {event!r} is not JSON: {exc}") from exc
        return _Pending(str(event), stamp, raw, _columns(clean), clean)

    def _wait(self, pending: _Pending, timeout: float | None = None) -> Receipt:
        limit = self.append_timeout_s if timeout is None else timeout
        if pending.done is None or not pending.done.acquire(timeout=limit):
            raise self._late(limit)
        return self._outcome(pending)

    def _late(self, limit: float) -> StoreUnavailable:
        # The entry may still land later; the caller must treat the step as not audited (deny).
        return StoreUnavailable(f"audit entry not durable within {limit:g} s on {self.store.url}")

    @staticmethod
    def _outcome(pending: _Pending) -> Receipt:
        if pending.error is not None:
            raise pending.error
        if pending.receipt is None:  # released without a result: never treat it as written
            raise AuditError("audit entry was not written")
        return pending.receipt

    def _ensure_writer(self) -> None:
        if self._writer is not None and self._writer.is_alive():
            return
        with self._start_lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._run, name="interlock-audit-writer", daemon=True)
                self._writer.start()

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=max(0.05, self.checkpoint_interval_s))
            except queue.Empty:
                self._timed_checkpoint()
                continue
            if first is _STOP:
                break
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._commit([p for p in batch if isinstance(p, _Pending)])
        # Appends that raced with close() are still written, never left waiting.
        leftovers: list[_Pending] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Pending):
                leftovers.append(item)
        if leftovers:
            self._commit(leftovers)
        self._timed_checkpoint()

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            receipts = self._write(batch)
        except Exception as exc:  # every waiting caller must hear about it, whatever it was
            self._cache = None
            error = (
                exc if isinstance(exc, StoreError | AuditError) else StoreError(f"audit append failed: {exc}")
            )
            for pending in batch:
                pending.resolve(None, error)
            _wake(batch)
            return
        self.batches += 1
        self.committed += len(batch)
        for pending, receipt in zip(batch, receipts, strict=True):
            pending.resolve(receipt)
        _wake(batch)

    def _write(self, batch: list[_Pending]) -> list[Receipt]:
        key = self.entry_key  # no key: refuse before opening a transaction
        with self.store.transaction() as tx:
            tx.lock("audit")
            if self._unrecorded:
                self._record_keys(tx)
            size = _size(tx)
            self._check_foreign(tx, size)
            nodes = self._frontier_nodes(tx, size)
            receipts = _insert_batch(tx, key, batch, size, nodes)
            size += len(receipts)

            def get(level: int, index: int) -> bytes:
                return nodes[(level, index)]

            if self.hooks:
                written = [(p.event, p.data or {}) for p in batch]
                for hook in self.hooks:
                    hook(tx, written)
            if (self._signer is not None and self._tainted is None and self._checkpoint_due(tx, size)
                    and self._key_in_force(tx)):
                self._insert_checkpoint(tx, self._signer.sign(size, merkle.root(size, get)))
        self._cache = (size, {node: nodes[node] for node in merkle.frontier(size)})
        return receipts

    def _check_foreign(self, tx: Transaction, size: int) -> None:
        """Entries other processes appended since our last batch must carry a valid MAC before this
        signer puts them under a checkpoint: a forged leaf is never signed."""
        if self._signer is None or self._entry_key is None:
            return
        since = self._cache[0] if self._cache is not None else self._last_checkpoint_size(tx)
        if since >= size:
            return
        bad = _first_unauthenticated(tx, self._entry_key, since, size)
        if bad is not None and (self._tainted is None or bad < self._tainted):
            self._tainted = bad

    def _key_in_force(self, tx: Transaction) -> bool:
        """Is this process's signing key still the log's? After `audit rotate-key`, a process still
        holding the old key must not sign: its checkpoints would carry a retired key."""
        bound = recorded_keys(tx).get("signing")
        return self._signer is not None and bound in (None, self._signer.key_id)

    def _last_checkpoint_size(self, tx: Transaction) -> int:
        row = tx.fetchone("SELECT MAX(tree_size) AS n FROM audit_checkpoints")
        return int(row["n"]) if row and row["n"] is not None else 0

    def _frontier_nodes(self, tx: Transaction, size: int) -> dict[tuple[int, int], bytes]:
        cached = self._cache  # read once: append_many_in's commit may replace it (_advance_cache)
        if cached is not None and cached[0] == size:
            return dict(cached[1])  # nobody else appended since our last batch
        return _fetch_nodes(tx, set(merkle.frontier(size)))

    def _checkpoint_due(self, tx: Transaction, size: int) -> bool:
        if not self.auto_checkpoint:
            return False
        if self._last_checkpoint is None:
            self._last_checkpoint = (self._last_checkpoint_size(tx), time.monotonic())
        last_size, last_time = self._last_checkpoint
        return size - last_size >= self.checkpoint_every or (
            size > last_size and time.monotonic() - last_time >= self.checkpoint_interval_s
        )

    def _insert_checkpoint(self, tx: Transaction, checkpoint: Checkpoint) -> None:
        fields = checkpoint.fields
        tx.execute(
            _INSERT_CHECKPOINT,
            (
                fields["tree_size"],
                fields["root"],
                fields["time"],
                fields["key_id"],
                checkpoint.body,
                checkpoint.signature,
            ),
        )
        self._last_checkpoint = (checkpoint.tree_size, time.monotonic())

    def _timed_checkpoint(self) -> None:
        if not self.auto_checkpoint:
            return
        try:
            if (
                self._last_checkpoint is not None
                and self._cache is not None
                and self._cache[0] > self._last_checkpoint[0]
            ):
                self.checkpoint()
        except Exception:
            self._last_checkpoint = None

    def checkpoint_behind(self) -> bool:
        """The tree grew since the last signed checkpoint (a read, no lock: whether `checkpoint` has work)."""
        with self.store.transaction(readonly=True) as tx:
            return _size(tx) > self._last_checkpoint_size(tx)

    def checkpoint(self) -> Checkpoint:
        """Sign a checkpoint of the tree as committed now (or return the one at this size).

        Every entry since the last checkpoint must carry a valid MAC before it is signed. On a busy log a
        minute holds ~10^5 of them, and checked inside the write transaction they stopped every writer for
        1.3-1.75 s (the hot path's p99 once a minute, docs/benchmarks.md). So they are checked first in a
        read snapshot (`_checked_upto`), which waits for no one; inside the transaction only the entries
        appended since are checked, once the tree's root at the snapshot's size is found unchanged (a node
        rewritten meanwhile moves it, and then everything is checked there, as before)."""
        checked = self._checked_upto()
        with self.store.transaction() as tx:
            tx.lock("audit")
            size = _size(tx)
            existing = tx.fetchone(
                "SELECT body, signature FROM audit_checkpoints WHERE tree_size = ?", (size,)
            )
            if existing is not None:
                return Checkpoint(body=existing["body"], signature=existing["signature"])
            if self._entry_key is not None:
                start = self._last_checkpoint_size(tx)
                if checked is not None and start <= checked[0] <= size and _root_at(tx, checked[0]) == checked[1]:
                    start = checked[0]
                bad = _first_unauthenticated(tx, self._entry_key, start, size) if start < size else None
                if bad is not None:
                    self._tainted = bad
            if self._tainted is not None:
                raise AuditError(
                    f"refusing to sign a checkpoint: entry {self._tainted} is not authenticated by the entry "
                    "key (written by someone without it); run `interlock audit verify`"
                )
            if self._signer is not None and not self._key_in_force(tx):
                raise KeyMismatch(
                    f"refusing to sign a checkpoint: the log's signing key was rotated to "
                    f"{recorded_keys(tx).get('signing')}, and this process holds {self._signer.key_id} "
                    "(retired): restart it with the key directory `interlock audit rotate-key` updated"
                )
            nodes = _fetch_nodes(tx, merkle.needed_nodes(lambda g: merkle.root(size, g)))
            checkpoint = self.signer.sign(size, merkle.root(size, lambda lv, i: nodes[(lv, i)]))
            self._insert_checkpoint(tx, checkpoint)
        return checkpoint

    def _checked_upto(self) -> tuple[int, bytes] | None:
        """(size, root at that size) of a tree whose entries since the last checkpoint all carry a valid MAC;
        None when there is nothing to check ahead, or one fails (the write transaction then finds it again
        and refuses).

        Up to this process's last committed batch that is known without a read: the writer wrote its own
        entries with the key and checked everyone else's before appending after them (`_check_foreign`), so
        its frontier stands for them (checked in a snapshot instead, a minute's entries were ~10^5 MACs in
        Python, and the event loop waited for the GIL behind them: a 0.2 s stall once a minute)."""
        if self._entry_key is None:
            return None
        cached = self._cache  # read once: the writer replaces it whole
        if cached is not None and self._tainted is None and self._signer is not None and cached[0] > 0:
            size, nodes = cached
            return size, merkle.root(size, lambda level, index: nodes[(level, index)])
        with self.store.transaction(readonly=True) as tx:
            size = _size(tx)
            start = self._last_checkpoint_size(tx)
            if start >= size or _first_unauthenticated(tx, self._entry_key, start, size) is not None:
                return None
            return size, _root_at(tx, size)

    def rotate_signing_key(self, new: Signer) -> tuple[Receipt, Checkpoint]:
        """Hand the log over from this process's signing key to `new`, in one transaction: an
        `audit.key_rotated` entry naming both keys, the last checkpoint the old key signs (it covers
        that entry, so the old key vouches for the handover), and the rotation row that binds the log
        to `new` from then on. The caller writes the new key files afterwards (audit/rotation.py)."""
        old = self.signer
        key = self.entry_key
        with self.store.transaction() as tx:
            tx.lock("audit")
            bound = recorded_keys(tx).get("signing")
            if bound not in (None, old.key_id):
                raise KeyMismatch(
                    f"the audit log of {self.store.url} is bound to signing key {bound}, but {self.key_dir} "
                    f"holds {old.key_id}: rotation needs the current private key"
                )
            if new.key_id == old.key_id:
                raise AuditError("the new signing key is the current one: nothing to rotate")
            size = _size(tx)
            start = self._last_checkpoint_size(tx)
            bad = _first_unauthenticated(tx, key, start, size) if start < size else None
            if bad is not None:
                raise AuditError(
                    f"refusing to rotate: entry {bad} is not authenticated by the entry key (written by "
                    "someone without it); run `interlock audit verify` first"
                )
            receipt = self.append_in(tx, AuditEvent.AUDIT_KEY_ROTATED, {
                "old_key_id": old.key_id, "new_key_id": new.key_id, "from_size": size + 1,
                "entry_key_id": key.key_id,
            })
            nodes = _fetch_nodes(tx, merkle.needed_nodes(lambda g: merkle.root(size + 1, g)))
            final = old.sign(size + 1, merkle.root(size + 1, lambda lv, i: nodes[(lv, i)]))
            self._insert_checkpoint(tx, final)
            tx.execute(
                "INSERT INTO audit_key_rotations(entry_idx, role, old_key_id, key_id, public_key, from_size, "
                "created_at) VALUES (?, 'signing', ?, ?, ?, ?, ?)",
                (receipt.index, old.key_id, new.key_id, new.public_pem().decode("ascii"), size + 1, now()),
            )
        self._signer = new
        self._public_pem = new.public_pem().decode("ascii")
        self._cache = None
        return receipt, final

    def rotations(self) -> list[dict[str, Any]]:
        """Every signing key rotation, oldest first (entry_idx, old_key_id, key_id, from_size)."""
        with self.store.transaction(readonly=True) as tx:
            rows = tx.fetchall(
                "SELECT entry_idx, old_key_id, key_id, from_size FROM audit_key_rotations ORDER BY entry_idx"
            )
        return [dict(r) for r in rows]

    def close(self) -> None:
        """Finish pending appends and stop the writer thread."""
        self._closed = True
        writer = self._writer
        if writer is not None and writer.is_alive():
            self._queue.put(_STOP)
            writer.join()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading -----------------------------------------------------------------------------

    def size(self) -> int:
        with self.store.transaction(readonly=True) as tx:
            return _size(tx)

    def checkpoints(self) -> list[Checkpoint]:
        with self.store.transaction(readonly=True) as tx:
            rows = tx.fetchall("SELECT body, signature FROM audit_checkpoints ORDER BY tree_size")
        return [Checkpoint(body=r["body"], signature=r["signature"]) for r in rows]

    def latest_checkpoint(self) -> Checkpoint | None:
        with self.store.transaction(readonly=True) as tx:
            row = tx.fetchone("SELECT body, signature FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1")
        return None if row is None else Checkpoint(body=row["body"], signature=row["signature"])

    def root(self, size: int) -> bytes:
        with self.store.transaction(readonly=True) as tx:
            nodes = _fetch_nodes(tx, merkle.needed_nodes(lambda g: merkle.root(size, g)))
        return merkle.root(size, lambda lv, i: nodes[(lv, i)])

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> InclusionProof:
        """Proof that entry `index` is in the tree of `tree_size` entries (default: the latest
        checkpoint that covers it, signing a new checkpoint when none does and this process signs).
        At a given size the proof carries the checkpoint signed at that size, or else the first one
        after it with a consistency proof from the size to it (none yet: no checkpoint)."""
        checkpoint: Checkpoint | None = None
        consistency: list[str] | None = None
        if tree_size is not None:
            if tree_size > (held := self.size()):  # else its nodes are "missing", which reads as tampering
                raise AuditError(f"no tree of {tree_size} entries: the log holds {held}; ask for a smaller tree_size")
            checkpoint = self._checkpoint_from(tree_size)
            if checkpoint is not None and checkpoint.tree_size != tree_size and 0 <= index < tree_size:
                consistency = self.consistency_proof(tree_size, checkpoint.tree_size)
        if tree_size is None:
            checkpoint = self.latest_checkpoint()
            if checkpoint is None or checkpoint.tree_size <= index:
                checkpoint = self.checkpoint()
            tree_size = checkpoint.tree_size
        if not 0 <= index < tree_size:
            raise AuditError(f"entry {index} is not in a tree of {tree_size} entries")
        size = tree_size
        with self.store.transaction(readonly=True) as tx:
            row = tx.fetchone("SELECT entry, leaf_hash FROM audit_entries WHERE idx = ?", (index,))
            wanted = merkle.needed_nodes(
                lambda g: (merkle.inclusion_proof(index, size, g), merkle.root(size, g))
            )
            nodes = _fetch_nodes(tx, wanted)
        if row is None:
            raise AuditError(f"entry {index} does not exist")

        def get(level: int, i: int) -> bytes:
            return nodes[(level, i)]

        return InclusionProof(
            index=index,
            tree_size=size,
            leaf_hash=row["leaf_hash"],
            root=merkle.root(size, get).hex(),
            path=[p.hex() for p in merkle.inclusion_proof(index, size, get)],
            entry=row["entry"],
            checkpoint=checkpoint,
            consistency=consistency,
        )

    def _checkpoint_from(self, size: int) -> Checkpoint | None:
        """The checkpoint at `size`, else the first one after it."""
        with self.store.transaction(readonly=True) as tx:
            row = tx.fetchone(
                "SELECT body, signature FROM audit_checkpoints WHERE tree_size >= ? ORDER BY tree_size LIMIT 1",
                (size,),
            )
        return None if row is None else Checkpoint(body=row["body"], signature=row["signature"])

    def consistency_proof(self, old_size: int, new_size: int) -> list[str]:
        with self.store.transaction(readonly=True) as tx:
            nodes = _fetch_nodes(
                tx, merkle.needed_nodes(lambda g: merkle.consistency_proof(old_size, new_size, g))
            )
        return [p.hex() for p in merkle.consistency_proof(old_size, new_size, lambda lv, i: nodes[(lv, i)])]

    def iter_entries(
        self, start: int = 0, end: int | None = None, chunk: int = 20_000
    ) -> Iterator[dict[str, Any]]:
        """Rows of audit_entries in index order, read in chunks (each chunk one transaction)."""
        position = start
        while end is None or position < end:
            stop = position + chunk if end is None else min(end, position + chunk)
            with self.store.transaction(readonly=True) as tx:
                rows = tx.fetchall(
                    "SELECT idx, entry, leaf_hash, mac FROM audit_entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                    (position, stop),
                )
            yield from rows
            position = stop
            if end is None and len(rows) < chunk:
                return

    def verify(self, public_key: Keys | None = None) -> Report:
        """Recompute the whole tree, check every checkpoint (signature and root), each entry's MAC
        and side columns, the stored tree nodes, and that no row lies outside the tree.
        `public_key` defaults to this log's own key. Rows are read by key (keyset pages), so a row at
        a huge or negative index costs one row, not a walk over the index space."""
        with self.store.transaction(readonly=True) as tx:
            size, mac_from = _head(tx)
            rows = tx.fetchall("SELECT body, signature FROM audit_checkpoints ORDER BY tree_size")
        checkpoints = [Checkpoint(body=r["body"], signature=r["signature"]) for r in rows]
        found: list[Problem] = []
        beyond: list[int] = []
        key = self._entry_key

        def entries() -> Iterator[tuple[int, bytes, str | None]]:
            for row in self.scan_rows():
                index = int(row["idx"])
                if not 0 <= index < size:
                    beyond.append(index)
                    continue
                found.extend(row_problems(row, key, mac_from))
                yield index, row["entry"].encode("utf-8"), row["leaf_hash"]

        report = verify_log(entries(), checkpoints, public_key or self.public_key())
        if key is None:
            report.notes.append(
                f"entry MACs not checked: no entry key in {self.key_dir} (pass the signer's --key-dir)"
            )
        end = self.size()  # rows between `size` and `end` were appended while verifying: not outside
        for index in beyond:
            if index < 0 or index >= end:
                report.problems.append(
                    Problem(
                        f"entry {index}",
                        f"a row outside the tree (the tree holds entries 0..{end - 1}): inserted by "
                        "someone bypassing Interlock; nothing reads it",
                        index=index,
                        until=index + 1,
                    )
                )
        if report.entries < size:
            report.problems.append(
                Problem(
                    f"entry {report.entries}",
                    f"entries {report.entries}..{size - 1} are missing (the tree size is {size})",
                    index=report.entries,
                    until=size,
                )
            )
        report.problems.extend(found)
        self._check_nodes(report, checkpoints)
        report.problems.extend(self._rotation_problems(checkpoints))
        return report

    def _rotation_problems(self, checkpoints: list[Checkpoint]) -> list[Problem]:
        """Each rotation row against the audit.key_rotated entry that recorded it, and each checkpoint
        against the key in force at its size: after a rotation a checkpoint signed by the retired key
        (a process that kept it) is named, even though the keyring holds that key."""
        rotations = self.rotations()
        problems: list[Problem] = []
        if not rotations:
            return problems
        with self.store.transaction(readonly=True) as tx:
            for row in rotations:
                index = int(row["entry_idx"])
                entry = self.entry_at(tx, index)
                expected = {"old_key_id": row["old_key_id"], "new_key_id": row["key_id"],
                            "from_size": int(row["from_size"])}
                if entry is None or entry[0] != AuditEvent.AUDIT_KEY_ROTATED or any(
                    entry[1].get(k) != v for k, v in expected.items()
                ):
                    problems.append(Problem(
                        f"key rotation at entry {index}",
                        "the audit_key_rotations row does not match an audit.key_rotated entry at that index "
                        "(the table was altered)", index=index, until=index + 1,
                    ))
        for checkpoint in checkpoints:
            try:
                size, signed_by = checkpoint.tree_size, str(checkpoint.fields["key_id"])
            except (ValueError, KeyError, TypeError):
                continue  # verify_log already reports a checkpoint it cannot read
            in_force = None
            for row in rotations:
                in_force = row["key_id"] if size > int(row["from_size"]) else (in_force or row["old_key_id"])
            if in_force is not None and signed_by != in_force:
                problems.append(Problem(
                    f"checkpoint at size {size}",
                    f"signed by key {signed_by}, but key {in_force} was in force at that size "
                    "(a process kept a retired key)",
                ))
        return problems

    def _check_nodes(self, report: Report, checkpoints: list[Checkpoint]) -> None:
        """Blame audit_tree only when they disagree with what is known good: the root of the largest
        checkpoint the entries verified against, or (no checkpoint) the entries of a log that verified."""
        known: dict[int, str] = {}
        for checkpoint in checkpoints:
            try:
                known[checkpoint.tree_size] = checkpoint.root.hex()
            except ValueError:
                continue
        size = report.covered if report.covered in known else 0
        good = known.get(size) if size else (report.root if report.ok else None)
        size = size or report.entries
        if good is None or size == 0:
            return
        try:
            stored = self.root(size).hex()
        except StoreError:
            stored = "nothing (nodes are missing)"
        if stored != good:
            report.problems.append(
                Problem(
                    "stored tree nodes",
                    f"the stored Merkle nodes give root {stored} at tree size {size}, the verified "
                    f"entries give {good}: proofs from this store would not verify (audit_tree was altered)",
                )
            )

    def scan_rows(self, chunk: int = 20_000) -> Iterator[dict[str, Any]]:
        """Every row of audit_entries, inside the tree or not, in index order, paged by key."""
        last: int | None = None
        while True:
            with self.store.transaction(readonly=True) as tx:
                if last is None:
                    rows = tx.fetchall(f"SELECT {_ROW_COLUMNS} FROM audit_entries ORDER BY idx LIMIT ?", (chunk,))
                else:
                    rows = tx.fetchall(
                        f"SELECT {_ROW_COLUMNS} FROM audit_entries WHERE idx > ? ORDER BY idx LIMIT ?",
                        (last, chunk),
                    )
            yield from rows
            if len(rows) < chunk:
                return
            last = int(rows[-1]["idx"])

    def action_entries(self, action_id: str) -> list[tuple[int, str, dict[str, Any]]]:
        """The entries of one action as (index, event, data), read from inside the tree only and each
        checked before it is believed: the leaf hash against the content, the MAC (when this process
        holds the entry key) and the side columns used to find it. Raises AuditError naming the first
        entry that fails: the caller fails closed rather than fold a forged or moved row."""
        with self.store.transaction(readonly=True) as tx:
            size, mac_from = _head(tx)
            rows = tx.fetchall(
                f"SELECT {_ROW_COLUMNS} FROM audit_entries WHERE action_id = ? AND idx >= 0 AND idx < ? "
                "ORDER BY idx",
                (action_id, size),
            )
        found = []
        for row in rows:
            index = int(row["idx"])
            if merkle.leaf_hash(row["entry"].encode("utf-8")).hex() != row["leaf_hash"]:
                raise AuditError(f"audit entry {index} does not match its leaf hash: run `interlock audit verify`")
            problems = row_problems(row, self._entry_key, mac_from)
            if problems:
                raise AuditError(f"audit entry {index} {problems[0].what}: run `interlock audit verify`")
            entry = json.loads(row["entry"])
            found.append((index, str(entry["event"]), dict(entry["data"])))
        return found

    def search(
        self,
        *,
        agent: str | None = None,
        environment: str | None = None,
        risk: str | None = None,
        outcome: str | None = None,
        event: str | None = None,
        action_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        text: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Entries matching every given filter (times are RFC 3339 UTC text), the newest `limit`,
        returned oldest first as {index, event, time, data, leaf_hash}."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("agent", agent), ("environment", environment), ("risk", risk),
                              ("outcome", outcome), ("event", event), ("action_id", action_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("time >= ?")
            params.append(since)
        if until is not None:
            where.append("time < ?")
            params.append(until)
        if text:
            escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append("LOWER(entry) LIKE ? ESCAPE '\\'")
            params.append(f"%{escaped}%")
        # Only rows inside the tree: a row slipped in at a negative or too-large index is never shown.
        where.append("idx >= 0 AND idx < ?")
        sql = "SELECT idx, entry, leaf_hash FROM audit_entries WHERE " + " AND ".join(where)
        sql += " ORDER BY idx DESC LIMIT ?"
        with self.store.transaction(readonly=True) as tx:
            rows = tx.fetchall(sql, [*params, _size(tx), max(0, limit)])
        found = []
        for row in reversed(rows):
            entry = json.loads(row["entry"])
            found.append({"index": int(row["idx"]), "event": entry.get("event"), "time": entry.get("time"),
                          "data": entry.get("data", {}), "leaf_hash": row["leaf_hash"]})
        return found

    def export(self, out: TextIO) -> int:
        """Write the JSONL export (header, entries, checkpoints); returns the number of entries."""
        with self.store.transaction(readonly=True) as tx:
            size, mac_from = _head(tx)
            # Every checkpoint, including any beyond the entries: that is how truncation shows.
            rows = tx.fetchall("SELECT body, signature FROM audit_checkpoints ORDER BY tree_size")
        # Entry MACs travel with the export: whoever holds the entry key (`verify.py --entry-key`) can
        # locate an entry moved or forged in it exactly; without the key they are inert.
        out.write(_line({"type": "header", "format": EXPORT_FORMAT, "tree_size": size, "mac_from": mac_from}))
        for row in self.iter_entries(0, size):
            record = {"type": "entry", "index": int(row["idx"]), "entry": row["entry"], "leaf_hash": row["leaf_hash"]}
            if row.get("mac"):
                record["mac"] = row["mac"]
            out.write(_line(record))
        for row in rows:
            out.write(_line({"type": "checkpoint", "body": row["body"], "signature": row["signature"]}))
        return size


# --- helpers ---------------------------------------------------------------------------------------


def _line(record: dict[str, Any]) -> str:
    return canonical_json(record).decode("utf-8") + "\n"


#: Rows per multi-row INSERT on PostgreSQL (11 parameters each, under the 65,535 a statement takes).
_ROWS_PER_INSERT = 1_000



def _insert_batch(tx: Transaction, key: EntryKey, batch: list[_Pending], size: int,
                  nodes: dict[tuple[int, int], bytes]) -> list[Receipt]:
    """Write `batch` as the entries at `size`, `size + 1`, … with their tree nodes and MACs, in `tx`
    (which holds the audit lock). `nodes` holds the frontier at `size` and is updated to the new one.
    The one way entries enter the tree: the writer thread's batches and `append_many_in` both use it."""
    entries: list[tuple[Any, ...]] = []
    new_nodes: list[tuple[int, str]] = []
    receipts: list[Receipt] = []

    def get(level: int, index: int) -> bytes:
        return nodes[(level, index)]

    for pending in batch:
        leaf = merkle.leaf_hash(pending.raw)
        for level, index, digest in merkle.appended_nodes(size, leaf, get):
            nodes[(level, index)] = digest
            new_nodes.append((merkle.node_id(level, index), digest.hex()))
        leaf_hex = leaf.hex()
        entries.append((size, pending.event, pending.time, *pending.columns, pending.text, leaf_hex,
                        key.mac(size, leaf_hex)))
        receipts.append(Receipt(size, leaf_hex, pending.event, pending.time))
        size += 1
    if tx.dialect == "postgresql" and new_nodes and len(entries) <= _ROWS_PER_INSERT:
        # One statement, one round trip: the nodes ride along as a data-modifying CTE of the entries' insert
        # (the tree-size trigger still runs once, for the entries).
        head, _, _ = _INSERT_ENTRY.partition("VALUES")
        row = "(" + ", ".join("?" * len(entries[0])) + ")"
        tx.send("WITH nodes AS (INSERT INTO audit_tree(id, hash) VALUES " + ", ".join(["(?, ?)"] * len(new_nodes))
                + ") " + head + "VALUES " + ", ".join([row] * len(entries)),
                [v for n in new_nodes for v in n] + [v for e in entries for v in e])
        return receipts
    _insert_entries(tx, entries)
    _insert_rows(tx, _INSERT_NODE, new_nodes)
    return receipts


def _insert_entries(tx: Transaction, entries: list[tuple[Any, ...]]) -> None:
    """Insert a batch of entries. On PostgreSQL one multi-row statement per chunk: the store's "only at
    the tree size" trigger runs once per statement there (migration 0023); SQLite checks per row, which
    costs it next to nothing, and takes them as `_insert_rows` does."""
    if tx.dialect != "postgresql" or len(entries) == 1:
        _insert_rows(tx, _INSERT_ENTRY, entries)
        return
    head, _, _ = _INSERT_ENTRY.partition("VALUES")
    row = "(" + ", ".join("?" * len(entries[0])) + ")"
    for start in range(0, len(entries), _ROWS_PER_INSERT):
        chunk = entries[start : start + _ROWS_PER_INSERT]
        tx.execute(head + "VALUES " + ", ".join([row] * len(chunk)), [v for e in chunk for v in e])


#: Rows per multi-row INSERT on SQLite: a batch goes in as 64, 32, 16, … rows, a handful of statement texts
#: (each prepared once, in the connection's statement cache) and a handful of steps per batch.
_SQLITE_ROWS = (64, 32, 16, 8, 4, 2, 1)


def _insert_rows(tx: Transaction, insert: str, rows: list[tuple[Any, ...]]) -> None:
    """`executemany(insert, rows)`, in a few multi-row statements on SQLite. sqlite3 lets go of the GIL for
    each row it steps, and the writer thread then waits to get it back from the busy event loop: one hand-off
    per statement instead of one per row (per entry and per tree node). The rows go in in order, each with
    its row triggers, exactly as one at a time."""
    if tx.dialect != "sqlite" or len(rows) < 2:
        tx.executemany(insert, rows)
        return
    head, _, _ = insert.partition("VALUES")
    row = "(" + ", ".join("?" * len(rows[0])) + ")"
    start = 0
    for size in _SQLITE_ROWS:
        while len(rows) - start >= size:
            chunk = rows[start : start + size]
            tx.execute(head + "VALUES " + ", ".join([row] * size), [v for r in chunk for v in r])
            start += size


def recorded_keys(tx: Transaction) -> dict[str, str]:
    """{role: key id} the store's log is bound to; a log from before audit_keys is bound to the key
    that signed its newest checkpoint."""
    found = {r["role"]: r["key_id"] for r in tx.fetchall("SELECT role, key_id FROM audit_keys")}
    rotated = tx.fetchone(
        "SELECT key_id FROM audit_key_rotations WHERE role = 'signing' ORDER BY entry_idx DESC LIMIT 1"
    )
    if rotated is not None:  # the newest rotation names the key in force (migration 0090)
        found["signing"] = rotated["key_id"]
    if "signing" not in found:
        row = tx.fetchone("SELECT key_id FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1")
        if row is not None:
            found["signing"] = row["key_id"]
    return {str(k): str(v) for k, v in found.items()}


def _head(tx: Transaction) -> tuple[int, int]:
    """(tree size, first index that carries a MAC) from audit_head, which grows with each insert."""
    row = tx.fetchone("SELECT size, mac_from FROM audit_head WHERE id = 1")
    if row is None:
        raise StoreError("the audit_head row is missing: the audit tables were altered; run audit verify")
    return int(row["size"]), int(row["mac_from"])


def _size(tx: Transaction) -> int:
    return _head(tx)[0]


def _root_at(tx: Transaction, size: int) -> bytes:
    """The tree's root at `size`, from its stored nodes (a handful of them: log2 of the size)."""
    nodes = _fetch_nodes(tx, merkle.needed_nodes(lambda g: merkle.root(size, g)))
    return merkle.root(size, lambda level, index: nodes[(level, index)])


def _first_unauthenticated(tx: Transaction, key: EntryKey, start: int, end: int) -> int | None:
    """The first index in [start, end) whose row is missing or fails its MAC, or None."""
    mac_from = _head(tx)[1]
    expected = max(start, mac_from)
    rows = tx.fetchall(
        "SELECT idx, leaf_hash, mac FROM audit_entries WHERE idx >= ? AND idx < ? ORDER BY idx", (expected, end)
    )
    for row in rows:
        if int(row["idx"]) != expected or not key.check(expected, row["leaf_hash"], row["mac"]):
            return expected
        expected += 1
    return expected if expected < end else None


def row_problems(row: Mapping[str, Any], key: EntryKey | None, mac_from: int) -> list[Problem]:
    """What is wrong with one stored row on its own: content that is not an entry, side columns
    that disagree with the content the leaf hash covers, a MAC that does not verify."""
    index = int(row["idx"])
    where = f"entry {index}"
    problems: list[Problem] = []
    try:
        entry = json.loads(row["entry"])
        data = entry["data"]
        if not isinstance(data, dict):
            raise TypeError("data is not an object")
        expected = dict(zip(SIDE_COLUMNS, (entry.get("event"), entry.get("time"), *_columns(data)), strict=True))
    except (ValueError, KeyError, TypeError) as exc:
        return [Problem(where, f"is not an Interlock entry ({exc})", index=index, until=index + 1)]
    for column in SIDE_COLUMNS:
        if row[column] != expected[column]:
            problems.append(
                Problem(
                    where,
                    f"side column {column} says {row[column]!r} but the entry says {expected[column]!r} "
                    "(the column was changed)",
                    index=index,
                    until=index + 1,
                )
            )
    if key is not None and index >= mac_from and not key.check(index, row["leaf_hash"], row["mac"]):
        problems.append(
            Problem(
                where,
                "is not authenticated by the entry key (forged, or moved to another index)",
                index=index,
                until=index + 1,
            )
        )
    return problems


def _fetch_nodes(tx: Transaction, wanted: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    if not wanted:
        return {}
    keys = {merkle.node_id(level, index): (level, index) for level, index in wanted}
    found: dict[tuple[int, int], bytes] = {}
    ids = sorted(keys)
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        marks = ", ".join("?" * len(part))
        for row in tx.fetchall(f"SELECT id, hash FROM audit_tree WHERE id IN ({marks})", part):
            found[keys[int(row["id"])]] = bytes.fromhex(row["hash"])
    if len(found) != len(keys):
        missing = sorted(set(keys.values()) - set(found))[:3]
        raise StoreError(
            f"audit tree nodes {missing} are missing: the audit tables were altered; run audit verify"
        )
    return found


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def outcome_of(data: Mapping[str, Any]) -> str | None:
    """The decision outcome an entry records, in any of the shapes writers use: {"outcome": …},
    {"decision": "allow"}, {"decision": {"outcome": …}} or {"decision": {"decision": …}} (wire.py)."""
    decision = data.get("decision")
    if isinstance(decision, str):
        return decision
    nested = _mapping(decision)
    return _text(data.get("outcome")) or _text(nested.get("outcome")) or _text(nested.get("decision"))


def _mapping(value: Any) -> Mapping[str, Any]:
    if type(value) is dict:  # parsed JSON: skip the ABC check, which dominated verify's side-column pass
        return value
    return value if isinstance(value, Mapping) else {}


def _columns(data: Mapping[str, Any]) -> tuple[str | None, ...]:
    """The indexed columns (agent, environment, risk, outcome, action_id) from an entry's data."""
    action = _mapping(data.get("action"))
    decision = _mapping(data.get("decision"))
    classification = _mapping(data.get("classification"))
    return (
        _text(data.get("agent")),
        _text(data.get("environment")) or _text(action.get("environment")),
        _text(data.get("risk")) or _text(classification.get("risk")) or _text(decision.get("risk")),
        outcome_of(data),
        _text(data.get("action_id")),
    )


def _sorted_json(entry: dict[str, Any]) -> bytes:
    """orjson's sorted output of an entry `cleaned` found written alike by both (its RFC 8785 form); one
    nested deeper than orjson goes (254 levels) goes through the rfc8785 package."""
    try:
        return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return canonical_json(entry)


def entry_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON (`interlock.fingerprint.canonical_json`, orjson for the common values)."""
    return canonical_json(value)


def untouched(value: Any, redactor: Redactor) -> bool:
    """True when `cleaned` would give `value` back as it is: plain JSON of the exact built-in types (dict with
    str keys, list, str, bool, None, safe int), no secret-sounding key, no string redaction changes, and
    orjson's sorted output of it is its RFC 8785 form. A check, not a copy: most of a proposal's entry is
    such data (the policy's words, the classification, the decision), and copying it in the walk was most
    of the cost of building the entry. Strings the redactor already found clean are a set lookup."""
    return _untouched(value, redactor.remembered, redactor)


def _untouched(value: Any, clean: set[str], redactor: Redactor) -> bool:
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (key not in _PLAIN_KEYS and not _plain_key(key)):
                return False
            if type(item) is str:  # inline: most leaves are strings
                if not ((item in clean or redactor.safe_text(item) is item) and (item.isascii() or fast_text(item))):
                    return False
            elif not _untouched(item, clean, redactor):
                return False
        return True
    if kind is list:
        for item in value:
            if type(item) is str:
                if not ((item in clean or redactor.safe_text(item) is item) and (item.isascii() or fast_text(item))):
                    return False
            elif not _untouched(item, clean, redactor):
                return False
        return True
    if kind is str:
        return (value in clean or redactor.safe_text(value) is value) and (value.isascii() or fast_text(value))
    if value is None or kind is bool:
        return True
    if kind is int:
        return bool(-MAX_SAFE_INT <= value <= MAX_SAFE_INT)
    return False  # floats, subclasses, models, …: the walk converts them its own way


#: Keys found neither secret-sounding nor astral (`_plain_key`). Bounded: emptied when full, as arbitrary
#: payload keys must not grow it forever; it holds only key names the log writes anyway.
_PLAIN_KEYS: set[str] = set()
_PLAIN_KEYS_MOST = 4096


def _plain_key(key: str) -> bool:
    if secret_key(key) or not fast_key(key):
        return False
    if len(_PLAIN_KEYS) >= _PLAIN_KEYS_MOST:
        _PLAIN_KEYS.clear()
    _PLAIN_KEYS.add(key)
    return True


def cleaned(data: Mapping[str, Any], redactor: Redactor) -> tuple[dict[str, Any], bool]:
    """An entry's data as the log keeps it: `jsonable` (plain JSON values) and then `redactor` (secrets
    masked), exactly as applying the two in turn would; plus whether orjson's sorted output of it is its
    RFC 8785 form (`fingerprint.fast_canonical`). Data that needs nothing (`untouched`) is returned as it
    is, not copied; else one walk builds the copy, in which each top-level object or array that needs
    nothing is again kept as it is. The result may share the caller's objects: the log only reads it."""
    if type(data) is dict and untouched(data, redactor):
        return data, True
    fast = True

    def walk(value: Any) -> Any:  # value is already jsonable: mask and check
        nonlocal fast
        kind = type(value)
        if kind is str:
            out = redactor.safe_text(value)
            if fast and not fast_text(out):
                fast = False
            return out
        if kind is dict:
            return dict(pairs(value))
        if kind is list:
            return [walk(item) for item in value]
        if value is None or kind is bool:
            return value
        if kind is int:
            if fast and not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
                fast = False
            return value
        return convert(value)

    def pairs(mapping: Mapping[Any, Any], at_top: bool = False) -> Iterator[tuple[str, Any]]:
        nonlocal fast
        for raw, item in mapping.items():
            key = raw if type(raw) is str else str(raw)
            if fast and not fast_key(key):
                fast = False
            if secret_key(key):
                plain = jsonable(item)
                yield key, MASK if plain not in (None, "") else walk(plain)
            elif at_top and (type(item) is dict or type(item) is list) and untouched(item, redactor):
                yield key, item  # needs nothing: kept, not copied (checked once, never again below)
            else:
                yield key, walk(item)

    def convert(value: Any) -> Any:  # anything else: what jsonable makes of it, then masked
        nonlocal fast
        if isinstance(value, Mapping):
            return dict(pairs(value))
        if isinstance(value, tuple):
            return [walk(item) for item in value]
        plain = jsonable(value)
        if type(plain) in _PLAIN:
            return walk(plain)
        fast = False  # a float, or an object jsonable leaves alone: the rfc8785 package decides
        return redactor(plain)

    return dict(pairs(data, at_top=True)), fast


#: What `cleaned` walks directly; anything else is converted by `jsonable` first.
_PLAIN = frozenset((str, dict, list, int, bool, type(None)))


def jsonable(value: Any) -> Any:
    """Plain JSON values from what callers naturally pass (pydantic models, enums, datetimes,
    tuples, sets, paths, bytes)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give a timezone (UTC)")
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def summarize_output(
    output: bytes | str, limit: int = 2_000, redactor: Redactor | None = None, *, excerpt: bool = False
) -> dict[str, Any]:
    """What an execution outcome records about an output: its size and the SHA-256 of the full bytes;
    with `excerpt=True` (a target's `audit_output: excerpt`) also a bounded, redacted excerpt of the
    head. The full output is never stored, and by default no part of it: the log is permanent."""
    raw = output.encode("utf-8", errors="replace") if isinstance(output, str) else output
    summary: dict[str, Any] = {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    if excerpt:
        # Redact a wider window, then cut: a secret straddling the limit is still recognised whole.
        window = raw[: limit * 2].decode("utf-8", errors="replace")
        summary["excerpt"] = (redactor or Redactor()).text(window)[:limit]
        summary["truncated"] = len(raw) > limit
    return summary
