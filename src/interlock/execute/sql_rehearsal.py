"""sql rehearsal on a PostgreSQL twin: the payload in one transaction, with what it did per statement
and the row counts of the tables it writes, before and after; then rolled back (`strategy: rollback`,
the default) or committed on the twin (`strategy: apply`).

A rollback undoes a transaction's writes, not everything a statement can do. Refused for `rollback`,
with the reason, before anything runs:
- statements PostgreSQL cannot run in a transaction (VACUUM, CREATE/DROP DATABASE, … CONCURRENTLY,
  ALTER SYSTEM, tablespaces, subscriptions);
- effects outside the transaction: sequences (nextval, setval), remote calls (dblink…), other sessions
  (pg_terminate_backend, pg_cancel_backend), server files and programs (lo_export, COPY … PROGRAM,
  COPY … TO 'file', pg_file_write), server state (pg_reload_conf, pg_switch_wal).
Code inside strings (`DO $$ … $$`, function bodies) is searched for the same names: a rehearsal must
never reach past the twin. A column default that calls nextval still advances the twin's sequence;
that is the twin's only trace, and it is said in docs/sandbox.md.
"""

from __future__ import annotations

from typing import Any

import psycopg
import sqlglot
from psycopg import pq
from psycopg import sql as pgsql
from sqlglot import exp
from sqlglot.tokenizer_core import TokenType

from interlock.execute.result import (
    Clock,
    CredentialRedactor,
    ExecutionError,
    ExecutionResult,
    OutputCapture,
    Status,
    make_result,
)
from interlock.execute.sql import POSTGRES_DIALECTS, Watchdog, connect, refuse_transaction_control, sql_of
from interlock.model import Action
from interlock.policy.schema import Target

#: Functions whose effects a rollback cannot undo → why.
NOT_UNDOABLE = {
    "nextval": "sequences are not rolled back",
    "setval": "sequences are not rolled back",
    "dblink": "a remote call reaches past the twin",
    "dblink_exec": "a remote call reaches past the twin",
    "dblink_send_query": "a remote call reaches past the twin",
    "dblink_connect": "a remote call reaches past the twin",
    "pg_terminate_backend": "it ends another session",
    "pg_cancel_backend": "it cancels another session's query",
    "lo_export": "it writes a file on the database server",
    "pg_file_write": "it writes a file on the database server",
    "pg_reload_conf": "it reloads the server's configuration",
    "pg_switch_wal": "it changes the server's write-ahead log",
    "pg_rotate_logfile": "it changes the server's log files",
}
#: Statement starts (first words) that cannot run inside a transaction block → why.
NOT_IN_TRANSACTION = {
    ("VACUUM",): "VACUUM cannot run inside a transaction",
    ("CREATE", "DATABASE"): "CREATE DATABASE cannot run inside a transaction",
    ("DROP", "DATABASE"): "DROP DATABASE cannot run inside a transaction",
    ("ALTER", "SYSTEM"): "ALTER SYSTEM cannot run inside a transaction",
    ("CREATE", "TABLESPACE"): "CREATE TABLESPACE cannot run inside a transaction",
    ("DROP", "TABLESPACE"): "DROP TABLESPACE cannot run inside a transaction",
    ("CREATE", "SUBSCRIPTION"): "CREATE SUBSCRIPTION cannot run inside a transaction",
    ("DROP", "SUBSCRIPTION"): "DROP SUBSCRIPTION cannot run inside a transaction",
    ("REINDEX", "DATABASE"): "REINDEX DATABASE cannot run inside a transaction",
    ("REINDEX", "SYSTEM"): "REINDEX SYSTEM cannot run inside a transaction",
    ("ALTER", "SEQUENCE"): "sequences are not rolled back",
}
STRING_TOKENS = {TokenType.STRING, TokenType.HEREDOC_STRING, TokenType.RAW_STRING}


def refusal(sql: str) -> str | None:
    """Why this SQL cannot be rehearsed with `strategy: rollback`, or None."""
    try:
        tokens = sqlglot.tokenize(sql, read="postgres")
    except Exception as exc:
        return f"the SQL cannot be read to check it ({type(exc).__name__})"
    statements: list[list[Any]] = [[]]
    for token in tokens:
        if token.token_type is TokenType.SEMICOLON:
            statements.append([])
        else:
            statements[-1].append(token)
    for words in statements:
        if not words:
            continue
        texts = [t.text.upper() for t in words]
        for start, why in NOT_IN_TRANSACTION.items():
            if tuple(texts[: len(start)]) == start:
                return f"{' '.join(start)}: {why}"
        if "CONCURRENTLY" in texts:
            return "… CONCURRENTLY cannot run inside a transaction"
        if texts[0] == "COPY":
            if "PROGRAM" in texts:
                return "COPY … PROGRAM runs a program on the database server"
            if "TO" in texts and texts.index("TO") + 1 < len(texts) and \
                    words[texts.index("TO") + 1].token_type in STRING_TOKENS:
                return "COPY … TO 'file' writes a file on the database server"
        for i, token in enumerate(words):
            name = token.text.lower()
            if name in NOT_UNDOABLE and i + 1 < len(words) and words[i + 1].token_type is TokenType.L_PAREN:
                return f"{name}(): {NOT_UNDOABLE[name]}"
            if token.token_type in STRING_TOKENS:
                inner = refusal(token.text) if token.text.strip() and token.text != sql else None
                if inner is not None:
                    return f"{inner} (inside a string of code)"
    return None


def written_tables(sql: str) -> list[str]:
    """The tables the statements write (INSERT/UPDATE/DELETE/MERGE/TRUNCATE targets), as SQL names."""
    try:
        parsed = sqlglot.parse(sql, read="postgres")
    except Exception:
        return []
    found: list[str] = []
    for statement in parsed:
        if statement is None:
            continue
        targets: list[Any] = []
        if isinstance(statement, (exp.Insert, exp.Update, exp.Delete, exp.Merge)):
            targets = [statement.this]
        elif isinstance(statement, exp.TruncateTable):
            targets = list(statement.expressions)
        for node in targets:
            table = node if isinstance(node, exp.Table) else node.find(exp.Table) if node is not None else None
            if isinstance(table, exp.Table):
                name = ".".join(part for part in (table.db, table.name) if part)
                if name and name not in found:
                    found.append(name)
    return found


def _counts(cursor: psycopg.Cursor[Any], tables: list[str]) -> dict[str, int | None]:
    counts: dict[str, int | None] = {}
    for name in tables:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
        row = cursor.fetchone()
        if not row or not row[0]:
            counts[name] = None  # does not exist (yet, or any more)
            continue
        ident = pgsql.Identifier(*name.split("."))
        cursor.execute(pgsql.SQL("SELECT count(*) FROM {}").format(ident))
        got = cursor.fetchone()
        counts[name] = int(got[0]) if got else None
    return counts


def _statements(conn: psycopg.Connection[Any], sql: str, output: OutputCapture) -> list[dict[str, Any]]:
    done: list[dict[str, Any]] = []
    with conn.cursor() as cursor:
        cursor.execute(sql.encode())
        while True:
            status = cursor.statusmessage or ""
            output.feed((status + "\n").encode())
            command = status.split(" ", 1)[0].upper()
            done.append({"command": command, "status": status, "rows": max(cursor.rowcount, 0)})
            if cursor.description is not None:
                cursor.fetchall()  # a rehearsal reports counts, not data
            if not cursor.nextset():
                break
    return done


def summary(effects: dict[str, Any]) -> str:
    parts = [f"{s['command']} {s['rows']} row{'s' if s['rows'] != 1 else ''}" for s in effects.get("statements", [])]
    for table, counts in effects.get("tables", {}).items():
        parts.append(f"{table} {counts['before']} -> {counts['after']} rows")
    tail = "rolled back" if effects.get("rolled_back") else "committed on the twin"
    return "; ".join(parts) + f" ({tail})" if parts else f"no statements ({tail})"


def run_rehearsal(action: Action, target: Target, timeout: float, redactor: CredentialRedactor,
                  clock: Clock) -> tuple[ExecutionResult, dict[str, Any]]:
    if target.dialect.lower() not in POSTGRES_DIALECTS:
        raise ExecutionError(f"sql rehearsals run on PostgreSQL only; twin dialect is {target.dialect!r}")
    sql = sql_of(action)
    refuse_transaction_control(sql, target.dialect)
    strategy = target.strategy
    if strategy == "rollback":
        why = refusal(sql)
        if why is not None:
            raise ExecutionError(f"cannot rehearse this with strategy rollback: {why}; a rollback would not undo it. "
                                 "Nothing was run. Use a twin with `strategy: apply` if it may really change")
    tables = written_tables(sql)
    output = OutputCapture(target.max_output_bytes)
    effects: dict[str, Any] = {"strategy": strategy, "statements": [], "tables": {},
                               "rolled_back": strategy == "rollback"}
    conn = connect(target, redactor, timeout)
    watchdog = Watchdog(conn, timeout, clock)
    try:
        with conn:
            watchdog.start()
            try:
                with conn.cursor() as cursor:
                    before = _counts(cursor, tables)
                effects["statements"] = _statements(conn, sql, output)
                if conn.info.transaction_status is not pq.TransactionStatus.INTRANS:
                    conn.rollback()
                    return make_result(Status.error, redactor, clock, output,
                                       error="the payload ended the transaction itself"), effects
                with conn.cursor() as cursor:
                    after = _counts(cursor, tables)
                effects["tables"] = {t: {"before": before[t], "after": after[t]} for t in tables}
                if strategy == "rollback":
                    conn.rollback()
                else:
                    conn.commit()
            except psycopg.Error as exc:
                if not conn.closed:
                    conn.rollback()
                effects["rolled_back"] = True
                if watchdog.fired.is_set() or isinstance(exc, psycopg.errors.QueryCanceled):
                    return make_result(Status.timeout, redactor, clock, output,
                                       error=f"the rehearsal was cancelled after {timeout:g}s; rolled back"), effects
                sqlstate = getattr(exc, "sqlstate", None)
                return make_result(Status.failed, redactor, clock, output,
                                   error=f"{exc} (SQLSTATE {sqlstate}); rolled back".replace("\n", " ")), effects
    finally:
        watchdog.stop()
    rows = sum(s["rows"] for s in effects["statements"] if s["command"] in {"INSERT", "UPDATE", "DELETE", "MERGE"})
    return make_result(Status.succeeded, redactor, clock, output, rows_affected=rows), effects
