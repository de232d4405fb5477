"""The hot path awaited on an event loop (issue 18.5): `AuditLog.append_async` and `Gateway.propose_async`
keep every promise of their thread-waiting twins: the entry is durable before the answer, the same entries
and errors, fail closed when the store fails or is slow, and only a gate or a run leaves the loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from interlock.audit import AuditError, AuditLog
from interlock.gateway import Mode, Proposal
from interlock.identity import Principal
from interlock.model import Action
from interlock.runtime import Runtime
from interlock.store import Store, StoreError, open_store
from interlock.testing import eventually
from tests.conftest import audit_lock_held

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "examples" / "policy.yaml"


@pytest.fixture
def log(store: Store, tmp_path: Path) -> Iterator[AuditLog]:
    with AuditLog(store, key_dir=tmp_path / "keys") as opened:
        yield opened


def test_an_awaited_entry_is_the_entry_append_writes(log: AuditLog, store: Store) -> None:
    data = {"agent": "kiro", "action_id": "a1", "outcome": "allow", "tags": ("x", "y"), "token": "hunter2"}
    threaded = log.append("action.proposed", data)
    awaited = asyncio.run(log.append_async("action.proposed", data))
    assert awaited.index == threaded.index + 1
    with store.transaction() as tx:  # durable when the await returned: readable from another connection
        rows = tx.fetchall("SELECT idx, entry FROM audit_entries ORDER BY idx")
    texts = [row["entry"].replace(r.time, "T") for row, r in zip(rows, (threaded, awaited), strict=True)]
    assert texts[0] == texts[1] and '"token":"[REDACTED]"' in texts[1]
    assert log.verify().ok


@pytest.mark.parametrize("entries", [0, 1, 2, 5])
def test_awaited_entries_are_the_entries_append_many_writes(log: AuditLog, store: Store, entries: int) -> None:
    items = [("action.proposed", {"action_id": f"a{i}", "token": "hunter2"}) for i in range(entries)]
    threaded = log.append_many(items)
    awaited = asyncio.run(log.append_many_async(items))
    assert [r.index for r in awaited] == [r.index + entries for r in threaded]  # in order, after them
    with store.transaction() as tx:  # durable when the await returned: readable from another connection
        rows = tx.fetchall("SELECT entry FROM audit_entries ORDER BY idx")
    texts = [row["entry"].replace(r.time, "T") for row, r in zip(rows, [*threaded, *awaited], strict=True)]
    assert texts[:entries] == texts[entries:]
    assert log.verify().ok


def test_a_store_failure_reaches_the_caller_awaiting_several(store: Store, tmp_path: Path) -> None:
    log = AuditLog(store, key_dir=tmp_path / "keys")
    store.close()
    with pytest.raises(StoreError):
        asyncio.run(log.append_many_async([("webhook.failed", {"n": n}) for n in range(2)]))
    log.close()


def test_many_tasks_and_threads_build_one_valid_tree(log: AuditLog) -> None:
    """Awaiting tasks on two loops and blocking threads share the writer's batches; each hears of its own entry."""

    async def tasks(prefix: str) -> list[int]:
        receipts = await asyncio.gather(*(log.append_async("action.proposed", {"action_id": f"{prefix}{i}"})
                                          for i in range(60)))
        return [r.index for r in receipts]

    indexes: list[int] = []
    lock = threading.Lock()

    def on_a_loop(prefix: str) -> None:
        found = asyncio.run(tasks(prefix))
        with lock:
            indexes.extend(found)

    def blocking(prefix: str) -> None:
        for i in range(30):
            index = log.append("action.proposed", {"action_id": f"{prefix}{i}"}).index
            with lock:
                indexes.append(index)

    workers = [threading.Thread(target=f, args=(p,)) for f, p in ((on_a_loop, "a"), (on_a_loop, "b"),
                                                                   (blocking, "c"), (blocking, "d"))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(indexes) == list(range(180))
    assert log.batches < 180  # grouped: the awaiting tasks joined batches
    report = log.verify()
    assert report.ok and report.entries == 180, report.describe()


def test_one_turns_entries_go_to_the_writer_together_in_order(log: AuditLog, store: Store) -> None:
    """Entries awaited in one turn of the loop are handed over once the turn's callbacks have run, in the
    order they were made: they share a batch (the writer is not woken by the first and left to miss the
    rest) and keep their order in the log."""
    async def turn() -> list[int]:
        before = log.batches
        receipts = await asyncio.gather(*(log.append_async("action.proposed", {"action_id": f"t{i}"})
                                          for i in range(40)))
        assert log.batches - before <= 2  # one batch, or two if the writer's GIL wait timed out mid-hand-off
        return [r.index for r in receipts]

    log.append("action.proposed", {"action_id": "warm"})  # the writer thread is up and idle
    assert asyncio.run(turn()) == list(range(1, 41))
    with store.transaction(readonly=True) as tx:
        ids = [r["action_id"] for r in tx.fetchall("SELECT action_id FROM audit_entries ORDER BY idx")]
    assert ids == ["warm", *(f"t{i}" for i in range(40))]


def test_entries_of_a_turn_when_the_log_closed_meanwhile_fail_closed(store: Store, tmp_path: Path) -> None:
    """The log closed between an entry's making and the end of its turn: nobody writes it, and its caller
    hears so at once (never waits out the timeout, never takes it as written)."""
    log = AuditLog(store, key_dir=tmp_path / "keys")
    log.append("action.proposed", {"action_id": "warm"})

    async def made_then_closed() -> None:
        waiting = asyncio.ensure_future(log.append_async("action.proposed", {"action_id": "late"}, timeout=30))
        await asyncio.sleep(0)  # made and waiting for the turn's end
        log.close()
        with pytest.raises(AuditError, match="closed"):
            await asyncio.wait_for(waiting, 5)

    asyncio.run(made_then_closed())
    with store.transaction(readonly=True) as tx:
        assert tx.fetchone("SELECT COUNT(*) AS n FROM audit_entries")["n"] == 1


def test_a_store_failure_reaches_the_awaiting_caller(store: Store, tmp_path: Path) -> None:
    log = AuditLog(store, key_dir=tmp_path / "keys")
    store.close()
    with pytest.raises(StoreError):
        asyncio.run(log.append_async("webhook.failed", {"message": "store is gone"}))
    log.close()


def test_an_entry_not_durable_in_time_fails_closed_and_lands_later(store_url: str, tmp_path: Path) -> None:
    """Another process holds the audit lock past the timeout: the awaiting caller hears StoreUnavailable
    (its step is denied), the loop is never blocked, and the entry is written once the lock is free."""
    async def late() -> int:
        ticks = 0

        async def tick() -> None:  # the loop keeps running while the entry waits
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        try:
            with pytest.raises(StoreError, match=r"not durable within 0\.5 s"):
                await log.append_async("webhook.failed", {"message": "held"}, timeout=0.5)
        finally:
            ticker.cancel()
        return ticks

    with audit_lock_held(store_url) as let_go, open_store(store_url) as store, \
            AuditLog(store, key_dir=tmp_path / "keys") as log:
        try:
            assert asyncio.run(late()) >= 10
        finally:
            let_go()
        log.append("webhook.failed", {"message": "after"})
        report = log.verify()
        assert report.ok and report.entries == 2, report.describe()


# --- Gateway.propose_async against Gateway.propose ------------------------------------------------------

READ = {"command": "ls -la /srv/app"}
SCALE = {"command": "kubectl scale deployment/api --replicas=5 -n billing"}
DROP = {"command": "psql -c 'DROP DATABASE billing'"}


@pytest.fixture
def runtime(store_url: str, tmp_path: Path) -> Iterator[Runtime]:
    with Runtime(POLICY, store_url, tmp_path / "keys") as opened:
        yield opened


@pytest.mark.parametrize(
    ("environment", "payload", "state", "offloaded"),
    [
        ("production", READ, "allowed", False),  # the common proposal: answered on the loop
        ("sandbox", DROP, "denied", False),  # a deny rule: answered on the loop
        # joins the request the first proposal opened: read on the loop on SQLite, on a worker thread on
        # PostgreSQL (a read there is a round trip)
        ("production", SCALE, "pending_approval", "postgresql"),
    ],
)
def test_propose_async_answers_and_records_as_propose_does(runtime: Runtime, environment: str,
                                                           payload: dict[str, Any], state: str,
                                                           offloaded: bool | str) -> None:
    action = Action(kind="shell", environment=environment, payload=payload)
    sent: list[str] = []

    async def offload(call: Callable[[], Proposal]) -> Proposal:
        sent.append(threading.current_thread().name)
        return await asyncio.to_thread(call)

    runtime.gateway.propose("kiro", action, mode=Mode.advisory)  # the first action's guard finding: once
    threaded = runtime.gateway.propose("kiro", action, mode=Mode.advisory)
    awaited = asyncio.run(runtime.gateway.propose_async("kiro", action, mode=Mode.advisory, offload=offload))
    assert (threaded.state.value, awaited.state.value) == (state, state)
    assert bool(sent) is (offloaded if isinstance(offloaded, bool) else runtime.store.dialect == offloaded)

    def answer(p: Proposal) -> dict[str, Any]:
        body = p.to_json()
        body.pop("id")
        if "approval" in body:  # the second proposal joined the first one's request
            body["approval"] = {k: v for k, v in body["approval"].items() if k != "seconds_left"}
        return body

    assert answer(awaited) == answer(threaded)

    def recorded(p: Proposal) -> list[tuple[str, dict[str, Any]]]:
        return [(event, {k: v for k, v in data.items() if k != "action_id"})
                for _, event, data in runtime.audit.action_entries(p.id)]

    assert recorded(awaited) == recorded(threaded)
    assert recorded(awaited)[0][0] == "action.proposed"


# --- what a policy remembers of an action body (gateway._Judged) -------------------------------------------

def _body(payload: dict[str, Any], **fields: Any) -> Action:
    return Action(**{"kind": "shell", "environment": "production", "payload": payload, **fields})


@pytest.mark.parametrize(
    ("first", "second", "shared"),
    [
        (("kiro", _body(READ)), ("kiro", _body(READ, rationale={"intent": "again"})), True),  # rationale: not judged
        (("kiro", _body(READ)), ("reporter", _body(READ)), False),  # another agent, other roles
        (("kiro", _body(READ)), ("kiro", _body(READ, environment="sandbox")), False),
        (("kiro", _body({"a": 1, "b": 2}, kind="http")), ("kiro", _body({"b": 2, "a": 1}, kind="http")), False),
        (("kiro", _body({"replicas": 1}, kind="http")), ("kiro", _body({"replicas": 1.0}, kind="http")), False),
        (("kiro", _body({"command": "ls " + "x" * 3000})), ("kiro", _body({"command": "ls " + "x" * 3000})), False),
        (("kiro", _body({"plan": {}}, kind="terraform")), ("kiro", _body({"plan": {}}, kind="terraform")), False),
    ],
)
def test_a_policy_remembers_exactly_one_bodys_judgement(runtime: Runtime, first: tuple[str, Action],
                                                         second: tuple[str, Action], shared: bool) -> None:
    gateway = runtime.gateway
    one, two = gateway._judged(*first), gateway._judged(*second)
    assert (one is two) is shared
    if not shared:  # whatever was remembered, each is what judging it afresh gives
        assert two.classification == gateway.classify(second[1])


def test_the_memo_is_bounded(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    import interlock.gateway as gateway_module

    monkeypatch.setattr(gateway_module, "JUDGED_MOST", 3)
    for n in range(10):
        runtime.gateway._judged("kiro", _body({"command": f"ls /srv/{n}"}))
        assert len(runtime.policy._compiled["judged"]) <= 3



@pytest.mark.parametrize("riding", [False, True])
def test_a_new_requests_pending_entry_is_recorded_with_it(runtime: Runtime, riding: bool) -> None:
    """The approval-required proposal that opens a request: `action.pending` commits with the request's own
    entry (or after it, in a batch of its own, when a caller rides entries on the Gateway's), and the answer
    shows the request as reading it back does."""
    from interlock.gateway import riding as ride

    action = _body({"command": "kubectl scale deployment/web --replicas=3 -n billing"})
    rode: list[str] = []

    def riders(event: str, data: Any) -> list[tuple[str, dict[str, Any]]]:
        rode.append(event)
        return []

    if riding:
        with ride(riders):
            proposal = runtime.gateway.propose("kiro", action, mode=Mode.advisory)
    else:
        proposal = runtime.gateway.propose("kiro", action, mode=Mode.advisory)
    assert proposal.state.value == "pending_approval" and proposal.approval is not None
    request_id = proposal.approval["id"]
    size = runtime.audit.size()
    with runtime.store.transaction() as tx:
        events = [runtime.audit.entry_at(tx, i) for i in range(size)]
    mine = [(e, d) for e, d in (x for x in events if x is not None)
            if d.get("action_id") == proposal.id or d.get("request_id") == request_id]
    assert [e for e, _ in mine] == ["action.proposed", "approval.requested", "action.pending"]
    assert mine[2][1] == {"action_id": proposal.id, "agent": "kiro", "request_id": request_id}
    assert rode == (["action.proposed", "action.pending"] if riding else [])
    read = runtime.gateway.status(proposal.id, agent="kiro")
    assert read.approval is not None
    assert {k: v for k, v in proposal.approval.items() if k != "seconds_left"} == \
        {k: v for k, v in read.approval.items() if k != "seconds_left"}


@pytest.mark.parametrize(("granted", "offloaded"), [(False, "postgresql"), (True, "any store")])
def test_an_approval_required_proposal_leaves_the_loop_unless_it_simply_joins(runtime: Runtime, granted: bool,
                                                                               offloaded: str) -> None:
    """A request to open, or a grant the proposal may use, is the worker thread's (the full `settle`)."""
    action = Action(kind="shell", environment="production", payload=SCALE)
    sent: list[str] = []

    async def offload(call: Callable[[], Proposal]) -> Proposal:
        sent.append(threading.current_thread().name)
        return await asyncio.to_thread(call)

    first = runtime.gateway.propose("kiro", action, mode=Mode.advisory)
    assert first.approval is not None
    if granted:  # one approval from someone other than kiro's owner (alice)
        runtime.gate.approve(first.approval["id"], Principal("human", "bob", "tok_b"))
    # The first proposal's guard alerts are audited by the guard's own thread: wait for them to be in, or
    # their batch may land inside the count below.
    guard = runtime.gateway.guard
    assert guard is not None
    alerts = sum(n for key, n in guard.counts.items() if key[0] == "alerts")
    eventually(lambda: len(runtime.audit.search(event="guard.tripped")) == alerts)
    batches = runtime.audit.batches
    answer = asyncio.run(runtime.gateway.propose_async("kiro", action, mode=Mode.advisory, offload=offload))
    assert answer.state.value == ("approved" if granted else "pending_approval")
    assert bool(sent) is (granted or runtime.store.dialect == offloaded)
    if not sent:  # joined on the loop: action.proposed and action.pending in one durable batch
        assert runtime.audit.batches - batches == 1
        assert [e for _, e, _ in runtime.audit.action_entries(answer.id)] == ["action.proposed", "action.pending"]


def test_proposals_racing_to_open_one_request_share_it(runtime: Runtime) -> None:
    """Eight threads propose the same new approval-required action at once: each read no pending request
    before its write (the gate then opens without reading again), yet one request is opened, recorded
    once, and every proposal's `action.pending` names it."""
    action = _body({"command": "kubectl scale deployment/race --replicas=4 -n billing"})
    start = threading.Barrier(8)
    proposals: list[Proposal] = []
    lock = threading.Lock()

    def propose() -> None:
        start.wait(10)
        proposal = runtime.gateway.propose("kiro", action, mode=Mode.advisory)
        with lock:
            proposals.append(proposal)

    threads = [threading.Thread(target=propose) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {p.state.value for p in proposals} == {"pending_approval"}
    request_ids = {p.approval["id"] for p in proposals if p.approval is not None}
    assert len(request_ids) == 1
    [request_id] = request_ids
    requested = [e for e in runtime.audit.search(event="approval.requested") if e["data"]["request_id"] == request_id]
    assert len(requested) == 1
    for p in proposals:
        assert [(e, d.get("request_id")) for _, e, d in runtime.audit.action_entries(p.id)][-1] == \
            ("action.pending", request_id)
