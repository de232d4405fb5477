"""The transparency log: redacted entries in an RFC 6962 Merkle tree with signed checkpoints,
inclusion and consistency proofs, and a standalone verifier. See docs/audit.md."""

from interlock.audit import redact  # the module: redact.redact(value), redact.Redactor
from interlock.audit.events import AuditEvent
from interlock.audit.log import EVENTS, AuditError, AuditLog, InclusionProof, Receipt, summarize_output
from interlock.audit.redact import Redactor
from interlock.audit.verify import Checkpoint, Report

__all__ = [
    "EVENTS",
    "AuditError",
    "AuditEvent",
    "AuditLog",
    "Checkpoint",
    "InclusionProof",
    "Receipt",
    "Redactor",
    "Report",
    "redact",
    "summarize_output",
]
