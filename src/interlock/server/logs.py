"""Structured JSON logs: one line per event on stderr, secrets redacted before writing."""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from interlock.audit.redact import Redactor

_logger = logging.getLogger("interlock")
_redactor = Redactor()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {"time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                                "level": record.levelname.lower(), "event": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            body.update(fields)
        return orjson.dumps(_redactor(body)).decode()


def configure_logging(level: int = logging.INFO) -> None:
    if any(isinstance(h.formatter, JsonFormatter) for h in _logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    _logger.addHandler(handler)
    _logger.setLevel(level)
    _logger.propagate = False


def log_event(event: str, **fields: Any) -> None:
    if _logger.isEnabledFor(logging.INFO):
        _logger.info(event, extra={"fields": fields})


def log_request(method: str, path: str, status: int, seconds: float, principal: str | None) -> None:
    """The per-request line. Its fields are Interlock's own (never a body or a header), so it skips the
    redaction walk that `log_event` pays for arbitrary fields.

    On an event loop the line is written with the others of the same loop turn, in one write at the
    start of the next: a write is a system call that releases the GIL, and one per request was the
    largest single cost of the server's loop after the sockets (docs/benchmarks.md). Requests whose
    audit entries one batch made durable finish in the same turn, so their lines share the write."""
    if not _logger.isEnabledFor(logging.INFO):
        return
    line = orjson.dumps({"time": _stamp(), "level": "info", "event": "request", "method": method,
                         "path": path[:200], "status": status, "ms": round(seconds * 1000, 2),
                         "principal": principal}) + b"\n"
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _write([line])
        return
    waiting = _unwritten.get(loop)
    if waiting is None:
        waiting = _unwritten[loop] = []
        loop.call_soon(_flush, loop)
    waiting.append(line)


#: Request lines not yet written, per event loop (each loop touches only its own list, on its thread).
_unwritten: dict[asyncio.AbstractEventLoop, list[bytes]] = {}


def _flush(loop: asyncio.AbstractEventLoop) -> None:
    _write(_unwritten.pop(loop, []))


@atexit.register
def _flush_all() -> None:
    """Lines of a loop that stopped before its next turn are still written."""
    for loop in list(_unwritten):
        _flush(loop)


def _write(lines: list[bytes]) -> None:
    if lines:
        # sys.stderr looked up at each call, not kept from import time: whoever replaced it since (a test
        # runner capturing output, a daemon redirecting it) gets the line, and a closed old stream is not used.
        sys.stderr.write(b"".join(lines).decode())


#: The last second formatted, and its text (one tuple: read and replaced whole, whatever thread logs).
_second: tuple[int, str] = (-1, "")


def _stamp() -> str:
    """`datetime.now(UTC).isoformat(timespec="milliseconds")` with a Z, as `JsonFormatter` writes it; the
    date and time of day formatted once a second (the formatting cost more than the rest of the line)."""
    global _second
    now = time.time()
    second, text = _second
    if second != int(now):
        second = int(now)
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second = (second, text)
    return f"{text}.{int((now - second) * 1000):03d}Z"
