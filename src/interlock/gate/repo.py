"""The gate's SQL: every statement on approval_requests, approval_votes and grants lives here.

Functions take an open transaction, so the service decides what is atomic. State changes are
compare-and-set (`WHERE state = 'pending'`, `WHERE consumed_at IS NULL`); callers check the row count.
"""

from __future__ import annotations

import json
from typing import Any

from interlock.gate.clock import parse_stamp, stamp
from interlock.gate.requests import ApprovalRequest, Grant, RequestState, Vote
from interlock.model import Action, ApprovalRequirement, Classification
from interlock.store import Row, Transaction
from interlock.store.events import Channel, publish

_REQUEST_COLUMNS = (
    "id, agent, owner, fingerprint, policy_version, action_json, classification_json, rules_json, "
    "requirements_json, eligible_json, state, state_reason, created_at, expires_at, decided_at, evidence_json, "
    "action_id, entry_idx, rollout_id, rollout_json"
)
_GRANT_COLUMNS = "id, request_id, agent, fingerprint, policy_version, created_at, expires_at, consumed_at"
_GRANT_READ = _GRANT_COLUMNS + ", issued_idx, consumed_idx"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def insert_request(tx: Transaction, req: ApprovalRequest) -> None:
    tx.execute(
        f"INSERT INTO approval_requests({_REQUEST_COLUMNS}, pending_key) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            req.id,
            req.agent,
            req.owner,
            req.fingerprint,
            req.policy_version,
            req.action.model_dump_json(),
            req.classification.model_dump_json(),
            _dumps(list(req.rules)),
            _dumps([r.model_dump(mode="json") for r in req.requirements]),
            _dumps(list(req.eligible)),
            req.state.value,
            req.state_reason,
            stamp(req.created_at),
            stamp(req.expires_at),
            None,
            _dumps(req.evidence) if req.evidence is not None else None,
            req.action_id,
            req.entry_idx,
            req.rollout_id,
            _dumps(req.rollout) if req.rollout is not None else None,
            req.fingerprint if req.state is RequestState.pending else None,
        ),
    )
    # Open consoles hear of it (the queue updates live); the hint commits with the row or not at all.
    publish(tx, Channel.approvals, {"id": req.id, "op": "opened"})


#: Requests as parsed from their rows, keyed on every column's value: a request is a pure function of its
#: row, and the hot path reads the same pending request for every proposal that joins it (validating its
#: action and classification was most of that read). The request is immutable (its dicts are never
#: mutated, as a cached classification's). Bounded: emptied when full.
_PARSED: dict[tuple[Any, ...], ApprovalRequest] = {}
_PARSED_MOST = 256


def _request(row: Row) -> ApprovalRequest:
    try:
        key = tuple(row.items())
        found = _PARSED.get(key)
    except TypeError:  # a value that does not hash (a driver's JSON type): parse it
        return _parse_request(row)
    if found is None:
        found = _parse_request(row)
        if len(_PARSED) >= _PARSED_MOST:
            _PARSED.clear()
        _PARSED[key] = found
    return found


def _parse_request(row: Row) -> ApprovalRequest:
    return ApprovalRequest(
        id=row["id"],
        agent=row["agent"],
        owner=row["owner"],
        fingerprint=row["fingerprint"],
        policy_version=row["policy_version"],
        action=Action.model_validate_json(row["action_json"]),
        classification=Classification.model_validate_json(row["classification_json"]),
        rules=tuple(json.loads(row["rules_json"])),
        requirements=tuple(
            ApprovalRequirement.model_validate(r) for r in json.loads(row["requirements_json"])
        ),
        eligible=tuple(json.loads(row["eligible_json"])),
        state=RequestState(row["state"]),
        state_reason=row["state_reason"],
        created_at=parse_stamp(row["created_at"]),
        expires_at=parse_stamp(row["expires_at"]),
        decided_at=parse_stamp(row["decided_at"]) if row["decided_at"] else None,
        evidence=json.loads(row["evidence_json"]) if row.get("evidence_json") else None,
        action_id=row["action_id"],
        entry_idx=None if row.get("entry_idx") is None else int(row["entry_idx"]),
        rollout_id=row.get("rollout_id"),
        rollout=json.loads(row["rollout_json"]) if row.get("rollout_json") else None,
    )


def get_request(tx: Transaction, request_id: str) -> ApprovalRequest | None:
    row = tx.fetchone(f"SELECT {_REQUEST_COLUMNS} FROM approval_requests WHERE id = ?", (request_id,))
    return _request(row) if row else None


def pending_for(tx: Transaction, fingerprint: str) -> ApprovalRequest | None:
    row = tx.fetchone(
        f"SELECT {_REQUEST_COLUMNS} FROM approval_requests WHERE pending_key = ?", (fingerprint,)
    )
    return _request(row) if row else None


def latest_for(tx: Transaction, agent: str, fingerprint: str) -> ApprovalRequest | None:
    row = tx.fetchone(
        f"SELECT {_REQUEST_COLUMNS} FROM approval_requests WHERE agent = ? AND fingerprint = ? "
        "ORDER BY created_at DESC, id DESC LIMIT 1",
        (agent, fingerprint),
    )
    return _request(row) if row else None


def list_requests(
    tx: Transaction, state: RequestState | None = None, limit: int = 500
) -> list[ApprovalRequest]:
    if state is None:
        rows = tx.fetchall(
            f"SELECT {_REQUEST_COLUMNS} FROM approval_requests ORDER BY created_at DESC, id LIMIT ?", (limit,)
        )
    else:
        rows = tx.fetchall(
            f"SELECT {_REQUEST_COLUMNS} FROM approval_requests WHERE state = ? "
            "ORDER BY created_at, id LIMIT ?",
            (state.value, limit),
        )
    return [_request(r) for r in rows]


def due_ids(tx: Transaction, now: str) -> list[str]:
    rows = tx.fetchall(
        "SELECT id FROM approval_requests WHERE state = 'pending' AND expires_at <= ? "
        "ORDER BY expires_at, id",
        (now,),
    )
    return [r["id"] for r in rows]


def set_state(
    tx: Transaction,
    request_id: str,
    to: RequestState,
    reason: str,
    at: str,
    expected: RequestState = RequestState.pending,
) -> int:
    """Move a request out of `expected`; 0 rows means someone else moved it first."""
    changed = tx.execute(
        "UPDATE approval_requests SET state = ?, state_reason = ?, decided_at = ?, pending_key = NULL "
        "WHERE id = ? AND state = ?",
        (to.value, reason, at, request_id, expected.value),
    )
    if changed:
        publish(tx, Channel.approvals, {"id": request_id, "op": to.value})
    return changed


def repin(
    tx: Transaction,
    request_id: str,
    fingerprint: str,
    policy_version: str,
    requirements: tuple[ApprovalRequirement, ...],
    eligible: tuple[str, ...],
) -> int:
    changed = tx.execute(
        "UPDATE approval_requests SET fingerprint = ?, pending_key = ?, policy_version = ?, "
        "requirements_json = ?, "
        "eligible_json = ? WHERE id = ? AND state = 'pending'",
        (
            fingerprint,
            fingerprint,
            policy_version,
            _dumps([r.model_dump(mode="json") for r in requirements]),
            _dumps(list(eligible)),
            request_id,
        ),
    )
    if changed:  # the request's fingerprint moved: a remembered join answer for the old one no longer holds
        publish(tx, Channel.approvals, {"id": request_id, "op": "repinned"})
    return changed


def bind_request(tx: Transaction, request_id: str, entry_idx: int) -> None:
    tx.execute("UPDATE approval_requests SET entry_idx = ? WHERE id = ?", (entry_idx, request_id))


def insert_vote(
    tx: Transaction, request_id: str, human: str, token_id: str, verdict: str, reason: str, at: str
) -> None:
    tx.execute(
        "INSERT INTO approval_votes(request_id, human, token_id, verdict, reason, at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (request_id, human, token_id, verdict, reason, at),
    )
    publish(tx, Channel.approvals, {"id": request_id, "op": "vote"})


def votes(tx: Transaction, request_id: str) -> list[Vote]:
    rows = tx.fetchall(
        "SELECT human, verdict, reason, at, entry_idx FROM approval_votes WHERE request_id = ? ORDER BY at, human",
        (request_id,),
    )
    return [
        Vote(human=r["human"], verdict=r["verdict"], reason=r["reason"], at=parse_stamp(r["at"]),
             entry_idx=None if r["entry_idx"] is None else int(r["entry_idx"]))
        for r in rows
    ]


def bind_vote(tx: Transaction, request_id: str, human: str, entry_idx: int) -> None:
    tx.execute("UPDATE approval_votes SET entry_idx = ? WHERE request_id = ? AND human = ?",
               (entry_idx, request_id, human))


def bind_grant(tx: Transaction, grant_id: str, *, issued_idx: int | None = None,
               consumed_idx: int | None = None) -> None:
    if issued_idx is not None:
        tx.execute("UPDATE grants SET issued_idx = ? WHERE id = ?", (issued_idx, grant_id))
    if consumed_idx is not None:
        tx.execute("UPDATE grants SET consumed_idx = ? WHERE id = ?", (consumed_idx, grant_id))


def insert_grant(tx: Transaction, grant: Grant) -> None:
    tx.execute(
        f"INSERT INTO grants({_GRANT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            grant.id,
            grant.request_id,
            grant.agent,
            grant.fingerprint,
            grant.policy_version,
            stamp(grant.created_at),
            stamp(grant.expires_at),
            None,
        ),
    )
    # A usable grant for a fingerprint ends simple joins of its pending request (Gate.joined_status): every
    # grant is issued beside an approvals change today, and this keeps that so whoever issues the next.
    publish(tx, Channel.grants, {"id": grant.id, "request_id": grant.request_id})


def _grant(row: Row) -> Grant:
    return Grant(
        id=row["id"],
        request_id=row["request_id"],
        agent=row["agent"],
        fingerprint=row["fingerprint"],
        policy_version=row["policy_version"],
        created_at=parse_stamp(row["created_at"]),
        expires_at=parse_stamp(row["expires_at"]),
        consumed_at=parse_stamp(row["consumed_at"]) if row["consumed_at"] else None,
        issued_idx=None if row.get("issued_idx") is None else int(row["issued_idx"]),
        consumed_idx=None if row.get("consumed_idx") is None else int(row["consumed_idx"]),
    )


def grant_of(tx: Transaction, request_id: str) -> Grant | None:
    row = tx.fetchone(f"SELECT {_GRANT_READ} FROM grants WHERE request_id = ?", (request_id,))
    return _grant(row) if row else None


def grants_for(tx: Transaction, agent: str, fingerprint: str) -> list[Grant]:
    rows = tx.fetchall(
        f"SELECT {_GRANT_READ} FROM grants WHERE agent = ? AND fingerprint = ? ORDER BY created_at, id",
        (agent, fingerprint),
    )
    return [_grant(r) for r in rows]


def consume(tx: Transaction, grant_id: str, at: str, by: str) -> int:
    """The one atomic step of consumption: 1 = this caller runs the action, 0 = someone already did."""
    return tx.execute(
        "UPDATE grants SET consumed_at = ?, consumed_by = ? "
        "WHERE id = ? AND consumed_at IS NULL AND expires_at > ?",
        (at, by, grant_id, at),
    )
