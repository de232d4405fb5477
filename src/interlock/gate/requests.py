"""The gate's records: approval requests, the humans' votes, grants, and a request's status."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import Field

from interlock.model import Action, ApprovalRequirement, Classification, Rationale, Strict


class RequestState(enum.StrEnum):
    pending = "pending"
    approved = "approved"  # quorum met; a grant was issued
    denied = "denied"  # one eligible human said no (with a reason)
    expired = "expired"  # nobody decided in time: denied (fail closed)
    invalidated = "invalidated"  # the policy changed under it; the agent must propose again
    consumed = "consumed"  # its grant was used, once


class ApprovalRequest(Strict):
    """Pending review of one fingerprint: exactly this agent, action and policy version."""

    id: str
    agent: str
    owner: str = Field(description="the agent's owner, who never counts as its approver")
    action: Action
    fingerprint: str
    policy_version: str
    classification: Classification
    rules: tuple[str, ...]
    requirements: tuple[ApprovalRequirement, ...]
    eligible: tuple[str, ...] = Field(description="humans whose approval counts toward a requirement")
    state: RequestState
    state_reason: str = ""
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None = None
    evidence: dict[str, Any] | None = Field(
        default=None, description="the rehearsal on the twin that promoted this action (docs/sandbox.md)"
    )
    action_id: str | None = Field(default=None, description="the proposed action that opened this request")
    rollout_id: str | None = Field(default=None, description="the rollout this request approves as a whole "
                                   "(docs/rollouts.md); its fingerprint is the rollout's")
    rollout: dict[str, Any] | None = Field(
        default=None, description="what the rollout's approvers see: targets and their decisions, steps, checks, "
        "rollback, progress deadline")
    entry_idx: int | None = Field(default=None, description="the audit entry that recorded its current terms")

    @property
    def rationale(self) -> Rationale | None:
        return self.action.rationale


class Vote(Strict):
    human: str
    verdict: str  # approve | deny
    reason: str = ""
    at: datetime
    entry_idx: int | None = Field(default=None, description="the audit entry that recorded this vote")


class Grant(Strict):
    """What a satisfied request yields: one use, for one fingerprint, before it expires."""

    id: str
    request_id: str
    agent: str
    fingerprint: str
    policy_version: str
    created_at: datetime
    expires_at: datetime
    consumed_at: datetime | None = None
    issued_idx: int | None = Field(default=None, description="the audit entry that recorded its issue")
    consumed_idx: int | None = Field(default=None, description="the audit entry that recorded its use")


class RequestStatus(Strict):
    """A request as an approver or the waiting agent sees it."""

    request: ApprovalRequest
    votes: tuple[Vote, ...]
    approved_by: tuple[str, ...] = Field(description="humans whose approvals count")
    satisfied: bool
    still_needs: str
    seconds_left: int
    grant: Grant | None = None


def api_json(status: RequestStatus) -> dict[str, object]:
    """A request as `GET /v1/approvals/{id}` shows it (the same shape as the server's answer), used by
    `interlock approvals --format json` whether it talks to the server or to the store."""
    req = status.request
    return {
        "id": req.id,
        "state": req.state.value,
        "agent": req.agent,
        "owner": req.owner,
        "action": req.action.model_dump(mode="json"),
        "fingerprint": req.fingerprint,
        "summary": req.classification.summary,
        "risk": req.classification.risk.value,
        "tags": list(req.classification.tags),
        "rules": list(req.rules),
        "rationale": req.rationale.model_dump() if req.rationale else None,
        "required": [r.describe() for r in req.requirements],
        "eligible": list(req.eligible),
        "approved_by": list(status.approved_by),
        "still_needs": status.still_needs,
        "votes": [
            {"human": v.human, "verdict": v.verdict, "reason": v.reason, "at": v.at.isoformat()} for v in status.votes
        ],
        "seconds_left": status.seconds_left,
        "expires_at": req.expires_at.isoformat(),
        "created_at": req.created_at.isoformat(),
        "reason": req.state_reason,
        "evidence": req.evidence,
        "rollout_id": req.rollout_id,
        "rollout": req.rollout,
    }
