"""`audit verify`'s check of the gate's tables and the tokens (issue 10.2): every vote and grant row is bound to the
audit entry that recorded it, in the same transaction. A vote row with no matching approval.approved /
approval.denied entry, a grant without its grant.issued, a used grant without its grant.consumed, is
tampering: the gate ignores such rows at use, and verify names them."""

from __future__ import annotations

from typing import Any

from interlock.audit.events import AuditEvent
from interlock.audit.log import AuditLog
from interlock.audit.verify import Problem
from interlock.gate import repo
from interlock.gate.bindings import entries_of
from interlock.gate.events import GRANT_CONSUMED
from interlock.gate.service import grant_recorded, request_recorded, vote_recorded
from interlock.identity import revocation_recorded, token_recorded
from interlock.store import Transaction


def gate_problems(log: AuditLog, limit: int = 50) -> list[Problem]:
    problems: list[Problem] = []
    with log.store.transaction(readonly=True) as tx:
        for request in repo.list_requests(tx, limit=1_000_000):
            if not request_recorded(log, tx, request):
                problems.append(Problem(
                    f"approval request {request.id}",
                    f"its row does not match the entry that recorded its terms (entry {request.entry_idx}): "
                    "changed in the database; no vote is taken on it",
                    index=request.entry_idx, until=None if request.entry_idx is None else request.entry_idx + 1,
                ))
        requests = [r["request_id"] for r in tx.fetchall("SELECT DISTINCT request_id FROM approval_votes")]
        for request_id in requests:
            for vote in repo.votes(tx, request_id):
                if not vote_recorded(log, tx, request_id, vote):
                    problems.append(Problem(
                        f"vote of {vote.human} on {request_id}",
                        f"no authenticated approval entry records it (entry {vote.entry_idx}): the row was written "
                        "outside the gate; it is not counted",
                        index=vote.entry_idx, until=None if vote.entry_idx is None else vote.entry_idx + 1,
                    ))
        grant_ids = [r["request_id"] for r in tx.fetchall("SELECT request_id FROM grants ORDER BY created_at, id")]
        for request_id in grant_ids:
            grant = repo.grant_of(tx, request_id)
            if grant is not None and not grant_recorded(log, tx, grant):
                used = " and its use" if grant.consumed_at is not None else ""
                problems.append(Problem(
                    f"grant {grant.id} of {grant.request_id}",
                    f"no authenticated grant.issued{'/grant.consumed' if used else ''} entry records it{used}: "
                    "the row was written outside the gate; it is not honoured",
                    index=grant.issued_idx, until=None if grant.issued_idx is None else grant.issued_idx + 1,
                ))
            if len(problems) >= limit:
                break
        tokens = tx.fetchall("SELECT id, kind, name, secret_sha256, expires_at, revoked_at, revoked_idx, entry_idx "
                             "FROM tokens ORDER BY id")
        for row in tokens:
            if not token_recorded(log, tx, row):
                problems.append(Problem(
                    f"token {row['id']} ({row['kind']} {row['name']})",
                    f"no authenticated token.created entry records it (entry {row['entry_idx']}): the row was "
                    "written outside Interlock; it does not authenticate",
                    index=row["entry_idx"], until=None if row["entry_idx"] is None else int(row["entry_idx"]) + 1,
                ))
            # revoked_idx is NULL for tokens revoked before migration 0026: their revocation is only the column
            # (still refused). A revoked_idx whose entry does not match is a changed row.
            if row["revoked_idx"] is not None and not revocation_recorded(log, tx, row):
                problems.append(Problem(
                    f"revocation of token {row['id']} ({row['kind']} {row['name']})",
                    f"its row does not match the token.revoked entry it names (entry {row['revoked_idx']}): "
                    "changed in the database; the token stays refused",
                    index=int(row["revoked_idx"]), until=int(row["revoked_idx"]) + 1,
                ))
        problems.extend(_revocations_undone(log, tx, {row["id"]: row for row in tokens}))
        problems.extend(_uses_undone(log, tx))
        problems.extend(_freezes_undone(log, tx))
    return problems[:limit]


def _revocations_undone(log: AuditLog, tx: Transaction, tokens: dict[str, dict[str, Any]]) -> list[Problem]:
    """Every token.revoked entry in the tree must find its token still revoked: a revoked_at cleared (or the
    row deleted) in the database is named here. Authentication refuses such a token anyway."""
    problems: list[Problem] = []
    rows = tx.fetchall("SELECT e.idx FROM audit_entries e, audit_head h WHERE h.id = 1 "
                       "AND e.event = 'token.revoked' AND e.idx < h.size ORDER BY e.idx")
    for entry in rows:
        index = int(entry["idx"])
        found = log.entry_at(tx, index)
        if found is None:
            continue  # a broken entry is named by the log's own pass (leaf hash, MAC, side columns)
        token_id = found[1].get("token_id")
        row = tokens.get(str(token_id))
        if row is None or row["revoked_at"] is None:
            state = "is missing from the tokens table" if row is None else "is active in the tokens table"
            problems.append(Problem(
                f"revocation of token {token_id}",
                f"entry {index} revoked it but the token {state}: the revocation was undone in the database; "
                "authentication still refuses the token",
                index=index, until=index + 1,
            ))
    return problems


def _uses_undone(log: AuditLog, tx: Transaction) -> list[Problem]:
    """Every grant.consumed entry in the tree must find its grant used, at that entry: a consumed_at cleared
    in the database (to run the action again) is named here. The gate refuses such a grant anyway."""
    problems: list[Problem] = []
    for index, data in entries_of(log, tx, GRANT_CONSUMED):
        row = tx.fetchone("SELECT consumed_at, consumed_idx FROM grants WHERE id = ?", (str(data.get("grant_id")),))
        if row is None or row["consumed_at"] is None or row["consumed_idx"] != index:
            state = "is missing from the grants table" if row is None else "is unused in the grants table"
            if row is not None and row["consumed_at"] is not None:
                state = f"names another entry ({row['consumed_idx']})"
            problems.append(Problem(
                f"use of grant {data.get('grant_id')}",
                f"entry {index} recorded its use but the grant {state}: the use was undone in the database; "
                "the gate still refuses the grant",
                index=index, until=index + 1,
            ))
    return problems


def _freezes_undone(log: AuditLog, tx: Transaction) -> list[Problem]:
    """A freeze the log records as made and not thawed must be in force in guard_freezes with the scope
    the entry says: a thaw by deletion, by setting thawed_at, or a scope narrowed in the database is
    named here. (At use the gateway reads the table: see docs/audit.md, what is checked only by verify.)"""
    thawed = {str(data.get("freeze", {}).get("id")) for _, data in entries_of(log, tx, AuditEvent.GUARD_THAWED)}
    problems: list[Problem] = []
    for index, data in entries_of(log, tx, AuditEvent.GUARD_FROZEN):
        found = data.get("freeze")
        made: dict[str, Any] = found if isinstance(found, dict) else {}
        freeze_id = str(made.get("id"))
        if freeze_id in thawed:
            continue
        row = tx.fetchone("SELECT agent, environment, target, thawed_at FROM guard_freezes WHERE id = ?", (freeze_id,))
        if row is None:
            state = "is missing from guard_freezes (deleted)"
        elif row["thawed_at"] is not None:
            state = f"is thawed in guard_freezes at {row['thawed_at']} with no guard.thawed entry"
        elif any(row[k] != made.get(k) for k in ("agent", "environment", "target")):
            state = "covers a different scope in guard_freezes than the entry says"
        else:
            continue
        problems.append(Problem(
            f"freeze {freeze_id}",
            f"entry {index} froze {made.get('scope')} but the freeze {state}: changed in the database "
            "(or the thawing process stopped before its entry); freeze again with `interlock guards freeze`",
            index=index, until=index + 1,
        ))
    return problems
