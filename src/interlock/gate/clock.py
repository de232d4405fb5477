"""Time for approvals, grants and tokens: an injectable clock and one fixed-width text form.

Every time is stored as RFC 3339 UTC text of one fixed width (`2026-01-02T03:04:05.000006Z`), so the
same string comparison works in SQL on SQLite and PostgreSQL (`expires_at > ?`) and in Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    """The stored form of a time; naive datetimes are refused (a clock must say it is UTC)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the clock must return timezone-aware UTC times")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: The stored form exactly (ASCII digits only: `\d` would take other scripts' digits too).
_STORED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def parse_stamp(text: str) -> datetime:
    """The time a stored stamp says. The stored form is read with `fromisoformat` (a few times cheaper than
    `strptime`: an approval-required proposal reads four); anything else takes `strptime`, which accepts and
    refuses exactly what it always did."""
    if _STORED.fullmatch(text):
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
