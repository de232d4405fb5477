"""What the gate and the token store write to the audit log, behind the log's one-method contract.

`interlock.audit.AuditLog.append(event, data)` is durable when it returns. It opens its own store
transaction, so callers append *after* their own transaction has committed, never inside one.
"""

from __future__ import annotations

from typing import Any, Protocol

from interlock.audit.events import AuditEvent


class AuditSink(Protocol):
    def append(self, event: str, data: dict[str, Any]) -> Any: ...


class GateAudit(AuditSink, Protocol):
    """What the gate needs of the log: votes and grants are written in the gate's own transaction
    (`append_in`) and believed only when their entry checks out (`entry_at`), issue 10.2."""

    def append_in(self, tx: Any, event: str, data: dict[str, Any]) -> Any: ...

    def append_many_in(self, tx: Any, items: list[tuple[str, dict[str, Any]]]) -> list[Any]: ...

    def entry_at(self, tx: Any, index: int | None) -> tuple[str, dict[str, Any]] | None: ...

    def entries_at(self, tx: Any, indexes: list[int]) -> dict[int, tuple[str, dict[str, Any]] | None]: ...


APPROVAL_REQUESTED = AuditEvent.APPROVAL_REQUESTED
APPROVAL_APPROVED = AuditEvent.APPROVAL_APPROVED
APPROVAL_DENIED = AuditEvent.APPROVAL_DENIED
APPROVAL_REFUSED = AuditEvent.APPROVAL_REFUSED
APPROVAL_EXPIRED = AuditEvent.APPROVAL_EXPIRED
APPROVAL_INVALIDATED = AuditEvent.APPROVAL_INVALIDATED
APPROVAL_REPINNED = AuditEvent.APPROVAL_REPINNED
GRANT_ISSUED = AuditEvent.GRANT_ISSUED
GRANT_CONSUMED = AuditEvent.GRANT_CONSUMED
GRANT_REFUSED = AuditEvent.GRANT_REFUSED
TOKEN_CREATED = AuditEvent.TOKEN_CREATED
TOKEN_REVOKED = AuditEvent.TOKEN_REVOKED
TOKEN_REFUSED = AuditEvent.TOKEN_REFUSED
WEBHOOK_FAILED = AuditEvent.WEBHOOK_FAILED
