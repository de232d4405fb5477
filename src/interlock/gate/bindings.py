"""Rows whose *undoing* must be caught, not only their forging (issue 10 follow-ups).

A revoked token or a used grant is a row the database attacker wants to turn back (clear `revoked_at`,
clear `consumed_at`). The entry that recorded the change stays in the log, so the check at use asks the
log, not the row: is there an entry of this event in the tree that names this id? Migrations 0026 and
0027 keep a partial index over just these events, so the lookup is one short indexed read and appends of
every other event pay nothing.

What this cannot see at use — an entry whose `event` side column was changed so the index misses it, or
whose text was edited — `audit verify` names (side columns and leaf hashes are checked there)."""

from __future__ import annotations

from typing import Any

from interlock.audit.events import AuditEvent
from interlock.gate.events import GateAudit

# Only these events have a partial index; the event is written into the SQL as a literal (never a
# parameter) because SQLite uses a partial index only when the query repeats its WHERE term.
INDEXED = frozenset({AuditEvent.TOKEN_REVOKED.value, AuditEvent.GRANT_CONSUMED.value,
                     AuditEvent.GUARD_FROZEN.value, AuditEvent.GUARD_THAWED.value})


def named_in_log(log: GateAudit, tx: Any, event: str, key: str, value: str, since: int = 0) -> int | None:
    """The index of the first entry of `event` in the tree, at or after `since`, whose data has
    `key == value`, or None. An entry that names the id but does not check out (MAC or leaf hash
    broken) counts too: fail closed, a revocation or a use is never undone by damaging its entry."""
    if event not in INDEXED:
        raise ValueError(f"{event!r} has no partial index (migrations 0026/0027): add one before looking it up")
    if not value.replace("_", "").isalnum():
        raise ValueError(f"{value!r} is not an Interlock id")
    found = tx.fetchall(
        f"SELECT e.idx FROM audit_entries e, audit_head h WHERE h.id = 1 AND e.event = '{event}' "
        "AND e.idx >= ? AND e.idx < h.size AND e.entry LIKE ? ORDER BY e.idx",
        (since, f'%"{key}":"{value}"%'),
    )
    for row in found:
        checked = log.entry_at(tx, int(row["idx"]))
        if checked is None or checked[1].get(key) == value:
            return int(row["idx"])
    return None


def entries_of(log: GateAudit, tx: Any, event: str) -> list[tuple[int, dict[str, Any]]]:
    """Every authenticated entry of an indexed event in the tree, as (index, data), for `audit verify`.
    Entries that do not check out are left to the log's own pass, which names them."""
    if event not in INDEXED:
        raise ValueError(f"{event!r} has no partial index (migrations 0026/0027)")
    rows = tx.fetchall(f"SELECT e.idx FROM audit_entries e, audit_head h WHERE h.id = 1 AND e.event = '{event}' "
                       "AND e.idx < h.size ORDER BY e.idx")
    out = []
    for row in rows:
        found = log.entry_at(tx, int(row["idx"]))
        if found is not None:
            out.append((int(row["idx"]), found[1]))
    return out
