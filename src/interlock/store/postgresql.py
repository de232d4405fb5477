"""PostgreSQL backend: psycopg 3 with a connection pool, READ COMMITTED transactions.

Callers get correctness under concurrency from `tx.lock(name)` (transaction-scoped advisory
locks, released on commit or rollback, so a crashed process never leaves a lock behind) or from
conditional updates whose rowcount they check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import psycopg.errors
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from interlock.store.base import Params, Row, Store, Transaction
from interlock.store.errors import StoreConflict, StoreError, StoreUnavailable, redact_url, scrub
from interlock.store.sql import lock_key, qmark_to_format

CONNECT_TIMEOUT_S = 5
# A request waiting longer for a connection is answered with a denial (fail closed) rather than held.
ACQUIRE_TIMEOUT_S = 5.0


def wrap_pg_error(exc: psycopg.Error, url: str, where: str) -> StoreError:
    message = f"{where}: {scrub(str(exc).strip(), url)}"
    if isinstance(exc, psycopg.errors.IntegrityError):
        return StoreConflict(message)
    if isinstance(exc, psycopg.OperationalError) and not isinstance(exc, psycopg.errors.TransactionRollback):
        return StoreUnavailable(message)
    return StoreError(message)


class PostgresTransaction(Transaction):
    dialect = "postgresql"

    def __init__(self, cursor: psycopg.Cursor[Row], url: str) -> None:
        self._cursor = cursor
        self._url = url
        self._pipeline: psycopg.Pipeline | None = None

    def _run(self, sql: str, params: Params) -> psycopg.Cursor[Row]:
        # In pipeline mode each statement gets a cursor of its own, so a fetch can only ever answer with
        # its own statement's rows, never an earlier queued statement's that arrived in between.
        cursor = self._cursor if self._pipeline is None else self._cursor.connection.cursor()
        try:
            return cursor.execute(qmark_to_format(sql), tuple(params))
        except psycopg.Error as exc:
            raise wrap_pg_error(exc, self._url, redact_url(self._url)) from exc

    def execute(self, sql: str, params: Params = ()) -> int:
        cursor = self._run(sql, params)
        if self._pipeline is not None:
            self._sync()  # its count is wanted now (a compare-and-set): never a count from before
        return cursor.rowcount

    def _sync(self) -> None:
        assert self._pipeline is not None
        try:
            self._pipeline.sync()
        except psycopg.Error as exc:
            raise wrap_pg_error(exc, self._url, redact_url(self._url)) from exc

    def send(self, sql: str, params: Params = ()) -> Callable[[], int]:
        if self._pipeline is None:
            return super().send(sql, params)
        cursor = self._run(sql, params)  # a cursor of its own: its count is read after later statements

        def count() -> int:
            if self._pipeline is not None:
                self._sync()
            return cursor.rowcount

        return count

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        if self._pipeline is not None:
            yield
            return
        try:
            with self._cursor.connection.pipeline() as pipeline:
                self._pipeline = pipeline
                try:
                    yield
                finally:
                    self._pipeline = None
        except psycopg.Error as exc:
            raise wrap_pg_error(exc, self._url, redact_url(self._url)) from exc

    def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        try:
            self._cursor.executemany(qmark_to_format(sql), [tuple(r) for r in rows])
        except psycopg.Error as exc:
            raise wrap_pg_error(exc, self._url, redact_url(self._url)) from exc
        return self._cursor.rowcount

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        return self._run(sql, params).fetchone()

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return self._run(sql, params).fetchall()

    def executescript(self, script: str) -> None:
        try:
            # Without parameters psycopg sends the text as one simple query: several statements run.
            self._cursor.execute(script.encode())
        except psycopg.Error as exc:
            raise wrap_pg_error(exc, self._url, redact_url(self._url)) from exc

    def lock(self, name: str) -> None:
        self._run("SELECT pg_advisory_xact_lock(?)", (lock_key(name),))


class PostgresStore(Store):
    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int = 10) -> None:
        super().__init__()
        self._raw_url = url
        self.url = redact_url(url)
        # Probe once so a wrong host, port, database or password fails now with the server's reason,
        # instead of as a pool timeout on first use.
        try:
            psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True).close()
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL at {self.url}: {scrub(str(exc).strip(), url)} "
                "(is the server running, the database created and the URL right?)"
            ) from exc
        except psycopg.Error as exc:
            raise StoreError(f"invalid PostgreSQL URL {self.url}: {scrub(str(exc).strip(), url)}") from exc
        kwargs: dict[str, Any] = {"row_factory": dict_row, "connect_timeout": CONNECT_TIMEOUT_S}
        self._pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            url, min_size=1, max_size=max(1, pool_size), kwargs=kwargs, open=True, timeout=ACQUIRE_TIMEOUT_S,
            name="interlock",
        )

    @contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[Transaction]:
        self._enter_transaction()
        try:
            try:
                conn = self._pool.getconn()
            except PoolTimeout as exc:
                raise StoreUnavailable(
                    f"no PostgreSQL connection available from {self.url} within {ACQUIRE_TIMEOUT_S:.0f} s"
                ) from exc
            except psycopg.Error as exc:
                raise wrap_pg_error(exc, self._raw_url, self.url) from exc
            try:
                with conn.cursor() as cursor:
                    try:
                        tx = PostgresTransaction(cursor, self._raw_url)
                        tx.store = self
                        if readonly:
                            tx.execute("SET TRANSACTION READ ONLY")  # through tx: errors become StoreError
                        yield tx
                    except BaseException:
                        _rollback(conn)
                        raise
                try:
                    conn.commit()
                except psycopg.Error as exc:
                    _rollback(conn)
                    raise wrap_pg_error(exc, self._raw_url, f"committing to {self.url}") from exc
            finally:
                self._pool.putconn(conn)
        finally:
            self._leave_transaction()
        tx.run_after_commit()

    def connect(self) -> psycopg.Connection[Row]:
        """A new autocommit connection outside the pool, for a long-lived job (the `store.events`
        listener); the caller closes it."""
        try:
            return psycopg.connect(self._raw_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                   row_factory=dict_row)
        except psycopg.Error as exc:
            raise wrap_pg_error(exc, self._raw_url, f"connecting to {self.url}") from exc

    def close(self) -> None:
        self._run_close_hooks()
        self._pool.close()


def _rollback(conn: psycopg.Connection[Row]) -> None:
    # A broken connection is discarded by the pool; the original error is what matters.
    with suppress(psycopg.Error):
        conn.rollback()
