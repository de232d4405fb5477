"""What the console's pages show, read from the store: pure of HTTP, so benchmarks and tests call them.

The queue is read in one transaction (pending requests and their votes, each vote believed only when
its audit entry checks out, as the gate does); the review page uses the gate's own `status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from interlock.gate import repo
from interlock.gate.clock import parse_stamp
from interlock.gate.quorum import evaluate, humans_of, ineligible_reason
from interlock.gate.requests import ApprovalRequest, RequestState, RequestStatus, Vote
from interlock.gate.service import Gate, vote_recorded
from interlock.server.ui import render

#: The queue shows at most this many pending requests (newest first); the count says how many there are.
QUEUE_LIMIT = 1000


@dataclass(frozen=True)
class QueueRow:
    id: str
    risk: str
    tags: tuple[str, ...]
    agent: str
    environment: str
    target: str
    kind: str
    summary: str
    action: str
    time_left: str
    still_needs: str
    approvals: int
    mine: str  # what this human may do: "vote", "owner", "voted", ""


def queue(gate: Gate, human: str) -> list[QueueRow]:
    """Pending requests, newest first, with what each still needs."""
    gate.expire_due()
    now = gate.clock()
    humans = humans_of(gate.policy.doc.humans)
    with gate.store.transaction(readonly=True) as tx:
        requests = repo.list_requests(tx, RequestState.pending, limit=QUEUE_LIMIT * 4)
        rows = tx.fetchall(
            "SELECT v.request_id, v.human, v.verdict, v.reason, v.at, v.entry_idx FROM approval_votes v "
            "JOIN approval_requests r ON r.id = v.request_id WHERE r.state = 'pending'")
        votes: dict[str, list[Vote]] = {}
        for r in rows:
            vote = Vote(human=r["human"], verdict=r["verdict"], reason=r["reason"], at=parse_stamp(r["at"]),
                        entry_idx=None if r["entry_idx"] is None else int(r["entry_idx"]))
            if vote_recorded(gate.audit, tx, r["request_id"], vote):
                votes.setdefault(r["request_id"], []).append(vote)
    requests.sort(key=lambda q: (q.created_at, q.id), reverse=True)
    return [_row(q, votes.get(q.id, []), humans, human, now) for q in requests[:QUEUE_LIMIT]]


def _row(req: ApprovalRequest, votes: list[Vote], humans: dict[str, tuple[str, ...]], human: str,
         now: datetime) -> QueueRow:
    approvers = [v.human for v in votes if v.verdict == "approve"]
    quorum = evaluate(req.requirements, humans, req.agent, req.owner, approvers)
    if human in {v.human for v in votes}:
        mine = "voted"
    elif human == req.owner:
        mine = "owner"
    elif ineligible_reason(human, req.requirements, humans, req.agent, req.owner) is None:
        mine = "vote"
    else:
        mine = ""
    return QueueRow(
        id=req.id, risk=req.classification.risk.value, tags=req.classification.tags, agent=req.agent,
        environment=req.action.environment, target=req.action.target or "", kind=req.action.kind.value,
        summary=req.classification.summary, action=render.one_line(req.action.kind.value, req.action.payload),
        time_left=render.time_left(int((req.expires_at - now).total_seconds())),
        still_needs=quorum.describe(), approvals=len(approvers), mine=mine)


@dataclass(frozen=True)
class Ballot:
    """What this human may do on a request, and why not."""

    approve: bool
    deny: bool
    why_not: str


def ballot(status: RequestStatus, human: str, humans: dict[str, tuple[str, ...]]) -> Ballot:
    """Mirrors the gate's checks (the gate still decides: a forged POST meets the same refusals)."""
    req = status.request
    if req.state is not RequestState.pending:
        return Ballot(False, False, f"this request is {req.state.value}"
                      + (f": {req.state_reason}" if req.state_reason else ""))
    if status.seconds_left <= 0:
        return Ballot(False, False, "this request has expired; the agent must propose the action again")
    if any(v.human == human for v in status.votes):
        return Ballot(False, False, "you already voted on this request; one human counts once")
    why = ineligible_reason(human, req.requirements, humans, req.agent, req.owner)
    if why is None:
        return Ballot(True, True, "")
    owner = human == req.owner and human in humans
    return Ballot(False, owner, why + (" (you may still deny it)" if owner else ""))


def review(gate: Gate, status: RequestStatus, human: str) -> dict[str, Any]:
    """The review page's context."""
    req = status.request
    action = req.action
    return {
        "status": status,
        "req": req,
        "action": action,
        "blocks": render.payload_blocks(action.kind.value, action.payload),
        "plan": render.plan_rows(action.payload) if action.kind.value == "terraform" else None,
        "details": req.classification.details,
        "reasons": _reasons(req.classification.details),
        "ballot": ballot(status, human, humans_of(gate.policy.doc.humans)),
        "time_left": render.time_left(status.seconds_left),
        "evidence": req.evidence,
    }


def _reasons(details: dict[str, Any]) -> list[str]:
    """Per-command reasons a classifier gave, when it gave them (shell lines with several commands)."""
    found: list[str] = []
    for key in ("reasons", "commands"):
        value = details.get(key)
        if isinstance(value, list):
            for item in value[:50]:
                if isinstance(item, dict):
                    text = " ".join(f"{k}: {v}" for k, v in item.items() if isinstance(v, str | int | float))
                    found.append(text)
                elif isinstance(item, str):
                    found.append(item)
    return found
