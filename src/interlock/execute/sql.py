"""sql: the whole payload in ONE PostgreSQL transaction; all of it commits or none of it does.

Target fields: `dsn` (credential reference to a libpq connection string), `timeout`,
`max_output_bytes`, `dialect` (used to read statement boundaries). The payload may not control the
transaction itself (BEGIN/COMMIT/ROLLBACK/SAVEPOINT…): it would break the all-or-nothing promise the
approval was given under. The deadline is enforced twice: `SET statement_timeout` on the server and
a client-side cancel (the payload could `SET statement_timeout = 0`).
"""

from __future__ import annotations

import datetime
import json
import math
import threading
from typing import Any

import psycopg
import sqlglot
from psycopg import conninfo, pq
from sqlglot.tokenizer_core import TokenType

from interlock.execute.cancel import current as current_cancellation
from interlock.execute.result import (
    Clock,
    Column,
    CredentialRedactor,
    ExecutionError,
    ExecutionResult,
    OutputCapture,
    StatementResult,
    Status,
    make_result,
)
from interlock.model import Action
from interlock.policy.schema import Target

#: Statement starts that control the transaction; refused so the payload stays one transaction.
TRANSACTION_CONTROL = {
    TokenType.BEGIN,
    TokenType.COMMIT,
    TokenType.ROLLBACK,
    TokenType.END,
}
TRANSACTION_WORDS = {"BEGIN", "COMMIT", "ROLLBACK", "START", "END", "ABORT", "SAVEPOINT", "RELEASE"}
#: Commands whose row count is rows written (a read's count is rows returned, counted as fetched).
WRITE_COMMANDS = {"INSERT", "UPDATE", "DELETE", "MERGE", "COPY"}
FETCH_BATCH = 1000
POSTGRES_DIALECTS = {"postgres", "postgresql"}
#: Extra time the client waits beyond the server's statement_timeout before cancelling itself.
CANCEL_SLACK = 0.5


def sql_of(action: Action) -> str:
    sql = action.payload.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise ExecutionError('sql payload needs a non-empty string `sql`, e.g. {"sql": "UPDATE …"}')
    return sql


def refuse_transaction_control(sql: str, dialect: str) -> None:
    try:
        tokens = sqlglot.tokenize(sql, read=dialect)
    except Exception as exc:
        raise ExecutionError(f"cannot read the SQL to find its statements: {type(exc).__name__}") from None
    starts_statement = True
    for token in tokens:
        if token.token_type is TokenType.SEMICOLON:
            starts_statement = True
            continue
        if starts_statement and (token.token_type in TRANSACTION_CONTROL or token.text.upper() in TRANSACTION_WORDS):
            raise ExecutionError(
                f"the sql payload controls the transaction itself ({token.text.upper()}); Interlock runs the "
                "whole payload as one transaction: remove BEGIN/COMMIT/ROLLBACK/SAVEPOINT"
            )
        starts_statement = False


def json_value(value: Any) -> Any:
    """A database value as JSON, its type kept where JSON has one (see StatementResult)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # JSON has no NaN/Infinity
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return str(value)  # Decimal (exact), UUID, interval, inet, ranges …


def _type_name(conn: psycopg.Connection[Any], oid: int) -> str:
    info = conn.adapters.types.get(oid)
    if info is None:
        return f"oid:{oid}"
    return f"{info.name}[]" if getattr(info, "array_oid", None) == oid else info.name


class _RowBudget:
    """The rows returned to the caller share the target's max_output_bytes (JSON size, roughly)."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self, row: list[Any]) -> bool:
        self.left -= len(json.dumps(row, default=str)) + 1
        return self.left >= 0


def _read_rows(cursor: psycopg.Cursor[Any], output: OutputCapture, budget: _RowBudget,
               command: str) -> StatementResult:
    assert cursor.description is not None
    conn = cursor.connection
    columns = [Column(name=col.name, type=_type_name(conn, col.type_code)) for col in cursor.description]
    output.feed(("\t".join(col.name for col in cursor.description) + "\n").encode())
    kept: list[list[Any]] = []
    count = 0
    full = False
    while rows := cursor.fetchmany(FETCH_BATCH):
        count += len(rows)
        text = "".join("\t".join("NULL" if v is None else str(v) for v in row) + "\n" for row in rows)
        output.feed(text.encode("utf-8", errors="replace"))
        for row in rows:
            if full:
                break
            values = [json_value(v) for v in row]
            if budget.take(values):
                kept.append(values)
            else:
                full = True
    return StatementResult(command=command, rows_affected=count, columns=columns, rows=kept, row_count=count,
                           truncated=len(kept) < count)


def _run_statements(conn: psycopg.Connection[Any], sql: str, output: OutputCapture,
                    budget: _RowBudget) -> list[StatementResult]:
    """Execute the payload (simple query protocol: several statements in one go); one result each."""
    results: list[StatementResult] = []
    with conn.cursor() as cursor:
        cursor.execute(sql.encode())
        while True:
            status = cursor.statusmessage or ""
            output.feed((status + "\n").encode())
            if cursor.description is not None:
                results.append(_read_rows(cursor, output, budget, status))
            else:
                written = status.split(" ", 1)[0].upper() in WRITE_COMMANDS and cursor.rowcount >= 0
                results.append(StatementResult(command=status, rows_affected=cursor.rowcount if written else None))
            if not cursor.nextset():
                break
    return results


def total_rows(statements: list[StatementResult]) -> int:
    return sum(st.rows_affected or 0 for st in statements)


def connect(target: Target, redactor: CredentialRedactor, timeout: float) -> psycopg.Connection[Any]:
    if target.dsn is None:
        raise ExecutionError("sql target has no `dsn`: add `dsn: env:NAME` (a libpq connection string reference)")
    dsn = redactor.resolve(target.dsn, "target dsn")
    try:
        password = conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        raise ExecutionError(f"target dsn ({target.dsn}) is not a valid connection string") from None
    redactor.add(str(password) if password else None)
    try:
        return psycopg.connect(
            dsn, connect_timeout=max(1, min(int(timeout), 10)), autocommit=False, application_name="interlock"
        )
    except psycopg.Error as exc:
        raise ExecutionError(f"cannot connect to the target database ({target.dsn}): {exc}") from None


class Watchdog:
    """The time limit of one SQL run (the executor's and the rehearsal's): the server's
    `statement_timeout` for the time left, and a timer that cancels the connection's statement a
    little after it, for a server that does not honour it. `cancel` is also what a freeze calls."""

    def __init__(self, conn: psycopg.Connection[Any], timeout: float, clock: Clock) -> None:
        self.conn = conn
        #: Set once this watchdog (or a freeze through it) cancelled the statement.
        self.fired = threading.Event()
        self.remaining = max(0.001, timeout - clock.elapsed())
        self._timer = threading.Timer(self.remaining + CANCEL_SLACK, self.cancel)

    def cancel(self) -> None:
        self.fired.set()
        self.conn.cancel_safe(timeout=5)

    def start(self) -> None:
        """Inside `with conn:`, before the payload's statements."""
        self.conn.execute(f"SET statement_timeout = {max(1, int(self.remaining * 1000))}".encode())
        self._timer.start()

    def stop(self) -> None:
        self._timer.cancel()


def run(
    action: Action, target: Target | None, timeout: float, redactor: CredentialRedactor, clock: Clock
) -> ExecutionResult:
    assert target is not None
    if target.dialect.lower() not in POSTGRES_DIALECTS:
        raise ExecutionError(
            f"the sql executor speaks PostgreSQL only; target dialect is {target.dialect!r}: use a shell target"
        )
    sql = sql_of(action)
    refuse_transaction_control(sql, target.dialect)
    output = OutputCapture(target.max_output_bytes)
    conn = connect(target, redactor, timeout)
    watchdog = Watchdog(conn, timeout, clock)
    stopping = current_cancellation()
    forget = stopping.on_cancel(watchdog.cancel) if stopping is not None else (lambda: None)

    def frozen() -> ExecutionResult | None:
        if stopping is None or not stopping.cancelled:
            return None
        return make_result(Status.cancelled, redactor, clock, output,
                           error=f"cancelled: {stopping.reason}; the transaction was rolled back")

    try:
        with conn:
            watchdog.start()
            try:
                statements = _run_statements(conn, sql, output, _RowBudget(target.max_output_bytes))
                if conn.info.transaction_status is not pq.TransactionStatus.INTRANS:
                    conn.rollback()
                    return make_result(
                        Status.error,
                        redactor,
                        clock,
                        output,
                        error="the payload ended the transaction itself",
                    )
                conn.commit()
            except psycopg.errors.QueryCanceled:
                conn.rollback()
                return frozen() or make_result(
                    Status.timeout,
                    redactor,
                    clock,
                    output,
                    error=f"cancelled after {timeout:g}s; the transaction was rolled back",
                )
            except psycopg.Error as exc:
                if watchdog.fired.is_set():
                    return frozen() or make_result(
                        Status.timeout,
                        redactor,
                        clock,
                        output,
                        error=f"cancelled after {timeout:g}s; rolled back",
                    )
                if not conn.closed:
                    conn.rollback()
                sqlstate = getattr(exc, "sqlstate", None)
                return make_result(
                    Status.failed,
                    redactor,
                    clock,
                    output,
                    error=f"{exc} (SQLSTATE {sqlstate}); the whole transaction was rolled back".replace("\n", " "),
                )
    finally:
        forget()
        watchdog.stop()
    return make_result(Status.succeeded, redactor, clock, output, rows_affected=total_rows(statements),
                       statements=statements)
