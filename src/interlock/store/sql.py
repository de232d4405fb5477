"""Small pure helpers on SQL text: placeholder translation and script splitting."""

from __future__ import annotations

import hashlib
import sqlite3


def qmark_to_format(sql: str) -> str:
    """Translate '?' placeholders to psycopg's '%s' and escape literal '%' as '%%'.

    A '?' inside a quoted string ('...'), a quoted identifier ("...") or a '--' comment is left
    alone, so `WHERE note = 'why?'` keeps its question mark. Dollar-quoted strings and block
    comments are not understood: do not put '?' in them (pass the value as a parameter instead).
    """
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == c:
                    if end + 1 < n and sql[end + 1] == c:  # doubled quote = escaped quote
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end + 1
        elif c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end == -1 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif c == "?":
            out.append("%s")
            i += 1
        elif c == "%":
            out.append("%%")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def split_script(script: str) -> list[str]:
    """Split a SQL script into complete statements (sqlite3.complete_statement knows triggers).

    SQLite's executescript() would COMMIT first, breaking the one-transaction-per-migration rule,
    so migrations run statement by statement inside our own transaction instead.
    """
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip().strip(";").strip():
                statements.append(pending.strip())
            pending = ""
    if pending.strip() and not _only_comments(pending):
        statements.append(pending.strip())
    return statements


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_xact_lock from a lock name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
