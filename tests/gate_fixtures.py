"""Fixtures for the gate and identity tests (no tests here): a policy, a manual clock, the real
audit log (teed so tests can read which events were written), helpers to propose and log in, and a
real webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from interlock.audit import AuditLog
from interlock.gate.requests import ApprovalRequest
from interlock.gate.service import Gate
from interlock.identity import Principal, authenticate, create_token
from interlock.model import Action, Kind, Rationale
from interlock.policy import Policy, decide, load_policy_text
from interlock.policy.classifying import classify_action
from interlock.store import Store

#: Parts of the policies several test modules write out in full otherwise (each module adds its own).
#: Three SREs and kiro, who may read production alone and needs two approvals for any change there.
SERVED_PRODUCTION = """\
version: 1
humans:
  alice: {groups: [sre]}
  bob: {groups: [sre]}
  carol: {groups: [sre]}
agents:
  kiro: {owner: alice, roles: [deployer]}
environments:
  production: {protected: true}
roles:
  deployer:
    production: {autonomous: read, approve: {write: 2, destructive: 2}}
"""
#: Sandbox first: kiro and cline deploy; staging (production's predecessor) is theirs, production
#: needs approvals. Goes between a policy's `humans:` and its `targets:`.
STAGING_THEN_PRODUCTION = """\
agents:
  kiro:  {owner: alice, roles: [deployer]}
  cline: {owner: alice, roles: [deployer]}
environments:
  staging:    {promotes_to: production}
  production: {protected: true}
"""
#: The deployer role of STAGING_THEN_PRODUCTION. Goes between a policy's `targets:` and its `rules:`.
DEPLOYER_STAGING_THEN_PRODUCTION = """\
roles:
  deployer:
    staging:    {autonomous: destructive}
    production: {autonomous: read, approve: {write: 1, destructive: 2}}
"""

POLICY = """
version: 1
defaults: {approval_ttl: 1h, grant_ttl: 15m}
humans:
  alice: {groups: [sre]}
  bob:   {groups: [sre, dba]}
  carol: {groups: [dba]}
  dave:  {groups: [sre]}
  erin:  {groups: [finance]}
agents:
  kiro: {owner: alice, roles: [deployer]}
environments:
  staging:    {promotes_to: production}
  production: {protected: true}
targets:
  billing-db: {environment: production, kind: sql, dsn: env:BILLING_DSN}
  other-db:   {environment: production, kind: sql, dsn: env:OTHER_DSN}
  staging-db: {environment: staging, kind: sql, dsn: env:STAGING_DSN}
roles:
  deployer:
    staging:    {autonomous: write, approve: {destructive: 1}}
    production: {autonomous: read, approve: {write: 1, destructive: 2}}
rules:
  - id: prod-sql-dba
    when: {environment: production, kind: sql, risk: [write, destructive]}
    effect: approve
    approvals: {count: 2, from: [dba, sre], at_least: {dba: 1}}
"""

DELETE = "DELETE FROM invoices WHERE id = 42"


def policy_from(text: str = POLICY) -> Policy:
    return load_policy_text(text, "test-policy.yaml")


@dataclass
class ManualClock:
    """An injectable clock that only moves when the test says so."""

    now: datetime = field(default_factory=lambda: datetime(2026, 1, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Recorded:
    """The real AuditLog, teed: every append goes to the log (durably) and is remembered here."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self.events: list[tuple[str, dict[str, Any]]] = []

    def append(self, event: str, data: dict[str, Any]) -> Any:
        receipt = self.log.append(event, data)
        self.events.append((event, data))
        return receipt

    def append_in(self, tx: Any, event: str, data: dict[str, Any]) -> Any:
        receipt = self.log.append_in(tx, event, data)
        self.events.append((event, data))
        return receipt

    def append_many_in(self, tx: Any, items: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        receipts = self.log.append_many_in(tx, items)
        self.events.extend(items)
        return receipts

    def names(self) -> list[str]:
        return [e for e, _ in self.events]

    def __getattr__(self, name: str) -> Any:
        # Everything else (action_entries, size, …) is the real log's: a Gateway reads through it.
        if name == "log":  # not set yet (copy, pickle): no endless lookup
            raise AttributeError(name)
        return getattr(self.log, name)

    def last(self, event: str) -> dict[str, Any]:
        return next(d for e, d in reversed(self.events) if e == event)


@pytest.fixture
def audit(store: Store, tmp_path: Path) -> Iterator[Recorded]:
    log = AuditLog(store, key_dir=tmp_path / "keys")
    try:
        yield Recorded(log)
    finally:
        log.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def policy() -> Policy:
    return policy_from()


@pytest.fixture
def gate(store: Store, policy: Policy, audit: Recorded, clock: ManualClock) -> Gate:
    return Gate(store, policy, audit, clock=clock)


def sql(text: str = DELETE, target: str = "billing-db", env: str = "production") -> Action:
    return Action(
        kind=Kind.sql,
        environment=env,
        target=target,
        payload={"sql": text},
        rationale=Rationale(intent="remove a duplicate invoice", rollback="re-insert from backup"),
    )


def propose(gate: Gate, action: Action, agent: str = "kiro") -> ApprovalRequest:
    classification = classify_action(gate.policy, action)
    decision = decide(gate.policy, agent, action, classification)
    return gate.open_request(agent, action, decision, classification)


def login(store: Store, audit: Recorded, name: str, kind: str = "human") -> Principal:
    _, secret = create_token(store, kind, name, None, audit)  # type: ignore[arg-type]
    return authenticate(store, secret, log=audit)


SECRET = "whsec-test-0123456789"


class Receiver:
    """A real webhook receiver: checks the HMAC itself, answers `status` (200 unless told otherwise)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        #: While set to an unset Event, each POST is recorded and then not answered until it is set
        #: (a delivery in flight, to kill its sender mid-way).
        self.hold: threading.Event | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                receiver.received.append(
                    {
                        "body": body,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "valid": hmac.compare_digest(expected, self.headers.get("X-Interlock-Signature", "")),
                    }
                )
                if receiver.hold is not None:
                    receiver.hold.wait(60)
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/interlock"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[str]:
        return [json.loads(r["body"]).get("event", "slack") for r in self.received]

    def deliveries(self) -> dict[str, int]:
        """How often each delivery id was received."""
        counts: dict[str, int] = {}
        for r in list(self.received):
            counts[r["headers"]["X-Interlock-Delivery"]] = counts.get(r["headers"]["X-Interlock-Delivery"], 0) + 1
        return counts


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()
