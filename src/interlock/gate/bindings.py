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
                     AuditEvent.GUARD_FROZEN.value, AuditEvent.GUARD_THAWED.value,
                     AuditEvent.CONSOLE_SIGNED_OUT.value, AuditEvent.GUARD_BREAKER_OPENED.value,
                     AuditEvent.GUARD_BREAKER_CLOSED.value,
                     AuditEvent.ROLLOUT_FREEZE_PASSED.value})  # 0026, 0027, 0051, 0052, 0091


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
    return [(index, found[1]) for index, found in entries_since(log, tx, (event,), 0, tree_size(tx))
            if found is not None]


def tree_size(tx: Any) -> int:
    row = tx.fetchone("SELECT size FROM audit_head WHERE id = 1")
    return int(row["size"]) if row else 0


def entries_since(log: GateAudit, tx: Any, events: tuple[str, ...], since: int,
                  size: int) -> list[tuple[int, tuple[str, dict[str, Any]] | None]]:
    """The entries of indexed `events` at indexes since <= idx < size, in order, each as (index,
    (event, data)) or (index, None) when it does not check out: a caller folding state from them decides
    how to fail closed. Read `size` first (tree_size) in the same transaction: an entry below a size
    already read is committed, so folding [since, size) and then [size, next) misses none."""
    unknown = [e for e in events if e not in INDEXED]
    if unknown:
        raise ValueError(f"{unknown!r} have no partial index (migrations 0026/0027): add one before looking them up")
    # One SELECT per event, each repeating its partial index's WHERE term (see INDEXED).
    union = " UNION ALL ".join(f"SELECT idx FROM audit_entries WHERE event = '{event}' AND idx >= ? AND idx < ?"
                               for event in events)
    rows = tx.fetchall(f"SELECT idx FROM ({union}) found ORDER BY idx", tuple(x for _ in events for x in (since, size)))
    if not rows:
        return []  # the common case at use: nothing new since the last fold, one read
    found = log.entries_at(tx, [int(row["idx"]) for row in rows])
    return list(found.items())
