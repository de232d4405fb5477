"""The per-request log line: its fields and time format, and when it is written (outside an event loop at
once; on a loop, with the other lines of the same turn in one write at the start of the next)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime

import pytest

from interlock.server import logs

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(autouse=True)
def _logging() -> None:
    logs.configure_logging()


def lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_the_line_has_the_request_fields_and_a_millisecond_utc_stamp(capsys: pytest.CaptureFixture[str]) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    logs.log_request("POST", "/v1/actions", 200, 0.012345, "agent:kiro")
    (line,) = lines(capsys.readouterr().err)
    stamp = str(line.pop("time"))
    assert STAMP.match(stamp), stamp
    assert before <= datetime.fromisoformat(stamp) <= datetime.now(UTC)
    assert line == {"level": "info", "event": "request", "method": "POST", "path": "/v1/actions", "status": 200,
                    "ms": 12.35, "principal": "agent:kiro"}


@pytest.mark.parametrize(("at", "expected"), [
    (1764122400.0, "2025-11-26T02:00:00.000Z"),
    (1764122400.9999, "2025-11-26T02:00:00.999Z"),  # truncated like isoformat(timespec="milliseconds")
    (1764122401.5, "2025-11-26T02:00:01.500Z"),  # the next second is formatted anew
    (1764122400.25, "2025-11-26T02:00:00.250Z"),  # and an earlier one again (a clock stepped back)
])
def test_stamps_match_isoformat(monkeypatch: pytest.MonkeyPatch, at: float, expected: str) -> None:
    monkeypatch.setattr(time, "time", lambda: at)
    assert logs._stamp() == expected
    assert datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") == expected


def test_on_a_loop_the_turns_lines_are_written_together_at_the_next_turn(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[list[str]] = []

    async def main() -> None:
        for path in ("/a", "/b", "/c"):
            logs.log_request("GET", path, 200, 0.001, None)
        seen.append([str(line["path"]) for line in lines(capsys.readouterr().err)])  # not yet written
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        seen.append([str(line["path"]) for line in lines(capsys.readouterr().err)])
        logs.log_request("GET", "/last", 200, 0.001, None)  # last: written by the loop's closing turns or at exit

    asyncio.run(main())
    logs._flush_all()  # what atexit does for a loop that stopped first
    seen.append([str(line["path"]) for line in lines(capsys.readouterr().err)])
    assert seen == [[], ["/a", "/b", "/c"], ["/last"]]
