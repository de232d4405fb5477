"""Webhooks against a real HTTP receiver on 127.0.0.1: signed bodies it can verify, Slack format,
retries with backoff, and a failing webhook that is audited and approves nothing."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from interlock.gate.clock import parse_stamp, system_clock
from interlock.gate.service import Gate
from interlock.gate.webhook import Notifier, verify
from interlock.store import Store, open_store
from interlock.testing import LiveServer, eventually, live_server
from tests import gate_fixtures as support
from tests.gate_fixtures import POLICY, SECRET, ManualClock, Receiver, Recorded, login, policy_from, propose, sql

audit, clock, receiver = support.audit, support.clock, support.receiver
def _gate(store: Store, audit: Recorded, clock: ManualClock, notify: str, **options: Any) -> Gate:
    policy = policy_from(POLICY + "notify:\n" + notify)
    notifier = Notifier(policy.doc.notify, audit, store, public_url="https://interlock.example", **options)
    return Gate(store, policy, audit, clock=clock, notifier=notifier)


def test_signed_json_on_request_and_outcome(
    store: Store, audit: Recorded, clock: ManualClock, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IL_HOOK_SECRET", SECRET)
    gate = _gate(store, audit, clock, f"  - {{url: '{receiver.url}', secret: env:IL_HOOK_SECRET}}\n")
    request = propose(gate, sql())
    for name in ("bob", "dave"):
        gate.approve(request.id, login(store, audit, name))
    assert gate.notifier is not None and gate.notifier.flush(10)
    assert receiver.events() == ["approval.requested", "approval.approved"]
    for got in receiver.received:
        assert got["valid"], "the receiver's own HMAC check failed"
        assert got["path"] == "/hooks/interlock"
        body, headers = got["body"], got["headers"]
        assert verify(SECRET, body, headers["X-Interlock-Signature"], headers["X-Interlock-Timestamp"])
        doc = json.loads(body)
        assert doc["request"]["link"] == f"https://interlock.example/ui/approvals/{request.id}"
        assert doc["request"]["review_url"] == doc["request"]["link"]
        assert doc["request"]["api_url"] == f"https://interlock.example/v1/approvals/{request.id}"
        assert not {"payload", "action", "rationale"} & set(doc["request"])  # the summary, not the payload
    first = receiver.received[0]
    sig, ts = first["headers"]["X-Interlock-Signature"], first["headers"]["X-Interlock-Timestamp"]
    tampered = first["body"].replace(b"kiro", b"kirk")
    assert not verify(SECRET, tampered, sig, ts)
    assert not verify("another-secret", first["body"], sig, ts)
    assert not verify(SECRET, first["body"], sig, ts, now=time.time() + 3600)  # a replay an hour later
    assert not verify(SECRET, first["body"], sig, str(int(ts) + 1))  # header timestamp moved
    gate.notifier.close()


def test_slack_body(
    store: Store, audit: Recorded, clock: ManualClock, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IL_HOOK_SECRET", SECRET)
    gate = _gate(
        store,
        audit,
        clock,
        f"  - {{url: '{receiver.url}', secret: env:IL_HOOK_SECRET, format: slack, "
        "events: [approval.requested]}\n",
    )
    request = propose(gate, sql())
    gate.deny(request.id, login(store, audit, "carol"), "no")  # not in events: not sent
    assert gate.notifier is not None and gate.notifier.flush(10)
    assert len(receiver.received) == 1 and receiver.received[0]["valid"]
    text = json.loads(receiver.received[0]["body"])["text"]
    assert text.startswith("[Interlock] approval.requested: agent kiro") and request.id in text
    assert text.endswith(f"Review: {gate.notifier.public_url}/ui/approvals/{request.id}")  # the console's page
    gate.notifier.close()


@pytest.mark.parametrize("failure", ["http-500", "unreachable", "secret-missing"])
def test_failing_webhook_is_audited_and_approves_nothing(
    store: Store,
    audit: Recorded,
    clock: ManualClock,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    failure: str,
) -> None:
    url = receiver.url
    if failure == "http-500":
        receiver.status = 500
    if failure == "unreachable":
        receiver.server.shutdown()
        receiver.server.server_close()
    if failure != "secret-missing":
        monkeypatch.setenv("IL_HOOK_SECRET", SECRET)
    # Outside a server the failure is a plain stderr line; an earlier test may have configured the
    # server's JSON log handler in this process (on a stream captured back then): use the plain line.
    monkeypatch.setattr(logging.getLogger("interlock"), "handlers", [])
    gate = _gate(
        store,
        audit,
        clock,
        f"  - {{url: '{url}', secret: env:IL_HOOK_SECRET}}\n",
        attempts=3,
        backoff=0.01,
        timeout=2.0,
    )
    request = propose(gate, sql())
    assert gate.notifier is not None and gate.notifier.flush(20)
    failed = audit.last("webhook.failed")
    assert failed["request_id"] == request.id and failed["event"] == "approval.requested"
    assert failed["webhook"].startswith("http://127.0.0.1:") and "/hooks" not in failed["webhook"]
    assert SECRET not in json.dumps(audit.events)
    expected_attempts = {"http-500": 3, "unreachable": 3, "secret-missing": 1}[failure]
    assert failed["attempts"] == expected_attempts
    if failure == "http-500":
        assert len(receiver.received) == 3  # retried with backoff
    assert gate.status(request.id).request.state.value == "pending"
    # The reason is readable (never blanked by redaction) in the audit entry and on stderr (issue 11.2).
    reason = {"http-500": "HTTP 500 from the receiver", "unreachable": "ConnectError: could not deliver (",
              "secret-missing": "cannot sign the delivery: environment variable IL_HOOK_SECRET"}[failure]
    assert reason in failed["error"] and "[REDACTED]" not in failed["error"]
    assert reason in capfd.readouterr().err
    gate.notifier.close()


# --- the durable outbox (issue 18.2) ------------------------------------------------------------------


def _outbox(store: Store) -> list[dict[str, Any]]:
    with store.transaction(readonly=True) as tx:
        return [dict(r) for r in tx.fetchall("SELECT * FROM webhook_outbox ORDER BY created_at")]


def _manual(store: Store, audit: Recorded, clock: ManualClock, notify: str, **options: Any) -> Gate:
    """A gate whose notifier sends only when the test runs a round (`deliver_due`), on the manual clock."""
    policy = policy_from(POLICY + "notify:\n" + notify)
    notifier = Notifier(policy.doc.notify, audit, store, clock=clock, autostart=False, **options)
    assert notifier.lease.acquire()
    return Gate(store, policy, audit, clock=clock, notifier=notifier)


def test_a_receiver_down_then_up_gets_the_delivery_after_retries_on_the_clock(
    store: Store, audit: Recorded, clock: ManualClock, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IL_HOOK_SECRET", SECRET)
    gate = _manual(store, audit, clock, f"  - {{name: sre-hook, url: '{receiver.url}', secret: env:IL_HOOK_SECRET}}\n")
    notifier = gate.notifier
    assert notifier is not None
    request = propose(gate, sql())
    # Staged with the request, before any attempt: the row names the webhook, never its URL or secret.
    (row,) = _outbox(store)
    assert (row["webhook"], row["event"], row["subject"], row["attempts"]) == (
        "sre-hook", "approval.requested", request.id, 0)
    assert [s for s in (SECRET, receiver.url, f":{receiver.server.server_address[1]}", "/hooks/")
            if s in json.dumps(row)] == []
    receiver.status = 503
    # (seconds the clock moves before the round, receiver's answer) → attempts recorded, next due in
    table = [(0.0, 503, 1, 0.5), (0.4, 503, 1, 0.1), (0.1, 503, 2, 1.0), (1.0, 200, None, None)]
    for advance, status, attempts, due_in in table:
        clock.advance(advance)
        receiver.status = status
        notifier.deliver_due()
        rows = _outbox(store)
        if attempts is None:
            assert rows == []
            continue
        assert rows[0]["attempts"] == attempts and "HTTP 503" in rows[0]["last_error"]
        assert parse_stamp(rows[0]["due_at"]) == clock.now + timedelta(seconds=due_in)
    # Three attempts, one delivery id: a receiver that dedupes on it acts once.
    assert len(receiver.received) == 3 and receiver.deliveries() == {row["delivery"]: 3}
    assert all(got["valid"] for got in receiver.received)
    assert "webhook.failed" not in audit.names()


def test_a_delivery_for_a_webhook_gone_from_the_policy_is_audited_failed(
    store: Store, audit: Recorded, clock: ManualClock, receiver: Receiver
) -> None:
    gate = _manual(store, audit, clock, f"  - {{name: old-hook, url: '{receiver.url}'}}\n")
    request = propose(gate, sql())
    assert gate.notifier is not None
    gate.notifier.lease.release()
    # The next holder runs a policy whose webhook has another name: nothing to send it to.
    later = _manual(store, audit, clock, f"  - {{name: new-hook, url: '{receiver.url}'}}\n").notifier
    assert later is not None and later.deliver_due() is None
    failed = audit.last("webhook.failed")
    assert (failed["request_id"], failed["webhook"], failed["attempts"]) == (request.id, "old-hook", 1)
    assert "no webhook named 'old-hook' in the policy" in failed["error"]
    assert _outbox(store) == [] and receiver.received == []


@pytest.mark.parametrize(("event", "data", "expected"), [
    ("execution.outcome_unknown",
     {"action_id": "act_1", "agent": "kiro", "target": "billing-db", "replica": "replica:h:1:ab"},
     {"detector": "recovery-sweep", "agent": "kiro", "target": "billing-db", "trigger_action": "act_1"}),
    ("guard.tripped",
     {"detector": "rate", "agent": "kiro", "target": None, "detail": "40 writes in 60 s", "tripped": True},
     {"detector": "rate", "agent": "kiro", "detail": "40 writes in 60 s", "tripped": True}),
])
def test_an_alert_entry_stages_its_webhook_in_the_same_batch(
    store: Store, audit: Recorded, clock: ManualClock, receiver: Receiver,
    event: str, data: dict[str, Any], expected: dict[str, Any],
) -> None:
    gate = _manual(store, audit, clock, f"  - {{url: '{receiver.url}', events: [{event}]}}\n")
    assert gate.notifier is not None
    receipt = audit.append(event, data)
    (row,) = _outbox(store)
    assert row["event"] == event and row["webhook"].startswith("url-")
    gate.notifier.deliver_due()
    (got,) = receiver.received
    doc = json.loads(got["body"])
    assert doc["event"] == event and expected.items() <= doc["alert"].items()
    assert doc["delivery"] == row["delivery"] == got["headers"]["X-Interlock-Delivery"]
    assert receipt.index < audit.log.size()
    audit.append("approval.refused", {"code": "x"})  # not an alert: nothing staged
    assert _outbox(store) == []


# --- real `interlock serve` processes on one store (SQLite file or PostgreSQL) ---------------------------

SERVED = support.SERVED_PRODUCTION + """\
notify:
  - {name: sre, url: 'RECEIVER', secret: env:IL_HOOK_SECRET}
"""
#: Leases of 2 s so a takeover is quick; tests poll, never sleep.
FAST = {"INTERLOCK_LEASE_SECONDS": "2", "IL_HOOK_SECRET": SECRET}


def _servers(stack: ExitStack, url: str, tmp_path: Path, receiver: Receiver, n: int) -> list[LiveServer]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(SERVED.replace("RECEIVER", receiver.url))
    return [stack.enter_context(live_server(policy, url, tmp_path, env=FAST)) for _ in range(n)]


def _propose(server: LiveServer, token: str, command: str) -> str:
    with server.client(token) as agent:
        answer = agent.post("/v1/actions", json={"kind": "shell", "environment": "production",
                                                 "payload": {"command": command}})
    assert answer.status_code == 200 and answer.json()["state"] == "pending_approval", answer.text
    return str(answer.json()["approval"]["id"])


def _rows(url: str, query: str) -> list[dict[str, Any]]:
    with open_store(url) as store, store.transaction(readonly=True) as tx:
        return [dict(r) for r in tx.fetchall(query)]


def _holder_pid(url: str) -> int | None:
    rows = _rows(url, "SELECT holder, expires_at FROM leases WHERE job = 'webhook-delivery'")
    live = [r for r in rows if parse_stamp(r["expires_at"]) > system_clock()]
    return int(live[0]["holder"].split(":")[1]) if live else None


def test_two_servers_send_each_delivery_once(store_url: str, tmp_path: Path, receiver: Receiver) -> None:
    with ExitStack() as stack:
        a, b = _servers(stack, store_url, tmp_path, receiver, 2)
        kiro, bob = a.token("agent", "kiro"), a.token("human", "bob")
        # Requests opened on both servers, half of them denied on the other one.
        requests = [_propose(server, kiro, f"touch {tmp_path}/f{i}") for i, server in enumerate((a, b, a, b))]
        for server, request_id in ((b, requests[0]), (a, requests[1])):
            with server.client(bob) as human:
                assert human.post(f"/v1/approvals/{request_id}/deny", json={"reason": "no"}).status_code == 200
        eventually(lambda: len(receiver.received) >= 6 and not _rows(store_url, "SELECT * FROM webhook_outbox"),
                   what="every delivery sent")
    sent = sorted((json.loads(r["body"])["event"], json.loads(r["body"])["request"]["id"]) for r in receiver.received)
    assert sent == sorted([("approval.requested", r) for r in requests]
                          + [("approval.denied", r) for r in requests[:2]])
    assert set(receiver.deliveries().values()) == {1}  # one replica sent each, once
    assert all(r["valid"] for r in receiver.received)


def test_the_holder_killed_mid_delivery_another_sends_it_with_the_same_id(
    store_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.hold = threading.Event()
    with ExitStack() as stack:
        servers = _servers(stack, store_url, tmp_path, receiver, 2)
        holder = eventually(lambda: _holder_pid(store_url), what="a webhook-delivery holder")
        victim = next(s for s in servers if s.process.pid == holder)
        other = next(s for s in servers if s is not victim)
        request_id = _propose(other, other.token("agent", "kiro"), f"touch {tmp_path}/x")
        eventually(lambda: receiver.received, what="the holder's attempt, unanswered")
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.wait()
        held, receiver.hold = receiver.hold, None
        held.set()
        # Within the lease time the other server holds the job and sends it again: same delivery id.
        eventually(lambda: len(receiver.received) >= 2, what="the delivery sent by the other server")
        eventually(lambda: not _rows(store_url, "SELECT * FROM webhook_outbox"), what="an empty outbox")
        assert _holder_pid(store_url) == other.process.pid
    assert list(receiver.deliveries().values()) == [2]
    assert [json.loads(r["body"])["request"]["id"] for r in receiver.received] == [request_id] * 2
    assert all(r["valid"] for r in receiver.received)
