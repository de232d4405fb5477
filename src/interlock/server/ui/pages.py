"""What the console's pages show, read from the store: pure of HTTP, so benchmarks and tests call them.

The queue is read in one transaction (pending requests and their votes, each vote believed only when
its audit entry checks out, as the gate does); the review page uses the gate's own `status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from interlock.audit import AuditLog
from interlock.audit.events import AuditEvent
from interlock.gate.clock import parse_stamp
from interlock.gate.quorum import evaluate, humans_of, ineligible_reason
from interlock.gate.requests import RequestState, RequestStatus, Vote
from interlock.gate.service import Gate, vote_recorded
from interlock.model import ApprovalRequirement
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
    seconds_left: int
    still_needs: str
    mine: str  # what this human may do: "vote", "owner", "voted", ""
    rollout: str = ""  # a rollout's approval: where it runs ("3 targets of group web-fleet")


@dataclass(frozen=True)
class Queue:
    rows: list[QueueRow]
    total: int  # pending requests in all (the page shows the newest QUEUE_LIMIT)


#: What the queue reads of a request: the columns it shows, never the whole model (1,000 rows must
#: render in milliseconds; parsing 1,000 ApprovalRequest models alone took longer than that).
_QUEUE_SQL = (
    "SELECT id, agent, owner, action_json, classification_json, requirements_json, expires_at, rollout_json "
    "FROM approval_requests WHERE state = 'pending' ORDER BY created_at DESC, id DESC LIMIT ?"
)


def queue(gate: Gate, human: str) -> Queue:
    """Pending requests, newest first, with what each still needs and what this human may do."""
    gate.expire_due()
    now = gate.clock()
    humans = humans_of(gate.policy.doc.humans)
    with gate.store.transaction(readonly=True) as tx:
        found = tx.fetchall(_QUEUE_SQL, (QUEUE_LIMIT,))
        total_row = tx.fetchone("SELECT count(*) AS n FROM approval_requests WHERE state = 'pending'")
        rows = tx.fetchall(
            "SELECT v.request_id, v.human, v.verdict, v.reason, v.at, v.entry_idx FROM approval_votes v "
            "JOIN approval_requests r ON r.id = v.request_id WHERE r.state = 'pending'")
        approvers: dict[str, list[str]] = {}
        voters: dict[str, set[str]] = {}
        for r in rows:
            vote = Vote(human=r["human"], verdict=r["verdict"], reason=r["reason"], at=parse_stamp(r["at"]),
                        entry_idx=None if r["entry_idx"] is None else int(r["entry_idx"]))
            if vote_recorded(gate.audit, tx, r["request_id"], vote):  # believed only when its entry checks out
                voters.setdefault(r["request_id"], set()).add(vote.human)
                if vote.verdict == "approve":
                    approvers.setdefault(r["request_id"], []).append(vote.human)
    requirements: dict[str, tuple[ApprovalRequirement, ...]] = {}
    judged: dict[tuple[str, str, str, tuple[str, ...], bool], tuple[str, str]] = {}
    out = []
    for row in found:
        text = row["requirements_json"]
        if text not in requirements:
            requirements[text] = tuple(ApprovalRequirement.model_validate(r) for r in orjson.loads(text))
        mine_voted = human in voters.get(row["id"], ())
        key = (text, row["agent"], row["owner"], tuple(sorted(approvers.get(row["id"], []))), mine_voted)
        if key not in judged:  # requests of one kind share requirements: judge each combination once
            judged[key] = _judge(requirements[text], humans, row["agent"], row["owner"], list(key[3]), human,
                                 mine_voted)
        still_needs, mine = judged[key]
        action, classification = orjson.loads(row["action_json"]), orjson.loads(row["classification_json"])
        left = int((datetime.fromisoformat(row["expires_at"]) - now).total_seconds())
        out.append(QueueRow(
            id=row["id"], risk=classification["risk"], tags=tuple(classification.get("tags", ())),
            agent=row["agent"], environment=action["environment"], target=action.get("target") or "",
            kind=action["kind"], summary=classification["summary"],
            action=render.one_line(action["kind"], action["payload"]), time_left=render.time_left(left),
            seconds_left=left,
            still_needs=still_needs, mine=mine, rollout=_rollout_where(row.get("rollout_json"))))
    return Queue(out, int(total_row["n"]) if total_row else len(out))


def _rollout_where(text: str | None) -> str:
    if not text:
        return ""
    view = orjson.loads(text)
    return f"rollout over {len(view.get('targets', []))} targets of group {view.get('group')}"


def _judge(requirements: tuple[ApprovalRequirement, ...], humans: dict[str, tuple[str, ...]], agent: str,
           owner: str, approvers: list[str], human: str, voted: bool) -> tuple[str, str]:
    quorum = evaluate(requirements, humans, agent, owner, approvers)
    if voted:
        mine = "voted"
    elif human == owner:
        mine = "owner"
    elif ineligible_reason(human, requirements, humans, agent, owner) is None:
        mine = "vote"
    else:
        mine = ""
    return quorum.describe(), mine


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


def version(status: RequestStatus) -> str:
    """Changes whenever what the review page shows of the request's progress changes."""
    return f"{status.request.state.value}:{len(status.votes)}"


def review(gate: Gate, status: RequestStatus, human: str) -> dict[str, Any]:
    """The review page's context."""
    req = status.request
    action = req.action
    return {
        "status": status,
        "version": version(status),
        "req": req,
        "action": action,
        "blocks": render.payload_blocks(action.kind.value, action.payload),
        "plan": render.plan_rows(action.payload) if action.kind.value == "terraform" else None,
        "details": req.classification.details,
        "reasons": _reasons(req.classification.details),
        "ballot": ballot(status, human, humans_of(gate.policy.doc.humans)),
        "time_left": render.time_left(status.seconds_left),
        "evidence": req.evidence,
        **rollout_context(req.rollout),
    }


def rollout_context(view: dict[str, Any] | None) -> dict[str, Any]:
    """A rollout's approval on the review page: targets, steps in words, the rollback highlighted."""
    if not view:
        return {"rollout": None}
    kind = str(view.get("kind", ""))
    return {"rollout": view, "steps": [step_line(s) for s in view.get("steps", [])],
            "rollback_blocks": render.payload_blocks(kind, view.get("rollback", {}).get("payload", {}))}


def step_line(step: dict[str, Any]) -> str:
    """One step as a reviewer reads it (Argo's words kept in brackets)."""
    body = step.get("step", {})
    if "setTargets" in body or "percent" in body:
        how = f"{body['percent']}% [percent]" if "percent" in body else f"{body['setTargets']} [setTargets]"
        return f"wave {step.get('wave')}: change targets up to {step.get('targets')} in all ({how})"
    if "pause" in body:
        duration = body["pause"].get("duration")
        return f"pause {duration} s, then go on" if duration else "pause until a human promotes [pause: {}]"
    analysis = body.get("analysis", {})
    checks = "; ".join(_check_line(c) for c in analysis.get("checks", []))
    return (f"analysis: {checks} — {analysis.get('count', 1)} measurement(s)"
            + (f" every {analysis['interval']} s" if analysis.get("interval") else "")
            + f", failureLimit {analysis.get('failureLimit', 0)}, "
            f"consecutiveErrorLimit {analysis.get('consecutiveErrorLimit', 4)}")


def _check_line(check: dict[str, Any]) -> str:
    probe = next((p for p in ("http", "sql", "prometheus", "shell") if p in check), "?")
    spec = check.get(probe, {})
    what = {"http": spec.get("path") or spec.get("url"), "sql": spec.get("query"),
            "prometheus": spec.get("query"), "shell": " ".join(spec.get("command", []))}.get(probe)
    conditions = ", ".join(f"{k} {check[k]!r}" for k in ("successCondition", "failureCondition") if k in check)
    return f"{check.get('name')} ({probe} {what}{': ' + conditions if conditions else ''})"


def _reasons(details: dict[str, Any]) -> list[dict[str, str]]:
    """Per-command judgements a classifier gave (a shell line of several commands): command, risk, tags,
    reason. Values are shown as text."""
    found: list[dict[str, str]] = []
    commands = details.get("commands")
    if not isinstance(commands, list):
        return found
    for item in commands[:50]:
        if isinstance(item, dict):
            tags = item.get("tags")
            found.append({"command": str(item.get("command", "")), "risk": str(item.get("risk", "")),
                          "tags": ", ".join(str(t) for t in tags) if isinstance(tags, list) else "",
                          "reason": str(item.get("reason", ""))})
    return found


#: How many outcome_unknown actions the queue page lists (newest first).
UNKNOWN_LIMIT = 20


def unknown_outcomes(audit: AuditLog, limit: int = UNKNOWN_LIMIT) -> list[dict[str, Any]]:
    """Actions marked `execution.outcome_unknown` (their replica died while they ran, interlock.recovery)
    and not finished since: a human must check the target. Newest first, from the log."""
    marked = audit.search(event=AuditEvent.EXECUTION_OUTCOME_UNKNOWN.value, limit=limit)
    out = []
    for row in reversed(marked):
        action_id = str(row["data"].get("action_id") or "")
        if action_id and not audit.search(event=AuditEvent.EXECUTION_FINISHED.value, action_id=action_id, limit=1):
            out.append({"action_id": action_id, "time": row["time"], **{k: row["data"].get(k) for k in
                                                                        ("agent", "target", "replica")}})
    return out
