"""What the gate and the token store write to the audit log, behind the log's one-method contract.

`interlock.audit.AuditLog.append(event, data)` is durable when it returns. It opens its own store
transaction, so callers append *after* their own transaction has committed, never inside one.
"""

from __future__ import annotations

from typing import Any, Protocol


class AuditSink(Protocol):
    def append(self, event: str, data: dict[str, Any]) -> Any: ...


APPROVAL_REQUESTED = "approval.requested"
APPROVAL_APPROVED = "approval.approved"
APPROVAL_DENIED = "approval.denied"
APPROVAL_REFUSED = "approval.refused"
APPROVAL_EXPIRED = "approval.expired"
APPROVAL_INVALIDATED = "approval.invalidated"
GRANT_ISSUED = "grant.issued"
GRANT_CONSUMED = "grant.consumed"
GRANT_REFUSED = "grant.refused"
TOKEN_CREATED = "token.created"
TOKEN_REVOKED = "token.revoked"
TOKEN_REFUSED = "token.refused"
WEBHOOK_FAILED = "webhook.failed"
