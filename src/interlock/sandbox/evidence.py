"""Evidence: what a rehearsal on a twin did, kept so the same action can be promoted with it.

Evidence binds to (agent, body fingerprint, twin, policy version). The *body* fingerprint is the
action without where it runs (agent, kind, payload): the production proposal and its rehearsal on
the twin share it, and one changed character of the payload does not. Judging evidence is pure
(`judge`); reading and writing it are the store's (`record`, `find`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from interlock.fingerprint import canonical_json
from interlock.gate.clock import parse_stamp, stamp
from interlock.model import Action
from interlock.store import Transaction

#: The audit event a rehearsal's evidence is recorded as (the evidence row indexes it).
EVENT = "rehearsal.finished"
_COLUMNS = ("id, agent, body_fingerprint, twin, environment, policy_version, status, finished_at, "
            "duration_ms, audit_idx, summary")


def body_fingerprint(agent: str, action: Action) -> str:
    """sha256 of the canonical JSON of (agent, kind, payload): the same on every twin, bound to the agent."""
    material = {"agent": agent, "kind": action.kind.value, "payload": action.payload}
    return hashlib.sha256(canonical_json(material)).hexdigest()


@dataclass(frozen=True)
class Evidence:
    """One rehearsal Interlock ran on a twin."""

    id: str  # the rehearsal's action id
    agent: str
    body_fingerprint: str
    twin: str
    environment: str
    policy_version: str
    status: str  # the execution status: succeeded | failed | timeout | error
    finished_at: datetime
    duration_ms: int
    summary: str
    audit_idx: int = -1
    effects: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def describe(self, now: datetime) -> str:
        """One line for answers and approvers: where, when, what happened."""
        return (f"rehearsal {self.id} on {self.twin} ({self.environment}) {_ago(now - self.finished_at)}: "
                f"{self.status} in {self.duration_ms} ms; {self.summary}")

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "agent": self.agent, "body_fingerprint": self.body_fingerprint, "twin": self.twin,
            "environment": self.environment, "policy_version": self.policy_version, "status": self.status,
            "finished_at": stamp(self.finished_at), "duration_ms": self.duration_ms, "summary": self.summary,
            "effects": self.effects,
        }
        if now is not None:
            body["description"] = self.describe(now)
        return body


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min ago"


def entry_data(ev: Evidence) -> dict[str, Any]:
    """What the `rehearsal.finished` audit entry holds (the row is checked against it)."""
    body = ev.to_json()
    body["action_id"] = ev.id
    return body


def record(tx: Transaction, ev: Evidence) -> None:
    tx.execute(
        f"INSERT INTO evidence({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (ev.id, ev.agent, ev.body_fingerprint, ev.twin, ev.environment, ev.policy_version, ev.status,
         stamp(ev.finished_at), ev.duration_ms, ev.audit_idx, ev.summary),
    )


def _from_row(row: dict[str, Any], effects: dict[str, Any] | None = None) -> Evidence:
    return Evidence(id=row["id"], agent=row["agent"], body_fingerprint=row["body_fingerprint"], twin=row["twin"],
                    environment=row["environment"], policy_version=row["policy_version"], status=row["status"],
                    finished_at=parse_stamp(row["finished_at"]), duration_ms=int(row["duration_ms"]),
                    summary=row["summary"], audit_idx=int(row["audit_idx"]), effects=effects or {})


_CHECKED = ("id", "agent", "body_fingerprint", "twin", "environment", "policy_version", "status", "finished_at",
            "duration_ms", "summary")


#: The evidence row and the audit entry it indexes, in one query (one round trip on PostgreSQL). Only an
#: entry inside the tree counts (issue 10.1): a row slipped in at an index outside it is never evidence.
_JOINED = ("SELECT " + ", ".join(f"e.{c.strip()}" for c in _COLUMNS.split(",")) + ", a.event AS audit_event, "
           "a.entry AS audit_entry FROM evidence e LEFT JOIN audit_entries a ON a.idx = e.audit_idx "
           "AND a.idx >= 0 AND a.idx < (SELECT size FROM audit_head WHERE id = 1)")


def _verified(row: dict[str, Any]) -> Evidence | None:
    """The row, with its effects, when the audit entry it came from says the same; else None (a side
    row that disagrees with the log is not evidence)."""
    if row.get("audit_event") != EVENT or not row.get("audit_entry"):
        return None
    if json.loads(row["audit_entry"]).get("event") != EVENT:
        return None
    data = json.loads(row["audit_entry"])["data"]
    if any(str(data.get(k)) != str(row[k]) for k in _CHECKED):
        return None
    return _from_row(row, data.get("effects") or {})


def find(tx: Transaction, agent: str, body_fp: str, twin: str, policy_version: str) -> Evidence | None:
    """The latest rehearsal of this body by this agent on this twin under this policy version."""
    row = tx.fetchone(
        f"{_JOINED} WHERE e.agent = ? AND e.body_fingerprint = ? AND e.twin = ? "
        "AND e.policy_version = ? ORDER BY e.finished_at DESC LIMIT 1",
        (agent, body_fp, twin, policy_version),
    )
    return _verified(row) if row is not None else None


def get(tx: Transaction, evidence_id: str) -> Evidence | None:
    row = tx.fetchone(f"{_JOINED} WHERE e.id = ?", (evidence_id,))
    return _verified(row) if row is not None else None


def why_none(tx: Transaction, agent: str, body_fp: str, twin: str, policy_version: str) -> str:
    """Why there is no evidence to promote with: said plainly, so the agent knows what to do."""
    rows = tx.fetchall(
        "SELECT agent, twin, policy_version FROM evidence WHERE body_fingerprint = ? LIMIT 50", (body_fp,))
    if any(r["twin"] == twin and r["agent"] == agent for r in rows):
        return f"the rehearsal on {twin} was under another policy version: rehearse it again"
    if any(r["agent"] == agent for r in rows):
        others = sorted({r["twin"] for r in rows if r["agent"] == agent})
        return f"it was rehearsed on {', '.join(others)}, not on this target's twin {twin}"
    # Another agent's evidence never counts (the body fingerprint includes the agent, so this only
    # finds a row if someone wrote one by hand): say nothing about it.
    return f"no rehearsal of exactly this action by this agent on {twin}"


@dataclass(frozen=True)
class Judgement:
    usable: bool
    reason: str


def judge(ev: Evidence | None, now: datetime, ttl_seconds: int, missing: str = "") -> Judgement:
    """Whether evidence promotes: it exists, succeeded and is fresh. Pure."""
    if ev is None:
        return Judgement(False, missing or "no rehearsal evidence")
    if not ev.ok:
        return Judgement(False, f"the latest rehearsal {ev.id} on {ev.twin} did not succeed ({ev.status}): "
                                f"{ev.summary}; fix the action and rehearse it again")
    age = now - ev.finished_at
    if age > timedelta(seconds=ttl_seconds):
        return Judgement(False, f"the rehearsal {ev.id} on {ev.twin} expired: it ran {_ago(age)}, evidence "
                                f"lasts {ttl_seconds} s (defaults.evidence_ttl); rehearse it again")
    return Judgement(True, ev.describe(now))
