"""Shared fixtures. `store` runs a test on SQLite and on the real PostgreSQL at 127.0.0.1:5432.

- `store`      a migrated Store, parametrised over sqlite and postgresql (ids: [sqlite], [postgresql])
- `store_url`  the URL of a fresh, migrated database in both flavours (for tests that spawn processes)
- `empty_store_url` the same, not migrated
- `pg_admin`   creates / drops uniquely named PostgreSQL databases (PgAdmin below)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from interlock.store import Store, open_store
from interlock.testing import LiveServer, live_server

PG_HOST = os.environ.get("INTERLOCK_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("INTERLOCK_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("INTERLOCK_TEST_PG_USER", "postgres")

DIALECTS = ["sqlite", "postgresql"]
EXAMPLE_POLICY = Path(__file__).parent.parent / "examples" / "policy.yaml"


class PgAdmin:
    """Creates and drops throwaway databases on the test PostgreSQL server (trust auth)."""

    def __init__(self, host: str = PG_HOST, port: int = PG_PORT, user: str = PG_USER) -> None:
        self.host, self.port, self.user = host, port, user

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def execute(self, sql: str) -> None:
        """Run one statement on the `postgres` database outside any transaction."""
        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.encode())

    def create_database(self, prefix: str = "interlock_test") -> str:
        """Create a uniquely named database; returns its name."""
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_admin() -> PgAdmin:
    return PgAdmin()


@pytest.fixture
def pg_database(pg_admin: PgAdmin) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    name = pg_admin.create_database()
    try:
        yield pg_admin.url(name)
    finally:
        pg_admin.drop_database(name)


def _fresh_url(dialect: str, tmp_path: Path, pg_admin: PgAdmin, prefix: str = "interlock_test") -> Iterator[str]:
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'interlock.db'}"
        return
    name = pg_admin.create_database(prefix)
    try:
        yield pg_admin.url(name)
    finally:
        pg_admin.drop_database(name)


#: A fresh store's URL in `dialect` ("sqlite": a file in `tmp_path`; "postgresql": a new database,
#: dropped afterwards), for fixtures that start a server on it.
fresh_url = contextmanager(_fresh_url)


@pytest.fixture(params=DIALECTS)
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path, pg_admin: PgAdmin) -> Iterator[str]:
    """URL of a fresh database with nothing in it (not migrated), in both flavours."""
    yield from _fresh_url(request.param, tmp_path, pg_admin)


@pytest.fixture(params=DIALECTS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path, pg_admin: PgAdmin) -> Iterator[str]:
    """URL of a fresh database with all migrations applied, in both flavours."""
    for url in _fresh_url(request.param, tmp_path, pg_admin):
        with open_store(url) as store:
            store.migrate()
        yield url


@pytest.fixture(params=DIALECTS)
def store(request: pytest.FixtureRequest, tmp_path: Path, pg_admin: PgAdmin) -> Iterator[Store]:
    """A migrated Store on a fresh database, in both flavours; closed (and dropped) afterwards."""
    for url in _fresh_url(request.param, tmp_path, pg_admin):
        opened = open_store(url)
        try:
            opened.migrate()
            yield opened
        finally:
            opened.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`@pytest.mark.platform_impossible(reason=...)` is the only skip CI accepts (scripts/no_skips.py):
    for a test that cannot run on this kind of machine at all. A reason is required."""
    for item in items:
        marker = item.get_closest_marker("platform_impossible")
        if marker is None:
            continue
        reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
        if not reason:
            raise pytest.UsageError(f"{item.nodeid}: platform_impossible needs reason=...")
        if marker.kwargs.get("when", True):
            item.add_marker(pytest.mark.skip(reason=f"platform-impossible: {reason}"))


@pytest.fixture(scope="module", params=DIALECTS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           pg_admin: PgAdmin) -> Iterator[LiveServer]:
    """A real `interlock serve` with examples/policy.yaml on a fresh store, one per test module and
    store flavour (SQLite and PostgreSQL)."""
    tmp = tmp_path_factory.mktemp(f"server-{request.param}")
    with fresh_url(request.param, tmp, pg_admin, "interlock_server") as url, live_server(EXAMPLE_POLICY, url, tmp) as live:
        yield live


@pytest.fixture(scope="module")
def tokens(server: LiveServer) -> dict[str, str]:
    """A token for every agent and human of the example policy, by name."""
    return {name: server.token(kind, name) for kind, name in
            [("agent", "kiro"), ("agent", "reporter"), ("human", "alice"), ("human", "bob"), ("human", "carol"),
             ("human", "dave")]}
