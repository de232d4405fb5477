"""`AuditLog.append_later` (issue 18.6: the in-process MCP proxy's outcome report, queued without waiting):
the same entry, checks and errors as `append`, and durable before anything queued after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock.audit import AuditLog
from interlock.store import Store, StoreError


@pytest.fixture
def log(store: Store, tmp_path: Path) -> Iterator[AuditLog]:
    with AuditLog(store, key_dir=tmp_path / "keys") as opened:
        yield opened


def _events(store: Store) -> list[tuple[str, str]]:
    with store.transaction() as tx:
        rows = tx.fetchall("SELECT event, action_id FROM audit_entries ORDER BY idx")
    return [(row["event"], row["action_id"]) for row in rows]


def test_an_entry_queued_later_is_durable_before_what_follows_it(log: AuditLog, store: Store) -> None:
    queued = log.append_later("execution.reported", {"action_id": "a0"})
    log.append("action.proposed", {"action_id": "a1"})
    assert queued.done()  # the writer commits in queue order: resolved with (or before) the entry after it
    assert queued.receipt(timeout=0).index == 0
    assert _events(store) == [("execution.reported", "a0"), ("action.proposed", "a1")]
    assert log.verify().ok


def test_a_store_failure_reaches_whoever_collects_the_queued_entry(store: Store, tmp_path: Path) -> None:
    log = AuditLog(store, key_dir=tmp_path / "keys")
    store.close()
    queued = log.append_later("execution.reported", {"action_id": "a1"})
    with pytest.raises(StoreError):
        queued.receipt(timeout=10)
    with pytest.raises(StoreError):
        log.append("action.proposed", {"action_id": "a2"})
    log.close()
