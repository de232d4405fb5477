"""The JSON shapes of the public contracts (DESIGN.md §5), shared by the CLI and the HTTP API."""

from __future__ import annotations

from typing import Any

from interlock.model import ApprovalRequirement, Decision


def requirement_json(req: ApprovalRequirement) -> dict[str, Any]:
    return {"count": req.count, "from": list(req.from_groups), "at_least": dict(req.at_least),
            "source": req.source, "text": req.describe()}


def decision_json(decision: Decision, fp: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "decision": decision.value.value,
        "risk": decision.risk.value,
        "tags": list(decision.tags),
        "summary": decision.summary,
        "reasons": list(decision.reasons),
        "rules": list(decision.rules),
        "remedy": list(decision.remedy),
        "approvals": [requirement_json(r) for r in decision.approvals],
        "sandbox": decision.sandbox,
        "policy_version": decision.policy_version,
    }
    if fp is not None:
        body["fingerprint"] = fp
    return body
