"""Structured JSON logs: one line per event on stderr, secrets redacted before writing."""

from __future__ import annotations

import logging
import sys
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
    redaction walk that `log_event` pays for arbitrary fields."""
    if _logger.isEnabledFor(logging.INFO):
        line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "level": "info", "event": "request", "method": method, "path": path[:200], "status": status,
                "ms": round(seconds * 1000, 2), "principal": principal}
        # sys.stderr looked up at each call, not kept from import time: whoever replaced it since (a test
        # runner capturing output, a daemon redirecting it) gets the line, and a closed old stream is not used.
        sys.stderr.write(orjson.dumps(line).decode() + "\n")
