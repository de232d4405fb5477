"""Webhooks against a real HTTP receiver on 127.0.0.1: signed bodies it can verify, Slack format,
retries with backoff, and a failing webhook that is audited and approves nothing."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from interlock.gate.service import Gate
from interlock.gate.webhook import Notifier, verify
from interlock.store import Store
from tests import gate_fixtures as support
from tests.gate_fixtures import POLICY, SECRET, ManualClock, Receiver, Recorded, login, policy_from, propose, sql

audit, clock, receiver = support.audit, support.clock, support.receiver
def _gate(store: Store, audit: Recorded, clock: ManualClock, notify: str, **options: Any) -> Gate:
    policy = policy_from(POLICY + "notify:\n" + notify)
    notifier = Notifier(policy.doc.notify, audit, public_url="https://interlock.example", **options)
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
