"""The webhook outbox: deliveries waiting to be sent, as rows of `webhook_outbox` (migration 0080).

A delivery is added inside the transaction of the change or audit entry that causes it (`add`), so it
exists exactly when its cause does; `interlock.gate.webhook.Notifier` sends the due ones under the
`webhook-delivery` lease, then deletes each (`done`) or moves it to its next attempt (`retry`).
A row names the policy's webhook and holds the body without its timestamp: never a URL or a secret.
Plain SQL on an open transaction, no I/O of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from interlock.gate.clock import parse_stamp, stamp
from interlock.store import Transaction

_COLUMNS = "delivery, webhook, event, subject, body, attempts, created_at, due_at, last_error"


@dataclass(frozen=True)
class Delivery:
    delivery: str  # the stable id receivers dedupe on (`X-Interlock-Delivery`, the body's `delivery`)
    webhook: str  # the policy's webhook name (interlock.gate.webhook.webhook_name)
    event: str
    subject: str  # the approval request, or the action or agent an alert is about
    doc: dict[str, Any]  # the body without `timestamp`
    attempts: int = 0
    due_at: datetime | None = None
    last_error: str | None = None


def add(tx: Transaction, deliveries: Iterable[Delivery], now: datetime) -> int:
    at = stamp(now)
    rows = [(d.delivery, d.webhook, d.event, d.subject, json.dumps(d.doc, separators=(",", ":"), sort_keys=True),
             at, at) for d in deliveries]
    if not rows:
        return 0
    return tx.executemany(
        "INSERT INTO webhook_outbox(delivery, webhook, event, subject, body, attempts, created_at, due_at) "
        "VALUES (?, ?, ?, ?, ?, 0, ?, ?)", rows)


def due(tx: Transaction, now: datetime, limit: int) -> list[Delivery]:
    """The deliveries due by `now`, oldest due first."""
    rows = tx.fetchall(f"SELECT {_COLUMNS} FROM webhook_outbox WHERE due_at <= ? ORDER BY due_at, delivery LIMIT ?",
                       (stamp(now), limit))
    return [_delivery(r) for r in rows]


def next_due(tx: Transaction) -> datetime | None:
    row = tx.fetchone("SELECT min(due_at) AS due FROM webhook_outbox")
    return parse_stamp(row["due"]) if row and row["due"] else None


def done(tx: Transaction, delivery: Delivery) -> bool:
    """Sent or given up: the row goes. False when it was already gone (another holder finished it)."""
    return tx.execute("DELETE FROM webhook_outbox WHERE delivery = ? AND attempts = ?",
                      (delivery.delivery, delivery.attempts)) == 1


def retry(tx: Transaction, delivery: Delivery, due_at: datetime, error: str) -> bool:
    """Count one failed attempt and set the next; False when another holder already moved the row on."""
    return tx.execute(
        "UPDATE webhook_outbox SET attempts = attempts + 1, due_at = ?, last_error = ? "
        "WHERE delivery = ? AND attempts = ?",
        (stamp(due_at), error[:500], delivery.delivery, delivery.attempts)) == 1


def waiting(tx: Transaction, ids: Iterable[str]) -> set[str]:
    """Which of these deliveries are still in the outbox."""
    wanted = list(ids)
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        marks = ", ".join("?" * len(chunk))
        found |= {r["delivery"] for r in tx.fetchall(
            f"SELECT delivery FROM webhook_outbox WHERE delivery IN ({marks})", chunk)}
    return found


def count(tx: Transaction) -> int:
    row = tx.fetchone("SELECT count(*) AS n FROM webhook_outbox")
    return int(row["n"]) if row else 0


def _delivery(row: dict[str, Any]) -> Delivery:
    return Delivery(delivery=row["delivery"], webhook=row["webhook"], event=row["event"], subject=row["subject"],
                    doc=json.loads(row["body"]), attempts=int(row["attempts"]), due_at=parse_stamp(row["due_at"]),
                    last_error=row["last_error"])
