"""The console's sessions and page data against the real gate and store (SQLite and PostgreSQL), with the
injected clock: expiry, revocation, who may vote, the queue's rows, evidence on the review page."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from interlock.gate.service import Gate
from interlock.identity import Principal, revoke
from interlock.server.ui import pages, render
from interlock.server.ui.routes import _TEMPLATES
from interlock.server.ui.sessions import (
    SESSION_SECONDS,
    close_session,
    csrf_ok,
    find_session,
    open_session,
    token_expiry,
)
from interlock.store import Store
from tests import gate_fixtures as support
from tests.gate_fixtures import ManualClock, Recorded, login, propose, sql

audit, clock, gate, policy = support.audit, support.clock, support.gate, support.policy


def test_a_session_lives_until_it_expires_is_closed_or_its_token_is_revoked(store: Store, audit: Recorded,
                                                                            clock: ManualClock) -> None:
    bob = login(store, audit, "bob")
    opened = open_session(store, bob, clock(), audit)
    found = find_session(store, opened.secret, clock(), audit)
    assert found is not None and found.principal == bob and csrf_ok(found, opened.csrf)
    tampered = opened.csrf[:-1] + ("1" if opened.csrf.endswith("0") else "0")  # always a different token
    assert not csrf_ok(found, None) and not csrf_ok(found, "") and not csrf_ok(found, tampered)
    assert find_session(store, opened.secret + "x", clock(), audit) is None
    clock.advance(SESSION_SECONDS + 1)
    assert find_session(store, opened.secret, clock(), audit) is None  # expired

    second = open_session(store, bob, clock(), audit)
    assert second.csrf != opened.csrf  # each session its own CSRF token
    assert close_session(store, second, clock(), audit) and not close_session(store, second, clock(), audit)
    assert find_session(store, second.secret, clock(), audit) is None  # signed out

    third = open_session(store, bob, clock(), audit)
    revoke(store, bob.token_id, audit, clock=clock)
    assert find_session(store, third.secret, clock(), audit) is None  # its token was revoked


def test_a_session_never_outlives_its_token(store: Store, audit: Recorded, clock: ManualClock) -> None:
    from interlock.identity import authenticate, create_token

    _, secret = create_token(store, "human", "carol", 600, audit, clock=clock)
    carol = authenticate(store, secret, log=audit, clock=clock)
    session = open_session(store, carol, clock(), audit, token_expires_at=token_expiry(store, carol.token_id))
    assert session.expires_at == clock() + timedelta(seconds=600)
    clock.advance(601)
    assert find_session(store, session.secret, clock(), audit) is None


def test_agents_get_no_session(store: Store, audit: Recorded, clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="only humans"):
        open_session(store, Principal(kind="agent", name="kiro", token_id="tok_x"), clock(), audit)


BALLOTS = [
    # (who, votes before, approve button, deny button, why not)
    ("bob", (), True, True, ""),
    ("alice", (), False, True, "owns agent kiro"),
    ("erin", (), False, False, "not in an eligible group"),
    ("carol", ("carol",), False, False, "already voted"),
]


@pytest.mark.parametrize(("who", "before", "approve", "deny", "why"), BALLOTS, ids=[b[0] for b in BALLOTS])
def test_who_may_vote(gate: Gate, store: Store, audit: Recorded, who: str, before: tuple[str, ...], approve: bool,
                      deny: bool, why: str) -> None:
    request = propose(gate, sql())
    for name in before:
        gate.approve(request.id, login(store, audit, name))
    ballot = pages.review(gate, gate.status(request.id), who)["ballot"]
    assert (ballot.approve, ballot.deny) == (approve, deny)
    assert why in ballot.why_not


def test_an_ended_request_has_no_buttons(gate: Gate, store: Store, audit: Recorded, clock: ManualClock) -> None:
    request = propose(gate, sql())
    clock.advance(3601)
    ballot = pages.review(gate, gate.status(request.id), "bob")["ballot"]
    assert not ballot.approve and not ballot.deny and "expired" in ballot.why_not


def test_the_queue_is_newest_first_with_what_each_still_needs(gate: Gate, store: Store, audit: Recorded,
                                                              clock: ManualClock) -> None:
    first = propose(gate, sql("DELETE FROM invoices WHERE id = 1"))
    clock.advance(1)
    second = propose(gate, sql("DELETE FROM invoices WHERE id = 2"))
    gate.approve(first.id, login(store, audit, "carol"))
    found = pages.queue(gate, "carol")
    assert [r.id for r in found.rows] == [second.id, first.id] and found.total == 2
    assert [r.mine for r in found.rows] == ["vote", "voted"]
    assert found.rows[1].still_needs == "still needs 1 more from dba or sre (prod-sql-dba)"
    assert [r.time_left for r in found.rows] == ["1h 00m", "59m 59s"]
    html = str(render.queue_rows(found.rows))
    assert html.index(second.id) < html.index(first.id) and "your vote counts" in html
    assert pages.queue(gate, "alice").rows[0].mine == "owner"


def test_sandbox_evidence_is_shown_as_text(gate: Gate, store: Store, audit: Recorded) -> None:
    request = propose(gate, sql())
    evidence = {"twin": "staging-db", "status": "succeeded", "summary": "1 row affected <b>bold</b>",
                "description": "rehearsed on staging-db 3 minutes ago: <script>alert(1)</script>",
                "effects": {"rows_affected": 1}}
    with store.transaction() as tx:
        tx.execute("UPDATE approval_requests SET evidence_json = ? WHERE id = ?", (json.dumps(evidence), request.id))
    context = pages.review(gate, gate.status(request.id), "bob")
    html = _TEMPLATES.get_template("review.html").render(session={"csrf": "c", "principal": {"name": "bob"}},
                                                         notice="", error="", **context)
    assert "Sandbox evidence" in html and "rehearsed on staging-db 3 minutes ago" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "rows_affected" in html
