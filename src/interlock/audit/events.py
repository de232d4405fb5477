"""Every event Interlock writes to the audit log, in one place. `AuditLog.append` refuses any other
name, so the list here, the code and docs/audit.md (checked by a test) cannot drift apart.
To write a new event: add it here and describe its data in docs/audit.md."""

from __future__ import annotations

from enum import StrEnum


class AuditEvent(StrEnum):
    POLICY_LOADED = "policy.loaded"
    REQUEST_REJECTED = "request.rejected"
    ACTION_PROPOSED = "action.proposed"
    ACTION_PENDING = "action.pending"
    ACTION_APPROVED = "action.approved"
    EXECUTION_STARTED = "execution.started"
    EXECUTION_FINISHED = "execution.finished"
    EXECUTION_REPORTED = "execution.reported"
    EXECUTION_OUTCOME_UNKNOWN = "execution.outcome_unknown"
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_APPROVED = "approval.approved"
    APPROVAL_DENIED = "approval.denied"
    APPROVAL_REFUSED = "approval.refused"
    APPROVAL_EXPIRED = "approval.expired"
    APPROVAL_INVALIDATED = "approval.invalidated"
    APPROVAL_REPINNED = "approval.repinned"
    GRANT_ISSUED = "grant.issued"
    GRANT_CONSUMED = "grant.consumed"
    GRANT_REFUSED = "grant.refused"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    TOKEN_REFUSED = "token.refused"
    WEBHOOK_FAILED = "webhook.failed"
    REHEARSAL_FINISHED = "rehearsal.finished"
    REHEARSAL_REFUSED = "rehearsal.refused"
    GUARD_FROZEN = "guard.frozen"
    GUARD_THAWED = "guard.thawed"
    GUARD_REFUSED = "guard.refused"
    GUARD_TRIPPED = "guard.tripped"
    CONSOLE_SIGNED_IN = "console.signed_in"
    CONSOLE_SIGNED_OUT = "console.signed_out"
    CONSOLE_REFUSED = "console.refused"
    ROLLOUT_PROPOSED = "rollout.proposed"
    ROLLOUT_REFUSED = "rollout.refused"
    ROLLOUT_VOTED = "rollout.voted"
    ROLLOUT_TRANSITION = "rollout.transition"
    ROLLOUT_TARGET = "rollout.target"
    ROLLOUT_MEASUREMENT = "rollout.measurement"
    AUDIT_KEY_ROTATED = "audit.key_rotated"
