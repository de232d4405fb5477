"""Versioned schema migrations: `migrations/NNNN_name.sql` (both dialects) or
`NNNN_name.sqlite.sql` + `NNNN_name.postgresql.sql` (one per dialect).

Numbers are reserved per module (docs/store.md): 0001 core, 0002–0009 audit, 0010–0019 approvals,
grants and tokens, 0020–0029 audit integrity (issue 10).
0030–0039 events, leases and guards; 0040–0049 sandbox evidence.
Each migration runs in its own transaction together with its
`schema_migrations` row, so a migration is either fully applied and recorded, or not at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from interlock.store.errors import StoreError

DIALECTS = ("sqlite", "postgresql")

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(sqlite|postgresql))?\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def parse_filenames(files: dict[str, str], dialect: str) -> list[Migration]:
    """The migrations for one dialect, ordered by version, from {filename: sql}.

    A dialect-specific file wins over a common one of the same version; two different names
    for one version, or a file name that does not fit the pattern, is an error.
    """
    chosen: dict[int, tuple[str, str, bool]] = {}
    for filename, sql in sorted(files.items()):
        match = _NAME.match(filename)
        if match is None:
            raise StoreError(
                f"migration file {filename!r} does not match NNNN_name.sql or NNNN_name.<dialect>.sql: "
                "rename it"
            )
        version, name, only = int(match[1]), match[2], match[3]
        if only is not None and only != dialect:
            continue
        previous = chosen.get(version)
        if previous is not None and previous[0] != name:
            raise StoreError(f"migration {version:04d} has two names: {previous[0]!r} and {name!r}")
        if previous is None or only is not None:
            chosen[version] = (name, sql, only is not None)
    return [Migration(v, name, sql) for v, (name, sql, _) in sorted(chosen.items())]


def bundled(dialect: str) -> list[Migration]:
    """The migrations shipped in interlock/store/migrations/ for one dialect."""
    folder = resources.files("interlock.store").joinpath("migrations")
    files = {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    }
    return parse_filenames(files, dialect)
