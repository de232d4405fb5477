"""Time windows for change freezes and working hours: pure parsing and evaluation.

Two forms, written as text or as a mapping:

- recurring: `mon-fri 18:00-08:00 Europe/Berlin` = `{days: mon-fri, from: "18:00", to: "08:00",
  zone: Europe/Berlin}`. Days are `mon`…`sun`, ranges (`mon-fri`, `fri-mon`) and lists
  (`sat,sun`). A range that ends at or before it starts runs over midnight into the next day
  (the day named is the day it starts). `00:00-24:00` is the whole day.
- one-off: `2026-12-24 00:00 to 2026-12-27 08:00 Europe/Berlin` = `{start: "2026-12-24 00:00",
  end: "2026-12-27 08:00", zone: Europe/Berlin}`.

Times are wall-clock times in the named IANA zone (`UTC` is a zone too), so a window follows
daylight-saving changes the way people expect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")
_RECURRING = re.compile(r"^\s*(?P<days>[a-z,\-]+)\s+(?P<start>\d{1,2}:\d\d)\s*-\s*(?P<end>\d{1,2}:\d\d)\s+"
                        r"(?P<zone>\S+)\s*$", re.IGNORECASE)
_ONE_OFF = re.compile(r"^\s*(?P<start>\d{4}-\d\d-\d\d(?:[ T]\d{1,2}:\d\d)?)\s+to\s+"
                      r"(?P<end>\d{4}-\d\d-\d\d(?:[ T]\d{1,2}:\d\d)?)\s+(?P<zone>\S+)\s*$", re.IGNORECASE)
RECURRING_EXAMPLE = "mon-fri 18:00-08:00 Europe/Berlin"
ONE_OFF_EXAMPLE = "2026-12-24 00:00 to 2026-12-27 08:00 Europe/Berlin"


class WindowError(ValueError):
    """A window that does not parse; the message says what to write instead."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise WindowError(f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'") \
            from exc


def _minutes(text: str, what: str) -> int:
    match = _TIME.match(str(text).strip())
    if not match or (match.group(1) == "24" and match.group(2) != "00"):
        raise WindowError(f"{what} {text!r} is not a time of day: write HH:MM, e.g. '08:00' (24:00 ends a day)")
    return int(match.group(1)) * 60 + int(match.group(2))


def parse_days(text: Any) -> frozenset[int]:
    """'mon-fri', 'sat,sun', 'fri-mon', ['mon', 'tue'] → weekday numbers (Monday 0)."""
    parts = [str(p) for p in text] if isinstance(text, list | tuple) else str(text).split(",")
    found: set[int] = set()
    for part in parts:
        word = part.strip().lower()
        if not word:
            continue
        first, _, last = word.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise WindowError(f"{part.strip()!r} is not a day or a day range: use mon…sun, e.g. 'mon-fri' or 'sat,sun'")
        a, b = DAYS.index(first), DAYS.index(last or first)
        found.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    if not found:
        raise WindowError("a window needs at least one day, e.g. 'mon-fri'")
    return frozenset(found)


@dataclass(frozen=True)
class Recurring:
    days: frozenset[int]
    start: int  # minutes after midnight
    end: int  # minutes after midnight; <= start runs past midnight
    zone: str

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(zone(self.zone))
        minute = local.hour * 60 + local.minute
        today, yesterday = local.weekday(), (local.weekday() - 1) % 7
        if self.start < self.end:
            return today in self.days and self.start <= minute < self.end
        # over midnight (or the whole day when start == end == 0 … 24:00 is written as end 1440)
        return (today in self.days and minute >= self.start) or (yesterday in self.days and minute < self.end)

    def starts(self, since: datetime, until: datetime) -> list[datetime]:
        """The moments this window opens between `since` and `until` (for overlap checks)."""
        tz = zone(self.zone)
        day = since.astimezone(tz).date() - timedelta(days=1)
        found: list[datetime] = []
        while True:
            at = datetime.combine(day, time(0), tz) + timedelta(minutes=self.start)
            if at > until:
                return found
            if day.weekday() in self.days and at >= since:
                found.append(at)
            day += timedelta(days=1)

    def describe(self) -> str:
        days = ",".join(DAYS[d] for d in sorted(self.days))
        start, end = f"{self.start // 60:02d}:{self.start % 60:02d}", f"{self.end // 60:02d}:{self.end % 60:02d}"
        return f"{days} {start}-{end} {self.zone}"


@dataclass(frozen=True)
class OneOff:
    start: datetime  # aware
    end: datetime  # aware
    zone: str

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def starts(self, since: datetime, until: datetime) -> list[datetime]:
        return [self.start] if since <= self.start <= until else []

    def describe(self) -> str:
        tz = zone(self.zone)
        fmt = "%Y-%m-%d %H:%M"
        return f"{self.start.astimezone(tz).strftime(fmt)} to {self.end.astimezone(tz).strftime(fmt)} {self.zone}"


Window = Recurring | OneOff


def _local(text: str, tz: ZoneInfo, what: str) -> datetime:
    value = str(text).strip().replace("T", " ")
    try:
        if len(value) <= 10:
            return datetime.combine(date.fromisoformat(value), time(0), tz)
        day, clock = value.split(" ", 1)
        minutes = _minutes(clock, what)
        return datetime.combine(date.fromisoformat(day), time(0), tz) + timedelta(minutes=minutes)
    except ValueError as exc:
        raise WindowError(f"{what} {text!r} is not a date: write YYYY-MM-DD or 'YYYY-MM-DD HH:MM'") from exc


def parse_window(value: Any) -> Window:
    """A window from its text or mapping form; WindowError says what was wrong and how to write it."""
    if isinstance(value, Recurring | OneOff):
        return value
    if isinstance(value, str):
        if match := _ONE_OFF.match(value):
            return _one_off(match.group("start"), match.group("end"), match.group("zone"))
        if match := _RECURRING.match(value):
            return _recurring(match.group("days"), match.group("start"), match.group("end"), match.group("zone"))
        raise WindowError(f"window {value!r} does not parse: write e.g. {RECURRING_EXAMPLE!r} "
                          f"or {ONE_OFF_EXAMPLE!r}")
    if isinstance(value, dict):
        keys = set(value)
        if keys <= {"days", "from", "to", "zone"} and {"days", "from", "to", "zone"} <= keys:
            return _recurring(value["days"], value["from"], value["to"], value["zone"])
        if keys == {"start", "end", "zone"}:
            return _one_off(value["start"], value["end"], value["zone"])
        raise WindowError(f"window keys {sorted(keys)} do not fit: give {{days, from, to, zone}} (recurring) "
                          "or {start, end, zone} (one-off)")
    raise WindowError(f"a window is text like {RECURRING_EXAMPLE!r} or a mapping, not {type(value).__name__}")


def _recurring(days: Any, start: str, end: str, zone_name: str) -> Recurring:
    zone(zone_name)
    first, last = _minutes(start, "start"), _minutes(end, "end")
    if first == 1440:
        raise WindowError("a window cannot start at 24:00: start it at 00:00 of the next day")
    return Recurring(parse_days(days), first, last, str(zone_name))


def _one_off(start: str, end: str, zone_name: str) -> OneOff:
    tz = zone(zone_name)
    first, last = _local(start, tz, "start"), _local(end, tz, "end")
    if last <= first:
        raise WindowError(f"window ends ({end}) before it starts ({start})")
    return OneOff(first.astimezone(UTC), last.astimezone(UTC), str(zone_name))


def steady_until(window: Window, moment: datetime) -> datetime:
    """A moment after `moment` until which `window.contains` keeps its answer at `moment` (not always the
    next edge, never past it): a recurring window is judged by its zone's wall-clock minute, so its answer
    holds until that minute ticks over; a one-off's until its next bound."""
    if isinstance(window, OneOff):
        return window.start if moment < window.start else window.end if moment < window.end else datetime.max.replace(
            tzinfo=UTC)
    local = moment.astimezone(zone(window.zone))
    return moment + timedelta(seconds=60 - local.second, microseconds=-local.microsecond)


class Steady:
    """Which of some windows contain the current moment, remembered until the earliest moment any of them
    could change its answer (`steady_until`): per proposal the guards ask about the same few windows, and
    evaluating each in its zone was most of what a guard review cost. Exact: an answer is reused only for
    moments inside [when it was computed, when it could first change); a clock that goes back (a test's)
    recomputes. One immutable tuple swapped whole, so threads share it without a lock."""

    def __init__(self, windows: tuple[Window, ...]) -> None:
        self.windows = windows
        self._known: tuple[datetime, datetime, tuple[bool, ...]] | None = None

    def contains(self, moment: datetime) -> tuple[bool, ...]:
        known = self._known
        if known is not None and known[0] <= moment < known[1]:
            return known[2]
        answer = tuple(w.contains(moment) for w in self.windows)
        until = min((steady_until(w, moment) for w in self.windows), default=datetime.max.replace(tzinfo=UTC))
        self._known = (moment, until, answer)
        return answer


def overlap(a: Window, b: Window, *, around: datetime | None = None) -> datetime | None:
    """A moment both windows cover, or None. Two intervals overlap iff one opens inside the other,
    so it is enough to look at the openings: recurring windows repeat weekly, so two weeks of
    openings (from `around`, or from the one-off's start) show every case."""
    anchors = [w.start for w in (a, b) if isinstance(w, OneOff)]
    since = min(anchors) - timedelta(days=8) if anchors else (around or datetime(2026, 1, 5, tzinfo=UTC))
    until = max(w.end for w in (a, b) if isinstance(w, OneOff)) if anchors else since + timedelta(days=15)
    until = max(until, since + timedelta(days=15))
    for first, second in ((a, b), (b, a)):
        for moment in first.starts(since, until):
            if second.contains(moment) and first.contains(moment):
                return moment
    return None
