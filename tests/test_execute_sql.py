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
            2,  # a read's count is the rows it returned
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
        ("SELECT ';COMMIT'; DELETE FROM accounts WHERE id = 5", Status.succeeded, 2, (4, 100), "DELETE 1"),
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


# --- results agents can use (issue 11.6): rows as JSON, per statement --------------------------------

TYPED = (
    "SELECT 1::int4 AS i, 2.50::numeric AS n, 1.5::float8 AS f, 'NaN'::float8 AS nan, true AS b, NULL::text AS z, "
    "'{\"k\": [1, null]}'::jsonb AS j, ARRAY[1, 2] AS a, '\\x0aff'::bytea AS by, "
    "'2026-01-02 03:04:05+00'::timestamptz AS t, '2026-01-02'::date AS d"
)


def test_rows_come_back_as_json_with_their_types(db: tuple[Target, str]) -> None:
    result = execute(action("sql", {"sql": TYPED}), db[0])
    assert result.status is Status.succeeded, result.error
    assert result.statements is not None
    (st,) = result.statements
    assert [(c.name, c.type) for c in st.columns or []] == [
        ("i", "int4"), ("n", "numeric"), ("f", "float8"), ("nan", "float8"), ("b", "bool"), ("z", "text"),
        ("j", "jsonb"), ("a", "int4[]"), ("by", "bytea"), ("t", "timestamptz"), ("d", "date"),
    ]
    assert st.rows == [[1, "2.50", 1.5, "nan", True, None, {"k": [1, None]}, [1, 2], "\\x0aff",
                        "2026-01-02T03:04:05+00:00", "2026-01-02"]]
    assert (st.row_count, st.rows_affected, st.truncated, st.command) == (1, 1, False, "SELECT 1")
    assert "i\tn\t" in result.output  # the text rendering is still there


@pytest.mark.parametrize(("sql", "per_statement", "total_rows"), [
    ("UPDATE accounts SET balance = 0 WHERE id <= 2; SELECT id FROM accounts WHERE balance = 0 ORDER BY id",
     [("UPDATE 2", 2, None), ("SELECT 2", 2, [[1], [2]])], 4),
    ("CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 3) RETURNING x",
     [("CREATE TABLE", None, None), ("INSERT 0 3", 3, [[1], [2], [3]])], 3),
    ("DELETE FROM accounts WHERE id > 100; SELECT count(*) AS n FROM accounts",
     [("DELETE 0", 0, None), ("SELECT 1", 1, [[5]])], 1),
])
def test_each_statement_has_its_count_and_rows(db: tuple[Target, str], sql: str,
                                               per_statement: list[tuple[str, int | None, object]],
                                               total_rows: int) -> None:
    result = execute(action("sql", {"sql": sql}), db[0])
    assert result.status is Status.succeeded, result.error
    assert [(st.command, st.rows_affected, st.rows) for st in result.statements or []] == per_statement
    assert result.rows_affected == total_rows


def test_rows_are_cut_at_max_output_bytes_and_flagged(db: tuple[Target, str]) -> None:
    chosen = db[0].model_copy(update={"max_output_bytes": 4096})
    result = execute(action("sql", {"sql": "SELECT g, repeat('x', 50) FROM generate_series(1, 1000) g"}), chosen)
    (st,) = result.statements or []
    assert st.truncated and st.row_count == 1000 and st.rows_affected == 1000
    assert st.rows and 10 < len(st.rows) < 1000 and st.rows[0][0] == 1


def test_rows_never_carry_the_dsn_password(db: tuple[Target, str]) -> None:
    result = execute(action("sql", {"sql": f"SELECT '{PASSWORD}' AS \"{PASSWORD}\""}), db[0])
    (st,) = result.statements or []
    assert PASSWORD not in result.model_dump_json()
    assert st.rows == [["[REDACTED]"]]
