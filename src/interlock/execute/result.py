"""What an execution produced, and the two tools every executor uses to build it safely.

`OutputCapture` digests the whole output while keeping only a bounded prefix (a hostile command can
print forever without growing our memory). `CredentialRedactor` knows the credential values resolved for this
target and replaces them before anything leaves the executor: the result, its excerpt and its error
message are all redacted, so the audit log and the agent never see a secret even when the command
echoes it.
"""

from __future__ import annotations

import enum
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from interlock import secrets

#: The audit entry keeps this much of the output; the caller gets up to the target's max_output_bytes.
EXCERPT_CHARS = 4096
REDACTED = "[REDACTED]"
#: A tail shorter than this that looks like the start of a secret is still trimmed; below it the
#: trimming would eat ordinary text for nothing (one- or two-letter "prefixes" say nothing).
_MIN_PARTIAL = 3


class Status(enum.StrEnum):
    succeeded = "succeeded"  # ran and reported success (exit 0, committed, 2xx)
    failed = "failed"  # ran and reported failure (non-zero exit, SQL error rolled back, 4xx/5xx)
    timeout = "timeout"  # killed at the deadline; for sql the transaction was rolled back
    error = "error"  # never ran, or could not be run: bad payload, missing credential, refused
    cancelled = "cancelled"  # stopped by a freeze while it ran (process tree killed, SQL rolled back)


class Column(BaseModel):
    """One column of a result set: its name and its database type (`int4`, `numeric`, `text[]` …)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: str


class StatementResult(BaseModel):
    """What one SQL statement of the payload did. Reads carry their rows as JSON values: numbers stay
    numbers, NULL is null, json is nested; `numeric` is a string (exact), times are ISO 8601, bytea
    is `\\x…` hex. Kept only in the caller's answer: the audit log records the output digest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str = Field(description="the server's command tag, e.g. `UPDATE 25`, `SELECT 3`, `CREATE TABLE`")
    rows_affected: int | None = Field(default=None, description="rows written, or rows returned by a read")
    columns: list[Column] | None = Field(default=None, description="for statements that return rows")
    rows: list[list[Any]] | None = None
    row_count: int | None = Field(default=None, description="rows the statement returned (all, even if cut)")
    truncated: bool = Field(default=False, description="`rows` holds fewer than row_count (max_output_bytes)")


class ExecutionResult(BaseModel):
    """The outcome of one execution, safe to store, audit and return to the agent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Status
    exit_code: int | None = None
    rows_affected: int | None = Field(
        default=None, description="sql: the sum over statements of rows written, and rows returned by reads"
    )
    statements: list[StatementResult] | None = Field(
        default=None, description="sql: each statement's command tag, count and (for reads) rows as JSON"
    )
    http_status: int | None = Field(default=None, description="http: the response status code")
    duration_ms: int = 0
    output_sha256: str = Field(default=hashlib.sha256(b"").hexdigest(), description="of the full output")
    output_bytes: int = 0
    truncated: bool = Field(default=False, description="the output was longer than max_output_bytes")
    output: str = Field(default="", description="the first max_output_bytes of output, redacted")
    excerpt: str = Field(default="", description=f"the first {EXCERPT_CHARS} characters of output, redacted")
    error: str | None = Field(default=None, description="what went wrong; never contains a secret")

    @property
    def ok(self) -> bool:
        return self.status is Status.succeeded


class ExecutionError(Exception):
    """Why an execution could not start; becomes `status=error`. Messages must not hold secrets
    (they are redacted anyway, but say what and where, not values)."""


def _audit_redact() -> Callable[[Any], Any] | None:
    """The audit module's generic redactor (token patterns etc.), when that module exists."""
    try:
        from interlock.audit import redact as audit_redact  # type: ignore[attr-defined, unused-ignore]
    except ImportError:
        return None
    func = getattr(audit_redact, "redact", None)
    return func if callable(func) else None


class CredentialRedactor:
    """Replaces the credential values of one execution with `[REDACTED]` (then applies the audit
    module's pattern `Redactor`, which knows token shapes but no values)."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def add(self, value: str | None) -> None:
        """Register a secret value, and the encodings in which an echo usually shows it."""
        if not value:
            return
        for form in (value, value.strip(), quote(value, safe=""), json.dumps(value)[1:-1]):
            if form:
                self._values.add(form)

    def resolve(self, ref: str, where: str) -> str:
        """Resolve a credential reference and remember its value; errors name `where` and the
        reference, never a value."""
        try:
            value = secrets.resolve(ref)
        except secrets.SecretError as exc:
            raise ExecutionError(f"{where}: {exc}; set it where the gateway runs, then retry") from None
        self.add(value)
        return value

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(self._values)

    def redact(self, text: str) -> str:
        # Longest first: a secret that contains another must be replaced whole.
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        func = _audit_redact()
        if func is not None:
            try:
                redacted = func(text)
            except Exception:
                return REDACTED
            if isinstance(redacted, str):
                text = redacted
        return text

    def redact_values(self, value: Any) -> Any:
        """A copy of a parsed structure (dicts, lists, strings) with this execution's credential
        values replaced in every string. Only exact values: the generic audit patterns work on text
        and could change what a structure means (the Gateway classifies what this returns)."""
        if isinstance(value, str):
            for secret in sorted(self._values, key=len, reverse=True):
                value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {self.redact_values(k): self.redact_values(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact_values(v) for v in value]
        return value

    def trim_partial(self, text: str) -> str:
        """Drop a tail that may be the beginning of a secret cut off by a size limit."""
        cut = len(text)
        for value in self._values:
            for size in range(min(len(value) - 1, len(text)), _MIN_PARTIAL - 1, -1):
                if text.endswith(value[:size]):
                    cut = min(cut, len(text) - size)
                    break
        return text[:cut]


class OutputCapture:
    """Digests every byte, keeps the first `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self._digest = hashlib.sha256()
        self._kept = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self._digest.update(chunk)
        self.total += len(chunk)
        room = self.limit - len(self._kept)
        if room > 0:
            self._kept += chunk[:room]

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    @property
    def truncated(self) -> bool:
        return self.total > len(self._kept)

    def raw(self) -> bytes:
        """The kept bytes, NOT redacted: only for parsing, never for storing or returning."""
        return bytes(self._kept)

    def text(self, redactor: CredentialRedactor) -> str:
        text = redactor.redact(bytes(self._kept).decode("utf-8", errors="replace"))
        return redactor.trim_partial(text) if self.truncated else text


class Clock:
    """Measures an execution's duration."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def ms(self) -> int:
        return int(self.elapsed() * 1000)


def _redact_statement(statement: StatementResult, redactor: CredentialRedactor) -> StatementResult:
    if statement.rows is None and statement.columns is None:
        return statement
    columns = [Column(name=redactor.redact_values(c.name), type=c.type) for c in statement.columns or []]
    return statement.model_copy(update={"columns": columns, "rows": redactor.redact_values(statement.rows)})


def make_result(
    status: Status,
    redactor: CredentialRedactor,
    clock: Clock,
    capture: OutputCapture | None = None,
    *,
    error: str | None = None,
    exit_code: int | None = None,
    rows_affected: int | None = None,
    http_status: int | None = None,
    statements: list[StatementResult] | None = None,
) -> ExecutionResult:
    """The one place results are built, so the redaction cannot be forgotten."""
    fields: dict[str, Any] = {}
    if capture is not None:
        output = capture.text(redactor)
        fields = {
            "output_sha256": capture.sha256,
            "output_bytes": capture.total,
            "truncated": capture.truncated,
            "output": output,
            # Cut after redacting: a cut cannot expose what is already replaced.
            "excerpt": output[:EXCERPT_CHARS],
        }
    return ExecutionResult(
        status=status,
        exit_code=exit_code,
        rows_affected=rows_affected,
        http_status=http_status,
        statements=[_redact_statement(st, redactor) for st in statements] if statements is not None else None,
        duration_ms=clock.ms(),
        error=redactor.redact(error)[:2000] if error is not None else None,
        **fields,
    )
