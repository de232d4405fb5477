"""Races in separate PROCESSES on one database (SQLite file and PostgreSQL): N approvers at once yield
exactly one grant; N consumers of one grant at once yield exactly one execution."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

import pytest

from interlock.audit import AuditLog
from interlock.gate.service import Gate, GateError
from interlock.identity import authenticate, create_token
from interlock.store import open_store
from tests.gate_fixtures import propose, sql

N = 8
HUMANS = [f"h{i}" for i in range(N)]
POLICY = (
    "version: 1\n"
    "humans:\n" + "".join(f"  {h}: {{groups: [dba]}}\n" for h in HUMANS) + "  owner: {groups: [dba]}\n"
    "agents:\n  kiro: {owner: owner, roles: [deployer]}\n"
    "environments:\n  production: {protected: true}\n"
    "targets:\n  billing-db: {environment: production, kind: sql, dsn: env:BILLING_DSN}\n"
    "roles:\n  deployer:\n    production: {autonomous: read, approve: {write: {count: 3, from: [dba]}, "
    "destructive: {count: 3, from: [dba]}}}\n"
)


def _gate(url: str, keys: Path) -> tuple[Gate, AuditLog, Any]:
    from interlock.policy import load_policy_text

    store = open_store(url)
    audit = AuditLog(store, key_dir=keys)
    return Gate(store, load_policy_text(POLICY), audit), audit, store


def _approver(url: str, keys: Path, request_id: str, secret: str, barrier: Any, results: Any) -> None:
    gate, audit, store = _gate(url, keys)
    try:
        principal = authenticate(store, secret, log=audit)
        barrier.wait(30)
        try:
            status = gate.approve(request_id, principal)
            results.put(("ok", principal.name, status.request.state.value))
        except GateError as exc:
            results.put(("refused", principal.name, exc.code))
    finally:
        audit.close()
        store.close()


def _consumer(url: str, keys: Path, index: int, barrier: Any, results: Any) -> None:
    gate, audit, store = _gate(url, keys)
    try:
        barrier.wait(30)
        try:
            grant = gate.consume_grant("kiro", sql(), consumer=f"worker-{index}")
            results.put(("executed", index, grant.id))
        except GateError as exc:
            results.put(("refused", index, exc.code))
    finally:
        audit.close()
        store.close()


def _proposer(url: str, keys: Path, barrier: Any, results: Any) -> None:
    gate, audit, store = _gate(url, keys)
    try:
        barrier.wait(30)
        results.put(("opened", 0, propose(gate, sql()).id))
    finally:
        audit.close()
        store.close()


def _context() -> Any:
    """Separate processes from a fork server that imported this module (so Interlock) once: each racer
    is a fresh fork of a single-threaded process, not a spawn that imports everything again (8 imports
    of ~1 s each per test). The fork server outlives the test; it is the test process's child."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def _run(target: Any, args_for: list[tuple[Any, ...]]) -> list[tuple[str, Any, str]]:
    ctx = _context()
    barrier = ctx.Barrier(len(args_for))
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, results)) for args in args_for]
    for p in procs:
        p.start()
    out = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    return out


@pytest.fixture
def setup(store_url: str, tmp_path: Path) -> tuple[str, Path, Gate, Any, AuditLog]:
    keys = tmp_path / "keys"
    gate, audit, store = _gate(store_url, keys)  # creates the signing key before the workers share it
    return store_url, keys, gate, store, audit


def test_concurrent_approvers_issue_exactly_one_grant(setup: tuple[str, Path, Gate, Any, AuditLog]) -> None:
    url, keys, gate, store, audit = setup
    try:
        request = propose(gate, sql())
        secrets = [create_token(store, "human", h, None, audit)[1] for h in HUMANS]
        results = _run(_approver, [(url, keys, request.id, s) for s in secrets])
        ok = [r for r in results if r[0] == "ok"]
        # Votes are serialised: the first three count (the third satisfies the quorum), the rest find
        # the request already approved.
        assert len(ok) == 3
        assert sorted(r[2] for r in results if r[0] == "refused") == ["approved"] * (N - 3)
        with store.transaction() as tx:
            grants = tx.fetchall("SELECT id FROM grants WHERE request_id = ?", (request.id,))
            votes = tx.fetchall("SELECT human FROM approval_votes WHERE request_id = ?", (request.id,))
        assert len(grants) == 1
        assert sorted(v["human"] for v in votes) == sorted(r[1] for r in ok)
        assert gate.status(request.id).request.state.value == "approved"
    finally:
        audit.close()
        store.close()


def test_concurrent_consumers_execute_exactly_once(setup: tuple[str, Path, Gate, Any, AuditLog]) -> None:
    url, keys, gate, store, audit = setup
    try:
        request = propose(gate, sql())
        for h in HUMANS[:3]:
            _, secret = create_token(store, "human", h, None, audit)
            gate.approve(request.id, authenticate(store, secret, log=audit))
        results = _run(_consumer, [(url, keys, i) for i in range(N)])
        executed = [r for r in results if r[0] == "executed"]
        assert len(executed) == 1
        assert sorted(r[2] for r in results if r[0] == "refused") == ["grant_consumed"] * (N - 1)
        with store.transaction() as tx:
            row = tx.fetchone("SELECT consumed_by FROM grants WHERE request_id = ?", (request.id,))
        assert row is not None and row["consumed_by"] == f"worker-{executed[0][1]}"
        assert gate.status(request.id).request.state.value == "consumed"
    finally:
        audit.close()
        store.close()


def test_concurrent_proposals_of_one_action_share_one_request(setup: tuple[str, Path, Gate, Any, AuditLog]) -> None:
    url, keys, _, store, audit = setup
    try:
        results = _run(_proposer, [(url, keys)] * 4)
        assert len({r[2] for r in results}) == 1  # an agent retrying from many processes gets one request
        with store.transaction() as tx:
            assert tx.fetchone("SELECT count(*) AS n FROM approval_requests") == {"n": 1}
    finally:
        audit.close()
        store.close()
