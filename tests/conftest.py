"""Shared fixtures. `store` runs a test on SQLite and on the real PostgreSQL at 127.0.0.1:5432.

- `store`      a migrated Store, parametrised over sqlite and postgresql (ids: [sqlite], [postgresql])
- `store_url`  the URL of a fresh, migrated database in both flavours (for tests that spawn processes)
- `empty_store_url` the same, not migrated
- `pg_admin`   creates / drops uniquely named PostgreSQL databases (PgAdmin below)

A migrated database is a copy of one migrated once per test process (PostgreSQL: `CREATE DATABASE …
TEMPLATE`; SQLite: a file copy), and the fixtures drop their PostgreSQL databases on a background thread:
migrating every test's database and waiting for each drop was a third of the suite's time (docs/development.md).
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
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


class _Dropper:
    """Drops databases on one background thread: a test's teardown need not wait for PostgreSQL to
    remove the files. `finish` waits for every drop (end of session) and raises the first failure, so
    no database is left behind silently."""

    def __init__(self, drop: Callable[[str], None]) -> None:
        self.drop, self.names, self.errors = drop, queue.Queue[str | None](), list[BaseException]()
        self.thread = threading.Thread(target=self._run, name="drop-databases", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (name := self.names.get()) is not None:
            try:
                self.drop(name)
            except Exception as exc:  # reported by finish(); the other drops still run
                self.errors.append(exc)

    def finish(self) -> None:
        self.names.put(None)
        self.thread.join()
        if self.errors:
            raise self.errors[0]


class PgAdmin:
    """Creates and drops throwaway databases on the test PostgreSQL server (trust auth)."""

    def __init__(self, host: str = PG_HOST, port: int = PG_PORT, user: str = PG_USER) -> None:
        self.host, self.port, self.user = host, port, user
        self.dropper: _Dropper | None = None

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def execute(self, sql: str) -> None:
        """Run one statement on the `postgres` database outside any transaction."""
        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.encode())

    def create_database(self, prefix: str = "interlock_test", template: str | None = None) -> str:
        """Create a uniquely named database (a copy of `template` if given); returns its name."""
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_later(self, name: str) -> None:
        """Drop `name` in the background (a fixture's teardown: nothing uses the database any more)."""
        if self.dropper is None:
            self.dropper = _Dropper(self.drop_database)
        self.dropper.names.put(name)

    def finish(self) -> None:
        """Wait for the background drops (end of session)."""
        if self.dropper is not None:
            self.dropper.finish()
            self.dropper = None


class _Migrated:
    """The migrated originals this test process copies: one PostgreSQL template database and one
    SQLite file, each migrated on first use. A copy is exactly what `migrate()` on an empty database
    gives (the migrations are deterministic), and the fixtures still call `migrate()` on it."""

    def __init__(self, admin: PgAdmin, folder: Path) -> None:
        self.admin, self.folder = admin, folder
        self.pg_template: str | None = None
        self.sqlite_file: Path | None = None

    def postgresql(self) -> str:
        if self.pg_template is None:
            name = self.admin.create_database("interlock_template")
            with open_store(self.admin.url(name)) as store:  # closed: a template must have no connections
                store.migrate()
            self.pg_template = name
        return self.pg_template

    def sqlite(self) -> Path:
        if self.sqlite_file is None:
            path = self.folder / "migrated.db"
            with open_store(f"sqlite:///{path}") as store:
                store.migrate()
            self.sqlite_file = path
        return self.sqlite_file


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[PgAdmin]:
    admin = PgAdmin()
    yield admin
    admin.finish()


@pytest.fixture(scope="session")
def _migrated(pg_admin: PgAdmin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Migrated]:
    migrated = _Migrated(pg_admin, tmp_path_factory.mktemp("migrated"))
    yield migrated
    if migrated.pg_template is not None:
        pg_admin.drop_later(migrated.pg_template)


@pytest.fixture
def pg_database(pg_admin: PgAdmin) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    name = pg_admin.create_database()
    try:
        yield pg_admin.url(name)
    finally:
        pg_admin.drop_later(name)


def _fresh_url(dialect: str, tmp_path: Path, pg_admin: PgAdmin, prefix: str = "interlock_test",
               migrated: _Migrated | None = None) -> Iterator[str]:
    """`migrated`: start from a copy of the migrated original instead of nothing. The PostgreSQL
    database is dropped in the background afterwards."""
    if dialect == "sqlite":
        path = tmp_path / "interlock.db"
        if migrated is not None:
            shutil.copyfile(migrated.sqlite(), path)  # closed, so the file holds everything (no -wal)
        yield f"sqlite:///{path}"
        return
    name = pg_admin.create_database(prefix, migrated.postgresql() if migrated is not None else None)
    try:
        yield pg_admin.url(name)
    finally:
        pg_admin.drop_later(name)


#: A fresh store's URL in `dialect` ("sqlite": a file in `tmp_path`; "postgresql": a new database,
#: dropped afterwards), for fixtures that start a server on it.
fresh_url = contextmanager(_fresh_url)


@pytest.fixture(params=DIALECTS)
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path, pg_admin: PgAdmin) -> Iterator[str]:
    """URL of a fresh database with nothing in it (not migrated), in both flavours."""
    yield from _fresh_url(request.param, tmp_path, pg_admin)


@pytest.fixture(params=DIALECTS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path, pg_admin: PgAdmin, _migrated: _Migrated) -> Iterator[str]:
    """URL of a fresh database with all migrations applied, in both flavours."""
    for url in _fresh_url(request.param, tmp_path, pg_admin, migrated=_migrated):
        with open_store(url) as store:
            store.migrate()
        yield url


@pytest.fixture(params=DIALECTS)
def store(request: pytest.FixtureRequest, tmp_path: Path, pg_admin: PgAdmin, _migrated: _Migrated) -> Iterator[Store]:
    """A migrated Store on a fresh database, in both flavours; closed (and dropped) afterwards."""
    for url in _fresh_url(request.param, tmp_path, pg_admin, migrated=_migrated):
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
           pg_admin: PgAdmin, _migrated: _Migrated) -> Iterator[LiveServer]:
    """A real `interlock serve` with examples/policy.yaml on a fresh store, one per test module and
    store flavour (SQLite and PostgreSQL)."""
    tmp = tmp_path_factory.mktemp(f"server-{request.param}")
    with fresh_url(request.param, tmp, pg_admin, "interlock_server", _migrated) as url, \
            live_server(EXAMPLE_POLICY, url, tmp) as live:
        yield live


@pytest.fixture(scope="module")
def tokens(server: LiveServer) -> dict[str, str]:
    """A token for every agent and human of the example policy, by name."""
    return {name: server.token(kind, name) for kind, name in
            [("agent", "kiro"), ("agent", "reporter"), ("human", "alice"), ("human", "bob"), ("human", "carol"),
             ("human", "dave")]}


@contextmanager
def audit_lock_held(store_url: str) -> Iterator[Callable[[], None]]:
    """Another connection holds the audit lock (and, on SQLite, the write lock) from the start of the block;
    the block gets the function that lets go (it waits for the holder's commit). Let go at the end anyway."""
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        with open_store(store_url) as other, other.transaction() as tx:
            tx.lock("audit")
            tx.execute("INSERT INTO meta(key, value) VALUES ('holder', 'x')")
            started.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert started.wait(10)

    def let_go() -> None:
        release.set()
        holder.join()

    try:
        yield let_go
    finally:
        let_go()
