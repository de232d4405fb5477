"""The store: one small interface, two backends (SQLite default, PostgreSQL). See docs/store.md.

    store = open_store("sqlite:///.interlock/interlock.db")
    store.migrate()
    with store.transaction() as tx:
        tx.execute("INSERT INTO meta(key, value) VALUES (?, ?)", ("k", "v"))

Feature modules own their tables (migrations in interlock/store/migrations/) and their SQL.
"""

from __future__ import annotations

from interlock.store.base import Dialect, Row, Store, Transaction
from interlock.store.errors import StoreConflict, StoreError, StoreUnavailable, redact_url
from interlock.store.migrations import Migration
from interlock.vocabulary import DEFAULT_DB

#: The default store (vocabulary.DEFAULT_DB); `--db` and INTERLOCK_DB choose another.
DEFAULT_URL = DEFAULT_DB


def open_store(url: str = DEFAULT_URL, *, pool_size: int = 10) -> Store:
    """Open the store at `url`.

    - `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` (SQLAlchemy's convention: the
      path is everything after `sqlite:///`), `sqlite:///:memory:` (one private in-memory
      database per Store, shared by its threads; gone on close).
    - `postgresql://user[:password]@host[:port]/dbname[?libpq options]` (also `postgres://`);
      `pool_size` bounds the connections.

    Raises StoreUnavailable when the database cannot be reached or opened, StoreError for a URL
    it does not understand. Messages never contain the password.
    """
    if url.startswith("sqlite:///"):
        from interlock.store.sqlite import SQLiteStore

        path = url.removeprefix("sqlite:///")
        if not path:
            raise StoreError(f"store URL {url!r} has no path: use sqlite:///path/to/interlock.db")
        return SQLiteStore(path, url)
    if url.startswith(("postgresql://", "postgres://")):
        from interlock.store.postgresql import PostgresStore

        return PostgresStore(url, pool_size=pool_size)
    raise StoreError(
        f"unsupported store URL {redact_url(url)!r}: use sqlite:///path/to/interlock.db "
        "or postgresql://user@host:5432/dbname"
    )


__all__ = [
    "DEFAULT_URL",
    "Dialect",
    "Migration",
    "Row",
    "Store",
    "StoreConflict",
    "StoreError",
    "StoreUnavailable",
    "Transaction",
    "open_store",
]
