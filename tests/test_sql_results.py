"""Results agents can use (issue 11.6): a brokered SELECT's rows reach the caller as JSON, the audit
log keeps only counts and the output digest. Real PostgreSQL target, real in-process gateway."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from interlock import InterlockError, LocalClient, sql_rows

POLICY = """\
version: 1
humans:
  alice: {groups: [sre]}
agents:
  kiro: {owner: alice, roles: [analyst]}
environments:
  lab: {}
targets:
  shop: {environment: lab, kind: sql, dsn: env:INTERLOCK_TEST_SHOP_DSN}
roles:
  analyst:
    lab: {autonomous: write}
"""


def test_rows_reach_the_caller_and_not_the_log(tmp_path: Path, pg_database: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE accounts (id int, owner text, balance numeric); "
                     "INSERT INTO accounts VALUES (1, 'ann', 10.50), (2, 'bo', NULL)")
    monkeypatch.setenv("INTERLOCK_TEST_SHOP_DSN", pg_database)
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    with LocalClient(policy, "kiro", db=f"sqlite:///{tmp_path / 'i.db'}", key_dir=tmp_path / "keys") as local:
        answer = local.propose("sql", "lab", {"sql": "UPDATE accounts SET owner = upper(owner) WHERE id = 1; "
                                                     "SELECT id, owner, balance FROM accounts ORDER BY id"},
                               target="shop")
        assert answer["state"] == "succeeded", answer
        assert sql_rows(answer) == [{"id": 1, "owner": "ANN", "balance": "10.50"},
                                    {"id": 2, "owner": "bo", "balance": None}]
        assert [st["rows_affected"] for st in answer["result"]["statements"]] == [1, 2]
        assert answer["result"]["rows_affected"] == 3
        with pytest.raises(InterlockError, match="returned no rows"):
            sql_rows(answer, statement=0)
        later = local.get(answer["id"])  # folded from the log
        assert [st["command"] for st in later["result"]["statements"]] == ["UPDATE 1", "SELECT 2"]
        assert all("rows" not in st for st in later["result"]["statements"])
        with pytest.raises(InterlockError, match="only in the answer of the call that ran"):
            sql_rows(later)
        store = local.runtime.store
        with store.transaction(readonly=True) as tx:
            entries = [json.loads(r["entry"]) for r in tx.fetchall("SELECT entry FROM audit_entries", ())]
    finished = [e["data"]["result"] for e in entries if e["event"] == "execution.finished"]
    assert finished and all("rows" not in st for st in finished[0]["statements"])
    # (the output excerpt is the integrity issue's to reduce to a digest: 10.11)
