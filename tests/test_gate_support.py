"""Shared pieces for the gate and identity tests (no tests here): a policy, a manual clock, the real
audit log (teed so tests can read which events were written), and helpers to propose and log in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from interlock.audit import AuditLog
from interlock.classify.registry import classify
from interlock.gate.requests import ApprovalRequest
from interlock.gate.service import Gate
from interlock.identity import Principal, authenticate, create_token
from interlock.model import Action, Kind, Rationale
from interlock.policy import Policy, context_for, decide, load_policy_text
from interlock.store import Store

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

    def names(self) -> list[str]:
        return [e for e, _ in self.events]

    def __getattr__(self, name: str) -> Any:
        # Everything else (action_entries, size, …) is the real log's: a Gateway reads through it.
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
    classification = classify(action.kind, action.payload, context_for(gate.policy, action.target))
    decision = decide(gate.policy, agent, action, classification)
    return gate.open_request(agent, action, decision, classification)


def login(store: Store, audit: Recorded, name: str, kind: str = "human") -> Principal:
    _, secret = create_token(store, kind, name, None, audit)  # type: ignore[arg-type]
    return authenticate(store, secret)
