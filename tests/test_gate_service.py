"""The gate on SQLite and PostgreSQL: requests, quorum with separation of duties, grants, expiry,
policy change, and every way of gaming an approval the threat table in docs/approvals.md lists."""

from __future__ import annotations

import pytest

from interlock.classify.registry import classify
from interlock.gate.requests import RequestState
from interlock.gate.service import Gate, GateError
from interlock.model import ApprovalRequirement
from interlock.policy import context_for, decide
from interlock.store import Store
from tests import gate_fixtures as support
from tests.gate_fixtures import DELETE, POLICY, ManualClock, Recorded, login, policy_from, propose, sql

# The shared fixtures, registered in this module.
audit, clock, gate, policy = support.audit, support.clock, support.gate, support.policy


def approve_as(gate: Gate, store: Store, audit: Recorded, request_id: str, *names: str) -> None:
    for name in names:
        gate.approve(request_id, login(store, audit, name))


def refused(code: str, call: object, *args: object) -> GateError:
    with pytest.raises(GateError) as info:
        call(*args)  # type: ignore[operator]
    assert info.value.code == code, str(info.value)
    return info.value


def test_request_holds_everything_an_approver_needs(gate: Gate, audit: Recorded, clock: ManualClock) -> None:
    request = propose(gate, sql())
    assert request.state is RequestState.pending
    assert request.action == sql()
    assert request.rationale is not None and request.rationale.intent == "remove a duplicate invoice"
    assert request.classification.risk.value in ("write", "destructive")
    assert "prod-sql-dba" in request.rules
    assert [r.describe() for r in request.requirements] == ["2 approvals from dba or sre, at least 1 from dba"]
    assert request.eligible == ("bob", "carol", "dave")  # alice owns kiro; erin is in finance
    assert request.owner == "alice"
    assert request.policy_version == gate.policy.version
    assert (request.expires_at - request.created_at).total_seconds() == 3600
    assert audit.names() == ["approval.requested"]
    assert (
        gate.status(request.id).still_needs
        == "still needs 2 more from dba or sre (prod-sql-dba); 1 more from dba (prod-sql-dba)"
    )


def test_retrying_the_same_action_returns_the_same_request(gate: Gate) -> None:
    first = propose(gate, sql())
    assert propose(gate, sql()).id == first.id
    assert propose(gate, sql(DELETE + " AND paid = false")).id != first.id


@pytest.mark.parametrize(
    ("approvers", "state", "still_needs"),
    [
        (
            ["dave"],
            RequestState.pending,
            "still needs 1 more from dba or sre (prod-sql-dba); 1 more from dba (prod-sql-dba)",
        ),
        (["bob"], RequestState.pending, "still needs 1 more from dba or sre (prod-sql-dba)"),
        (["dave", "carol"], RequestState.approved, "satisfied"),
        (["bob", "dave"], RequestState.approved, "satisfied"),
    ],
)
def test_quorum(
    gate: Gate, store: Store, audit: Recorded, approvers: list[str], state: RequestState, still_needs: str
) -> None:
    request = propose(gate, sql())
    approve_as(gate, store, audit, request.id, *approvers)
    status = gate.status(request.id)
    assert (status.request.state, status.still_needs) == (state, still_needs)
    assert (status.grant is not None) is (state is RequestState.approved)
    assert ("grant.issued" in audit.names()) is (state is RequestState.approved)


@pytest.mark.parametrize(
    ("who", "kind", "code"),
    [
        ("alice", "human", "not_eligible"),  # the agent's owner never counts
        ("erin", "human", "not_eligible"),  # outside the eligible groups
        ("mallory", "human", "not_eligible"),  # a token for a name the policy does not know
        ("kiro", "agent", "agent_token"),  # the agent itself
        ("dave", "agent", "agent_token"),  # an agent token named like a human is still an agent
    ],
)
def test_who_cannot_approve(gate: Gate, store: Store, audit: Recorded, who: str, kind: str, code: str) -> None:
    request = propose(gate, sql())
    principal = login(store, audit, who, kind)
    refused(code, gate.approve, request.id, principal)
    assert audit.last("approval.refused")["code"] == code
    status = gate.status(request.id)
    assert status.request.state is RequestState.pending and status.votes == ()


def test_one_human_approving_twice_counts_once(gate: Gate, store: Store, audit: Recorded) -> None:
    request = propose(gate, sql())
    bob = login(store, audit, "bob")
    gate.approve(request.id, bob)
    refused("already_voted", gate.approve, request.id, bob)
    refused("already_voted", gate.approve, request.id, login(store, audit, "bob"))  # a second token of bob's
    status = gate.status(request.id)
    assert status.request.state is RequestState.pending and status.approved_by == ("bob",)


def test_one_denial_ends_the_request_and_needs_a_reason(gate: Gate, store: Store, audit: Recorded) -> None:
    request = propose(gate, sql())
    carol = login(store, audit, "carol")
    refused("reason_required", gate.deny, request.id, carol, "   ")
    gate.approve(request.id, login(store, audit, "bob"))
    status = gate.deny(request.id, carol, "invoice 42 is not a duplicate")
    assert status.request.state is RequestState.denied
    assert "invoice 42 is not a duplicate" in status.request.state_reason
    refused("denied", gate.approve, request.id, login(store, audit, "dave"))
    refused("denied", gate.consume_grant, "kiro", sql())
    assert "approval.denied" in audit.names()


def test_owner_may_deny_but_never_approve(gate: Gate, store: Store, audit: Recorded) -> None:
    request = propose(gate, sql())
    alice = login(store, audit, "alice")
    refused("not_eligible", gate.approve, request.id, alice)
    assert gate.deny(request.id, alice, "not during the freeze").request.state is RequestState.denied


def test_unknown_request(gate: Gate, store: Store, audit: Recorded) -> None:
    refused("unknown_request", gate.approve, "apr_nope", login(store, audit, "bob"))
    assert audit.last("approval.refused")["request_id"] == "apr_nope"


def test_grant_runs_once_for_exactly_that_action(gate: Gate, store: Store, audit: Recorded) -> None:
    request = propose(gate, sql())
    approve_as(gate, store, audit, request.id, "bob", "dave")
    grant = gate.consume_grant("kiro", sql())
    assert grant.request_id == request.id
    assert gate.status(request.id).request.state is RequestState.consumed
    refused("grant_consumed", gate.consume_grant, "kiro", sql())  # replay
    refused("consumed", gate.approve, request.id, login(store, audit, "carol"))  # nothing left to decide
    assert audit.names().count("grant.consumed") == 1
    assert audit.last("grant.refused")["code"] == "grant_consumed"


@pytest.mark.parametrize(
    ("agent", "action"),
    [
        ("kiro", sql(DELETE + " OR 1=1")),  # payload edited after approval
        ("kiro", sql(DELETE.lower())),  # one character
        ("kiro", sql(target="other-db")),  # another target
        ("kiro", sql(target="staging-db", env="staging")),  # another environment
        ("other-agent", sql()),  # another agent presenting it
    ],
)
def test_a_changed_action_is_not_the_approved_one(
    gate: Gate, store: Store, audit: Recorded, agent: str, action: object
) -> None:
    request = propose(gate, sql())
    approve_as(gate, store, audit, request.id, "bob", "dave")
    refused("no_grant", gate.consume_grant, agent, action)
    assert gate.consume_grant("kiro", sql()).request_id == request.id  # the approved one still runs


def test_pending_request_is_not_a_grant(gate: Gate, store: Store, audit: Recorded) -> None:
    request = propose(gate, sql())
    approve_as(gate, store, audit, request.id, "bob")
    error = refused("request_pending", gate.consume_grant, "kiro", sql())
    assert "still needs 1 more" in str(error)


def test_expiry_fails_closed(gate: Gate, store: Store, audit: Recorded, clock: ManualClock) -> None:
    request = propose(gate, sql())
    gate.approve(request.id, login(store, audit, "bob"))
    clock.advance(3600)
    refused("expired", gate.approve, request.id, login(store, audit, "dave"))  # too late counts for nothing
    assert gate.status(request.id).request.state is RequestState.expired
    refused("expired", gate.consume_grant, "kiro", sql())  # the agent is told
    assert "approval.expired" in audit.names()
    assert propose(gate, sql()).id != request.id  # proposing again opens a new request


def test_expire_due_and_status_expire_pending_requests(gate: Gate, clock: ManualClock) -> None:
    first = propose(gate, sql())
    clock.advance(1800)
    second = propose(gate, sql(DELETE + " AND paid = false"))
    clock.advance(1800)
    assert gate.expire_due() == [first.id]
    assert gate.status(second.id).request.state is RequestState.pending
    clock.advance(1800)
    assert gate.status(second.id).request.state is RequestState.expired  # status never shows a stale pending
    assert gate.list_requests() == []


def test_grant_expires(gate: Gate, store: Store, audit: Recorded, clock: ManualClock) -> None:
    request = propose(gate, sql())
    approve_as(gate, store, audit, request.id, "bob", "dave")
    clock.advance(15 * 60)
    refused("grant_expired", gate.consume_grant, "kiro", sql())


@pytest.mark.parametrize(
    ("change", "result"),
    [
        # a cosmetic change (description) still needs exactly the same approvals: re-pinned, votes kept
        (("description: changed\n", ""), "repinned"),
        # the rule now asks for three: the humans approved a different bar
        (("count: 2, from: [dba, sre]", "count: 3, from: [dba, sre]"), "invalidated"),
        # the policy now forbids it
        (
            (
                "effect: approve\n    approvals: {count: 2, from: [dba, sre], at_least: {dba: 1}}",
                "effect: deny",
            ),
            "invalidated",
        ),
    ],
)
def test_policy_change_mid_request(
    gate: Gate, store: Store, audit: Recorded, change: tuple[str, str], result: str
) -> None:
    request = propose(gate, sql())
    gate.approve(request.id, login(store, audit, "bob"))
    old, new = change
    text = POLICY.replace("version: 1\n", "version: 1\n" + old) if not new else POLICY.replace(old, new)
    assert text != POLICY
    outcome = gate.on_policy_change(policy_from(text))
    assert outcome[request.id].split(":")[0] == result
    status = gate.status(request.id)
    if result == "repinned":
        assert status.request.state is RequestState.pending
        assert status.request.policy_version == gate.policy.version != request.policy_version
        assert status.approved_by == ("bob",)
        gate.approve(request.id, login(store, audit, "dave"))
        assert gate.consume_grant("kiro", sql()).request_id == request.id
    else:
        assert status.request.state is RequestState.invalidated
        assert "approval.invalidated" in audit.names()
        refused("invalidated", gate.approve, request.id, login(store, audit, "dave"))


def test_policy_change_voids_an_unused_grant(gate: Gate, store: Store, audit: Recorded) -> None:
    request = propose(gate, sql())
    approve_as(gate, store, audit, request.id, "bob", "dave")
    gate.on_policy_change(policy_from(POLICY.replace("version: 1\n", "version: 1\ndescription: v2\n")))
    refused("no_grant", gate.consume_grant, "kiro", sql())  # the fingerprint names the policy version
    assert gate.status(request.id).request.state is RequestState.invalidated


def test_vote_under_another_policy_version_is_refused(
    store: Store, audit: Recorded, clock: ManualClock, gate: Gate
) -> None:
    request = propose(gate, sql())
    other = Gate(
        store,
        policy_from(POLICY.replace("version: 1\n", "version: 1\ndescription: v2\n")),
        audit,
        clock=clock,
    )
    refused("stale_policy", other.approve, request.id, login(store, audit, "bob"))


def test_open_request_refuses_what_is_not_approval_required(gate: Gate) -> None:
    from interlock.classify.registry import classify
    from interlock.policy import decide

    action = sql("SELECT 1")
    classification = classify(action.kind, action.payload)
    decision = decide(gate.policy, "kiro", action, classification)
    refused("not_approval_required", gate.open_request, "kiro", action, decision, classification)


def test_an_unsatisfiable_quorum_is_refused_up_front(store: Store, audit: Recorded, clock: ManualClock) -> None:
    text = POLICY.replace("count: 2, from: [dba, sre]", "count: 4, from: [dba, sre]")
    gate = Gate(store, policy_from(text), audit, clock=clock)
    refused("unsatisfiable", propose, gate, sql())


def test_an_agent_token_is_refused_whatever_name_it_claims(gate: Gate, store: Store, audit: Recorded) -> None:
    # Only `authenticate` makes a Principal, from a token; an agent's token yields kind "agent" even when
    # the agent is registered under a human's name, and every human endpoint refuses it.
    request = propose(gate, sql())
    for name in ("kiro", "bob"):
        agent = login(store, audit, name, "agent")
        refused("agent_token", gate.approve, request.id, agent)
        refused("agent_token", gate.deny, request.id, agent, "no")
    assert gate.status(request.id).votes == ()


def test_policy_change_never_leaves_two_requests_for_one_action(
    store: Store, audit: Recorded, clock: ManualClock, gate: Gate
) -> None:
    old = propose(gate, sql())
    v2 = policy_from(POLICY.replace("version: 1\n", "version: 1\ndescription: v2\n"))
    replica = Gate(store, v2, audit, clock=clock)  # another replica already runs v2
    new = propose(replica, sql())
    outcome = gate.on_policy_change(v2)
    assert outcome[old.id].startswith(f"invalidated: superseded by request {new.id}")
    assert gate.status(new.id).request.state is RequestState.pending
    assert propose(gate, sql()).id == new.id


@pytest.mark.parametrize(
    "forged",
    [
        (ApprovalRequirement(count=1, source="forged"),),  # a lower bar
        (ApprovalRequirement(count=2, from_groups=("dba", "sre"), source="prod-sql-dba"),),  # at_least dropped
    ],
)
def test_a_decision_with_a_lower_bar_is_refused(gate: Gate, forged: tuple[ApprovalRequirement, ...]) -> None:
    action = sql()
    classification = classify(action.kind, action.payload, context_for(gate.policy, action.target))
    honest = decide(gate.policy, "kiro", action, classification)
    lowered = honest.model_copy(update={"approvals": forged})
    refused("decision_mismatch", gate.open_request, "kiro", action, lowered, classification)
