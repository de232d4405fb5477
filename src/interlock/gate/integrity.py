"""`audit verify`'s check of the tables the product reads beside the log (issue 10.2 and its follow-ups).

Two patterns, one helper each:

- *a row bound to its entry* (`_unbound`): every approval request, vote, grant, token and revocation row
  keeps the index of the entry that recorded it, in the same transaction; a row whose entry is missing or
  says otherwise was written or changed in the database. The product ignores such rows at use.
- *an entry whose effect was undone* (`_undone`): every token.revoked, grant.consumed, guard.frozen and
  console.signed_out entry must still find its row in that state; a revocation, a use or a freeze turned back in the
  database is named. The product asks the log at use, so it still refuses (docs/audit.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from interlock.audit.events import AuditEvent
from interlock.audit.log import AuditLog
from interlock.audit.verify import Problem
from interlock.gate import repo
from interlock.gate.bindings import entries_of, tree_size
from interlock.gate.clock import stamp
from interlock.gate.service import grant_recorded, request_recorded, vote_recorded
from interlock.guard import breakers
from interlock.identity import revocation_recorded, token_recorded
from interlock.server.ui.sessions import session_id
from interlock.store import Transaction


def gate_problems(log: AuditLog, limit: int = 50) -> list[Problem]:
    with log.store.transaction(readonly=True) as tx:
        tokens = tx.fetchall("SELECT id, kind, name, secret_sha256, expires_at, revoked_at, revoked_idx, entry_idx "
                             "FROM tokens ORDER BY id")
        checks: list[Iterable[Problem]] = [
            _requests_unbound(log, tx), _votes_unbound(log, tx), _grants_unbound(log, tx),
            _tokens_unbound(log, tx, tokens),
            _undone(log, tx, AuditEvent.TOKEN_REVOKED, _revocation_state({row["id"]: row for row in tokens})),
            _undone(log, tx, AuditEvent.GRANT_CONSUMED, _use_state_of(tx)),
            _undone(log, tx, AuditEvent.GUARD_FROZEN, _freeze_state(log, tx)),
            _undone(log, tx, AuditEvent.CONSOLE_SIGNED_OUT, _sign_out_state(tx)),
            _breakers_undone(log, tx),
        ]
        problems: list[Problem] = []
        for check in checks:
            for problem in check:
                problems.append(problem)
                if len(problems) >= limit:
                    return problems
    return problems


def _at(where: str, what: str, index: Any) -> Problem:
    """A problem implicating the one entry at `index` (None: the row names no entry)."""
    at = None if index is None else int(index)
    return Problem(where, what, index=at, until=None if at is None else at + 1)


# --- a row bound to its entry ---------------------------------------------------------------------------


def _unbound(rows: Iterable[Any], recorded: Callable[[Any], bool],
             problem: Callable[[Any], Problem]) -> Iterable[Problem]:
    return (problem(row) for row in rows if not recorded(row))


def _requests_unbound(log: AuditLog, tx: Transaction) -> Iterable[Problem]:
    return _unbound(
        repo.list_requests(tx, limit=1_000_000), lambda r: request_recorded(log, tx, r),
        lambda r: _at(f"approval request {r.id}", f"its row does not match the entry that recorded its terms "
                      f"(entry {r.entry_idx}): changed in the database; no vote is taken on it", r.entry_idx))


def _votes_unbound(log: AuditLog, tx: Transaction) -> Iterable[Problem]:
    requests = [r["request_id"] for r in tx.fetchall("SELECT DISTINCT request_id FROM approval_votes")]
    votes = [(request_id, vote) for request_id in requests for vote in repo.votes(tx, request_id)]
    return _unbound(
        votes, lambda v: vote_recorded(log, tx, v[0], v[1]),
        lambda v: _at(f"vote of {v[1].human} on {v[0]}", f"no authenticated approval entry records it (entry "
                      f"{v[1].entry_idx}): the row was written outside the gate; it is not counted", v[1].entry_idx))


def _grants_unbound(log: AuditLog, tx: Transaction) -> Iterable[Problem]:
    ids = [r["request_id"] for r in tx.fetchall("SELECT request_id FROM grants ORDER BY created_at, id")]
    grants = [g for g in (repo.grant_of(tx, request_id) for request_id in ids) if g is not None]

    def problem(grant: Any) -> Problem:
        used = " and its use" if grant.consumed_at is not None else ""
        return _at(f"grant {grant.id} of {grant.request_id}",
                   f"no authenticated grant.issued{'/grant.consumed' if used else ''} entry records it{used}: "
                   "the row was written outside the gate; it is not honoured", grant.issued_idx)

    return _unbound(grants, lambda g: grant_recorded(log, tx, g), problem)


def _tokens_unbound(log: AuditLog, tx: Transaction, tokens: list[dict[str, Any]]) -> Iterable[Problem]:
    yield from _unbound(
        tokens, lambda row: token_recorded(log, tx, row),
        lambda row: _at(f"token {row['id']} ({row['kind']} {row['name']})",
                        f"no authenticated token.created entry records it (entry {row['entry_idx']}): the row was "
                        "written outside Interlock; it does not authenticate", row["entry_idx"]))
    # revoked_idx is NULL for tokens revoked before migration 0026: their revocation is only the column
    # (still refused). A revoked_idx whose entry does not match is a changed row.
    yield from _unbound(
        [row for row in tokens if row["revoked_idx"] is not None], lambda row: revocation_recorded(log, tx, row),
        lambda row: _at(f"revocation of token {row['id']} ({row['kind']} {row['name']})",
                        f"its row does not match the token.revoked entry it names (entry {row['revoked_idx']}): "
                        "changed in the database; the token stays refused", row["revoked_idx"]))


# --- an entry whose effect was undone -------------------------------------------------------------------

#: What a check of one entry says: None (the row is as the entry left it) or (where, what is wrong).
Undone = Callable[[int, dict[str, Any]], tuple[str, str] | None]


def _undone(log: AuditLog, tx: Transaction, event: AuditEvent, check: Undone) -> Iterable[Problem]:
    for index, data in entries_of(log, tx, event):  # a broken entry is named by the log's own pass
        found = check(index, data)
        if found is not None:
            yield _at(found[0], found[1], index)


def _revocation_state(tokens: dict[str, dict[str, Any]]) -> Undone:
    """A token.revoked entry must find its token still revoked: a revoked_at cleared (or the row
    deleted) in the database is named. Authentication refuses such a token anyway."""

    def check(index: int, data: dict[str, Any]) -> tuple[str, str] | None:
        row = tokens.get(str(data.get("token_id")))
        if row is not None and row["revoked_at"] is not None:
            return None
        state = "is missing from the tokens table" if row is None else "is active in the tokens table"
        return (f"revocation of token {data.get('token_id')}",
                f"entry {index} revoked it but the token {state}: the revocation was undone in the database; "
                "authentication still refuses the token")

    return check


def _use_state_of(tx: Transaction) -> Undone:
    """A grant.consumed entry must find its grant used, at that entry: a consumed_at cleared in the
    database (to run the action again) is named. The gate refuses such a grant anyway."""

    def check(index: int, data: dict[str, Any]) -> tuple[str, str] | None:
        row = tx.fetchone("SELECT consumed_at, consumed_idx FROM grants WHERE id = ?", (str(data.get("grant_id")),))
        if row is not None and row["consumed_at"] is not None and row["consumed_idx"] == index:
            return None
        state = "is missing from the grants table" if row is None else "is unused in the grants table"
        if row is not None and row["consumed_at"] is not None:
            state = f"names another entry ({row['consumed_idx']})"
        return (f"use of grant {data.get('grant_id')}",
                f"entry {index} recorded its use but the grant {state}: the use was undone in the database; "
                "the gate still refuses the grant")

    return check


def _freeze_state(log: AuditLog, tx: Transaction) -> Undone:
    """A freeze the log records as made and not thawed must be in force in guard_freezes with the scope
    the entry says: a thaw by deletion, by setting thawed_at, or a scope narrowed in the database is
    named. The gateway folds freezes from the log at use, so it still denies (guard.freezes.Ledger)."""
    thawed = {str(data.get("freeze", {}).get("id")) for _, data in entries_of(log, tx, AuditEvent.GUARD_THAWED)}

    def check(index: int, data: dict[str, Any]) -> tuple[str, str] | None:
        found = data.get("freeze")
        made: dict[str, Any] = found if isinstance(found, dict) else {}
        freeze_id = str(made.get("id"))
        if freeze_id in thawed:
            return None
        row = tx.fetchone("SELECT agent, environment, target, thawed_at FROM guard_freezes WHERE id = ?", (freeze_id,))
        if row is None:
            state = "is missing from guard_freezes (deleted)"
        elif row["thawed_at"] is not None:
            state = f"is thawed in guard_freezes at {row['thawed_at']} with no guard.thawed entry"
        elif any(row[k] != made.get(k) for k in ("agent", "environment", "target")):
            state = "covers a different scope in guard_freezes than the entry says"
        else:
            return None
        return (f"freeze {freeze_id}",
                f"entry {index} froze {made.get('scope')} but the freeze {state}: changed in the database; "
                f"the gateway still honours it; end it with `interlock thaw {freeze_id}` if it should end")

    return check


def _sign_out_state(tx: Transaction) -> Undone:
    """A console.signed_out entry must find its session still revoked: a revoked_at cleared in the database
    (to bring a copied cookie back) is named. The console refuses such a session anyway. Sign-outs from
    before migration 0051 name no session and are not checked; a deleted session row opens nothing."""
    revoked = {session_id(row["secret_sha256"]): row["revoked_at"]
               for row in tx.fetchall("SELECT secret_sha256, revoked_at FROM console_sessions")}

    def check(index: int, data: dict[str, Any]) -> tuple[str, str] | None:
        session = data.get("session")
        if session is None or session not in revoked or revoked[session] is not None:
            return None
        return (f"sign-out of {data.get('principal')}'s console session {session}",
                f"entry {index} signed it out but the session is active in console_sessions: the sign-out was "
                "undone in the database; the console still refuses the session")

    return check


def _breakers_undone(log: AuditLog, tx: Transaction) -> Iterable[Problem]:
    """A breaker whose last guard.breaker_opened entry no guard.breaker_closed follows must be open in
    guard_breakers, opened when the entry says: one closed, deleted or moved back in the database is named.
    The guards fold breakers from the log at use, so the agent still needs a human."""
    ledger = breakers.Ledger().fold(log, tx, tree_size(tx))
    table = breakers.load(tx)
    for key, recorded in ledger.last.items():
        row = table.get(key)
        if recorded is None or breakers.in_force_one(row, recorded) is row:
            continue
        state = "is missing from guard_breakers" if row is None else (
            "is closed in guard_breakers" if row.state is breakers.State.closed
            else f"opened at {stamp(row.opened_at)} in guard_breakers, earlier than the entry says")
        yield _at(f"breaker of {recorded.scope()}",
                  f"entry {ledger.at[key]} opened it but the breaker {state}: changed in the database; the guards "
                  "still hold it open until its half-open trials close it", ledger.at[key])
