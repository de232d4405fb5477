"""Time for approvals, grants and tokens: an injectable clock and one fixed-width text form.

Every time is stored as RFC 3339 UTC text of one fixed width (`2026-01-02T03:04:05.000006Z`), so the
same string comparison works in SQL on SQLite and PostgreSQL (`expires_at > ?`) and in Python.
"""

from __future__ import annotations

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


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
