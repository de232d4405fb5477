"""A join answer remembered (`Gate.joined_status`, issue 18.5): the hot path's approval-required proposal that
simply joins a pending request is answered without reading the store while nothing that could change that
answer has happened. Each row: what happens after a first join -> what the next join answers, which must be
what a gate that remembers nothing reads from the store at that instant (both stores; PostgreSQL remembers
nothing: its listener's generations lag another replica's commit)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from interlock.audit import AuditLog
from interlock.gate.requests import RequestStatus
from interlock.gate.service import Gate
from interlock.identity import Principal
from interlock.model import Action, Classification, Decision
from interlock.policy import decide
from interlock.policy.classifying import classify_action
from interlock.store import Store, open_store
from tests import gate_fixtures as support
from tests.gate_fixtures import POLICY, ManualClock, Recorded, policy_from, sql

audit, clock, gate, policy = support.audit, support.clock, support.gate, support.policy

BOB, CAROL = Principal("human", "bob", "tok_b"), Principal("human", "carol", "tok_c")
#: The same requirements for the same owner, another version: a reload re-pins the pending request.
V2 = POLICY.replace("version: 1\n", "version: 1\ndescription: v2\n")


@dataclass
class Proposed:
    action: Action
    classification: Classification
    decision: Decision


def decided(gate: Gate, action: Action | None = None) -> Proposed:
    action = action or sql()
    classification = classify_action(gate.policy, action)
    return Proposed(action, classification, decide(gate.policy, "kiro", action, classification))


def join(gate: Gate, p: Proposed) -> RequestStatus | None:
    return gate.joined_status("kiro", p.action, p.decision, p.classification)


def fresh(gate: Gate, p: Proposed) -> RequestStatus | None:
    """What a gate that remembers nothing answers now, from the store."""
    return join(Gate(gate.store, gate.policy, gate.audit, clock=gate.clock), p)


def opened(gate: Gate, p: Proposed) -> str:
    return gate.open_request("kiro", p.action, p.decision, p.classification).id


def _nothing(gate: Gate, request_id: str, clock: ManualClock) -> None:
    pass


def _bob_approves(gate: Gate, request_id: str, clock: ManualClock) -> None:
    gate.approve(request_id, BOB)


def _quorum_issues_a_grant(gate: Gate, request_id: str, clock: ManualClock) -> None:
    gate.approve(request_id, BOB)
    gate.approve(request_id, CAROL)


def _grant_consumed(gate: Gate, request_id: str, clock: ManualClock) -> None:
    _quorum_issues_a_grant(gate, request_id, clock)
    gate.consume_grant("kiro", sql(), consumer="act_test")


def _carol_denies(gate: Gate, request_id: str, clock: ManualClock) -> None:
    gate.deny(request_id, CAROL, "not today")


def _a_minute_passes(gate: Gate, request_id: str, clock: ManualClock) -> None:
    clock.advance(60)


def _past_its_expiry(gate: Gate, request_id: str, clock: ManualClock) -> None:
    clock.advance(3600)  # nobody swept it: the remembered answer's expiry is checked at use


def _another_replica_sweeps(gate: Gate, request_id: str, clock: ManualClock) -> None:
    later = ManualClock(clock.now)
    later.advance(3601)  # another replica's sweep, its clock ahead of this gate's
    Gate(gate.store, gate.policy, gate.audit, clock=later).expire_due()


def _expired_and_reopened(gate: Gate, request_id: str, clock: ManualClock) -> None:
    _another_replica_sweeps(gate, request_id, clock)
    opened(gate, decided(gate))  # the same action proposed again: a new request, the same fingerprint


def _policy_reloaded(gate: Gate, request_id: str, clock: ManualClock) -> None:
    gate.on_policy_change(policy_from(V2))  # the request is re-pinned: new version, new fingerprint


def _another_replica_reloads(gate: Gate, request_id: str, clock: ManualClock) -> None:
    # This gate still runs the old policy; the request moved to the new version's fingerprint.
    Gate(gate.store, policy_from(V2), gate.audit, clock=clock).on_policy_change(policy_from(V2))


Event = Callable[[Gate, str, ManualClock], None]


@pytest.mark.parametrize(
    ("event", "answer"),
    [
        (_nothing, "the same request"),
        (_bob_approves, "the same request, approved by bob"),
        (_quorum_issues_a_grant, None),  # the proposal may use the grant: the full path's to decide
        (_grant_consumed, None),  # nothing pending for the fingerprint any more
        (_carol_denies, None),
        (_a_minute_passes, "the same request, a minute less"),
        (_past_its_expiry, None),
        (_another_replica_sweeps, None),
        (_expired_and_reopened, "a new request"),
        (_policy_reloaded, None),  # the decision the caller holds is the old policy's
        (_another_replica_reloads, None),
    ],
)
def test_a_join_answer_holds_until_something_changes_it(gate: Gate, clock: ManualClock, event: Event,
                                                         answer: str | None) -> None:
    proposed = decided(gate)
    request_id = opened(gate, proposed)
    first = join(gate, proposed)
    assert first is not None and first.request.id == request_id
    event(gate, request_id, clock)
    now = join(gate, proposed)
    assert now == fresh(gate, proposed)
    assert _described(now, first) == answer


def _described(status: RequestStatus | None, first: RequestStatus) -> str | None:
    if status is None:
        return None
    if status.request.id != first.request.id:
        return "a new request"
    if status.approved_by:
        return f"the same request, approved by {', '.join(status.approved_by)}"
    return "the same request" + (", a minute less" if status.seconds_left == first.seconds_left - 60 else "")


def test_a_reloaded_policy_joins_the_repinned_request_under_its_own_decision(gate: Gate) -> None:
    before = decided(gate)
    request_id = opened(gate, before)
    assert join(gate, before) is not None
    gate.on_policy_change(policy_from(V2))
    after = decided(gate)
    now = join(gate, after)
    assert now == fresh(gate, after)
    assert now is not None and (now.request.id, now.request.policy_version) == (request_id, gate.policy.version)


def test_a_repeated_join_reads_nothing_on_sqlite(gate: Gate, store: Store) -> None:
    proposed = decided(gate)
    opened(gate, proposed)
    first = join(gate, proposed)
    again = join(gate, proposed)
    # The remembered answer itself (nothing was read or rebuilt); PostgreSQL reads it again, equal.
    assert (again is first) is (store.dialect == "sqlite")
    assert again == first


def test_what_a_gate_remembers_is_bounded(gate: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    import interlock.gate.service as service

    monkeypatch.setattr(service, "JOINS_MOST", 3)
    for n in range(8):
        proposed = decided(gate, sql(f"DELETE FROM invoices WHERE id = {n}"))
        opened(gate, proposed)
        assert join(gate, proposed) is not None
        assert len(gate._joins) <= 3


# --- another process on the same database -------------------------------------------------------------------

_OTHER_PROCESS = """
import sys
from pathlib import Path
from interlock.audit import AuditLog
from interlock.gate.service import Gate
from interlock.identity import Principal
from interlock.policy import decide
from interlock.policy.classifying import classify_action
from interlock.store import open_store
from tests.gate_fixtures import policy_from, sql

url, keys, request_id = sys.argv[1:4]
with open_store(url) as store, AuditLog(store, key_dir=Path(keys)) as log:
    gate = Gate(store, policy_from(), log)
    gate.deny(request_id, Principal("human", "carol", "tok_c"), "not today")
    action = sql()
    classification = classify_action(gate.policy, action)
    decision = decide(gate.policy, "kiro", action, classification)
    print(gate.open_request("kiro", action, decision, classification).id)
"""


@pytest.fixture
def own_gate(store_url: str, tmp_path: Path) -> Iterator[Gate]:
    with open_store(store_url) as store, AuditLog(store, key_dir=tmp_path / "keys") as log:
        yield Gate(store, policy_from(), Recorded(log))


def test_a_request_opened_by_another_process_is_joined_at_once(own_gate: Gate, store_url: str,
                                                                tmp_path: Path) -> None:
    """Another process denies the request this gate remembers joining and opens a new one for the same
    action: the next join here is the new request (SQLite: the sidecar file every publisher appends to)."""
    proposed = decided(own_gate)
    request_id = opened(own_gate, proposed)
    assert join(own_gate, proposed) is not None
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS, store_url, str(tmp_path / "keys"), request_id],
        capture_output=True, text=True, check=True, cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{root / 'src'}:{root}"})
    reopened = done.stdout.strip().splitlines()[-1]
    now = join(own_gate, proposed)
    assert now is not None and reopened != request_id
    assert (now.request.id, now.approved_by) == (reopened, ())
    assert now == fresh(own_gate, proposed)

