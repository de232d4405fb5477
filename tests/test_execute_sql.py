"""sql executor against a real PostgreSQL database, created and dropped for each test (conftest's
`pg_database`). The DSN carries a password (trust auth ignores it) so redaction is tested on a real
connection string."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from interlock.execute import Status, execute
from interlock.policy.schema import Target
from tests.execute_fixtures import action, assert_no_secret, target

PASSWORD = "pw-Xq93-zeta"
SETUP = "CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance int); " + "".join(
    f"INSERT INTO accounts VALUES ({i}, 'owner{i}', {i * 10}); " for i in range(1, 6)
)


@pytest.fixture
def db(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Target, str]]:
    """(the target, the plain URL to inspect the database with)."""
    dsn = pg_database.replace("postgres@", f"postgres:{PASSWORD}@", 1)
    monkeypatch.setenv("INTERLOCK_TEST_DSN", dsn)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(SETUP.encode())
    yield target("sql", dsn="env:INTERLOCK_TEST_DSN", timeout=5), pg_database


def total(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*), coalesce(sum(balance), 0) FROM accounts").fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


@pytest.mark.parametrize(
    ("sql", "status", "rows", "after", "output_has"),
    [
        (
            "SELECT id, owner FROM accounts ORDER BY id LIMIT 2",
            Status.succeeded,
            0,
            (5, 150),
            "id\towner\n1\towner1\n",
        ),
        ("UPDATE accounts SET balance = 0 WHERE id <= 2", Status.succeeded, 2, (5, 120), "UPDATE 2"),
        (
            "INSERT INTO accounts VALUES (9, 'x', 1); DELETE FROM accounts WHERE id = 1",
            Status.succeeded,
            2,
            (5, 141),
            "DELETE 1",
        ),
        ("DELETE FROM accounts; SELECT 1/0", Status.failed, None, (5, 150), ""),
        (
            "UPDATE accounts SET balance = 1; INSERT INTO accounts VALUES (1, 'dup', 0)",
            Status.failed,
            None,
            (5, 150),
            "",
        ),
        ("DELETE FROM accounts; COMMIT", Status.error, None, (5, 150), ""),
        ("BEGIN; DELETE FROM accounts", Status.error, None, (5, 150), ""),
        ("DELETE FROM accounts; SAVEPOINT s; ROLLBACK TO s", Status.error, None, (5, 150), ""),
        ("SELECT ';COMMIT'; DELETE FROM accounts WHERE id = 5", Status.succeeded, 1, (4, 100), "DELETE 1"),
        ("DELETE FROM accounts; SELECT pg_sleep(30)", Status.timeout, None, (5, 150), ""),
        (
            "SET statement_timeout = 0; DELETE FROM accounts; SELECT pg_sleep(30)",
            Status.timeout,
            None,
            (5, 150),
            "",
        ),
    ],
)
def test_the_payload_is_one_transaction(
    db: tuple[Target, str],
    sql: str,
    status: Status,
    rows: int | None,
    after: tuple[int, int],
    output_has: str,
) -> None:
    chosen, url = db
    started = time.monotonic()
    result = execute(action("sql", {"sql": sql}), chosen, timeout=1)
    assert result.status is status, result.error
    assert result.rows_affected == rows
    assert output_has in result.output
    assert total(url) == after
    assert time.monotonic() - started < 4


@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT '{PASSWORD}' AS echoed",
        f'SELECT * FROM "{PASSWORD}"',  # the error message names the relation
        "SELECT current_setting('application_name'), inet_server_port()",
    ],
)
def test_the_dsn_password_never_reaches_the_result(db: tuple[Target, str], sql: str) -> None:
    result = execute(action("sql", {"sql": sql}), db[0])
    assert result.status in (Status.succeeded, Status.failed)
    assert_no_secret(result, PASSWORD)


def test_a_large_select_is_digested_whole_and_kept_bounded(db: tuple[Target, str]) -> None:
    chosen = db[0].model_copy(update={"max_output_bytes": 4096})
    result = execute(action("sql", {"sql": "SELECT repeat('x', 100) FROM generate_series(1, 20000)"}), chosen)
    assert result.status is Status.succeeded and result.truncated
    assert result.output_bytes > 20000 * 100 and len(result.output) == 4096


@pytest.mark.parametrize(
    ("dsn_env", "fields", "message"),
    [
        (None, {"dsn": "env:INTERLOCK_TEST_UNSET_DSN"}, "'env:INTERLOCK_TEST_UNSET_DSN'"),
        (None, {}, "sql target has no `dsn`"),
        (None, {"dsn": "env:X", "dialect": "mysql"}, "PostgreSQL only"),
        (
            f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/interlock_no_such_db",
            {"dsn": "env:INTERLOCK_TEST_BAD"},
            "cannot connect to the target database (env:INTERLOCK_TEST_BAD)",
        ),
        (
            f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/x",
            {"dsn": "env:INTERLOCK_TEST_BAD"},
            "cannot connect",
        ),
    ],
)
def test_connection_problems_are_clear_errors_without_the_password(
    dsn_env: str | None, fields: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if dsn_env is not None:
        monkeypatch.setenv("INTERLOCK_TEST_BAD", dsn_env)
    result = execute(action("sql", {"sql": "SELECT 1"}), target("sql", **fields))
    assert result.status is Status.error
    assert result.error is not None and message in result.error
    assert_no_secret(result, PASSWORD)
