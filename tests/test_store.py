"""The store on both backends: migrations, transactions, compare-and-set, concurrency, errors."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from interlock.store import Migration, Store, StoreConflict, StoreError, StoreUnavailable, open_store
from interlock.store.errors import redact_url
from interlock.store.migrations import bundled, parse_filenames
from interlock.store.sql import qmark_to_format, split_script

TABLE = [Migration(9001, "things", "CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
                   "consumed_at TEXT);")]


def _things(store: Store) -> None:
    store.migrate(TABLE)


# --- pure helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT ?", "SELECT %s"),
        ("a = ? AND b = ?", "a = %s AND b = %s"),
        ("note = 'why?' AND x = ?", "note = 'why?' AND x = %s"),
        ("note = 'it''s ?' AND x = ?", "note = 'it''s ?' AND x = %s"),
        ('"odd?col" = ?', '"odd?col" = %s'),
        ("name LIKE 'x%' AND y = ?", "name LIKE 'x%%' AND y = %s"),
        ("a % 2 = ?", "a %% 2 = %s"),
        ("x = ? -- really?\n AND y = ?", "x = %s -- really?\n AND y = %s"),
    ],
)
def test_qmark_translation(sql: str, expected: str) -> None:
    assert qmark_to_format(sql) == expected


@pytest.mark.parametrize(
    ("script", "count"),
    [
        ("CREATE TABLE a(x INTEGER);", 1),
        ("CREATE TABLE a(x INTEGER);\nCREATE TABLE b(y TEXT);\n", 2),
        ("-- only a comment\n", 0),
        ("CREATE TABLE a(x INT);\nCREATE TRIGGER t AFTER INSERT ON a BEGIN\n SELECT 1;\n SELECT 2;\nEND;", 2),
    ],
)
def test_split_script(script: str, count: int) -> None:
    assert len(split_script(script)) == count


@pytest.mark.parametrize(
    ("files", "dialect", "expected"),
    [
        ({"0001_core.sql": "a"}, "sqlite", [(1, "core", "a")]),
        ({"0002_log.sqlite.sql": "s", "0002_log.postgresql.sql": "p"}, "postgresql", [(2, "log", "p")]),
        ({"0002_log.sqlite.sql": "s", "0002_log.postgresql.sql": "p"}, "sqlite", [(2, "log", "s")]),
        ({"0003_x.sql": "common", "0003_x.sqlite.sql": "special"}, "sqlite", [(3, "x", "special")]),
        ({"0010_b.sql": "b", "0001_a.sql": "a"}, "sqlite", [(1, "a", "a"), (10, "b", "b")]),
    ],
)
def test_migration_files(files: dict[str, str], dialect: str, expected: list[tuple[int, str, str]]) -> None:
    assert [(m.version, m.name, m.sql) for m in parse_filenames(files, dialect)] == expected


@pytest.mark.parametrize(
    "files",
    [{"1_core.sql": ""}, {"0001_core.txt.sql": ""}, {"0001_a.sql": "", "0001_b.sql": ""}],
)
def test_bad_migration_files(files: dict[str, str]) -> None:
    with pytest.raises(StoreError, match="migration"):
        parse_filenames(files, "sqlite")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://bob:s3cret@db:5432/x", "postgresql://bob:***@db:5432/x"),
        ("postgresql://bob@db/x", "postgresql://bob@db/x"),
        ("sqlite:///a.db", "sqlite:///a.db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# --- both backends ------------------------------------------------------------------------------


def test_migrate_is_idempotent(store: Store) -> None:
    assert store.migrate() == []
    versions = [row["version"] for row in store.applied_migrations()]
    assert versions[0] == 1 and versions == sorted(versions)
    assert store.migrate(TABLE) == [9001]
    assert store.migrate(TABLE) == []


def test_failed_migration_leaves_nothing(store: Store) -> None:
    broken = [Migration(9002, "broken", "CREATE TABLE half (x INTEGER);\nTHIS IS NOT SQL;")]
    with pytest.raises(StoreError, match="9002_broken"):
        store.migrate(broken)
    assert 9002 not in {r["version"] for r in store.applied_migrations()}
    with store.transaction() as tx:
        tx.execute("CREATE TABLE half (x INTEGER)")  # would fail if the first statement had stuck


def test_commit_and_rollback(store: Store) -> None:
    _things(store)
    with store.transaction() as tx:
        tx.execute("INSERT INTO things(id, name) VALUES (?, ?)", (1, "kept"))
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.execute("INSERT INTO things(id, name) VALUES (?, ?)", (2, "lost"))
        raise RuntimeError("boom")
    with store.transaction() as tx:
        assert tx.fetchall("SELECT id, name FROM things ORDER BY id") == [{"id": 1, "name": "kept"}]
        assert tx.fetchone("SELECT name FROM things WHERE id = ?", (2,)) is None


def test_compare_and_set_rowcount(store: Store) -> None:
    _things(store)
    with store.transaction() as tx:
        tx.executemany("INSERT INTO things(id, name) VALUES (?, ?)", [(1, "a"), (2, "b")])
    consume = "UPDATE things SET consumed_at = ? WHERE id = ? AND consumed_at IS NULL"
    outcomes = []
    for _ in range(3):
        with store.transaction() as tx:
            outcomes.append(tx.execute(consume, ("2026-01-01T00:00:00Z", 1)))
    assert outcomes == [1, 0, 0]


@pytest.mark.parametrize("pipelined", [False, True])
def test_sent_statements_answer_their_counts_inside_a_pipeline_or_not(store: Store, pipelined: bool) -> None:
    """`send` defers a statement's answer (PostgreSQL's pipeline mode) but never changes it: counts for
    compare-and-set, rows read after it, the same as `execute` one by one."""
    _things(store)
    with store.transaction() as tx:
        tx.executemany("INSERT INTO things(id, name) VALUES (?, ?)", [(1, "a"), (2, "b")])
    consume = "UPDATE things SET consumed_at = ? WHERE id = ? AND consumed_at IS NULL"
    with store.transaction() as tx, (tx.pipelined() if pipelined else contextlib.nullcontext()):
        first = tx.send(consume, ("t", 1))
        again = tx.send(consume, ("t", 1))  # sees the first: nothing left to consume
        both = tx.execute("UPDATE things SET name = name || '!' WHERE id IN (1, 2)")
        rows = tx.fetchall("SELECT id, name, consumed_at FROM things ORDER BY id")
        assert (first(), again(), both) == (1, 0, 2)
    assert rows == [{"id": 1, "name": "a!", "consumed_at": "t"}, {"id": 2, "name": "b!", "consumed_at": None}]


@pytest.mark.parametrize(("then", "error"), [
    ("fetch", StoreConflict),  # raised by the next statement that waits for an answer
    ("count", StoreConflict),  # or by the count
    ("end", StoreConflict),  # or when the pipeline ends
])
def test_a_sent_statement_that_fails_fails_the_transaction(store: Store, then: str, error: type[Exception]) -> None:
    _things(store)
    with store.transaction() as tx:
        tx.execute("INSERT INTO things(id, name) VALUES (?, ?)", (1, "a"))
    with pytest.raises(error), store.transaction() as tx, tx.pipelined():
        tx.send("INSERT INTO things(id, name) VALUES (?, ?)", (2, "new"))
        count = tx.send("INSERT INTO things(id, name) VALUES (?, ?)", (3, "a"))  # name is UNIQUE
        if then == "fetch":
            tx.fetchone("SELECT 1 AS one")
        elif then == "count":
            count()
    with store.transaction() as tx:
        assert tx.fetchall("SELECT id FROM things ORDER BY id") == [{"id": 1}], "nothing of it committed"


def test_constraint_violation_is_conflict(store: Store) -> None:
    _things(store)
    with store.transaction() as tx:
        tx.execute("INSERT INTO things(id, name) VALUES (?, ?)", (1, "a"))
    with pytest.raises(StoreConflict), store.transaction() as tx:
        tx.execute("INSERT INTO things(id, name) VALUES (?, ?)", (2, "a"))


def test_bad_sql_is_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="no_such_table"), store.transaction() as tx:
        tx.fetchall("SELECT * FROM no_such_table")


def test_transactions_do_not_nest(store: Store) -> None:
    with store.transaction(), pytest.raises(StoreError, match="do not nest"), store.transaction():
        pass
    with store.transaction() as tx:  # the store is still usable
        assert tx.fetchone("SELECT 1 AS one") == {"one": 1}


def test_threads_lose_no_update(store: Store) -> None:
    """Read-modify-write under tx.lock from 8 threads: every increment survives."""
    with store.transaction() as tx:
        tx.execute("INSERT INTO meta(key, value) VALUES ('counter', '0')")

    def bump() -> None:
        for _ in range(25):
            with store.transaction() as tx:
                tx.lock("counter")
                row = tx.fetchone("SELECT value FROM meta WHERE key = 'counter'")
                assert row is not None
                tx.execute("UPDATE meta SET value = ? WHERE key = 'counter'", (str(int(row["value"]) + 1),))

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with store.transaction() as tx:
        assert tx.fetchone("SELECT value FROM meta WHERE key = 'counter'") == {"value": "200"}


# --- several processes --------------------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import sys
    from interlock.store import open_store
    url, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = open_store(url)
    store.migrate()
    for i in range(n):
        with store.transaction() as tx:
            tx.lock("counter")
            row = tx.fetchone("SELECT value FROM meta WHERE key = 'counter'")
            tx.execute("UPDATE meta SET value = ? WHERE key = 'counter'", (str(int(row["value"]) + 1),))
            tx.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (f"{who}-{i}", who))
    store.close()
    """
)


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_concurrent_migrations_from_processes(empty_store_url: str) -> None:
    workers = [_spawn(empty_store_url, f"m{k}", "0") for k in range(4)]
    for w in workers:
        _, err = w.communicate(timeout=60)
        assert w.returncode == 0, err
    with open_store(empty_store_url) as store:
        versions = [r["version"] for r in store.applied_migrations()]
        assert versions == [m.version for m in bundled(store.dialect)]


def test_concurrent_writers_from_processes_lose_nothing(store_url: str) -> None:
    with open_store(store_url) as store, store.transaction() as tx:
        tx.execute("INSERT INTO meta(key, value) VALUES ('counter', '0')")
    processes, per_process = 4, 50
    workers = [_spawn(store_url, f"w{k}", str(per_process)) for k in range(processes)]
    for w in workers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
    with open_store(store_url) as store, store.transaction() as tx:
        counter = tx.fetchone("SELECT value FROM meta WHERE key = 'counter'")
        rows = tx.fetchone("SELECT COUNT(*) AS n FROM meta WHERE key <> 'counter'")
    assert counter == {"value": str(processes * per_process)}
    assert rows is not None and rows["n"] == processes * per_process


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "error", "mentions"),
    [
        ("mysql://root:hunter2@db/x", StoreError, "unsupported store URL"),
        ("sqlite:///", StoreError, "has no path"),
        ("postgresql://postgres:hunter2@127.0.0.1:1/x", StoreUnavailable, "cannot connect"),
        ("postgresql://postgres:hunter2@127.0.0.1:5432/no_such_db", StoreUnavailable, "does not exist"),
        ("postgresql://postgres:hunter2@127.0.0.1:5432/x?sslmode=bogus", StoreError, "invalid"),
    ],
)
def test_bad_url_errors_never_show_the_password(url: str, error: type[StoreError], mentions: str) -> None:
    started = time.monotonic()
    with pytest.raises(error) as caught:
        open_store(url)
    assert time.monotonic() - started < 10
    assert mentions in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_sqlite_unopenable_path_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreUnavailable):
        open_store(f"sqlite:///{blocker / 'sub' / 'x.db'}")


def test_sqlite_file_settings(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'x.db'}") as store, store.transaction() as tx:
        assert tx.fetchone("PRAGMA journal_mode") == {"journal_mode": "wal"}
        assert tx.fetchone("PRAGMA synchronous") == {"synchronous": 2}  # FULL
        assert tx.fetchone("PRAGMA foreign_keys") == {"foreign_keys": 1}


def test_sqlite_memory_is_shared_by_threads() -> None:
    with open_store("sqlite:///:memory:") as store:
        store.migrate()

        def write() -> None:
            with store.transaction() as tx:
                name = threading.current_thread().name
                tx.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (name, "x"))

        threads = [threading.Thread(target=write) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with store.transaction() as tx:
            assert tx.fetchone("SELECT COUNT(*) AS n FROM meta") == {"n": 4}


def test_readonly_transactions_read_while_a_writer_holds_the_lock(store: Store) -> None:
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with store.transaction() as tx:
            tx.lock("audit")
            tx.execute("INSERT INTO meta(key, value) VALUES ('pending', 'x')")
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        with store.transaction(readonly=True) as tx:  # a snapshot: the uncommitted row is invisible
            assert tx.fetchone("SELECT value FROM meta WHERE key = 'pending'") is None
        assert time.monotonic() - started < 1
    finally:
        release.set()
        thread.join()
    with pytest.raises(StoreError), store.transaction(readonly=True) as tx:
        tx.execute("INSERT INTO meta(key, value) VALUES ('nope', 'x')")


def test_writers_of_one_process_take_turns_without_polling_the_database(store: Store) -> None:
    """Writers of one process queue in the store, not in SQLite's busy handler (which polls with sleeps of
    up to 100 ms: a writer behind the audit writer's back-to-back batches waited 0.6 s at p99). Shown
    without a clock: with SQLite's busy timeout at 0, a second writer that met the first one's lock in the
    database would fail at once ("database is locked"); taking turns, both commit. PostgreSQL's writers of
    different rows never wait for each other."""
    holding, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def no_polling() -> None:
        if store.dialect == "sqlite":
            store._connection().execute("PRAGMA busy_timeout = 0")  # type: ignore[attr-defined]

    def first() -> None:
        no_polling()
        with store.transaction() as tx:
            tx.execute("INSERT INTO meta(key, value) VALUES ('first', 'x')")
            holding.set()
            release.wait(10)

    def second() -> None:
        no_polling()
        try:
            with store.transaction() as tx:
                tx.execute("INSERT INTO meta(key, value) VALUES ('second', 'x')")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert holding.wait(10)
    threads[1].start()
    time.sleep(0.2)  # the second writer is waiting for its turn by now (or failed, without it)
    release.set()
    for thread in threads:
        thread.join()
    assert failures == []
    with store.transaction(readonly=True) as tx:
        assert tx.fetchall("SELECT key FROM meta WHERE key IN ('first', 'second') ORDER BY key") == \
            [{"key": "first"}, {"key": "second"}]


# --- SQLite: one process's writers take turns in order ------------------------------------------


def test_sqlite_writer_waits_its_turn_not_sqlites_sleeps(tmp_path: Path) -> None:
    """A thread that wants to write while another commits transaction after transaction (the audit writer of
    a busy server) gets in right after the one in progress, not after SQLite's busy handler has slept
    1, 2, 5 … 100 ms at a time through dozens of them (the unique mix's p99 was 0.5-1.8 s)."""
    with open_store(f"sqlite:///{tmp_path}/turns.db") as store:
        _things(store)
        done = 0
        stop = threading.Event()

        def hog() -> None:
            nonlocal done
            while not stop.is_set():
                with store.transaction() as tx:
                    tx.execute("INSERT INTO things(name) VALUES (?)", (f"hog{done}",))
                done += 1

        hogging = threading.Thread(target=hog)
        hogging.start()
        try:
            waits = []
            for i in range(20):
                asked = done
                with store.transaction() as tx:
                    waits.append(done - asked)
                    tx.execute("INSERT INTO things(name) VALUES (?)", (f"turn{i}",))
                time.sleep(0.002)
        finally:
            stop.set()
            hogging.join()
        assert max(waits) <= 2, waits  # the one in progress, and one that asked just before


@pytest.mark.parametrize(
    ("holds", "waits_s", "outcome"),
    [
        ("nothing", 0.05, "written"),
        ("the turn, then lets go", 1.0, "written"),
        ("the turn past the wait", 0.2, "unavailable"),
    ],
)
def test_sqlite_turn_waits_as_long_as_the_busy_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       holds: str, waits_s: float, outcome: str) -> None:
    import interlock.store.sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_S", waits_s)
    with open_store(f"sqlite:///{tmp_path}/turns.db") as store:
        _things(store)
        held = threading.Event()
        release = threading.Event()

        def holder() -> None:
            with store.transaction():
                held.set()
                release.wait(5)

        thread = threading.Thread(target=holder)
        if holds != "nothing":
            thread.start()
            held.wait(5)
            if holds == "the turn, then lets go":
                threading.Timer(0.1, release.set).start()
        try:
            if outcome == "written":
                with store.transaction() as tx:
                    tx.execute("INSERT INTO things(name) VALUES ('mine')")
            else:
                with pytest.raises(StoreUnavailable, match="another writer in this process"), store.transaction():
                    pass
        finally:
            release.set()
            if thread.is_alive():
                thread.join()


def test_turns_hand_the_lock_to_waiters_in_order() -> None:
    from interlock.store.sqlite import Turns

    turns = Turns()
    assert turns.acquire(1)
    got: list[int] = []
    threads = []
    for i in range(5):
        def wait(i: int = i) -> None:
            assert turns.acquire(5)
            got.append(i)
            turns.release()

        threads.append(threading.Thread(target=wait))
        threads[-1].start()
        deadline = time.monotonic() + 5
        while len(turns._waiting) < i + 1 and time.monotonic() < deadline:  # queued before the next asks
            time.sleep(0.001)
    turns.release()
    for thread in threads:
        thread.join()
    assert got == [0, 1, 2, 3, 4]
    assert turns.acquire(0.01)  # free again
    assert not turns.acquire(0.01)  # held: a second asker times out


_HOLDER = textwrap.dedent("""
    import sys, time
    from interlock.store import open_store
    with open_store(sys.argv[1]) as store, store.transaction() as tx:
        tx.execute("INSERT INTO things(name) VALUES ('child')")
        print("holding", flush=True)
        time.sleep(float(sys.argv[2]))
""")


@pytest.mark.parametrize(
    ("child_holds_s", "wait_s", "outcome"),
    [
        (0.5, 30.0, "written once the child commits"),
        (3.0, 0.3, "unavailable, then written"),
        (30.0, 30.0, "written once the child is killed holding it"),  # the kernel lets go of a dead holder's
    ],
)
def test_sqlite_writers_of_other_processes_take_turns_in_the_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   child_holds_s: float, wait_s: float,
                                                                   outcome: str) -> None:
    """A writer of another process (a second worker, the CLI) holds the writers' turn: this one waits for it
    in the kernel (flock), woken at its release, not in SQLite's busy handler. Shown without a clock: with
    SQLite's busy timeout at 0, meeting the child's lock in the database would fail at once ("database is
    locked"). A wait longer than the busy timeout fails closed (StoreUnavailable), and the abandoned wait
    lets go of the turn when it is answered: the next write goes through."""
    import interlock.store.sqlite as sqlite_store

    url = f"sqlite:///{tmp_path}/turns.db"
    with open_store(url) as store:
        _things(store)
        store._connection().execute("PRAGMA busy_timeout = 0")  # type: ignore[attr-defined]
        monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_S", wait_s)
        child = subprocess.Popen([sys.executable, "-c", _HOLDER, url, str(child_holds_s)], stdout=subprocess.PIPE,
                                 text=True)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "holding"
            if outcome == "written once the child is killed holding it":
                child.kill()
                child.wait(timeout=30)
                with store.transaction() as tx:
                    tx.execute("INSERT INTO things(name) VALUES ('parent')")
                with store.transaction(readonly=True) as tx:
                    assert [r["name"] for r in tx.fetchall("SELECT name FROM things")] == ["parent"]
                return
            if outcome == "written once the child commits":
                with store.transaction() as tx:
                    tx.execute("INSERT INTO things(name) VALUES ('parent')")
            else:
                with pytest.raises(StoreUnavailable, match="another process held the database"), \
                        store.transaction():
                    pass
                assert child.wait(timeout=30) == 0
                monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_S", 30.0)
                with store.transaction() as tx:
                    tx.execute("INSERT INTO things(name) VALUES ('parent')")
            assert child.wait(timeout=30) == 0
        finally:
            child.kill()
            child.wait()
        with store.transaction(readonly=True) as tx:
            names = [r["name"] for r in tx.fetchall("SELECT name FROM things ORDER BY id")]
        assert names == ["child", "parent"]
