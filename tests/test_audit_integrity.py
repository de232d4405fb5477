"""Issue 10: everything the product reads from the log is covered by the proof (both stores).

Rows outside the tree are refused by the store and, when slipped in anyway by someone with database
access, flagged by verify and never read; side columns are checked against the entry; each entry
carries a MAC under a key the store does not hold, so a forged leaf fails verification and is never
folded into an action's state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from interlock.audit import AuditLog, verify
from interlock.gateway import GatewayUnavailable
from interlock.model import Action
from interlock.runtime import Runtime
from interlock.store import Store, StoreError, open_store

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "policy.yaml"
INSERT = (
    "INSERT INTO audit_entries(idx, event, time, agent, environment, risk, outcome, action_id, entry, "
    "leaf_hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _row(store: Store, index: int) -> dict[str, object]:
    with store.transaction(readonly=True) as tx:
        row = tx.fetchone("SELECT * FROM audit_entries WHERE idx = ?", (index,))
    assert row is not None
    return dict(row)


def _copy_to(store: Store, index: int, row: dict[str, object], entry: str | None = None) -> None:
    text = entry if entry is not None else str(row["entry"])
    with store.transaction() as tx:
        tx.execute(INSERT, (index, row["event"], row["time"], row["agent"], row["environment"], row["risk"],
                            row["outcome"], row["action_id"], text, verify._leaf(text.encode()).hex(), row["mac"]))


def _drop_guards(store: Store) -> None:
    """The attacker owns the database: it removes the triggers and constraints first."""
    with store.transaction() as tx:
        if store.dialect == "sqlite":
            for trigger in ("audit_entries_in_tree", "audit_entries_grow"):
                tx.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        else:
            tx.execute("DROP TRIGGER IF EXISTS audit_entries_in_tree ON audit_entries")
            tx.execute("ALTER TABLE audit_entries DROP CONSTRAINT IF EXISTS audit_entries_idx_not_negative")


@pytest.mark.parametrize("where", ["negative", "gap", "far", "existing"])
def test_the_store_refuses_a_row_outside_the_tree(store: Store, tmp_path: Path, where: str) -> None:
    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        log.append_many([("webhook.failed", {"k": k}) for k in range(3)])
        row = _row(store, 1)
        index = {"negative": -1, "gap": 5, "far": 2**50, "existing": 2}[where]
        with pytest.raises(StoreError):
            _copy_to(store, index if where != "existing" else 1, row)
        assert log.size() == 3 and log.verify().ok


def test_a_row_far_outside_the_tree_is_flagged_by_key_not_by_walking(store: Store, tmp_path: Path) -> None:
    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        log.append_many([("action.proposed", {"action_id": "a1", "outcome": "allow"}) for _ in range(5)])
        log.checkpoint()
        _drop_guards(store)
        row = _row(store, 2)
        for index in (2**50, -(2**40)):
            _copy_to(store, index, row)
        report = log.verify()  # pages by key: two extra rows cost two rows, not 2**50 index steps
        assert not report.ok
        flagged = sorted(p.index for p in report.problems if p.index is not None)
        assert flagged == [-(2**40), 2**50], report.describe()
        assert report.first_bad_index == -(2**40)
        assert "outside the tree" in report.describe()
        assert log.size() == 5  # the tree size is not taken from the largest index
        assert [e["index"] for e in log.search(action_id="a1")] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("column", "value"),
    [("outcome", "deny"), ("agent", "mallory"), ("action_id", "act_other"), ("event", "error"),
     ("risk", "read"), ("environment", "sandbox"), ("time", "2020-01-01T00:00:00.000000Z")],
)
def test_a_changed_side_column_is_named_with_its_index(store: Store, tmp_path: Path, column: str,
                                                       value: str) -> None:
    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        log.append_many([("action.proposed", {"action_id": f"a{k}", "agent": "kiro", "environment": "production",
                                             "risk": "write", "outcome": "allow"}) for k in range(4)])
        log.checkpoint()
        with store.transaction() as tx:
            if store.dialect == "sqlite":
                tx.execute("DROP TRIGGER audit_entries_append_only_update")
            else:
                tx.execute("DROP TRIGGER audit_entries_append_only ON audit_entries")
            tx.execute(f"UPDATE audit_entries SET {column} = ? WHERE idx = 2", (value,))
        report = log.verify()
        assert not report.ok and report.first_bad_index == 2, report.describe()
        assert f"side column {column}" in report.describe()
        # The tree and its checkpoint still verify: only the column changed, and nothing blames audit_tree.
        assert report.verified_checkpoints == 1 and "audit_tree" not in report.describe()


def test_a_forged_leaf_appended_by_the_database_is_never_signed(store: Store, tmp_path: Path) -> None:
    """Threat model: write access to the database, no keys. The forged leaf is well formed and at the
    right index (the triggers accept it); it has no valid MAC, so the signer refuses to sign over it
    and verify names it."""
    with AuditLog(store, key_dir=tmp_path / "keys", checkpoint_every=10**9, checkpoint_interval_s=3600) as log:
        log.append_many([("webhook.failed", {"k": k}) for k in range(3)])
        log.checkpoint()
        forged = json.dumps({"data": {"request_id": "apr_x", "principal": "bob", "verdict": "approve"},
                             "event": "approval.approved", "time": "2026-01-01T00:00:00.000000Z"},
                            sort_keys=True, separators=(",", ":"))
        _copy_to(store, 3, {**_row(store, 2), "event": "approval.approved", "agent": None, "action_id": None,
                            "time": "2026-01-01T00:00:00.000000Z", "mac": "00" * 32}, forged)
        with pytest.raises(Exception, match="refusing to sign a checkpoint: entry 3"):
            log.checkpoint()
        report = log.verify()
        assert report.first_bad_index == 3 and "not authenticated by the entry key" in report.describe()


@pytest.mark.parametrize(("written_by", "macs_checked"), [
    ("this process", []),  # its writer wrote them with the key: its frontier stands for them
    ("another process", [200]),  # checked once, ahead, in a read snapshot; nothing new under the lock
])
def test_a_checkpoint_checks_no_mac_under_the_write_lock(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        written_by: str, macs_checked: list[int]) -> None:
    """Every entry since the last checkpoint carries a valid MAC before it is signed, but none is checked inside
    the write transaction when nothing was appended since the check: checked under the lock, a minute of a busy
    log (~10^5 MACs) stopped every writer for 1.3-1.75 s, and checked in Python beside the event loop it still
    held the loop up 0.2 s. Entries this process's writer appended need no check at all."""
    import interlock.audit.log as log_module

    checked: list[int] = []  # entries checked, call by call
    real = log_module._first_unauthenticated

    def counting(tx: Any, key: Any, start: int, end: int) -> int | None:
        checked.append(end - start)
        return real(tx, key, start, end)

    with AuditLog(store, key_dir=tmp_path / "keys", checkpoint_every=10**9, checkpoint_interval_s=3600) as log:
        if written_by == "this process":
            log.append_many([("webhook.failed", {"k": k}) for k in range(200)])
        else:
            with AuditLog(store, key_dir=tmp_path / "keys", checkpoint_every=10**9,
                          checkpoint_interval_s=3600) as other:
                other.auto_checkpoint = False  # it would sign the 200 itself on closing
                other.append_many([("webhook.failed", {"k": k}) for k in range(200)])
        monkeypatch.setattr(log_module, "_first_unauthenticated", counting)
        checkpoint = log.checkpoint()
        assert checked == macs_checked
        assert log.verify().ok and checkpoint.tree_size == 200


@pytest.mark.parametrize(("meanwhile", "refused"), [("a forged leaf appended", 6),
                                                    ("a checked leaf replaced, nodes and all", 4)])
def test_what_changes_between_the_check_ahead_and_the_signing_is_checked_again(store: Store, tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                                 meanwhile: str, refused: int) -> None:
    """Threat model as above, racing the signer: a leaf forged after the read snapshot is checked inside the
    write transaction; a checked leaf rewritten with its nodes moves the root at the snapshot's size, and
    then every entry since the last checkpoint is checked there again. Either way nothing forged is signed."""
    with AuditLog(store, key_dir=tmp_path / "keys", checkpoint_every=10**9, checkpoint_interval_s=3600) as log:
        log.append_many([("webhook.failed", {"k": k}) for k in range(3)])
        log.checkpoint()
        log.append_many([("webhook.failed", {"k": k}) for k in range(3, 6)])
        real = log._checked_upto

        def then_tamper() -> tuple[int, bytes] | None:
            found = real()
            forged_row = {**_row(store, 5), "event": "approval.approved", "mac": "00" * 32}
            if meanwhile == "a forged leaf appended":
                _copy_to(store, 6, forged_row, None)
            else:
                with store.transaction() as tx:
                    if store.dialect == "sqlite":
                        tx.execute("DROP TRIGGER audit_entries_append_only_update")
                    else:
                        tx.execute("DROP TRIGGER audit_entries_append_only ON audit_entries")
                    tx.execute("UPDATE audit_entries SET mac = ? WHERE idx = 4", ("00" * 32,))
                    # Every node over leaf 4 and after (ids are (last leaf covered) << 6 | level).
                    tx.execute("UPDATE audit_tree SET hash = ? WHERE id >= ?", ("00" * 32, 4 << 6))
            return found

        monkeypatch.setattr(log, "_checked_upto", then_tamper)
        with pytest.raises(Exception, match=f"refusing to sign a checkpoint: entry {refused}"):
            log.checkpoint()


def test_renumbering_after_a_deletion_is_reported_in_the_middle(store: Store, tmp_path: Path) -> None:
    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        log.append_many([("webhook.failed", {"k": k}) for k in range(10)])
        log.checkpoint()
        with store.transaction() as tx:
            if store.dialect == "sqlite":
                for trigger in ("audit_entries_append_only_update", "audit_entries_append_only_delete",
                                "audit_head_only_grows"):
                    tx.execute(f"DROP TRIGGER {trigger}")
            else:
                tx.execute("DROP TRIGGER audit_entries_append_only ON audit_entries")
                tx.execute("DROP TRIGGER audit_head_only_grows ON audit_head")
            tx.execute("DELETE FROM audit_entries WHERE idx = 4")
            tx.execute("UPDATE audit_entries SET idx = idx + 1000 WHERE idx > 4")
            tx.execute("UPDATE audit_entries SET idx = idx - 1001 WHERE idx >= 1000")
            tx.execute("UPDATE audit_head SET size = 9")
        report = log.verify()
        assert report.first_bad_index == 4, report.describe()
        assert any(p.exact and p.index == 4 and "moved to another index" in p.what for p in report.problems)
        assert "audit_tree" not in report.describe()


def test_altered_nodes_are_blamed_only_when_the_nodes_changed(store: Store, tmp_path: Path) -> None:
    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        log.append_many([("webhook.failed", {"k": k}) for k in range(8)])
        log.checkpoint()
        with store.transaction() as tx:
            tx.execute("UPDATE audit_tree SET hash = ? WHERE id = (SELECT MAX(id) FROM audit_tree)", ("ab" * 32,))
        report = log.verify()
        assert [p.where for p in report.problems] == ["stored tree nodes"], report.describe()


# --- the gateway folds an action's state only from verified entries ---------------------------------


def _denied_action(runtime: Runtime) -> str:
    # `no-drop-database`: denied outright
    action = Action.model_validate({"kind": "sql", "environment": "production", "target": "billing-db",
                                    "payload": {"sql": "DROP DATABASE billing"}})
    proposal = runtime.gateway.propose("kiro", action)
    assert proposal.state.value == "denied"
    return proposal.id


def test_a_row_outside_the_tree_cannot_turn_a_denied_action_into_an_allowed_one(store_url: str,
                                                                                 tmp_path: Path) -> None:
    """The issue's attack: after a restart GET /v1/actions/{id} said *allowed* for a denied action,
    because the state was folded from a row the verifier never looked at."""
    keys = tmp_path / "keys"
    with Runtime(EXAMPLE, store_url, keys) as runtime:
        action_id = _denied_action(runtime)
    with open_store(store_url) as store:
        _drop_guards(store)
        row = _row(store, 0)
        entry = json.loads(str(row["entry"]))
        entry["data"]["decision"]["decision"] = "allow"
        forged = json.dumps(entry, sort_keys=True, separators=(",", ":"))
        _copy_to(store, -1, {**row, "outcome": "allow"}, forged)  # sorts before the real proposal
        _copy_to(store, 2**50, {**row, "event": "execution.finished", "outcome": "succeeded"},
                 json.dumps({"data": {"action_id": action_id, "outcome": "succeeded", "result": {}},
                             "event": "execution.finished", "time": "2099-01-01T00:00:00.000000Z"}))
    with Runtime(EXAMPLE, store_url, keys) as runtime:  # the restart
        assert runtime.gateway.status(action_id).state.value == "denied"
        report = runtime.audit.verify()
        assert sorted(p.index for p in report.problems if p.index is not None) == [-1, 2**50]


def test_a_forged_entry_inside_the_tree_fails_closed(store_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    with Runtime(EXAMPLE, store_url, keys) as runtime:
        action_id = _denied_action(runtime)
        size = runtime.audit.size()
        with open_store(store_url) as store:
            forged = json.dumps({"data": {"action_id": action_id, "outcome": "succeeded", "result": {}},
                                 "event": "execution.finished", "time": "2099-01-01T00:00:00.000000Z"},
                                sort_keys=True, separators=(",", ":"))
            _copy_to(store, size, {**_row(store, 0), "event": "execution.finished", "outcome": "succeeded",
                                   "agent": None, "environment": None, "risk": None,
                                   "time": "2099-01-01T00:00:00.000000Z", "mac": None}, forged)
        with pytest.raises(GatewayUnavailable, match=f"entry {size}"):
            runtime.gateway.status(action_id)


def test_a_side_column_pointing_another_entry_at_an_action_fails_closed(store_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    with Runtime(EXAMPLE, store_url, keys) as runtime:
        action_id = _denied_action(runtime)
        runtime.audit.append("execution.finished", {"action_id": "act_elsewhere", "outcome": "succeeded",
                                                    "result": {}})
        with open_store(store_url) as store, store.transaction() as tx:
            if store.dialect == "sqlite":
                tx.execute("DROP TRIGGER audit_entries_append_only_update")
            else:
                tx.execute("DROP TRIGGER audit_entries_append_only ON audit_entries")
            tx.execute("UPDATE audit_entries SET action_id = ? WHERE action_id = 'act_elsewhere'", (action_id,))
        with pytest.raises(GatewayUnavailable, match="side column action_id"):
            runtime.gateway.status(action_id)


# --- the gate's tables are bound to the entries that recorded them (issue 10.2) ----------------------

DELETE = {"kind": "sql", "environment": "production", "target": "billing-db",
          "payload": {"sql": "DELETE FROM invoices WHERE id = 42"}}  # 2 approvals, at least 1 dba


def test_a_vote_row_written_into_the_database_is_not_counted_and_verify_names_it(store_url: str,
                                                                                 tmp_path: Path) -> None:
    from interlock.gate.integrity import gate_problems
    from interlock.gateway import Mode
    from interlock.identity import Principal

    with Runtime(EXAMPLE, store_url, tmp_path / "keys") as runtime:
        pending = runtime.gateway.propose("kiro", Action.model_validate(DELETE), mode=Mode.advisory)
        assert pending.approval is not None
        request_id = pending.approval["id"]
        with runtime.store.transaction() as tx:  # the attacker's vote: a row, no entry
            tx.execute("INSERT INTO approval_votes(request_id, human, token_id, verdict, reason, at) "
                       "VALUES (?, 'carol', 'tok_x', 'approve', '', '2026-01-01T00:00:00.000000Z')", (request_id,))
        status = runtime.gate.approve(request_id, Principal("human", "bob", "tok_bob"))
        assert not status.satisfied and status.approved_by == ("bob",), status.still_needs
        assert runtime.gateway.advance(pending.id).state.value == "pending_approval"
        [problem] = gate_problems(runtime.audit)
        assert problem.where == f"vote of carol on {request_id}" and "not counted" in problem.what


def test_a_grant_row_written_into_the_database_is_not_honoured(store_url: str, tmp_path: Path) -> None:
    from interlock.fingerprint import fingerprint
    from interlock.gate.integrity import gate_problems
    from interlock.gateway import Mode

    with Runtime(EXAMPLE, store_url, tmp_path / "keys") as runtime:
        action = Action.model_validate(DELETE)
        pending = runtime.gateway.propose("kiro", action, mode=Mode.advisory)
        assert pending.approval is not None
        fp = fingerprint("kiro", action, runtime.policy.version)
        with runtime.store.transaction() as tx:  # the attacker's grant: approved request + grant rows, no entries
            tx.execute("UPDATE approval_requests SET state = 'approved', pending_key = NULL WHERE id = ?",
                       (pending.approval["id"],))
            tx.execute("INSERT INTO grants(id, request_id, agent, fingerprint, policy_version, created_at, expires_at) "
                       "VALUES ('gnt_forged', ?, 'kiro', ?, ?, '2026-01-01T00:00:00.000000Z', "
                       "'2999-01-01T00:00:00.000000Z')", (pending.approval["id"], fp, runtime.policy.version))
        again = runtime.gateway.propose("kiro", action, mode=Mode.advisory)
        assert again.state.value != "approved", again.state
        with runtime.store.transaction(readonly=True) as tx:
            row = tx.fetchone("SELECT consumed_at FROM grants WHERE id = 'gnt_forged'")
        assert row is not None and row["consumed_at"] is None
        assert any(p.where.startswith("grant gnt_forged") and "not honoured" in p.what
                   for p in gate_problems(runtime.audit))


def test_votes_and_grants_through_the_gate_are_bound_and_verify_clean(store_url: str, tmp_path: Path) -> None:
    from interlock.gate.integrity import gate_problems
    from interlock.gateway import Mode
    from interlock.identity import Principal

    with Runtime(EXAMPLE, store_url, tmp_path / "keys") as runtime:
        pending = runtime.gateway.propose("kiro", Action.model_validate(DELETE), mode=Mode.advisory)
        assert pending.approval is not None
        for human in ("bob", "carol"):
            runtime.gate.approve(pending.approval["id"], Principal("human", human, f"tok_{human}"))
        assert runtime.gateway.advance(pending.id).state.value == "approved"
        assert gate_problems(runtime.audit) == []
        runtime.audit.checkpoint()
        assert runtime.audit.verify().ok


def test_a_token_row_written_into_the_database_does_not_authenticate(store: Store, tmp_path: Path) -> None:
    """DB write access must not mint a human's token: the row needs its token.created entry."""
    from interlock.gate.integrity import gate_problems
    from interlock.identity import AuthError, authenticate, create_token, secret_hash

    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        _, real = create_token(store, "human", "bob", None, log)
        assert authenticate(store, real, log=log).name == "bob"
        forged = "ilk_h_" + "A" * 43
        with store.transaction() as tx:
            tx.execute("INSERT INTO tokens(id, kind, name, secret_sha256, created_at) "
                       "VALUES ('tok_forged', 'human', 'bob', ?, '2026-01-01T00:00:00.000000Z')", (secret_hash(forged),))
        with pytest.raises(AuthError) as caught:
            authenticate(store, forged, log=log)
        assert caught.value.reason == "unrecorded"
        stolen = "ilk_h_" + "B" * 43  # a real row's lookup hash swapped for the attacker's
        with store.transaction() as tx:
            tx.execute("UPDATE tokens SET secret_sha256 = ? WHERE id != 'tok_forged'", (secret_hash(stolen),))
        with pytest.raises(AuthError, match="not recorded in the audit log"):
            authenticate(store, stolen, log=log)
        names = sorted(p.where for p in gate_problems(log))
        assert len(names) == 2 and names[1] == "token tok_forged (human bob)", names


def test_a_request_whose_terms_were_lowered_in_the_database_takes_no_vote(store_url: str, tmp_path: Path) -> None:
    from interlock.gate.integrity import gate_problems
    from interlock.gate.service import GateError
    from interlock.gateway import Mode
    from interlock.identity import Principal

    with Runtime(EXAMPLE, store_url, tmp_path / "keys") as runtime:
        pending = runtime.gateway.propose("kiro", Action.model_validate(DELETE), mode=Mode.advisory)
        assert pending.approval is not None
        request_id = pending.approval["id"]
        with runtime.store.transaction() as tx:  # two approvals lowered to one, straight in the table
            tx.execute("UPDATE approval_requests SET requirements_json = ? WHERE id = ?",
                       ('[{"count":1,"from_groups":[],"at_least":[],"source":"x"}]', request_id))
        with pytest.raises(GateError) as caught:
            runtime.gate.approve(request_id, Principal("human", "bob", "tok_bob"))
        assert caught.value.code == "unrecorded_request"
        assert runtime.gateway.advance(pending.id).state.value == "pending_approval"
        assert any(p.where == f"approval request {request_id}" for p in gate_problems(runtime.audit))


def test_the_api_never_shows_or_folds_a_row_outside_the_tree(store_url: str, tmp_path: Path) -> None:
    """GET /v1/audit/entries and GET /v1/actions/{id} read only what the proof covers (issue 10.1)."""
    from starlette.testclient import TestClient

    from interlock.identity import create_token
    from interlock.server.app import Settings, create_app

    app = create_app(Settings(policy=EXAMPLE, db=store_url, key_dir=tmp_path / "keys", allow_missing_secrets=True))
    server = app.state.server
    with TestClient(app) as http:
        _, agent = create_token(server.store, "agent", "kiro", None, server.audit, policy=server.policy)
        _, human = create_token(server.store, "human", "bob", None, server.audit, policy=server.policy)
        denied = http.post("/v1/actions", headers={"Authorization": f"Bearer {agent}"},
                           json={"kind": "sql", "environment": "production", "target": "billing-db",
                                 "payload": {"sql": "DROP DATABASE billing"}}).json()
        assert denied["state"] == "denied"
        _drop_guards(server.store)
        with server.store.transaction(readonly=True) as tx:
            first = tx.fetchone("SELECT idx FROM audit_entries WHERE action_id = ?", (denied["id"],))
        assert first is not None
        row = _row(server.store, int(first["idx"]))
        _copy_to(server.store, -5, {**row, "outcome": "allow"},
                 str(row["entry"]).replace('"decision":"deny"', '"decision":"allow"'))
        _copy_to(server.store, 2**50, row)
        shown = http.get("/v1/audit/entries", params={"action_id": denied["id"]},
                         headers={"Authorization": f"Bearer {human}"}).json()["entries"]
        assert [e["index"] for e in shown] == [int(first["idx"])]
        listed = http.get("/v1/audit/entries", params={"limit": 1000},
                          headers={"Authorization": f"Bearer {human}"}).json()["entries"]
        assert all(0 <= e["index"] < 2**40 for e in listed)
        again = http.get(f"/v1/actions/{denied['id']}", headers={"Authorization": f"Bearer {agent}"}).json()
        assert again["state"] == "denied"
