"""`parse_stamp` reads the stored form with `fromisoformat` and anything else with `strptime`: the same
times, and the same refusals, as `strptime` alone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from interlock.gate.clock import parse_stamp, stamp


def _strptime(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@pytest.mark.parametrize("text", [
    "2026-01-02T03:04:05.000006Z",  # the stored form
    "1999-12-31T23:59:59.999999Z",
    "2026-01-02T03:04:05.1Z",  # not the stored width: strptime's reading, as before
    "2026-1-2T3:4:5.5Z",
    "2026-13-02T03:04:05.000006Z",  # the stored shape, not a time: refused either way
    "2026-02-30T03:04:05.000006Z",
    "0000-01-02T03:04:05.000006Z",
    "2026-01-02T03:04:05Z",
    "2026-01-02T03:04:05.000006+00:00",
    "2026-01-02 03:04:05.000006Z",
    "٢٠٢٦-01-02T03:04:05.000006Z",  # other scripts' digits
    "",
])
def test_the_same_time_or_the_same_refusal_as_strptime(text: str) -> None:
    try:
        expected = _strptime(text)
    except ValueError:
        with pytest.raises(ValueError):
            parse_stamp(text)
        return
    assert parse_stamp(text) == expected and parse_stamp(text).tzinfo is UTC


def test_a_stored_stamp_reads_back() -> None:
    moment = datetime(2026, 11, 26, 1, 2, 3, 456789, tzinfo=UTC)
    assert parse_stamp(stamp(moment)) == moment
