"""The store interface every backend implements: transactions, named locks, migrations."""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

from interlock.store.errors import StoreError
from interlock.store.migrations import Migration, bundled

Dialect = Literal["sqlite", "postgresql"]
Params = Sequence[Any]
Row = dict[str, Any]

_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
"""


_log = logging.getLogger("interlock.store")


class Transaction(abc.ABC):
    """One open database transaction. SQL always uses '?' placeholders, whatever the dialect."""

    dialect: Dialect
    #: The Store this transaction belongs to (set by the store when it opens the transaction).
    store: Store
    _after_commit: list[Callable[[], None]] | None = None

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction has committed (never after a rollback), outside it:
        it may open transactions of its own. Its errors are logged, not raised (the data is committed;
        `store.events` uses this for wake-ups that a poll catches anyway if they are lost)."""
        if self._after_commit is None:
            self._after_commit = []
        self._after_commit.append(callback)

    def run_after_commit(self) -> None:
        """Called by the store after COMMIT and after the transaction is closed on this thread."""
        for callback in self._after_commit or ():
            try:
                callback()
            except Exception:
                _log.exception("an after-commit callback failed")
        self._after_commit = None

    @abc.abstractmethod
    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed (use it for compare-and-set)."""

    def send(self, sql: str, params: Params = ()) -> Callable[[], int]:
        """`execute` for a statement whose row count is read later, if at all: inside `pipelined()` on
        PostgreSQL it goes out with the next statement that needs an answer (one round trip for both),
        and its error is raised there. Returns the function that gives the count (waiting if need be)."""
        changed = self.execute(sql, params)
        return lambda: changed

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        """Send statements without waiting for each answer until one is needed (`fetchone`, `fetchall`,
        `execute`, a `send`'s count): PostgreSQL's pipeline mode, for a run of statements each a round
        trip otherwise. Results are the same; only `send` and `lock` defer. SQLite: nothing changes."""
        yield

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        """Run one statement for each parameter tuple; returns the total rows changed."""

    @abc.abstractmethod
    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row as a dict (column name → value), or None."""

    @abc.abstractmethod
    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """All rows as dicts."""

    @abc.abstractmethod
    def executescript(self, script: str) -> None:
        """Run several ';'-separated statements without parameters (migrations)."""

    @abc.abstractmethod
    def lock(self, name: str) -> None:
        """Serialise a named critical section across threads, processes and replicas until the
        transaction ends (PostgreSQL: pg_advisory_xact_lock; SQLite: BEGIN IMMEDIATE already
        holds the database's only write lock, so this is a no-op)."""


class Store(abc.ABC):
    """A database: SQLite (one file, WAL) or PostgreSQL (pooled). Thread-safe."""

    dialect: Dialect
    url: str  # the URL with any password replaced by '***'

    def __init__(self) -> None:
        self._active = threading.local()
        self._close_hooks: list[Callable[[], None]] = []

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run `callback` when the store closes (background jobs bound to it, e.g. the events listener)."""
        self._close_hooks.append(callback)

    def _run_close_hooks(self) -> None:
        hooks, self._close_hooks = self._close_hooks, []
        for hook in hooks:
            try:
                hook()
            except Exception:
                _log.exception("a store close hook failed")

    @abc.abstractmethod
    def transaction(self, *, readonly: bool = False) -> AbstractContextManager[Transaction]:
        """One atomic transaction: committed when the block ends, rolled back on an exception.
        Transactions do not nest: opening one inside another on the same thread is a StoreError.
        `readonly=True` reads a consistent snapshot without taking the write lock (SQLite: a
        deferred BEGIN, so readers never queue behind the audit writer's fsync; PostgreSQL:
        READ ONLY); writing inside it is an error."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release every connection; the store cannot be used afterwards."""

    def migrate(self, migrations: list[Migration] | None = None) -> list[int]:
        """Apply pending migrations (default: the bundled ones); returns the versions applied.

        Idempotent and safe from several processes at once: each migration runs in its own
        transaction under the "schema_migrations" lock and re-checks whether it is still pending.
        """
        todo = bundled(self.dialect) if migrations is None else migrations
        with self.transaction() as tx:
            tx.lock("schema_migrations")
            tx.executescript(_SCHEMA_MIGRATIONS)
            done = {row["version"] for row in tx.fetchall("SELECT version FROM schema_migrations")}
        applied: list[int] = []
        for migration in todo:
            if migration.version in done:
                continue
            with self.transaction() as tx:
                tx.lock("schema_migrations")
                pending = "SELECT 1 AS x FROM schema_migrations WHERE version = ?"
                if tx.fetchone(pending, (migration.version,)):
                    continue
                try:
                    tx.executescript(migration.sql)
                except StoreError as exc:
                    raise StoreError(
                        f"migration {migration.version:04d}_{migration.name} failed on {self.dialect}: {exc}"
                    ) from exc
                tx.execute(
                    "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, _now()),
                )
            applied.append(migration.version)
        return applied

    def applied_migrations(self) -> list[Row]:
        """Rows of schema_migrations (version, name, applied_at), oldest first."""
        with self.transaction() as tx:
            return tx.fetchall("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _enter_transaction(self) -> None:
        if getattr(self._active, "open", False):
            raise StoreError(
                "a transaction is already open on this thread; transactions do not nest: "
                "do the work inside the outer transaction or after it"
            )
        self._active.open = True

    def _leave_transaction(self) -> None:
        self._active.open = False


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
