"""SQLite backend: one file in WAL mode, fsync on every commit, writers serialised.

Each thread gets its own connection (sqlite3 connections must not be shared mid-transaction);
`:memory:` databases exist per connection, so there all threads share one connection and
transactions take turns under a lock.

Write transactions of one process also take turns under a lock of the store's (`_writing`) before SQLite's
own: SQLite makes a writer that finds the file locked sleep and retry (1, 2, 5, 10 … up to 100 ms at a
time), so a thread that wanted to write while the audit writer was committing batch after batch (a busy
server) slept through them, hundreds of ms to seconds (the hot path's unique mix had a p99 of 0.5-1.8 s,
every request opened for a new approval-required action among them). A thread waiting on the lock is woken
the moment the holder commits. Processes on the same file (`serve --workers N`, the CLI) take turns the same
way on an advisory lock of the file `<db>-writers` (`_Writers`, flock), which the kernel hands on at release;
SQLite's own lock still decides, the turn only spares its sleeps.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

from interlock.store.base import Params, Row, Store, Transaction
from interlock.store.errors import StoreConflict, StoreError, StoreUnavailable
from interlock.store.sql import split_script

BUSY_TIMEOUT_S = 30.0


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def wrap_sqlite_error(exc: sqlite3.Error, where: str) -> StoreError:
    message = f"{where}: {exc}"
    if isinstance(exc, sqlite3.IntegrityError):
        return StoreConflict(message)
    text = str(exc)
    if "unable to open" in text or "disk I/O" in text:
        return StoreUnavailable(message)
    if "locked" in text or "busy" in text:
        held = f"another writer held the database for over {BUSY_TIMEOUT_S:.0f} s"
        return StoreUnavailable(f"{message} ({held})")
    return StoreError(message)


#: A WITH … that writes (data-modifying CTE).
_WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


class SQLiteTransaction(Transaction):
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, where: str, readonly: bool = False) -> None:
        self._conn = conn
        self._where = where
        self._readonly = readonly

    def _refuse_write(self, sql: str) -> None:
        """Read-only transactions refuse writes here, in Python: SQLite would silently upgrade the lock,
        and `PRAGMA query_only` costs two more statements (GIL hand-offs) on the hottest read path."""
        head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if head not in ("SELECT", "WITH") or (head == "WITH" and _WRITES.search(sql)):
            raise StoreError(f"{self._where}: a read-only transaction cannot run {head or 'an empty statement'}")

    def execute(self, sql: str, params: Params = ()) -> int:
        if self._readonly:
            self._refuse_write(sql)
        try:
            return self._conn.execute(sql, tuple(params)).rowcount
        except sqlite3.Error as exc:
            raise wrap_sqlite_error(exc, self._where) from exc

    def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        if self._readonly:
            self._refuse_write(sql)
        try:
            return self._conn.executemany(sql, (tuple(r) for r in rows)).rowcount
        except sqlite3.Error as exc:
            raise wrap_sqlite_error(exc, self._where) from exc

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        if self._readonly:
            self._refuse_write(sql)
        try:
            row: Row | None = self._conn.execute(sql, tuple(params)).fetchone()
            return row
        except sqlite3.Error as exc:
            raise wrap_sqlite_error(exc, self._where) from exc

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        if self._readonly:
            self._refuse_write(sql)
        try:
            rows: list[Row] = self._conn.execute(sql, tuple(params)).fetchall()
            return rows
        except sqlite3.Error as exc:
            raise wrap_sqlite_error(exc, self._where) from exc

    def executescript(self, script: str) -> None:
        for statement in split_script(script):
            self.execute(statement)

    def lock(self, name: str) -> None:
        # BEGIN IMMEDIATE already holds SQLite's single write lock for the whole transaction.
        return None


class Turns:
    """A lock handed to its waiters in the order they asked. `threading.Lock` lets the thread that releases
    it take it straight back before a woken waiter runs: the audit writer, committing batch after batch,
    would keep every other writer of the process waiting (a waiter is only woken, never given the lock)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiting: collections.deque[threading.Lock] = collections.deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        """Take the lock, waiting behind those who asked first; False after `timeout` seconds without it."""
        with self._guard:
            if not self._held:
                self._held = True
                return True
            mine = threading.Lock()
            mine.acquire()
            self._waiting.append(mine)
        if mine.acquire(timeout=timeout):
            return True  # `release` handed it over: held since
        with self._guard:
            try:
                self._waiting.remove(mine)
            except ValueError:
                return True  # handed over as the wait ran out: held all the same
        return False

    def release(self) -> None:
        with self._guard:
            if self._waiting:
                self._waiting.popleft().release()  # straight to the first waiter: it stays held
            else:
                self._held = False


class _Writers:
    """The writers' turn across processes on one SQLite file: an exclusive `flock` of `<db>-writers`, taken
    after this process's own turn (`Turns`: one thread of the process asks at a time) and let go after the
    commit. A waiter blocks in the kernel and is woken at release, where SQLite's busy handler sleeps up to
    100 ms at a time and so kept missing a busy neighbour's gaps: two workers under the bench's unique mix
    had a p99 of 161-251 ms, 53-57 ms taking turns here (docs/benchmarks.md). Only an aid: a process that
    cannot open the file (a read-only folder) writes without it, and SQLite's lock still serialises.

    A blocking `flock` cannot time out, so a contended wait runs on a thread of its own with its own
    descriptor (`_wait`): the caller gives up after `timeout` (as SQLite's busy timeout did), and a wait that
    is answered after that lets go at once by closing its descriptor."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None  # this process's descriptor for the uncontended turn
        self._pid = 0  # the process that opened it: a forked child must not share its parent's lock
        self._held: int | None = None  # the descriptor holding the turn now

    def acquire(self, timeout: float) -> bool:
        """Take the turn (the caller holds this process's turn); False after `timeout` seconds without it."""
        fd = self._fd
        if fd is None or self._pid != os.getpid():
            try:
                fd = self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                return True  # no file to lock: SQLite's lock alone, as before
            self._pid = os.getpid()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held = _wait(self.path, timeout)
            if held is None:
                return False
            self._held = held
            return True
        except OSError:
            return True
        self._held = fd
        return True

    def release(self) -> None:
        fd, self._held = self._held, None
        if fd is None:
            return
        if fd == self._fd:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        else:
            os.close(fd)  # a waiter's own descriptor: closing it lets go


def _wait(path: str, timeout: float) -> int | None:
    """A descriptor of `path` holding its exclusive flock, waited for on a thread for up to `timeout`
    seconds; None when the wait ran out (the thread then lets go as soon as it is answered)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    got = threading.Event()
    guard = threading.Lock()
    abandoned = False

    def wait() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            os.close(fd)
            return
        with guard:
            if abandoned:
                os.close(fd)
                return
            got.set()

    threading.Thread(target=wait, name="interlock-sqlite-turn", daemon=True).start()
    if got.wait(timeout):
        return fd
    with guard:
        if got.is_set():
            return fd  # answered just as the wait ran out: held all the same
        abandoned = True
    return None


class SQLiteStore(Store):
    dialect = "sqlite"

    def __init__(self, path: str, url: str) -> None:
        super().__init__()
        self.url = url
        self.path = path
        self._memory = path == ":memory:"
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._shared_turn = threading.RLock()
        #: This process's write transactions, one at a time, in the order they asked (the module's docstring).
        self._writing = Turns()
        self._writers = _Writers(f"{path}-writers") if path != ":memory:" else None
        self._closed = False
        if not self._memory:
            parent = Path(path).expanduser().parent
            try:
                parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create the folder {parent} for {url}: {exc}") from exc
        self._shared = self._connect() if self._memory else None
        if self._shared is None:
            self._connection()  # open now so a bad path fails here, not on first use

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = _dict_row
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if not self._memory:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
                if mode is None or mode["journal_mode"].lower() != "wal":
                    raise StoreError(f"{self.url}: could not switch to WAL mode (got {mode}); is it on NFS?")
            # FULL: a commit is on disk (fsync'd) before it returns — appends are durable.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            # 64 MiB page cache (default 2 MiB): index inserts into a large log stay in memory.
            conn.execute("PRAGMA cache_size = -65536")
        except sqlite3.Error as exc:
            raise wrap_sqlite_error(exc, f"opening {self.url}") from exc
        with self._guard:
            self._connections.append(conn)
        return conn

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"{self.url}: the store is closed")
        if self._shared is not None:
            return self._shared
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[Transaction]:
        self._enter_transaction()
        try:
            conn = self._connection()
            # A memory store's one connection has its own turn (_shared_turn); readers never wait (WAL snapshots).
            with self._shared_turn if self._memory else nullcontext() if readonly else self._write_turn():
                try:
                    # Readers take a WAL snapshot (deferred BEGIN) and never wait for the write lock;
                    # SQLiteTransaction refuses writes inside one.
                    conn.execute("BEGIN" if readonly and not self._memory else "BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    raise wrap_sqlite_error(exc, f"starting a transaction on {self.url}") from exc
                tx = SQLiteTransaction(conn, self.url, readonly)
                tx.store = self
                try:
                    yield tx
                except BaseException:
                    _rollback(conn)
                    raise
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    _rollback(conn)
                    raise wrap_sqlite_error(exc, f"committing to {self.url}") from exc
        finally:
            self._leave_transaction()
        tx.run_after_commit()

    @contextmanager
    def _write_turn(self) -> Iterator[None]:
        """This process's turn to write (`_writing`), waited for as long as SQLite would wait for the file."""
        if not self._writing.acquire(BUSY_TIMEOUT_S):
            raise StoreUnavailable(f"{self.url}: another writer in this process held the database for over "
                                   f"{BUSY_TIMEOUT_S:.0f} s")
        try:
            writers = self._writers
            if writers is not None and not writers.acquire(BUSY_TIMEOUT_S):
                raise StoreUnavailable(f"{self.url}: another process held the database for over "
                                       f"{BUSY_TIMEOUT_S:.0f} s")
            try:
                yield
            finally:
                if writers is not None:
                    writers.release()
        finally:
            self._writing.release()

    def close(self) -> None:
        self._run_close_hooks()
        self._closed = True
        with self._guard:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        # If even ROLLBACK fails the connection is unusable anyway; the original error matters.
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
