"""Sandbox first, end to end through the Gateway, on both stores, with real PostgreSQL databases as the
production target and its staging twin: sandbox_required → rehearse on the twin (rolled back) →
propose again → approval with the evidence → two approvals → it runs in production. And every way the
evidence must not promote: another payload, another agent, expired, failed, another twin."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from interlock.gate.service import Gate
from interlock.gateway import Gateway, GatewayError, State
from interlock.model import Action, Kind, Rationale
from interlock.policy import Policy, load_policy_text
from interlock.store import Store
from tests import gate_fixtures as support
from tests.conftest import PgAdmin
from tests.gate_fixtures import ManualClock, Recorded, login

audit, clock = support.audit, support.clock

POLICY = """
version: 1
defaults: {evidence_ttl: 1h}
humans:
  alice: {groups: [sre]}
  bob:   {groups: [sre, dba]}
  carol: {groups: [dba]}
""" + support.STAGING_THEN_PRODUCTION + """\
targets:
  billing-db:      {environment: production, kind: sql, dsn: env:SBX_PROD_DSN, twin: billing-staging}
  billing-staging: {environment: staging, kind: sql, dsn: env:SBX_STAGING_DSN, strategy: rollback}
  other-staging:   {environment: staging, kind: sql, dsn: env:SBX_STAGING_DSN}
  ledger-db:       {environment: production, kind: sql, dsn: env:SBX_PROD_DSN, twin: other-staging}
""" + support.DEPLOYER_STAGING_THEN_PRODUCTION + """\
rules:
  - id: prod-sql-dba
    when: {environment: production, kind: sql, risk: [write, destructive]}
    effect: approve
    approvals: {count: 2, from: [dba, sre]}
  - id: deletes-rehearsed-first
    when: {environment: production, kind: sql, tags: [delete]}
    effect: sandbox
    reason: deletes in production are rehearsed on the staging twin first
"""

DELETE = "DELETE FROM invoices WHERE id <= 25"


def invoices(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM invoices").fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
def databases(pg_admin: PgAdmin, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A production and a staging database, each with 100 invoices (real PostgreSQL)."""
    names = {"prod": pg_admin.create_database("sbx_prod"), "staging": pg_admin.create_database("sbx_staging")}
    urls = {k: pg_admin.url(v) for k, v in names.items()}
    for url in urls.values():
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE invoices (id int PRIMARY KEY, amount int)")
            conn.execute("INSERT INTO invoices SELECT g, g * 10 FROM generate_series(1, 100) g")
            conn.execute("CREATE SEQUENCE invoice_numbers")
    monkeypatch.setenv("SBX_PROD_DSN", urls["prod"])
    monkeypatch.setenv("SBX_STAGING_DSN", urls["staging"])
    try:
        yield urls
    finally:
        for name in names.values():
            pg_admin.drop_later(name)


@pytest.fixture
def policy() -> Policy:
    return load_policy_text(POLICY, "sandbox-policy.yaml")


@pytest.fixture
def gateway(store: Store, policy: Policy, audit: Recorded, clock: ManualClock) -> Gateway:
    return Gateway(store, policy, audit, Gate(store, policy, audit, clock=clock))


def delete(text: str = DELETE, target: str = "billing-db", env: str = "production") -> Action:
    return Action(kind=Kind.sql, environment=env, target=target, payload={"sql": text},
                  rationale=Rationale(intent="drop the 25 test invoices"))


def test_rehearse_then_promote_with_the_evidence(gateway: Gateway, databases: dict[str, str], store: Store,
                                                 audit: Recorded) -> None:
    first = gateway.propose("kiro", delete())
    assert first.state is State.sandbox_required
    assert first.rehearse == {"twin": "billing-staging", "environment": "staging",
                              "endpoint": f"POST /v1/actions/{first.id}/rehearse", "cli": f"interlock rehearse {first.id}"}
    assert any(f"interlock rehearse {first.id}" in r and "billing-staging" in r for r in first.decision.remedy)
    assert "deletes-rehearsed-first" in first.decision.rules

    rehearsal = gateway.rehearse(first.id, "kiro")
    assert rehearsal.state is State.succeeded, rehearsal.result
    assert rehearsal.action.target == "billing-staging" and rehearsal.action.environment == "staging"
    assert rehearsal.rehearsal is not None and rehearsal.rehearsal["of"] == first.id
    assert rehearsal.evidence is not None
    effects = rehearsal.evidence["effects"]
    assert effects["statements"] == [{"command": "DELETE", "status": "DELETE 25", "rows": 25}]
    assert effects["tables"] == {"invoices": {"before": 100, "after": 75}}
    assert effects["rolled_back"] is True
    assert len(effects["output"]["output_sha256"]) == 64 and "excerpt" not in effects["output"]  # digest only
    assert "DELETE 25 rows; invoices 100 -> 75 rows (rolled back)" in rehearsal.evidence["summary"]
    assert invoices(databases["staging"]) == 100  # rolled back: the twin is unchanged
    assert invoices(databases["prod"]) == 100  # nothing ran in production
    assert audit.last("rehearsal.finished")["body_fingerprint"] == rehearsal.rehearsal["body_fingerprint"]

    second = gateway.propose("kiro", delete())
    assert second.state is State.pending_approval, second.decision
    assert second.evidence is not None and second.evidence["id"] == rehearsal.id
    assert any(f"promoted with evidence {rehearsal.id}" in r for r in second.decision.reasons)
    assert second.approval is not None
    request = gateway.gate.status(second.approval["id"]).request
    assert request.evidence is not None and request.evidence["id"] == rehearsal.id
    assert "25 rows" in request.evidence["description"]

    for name in ("bob", "carol"):
        gateway.gate.approve(second.approval["id"], login(store, audit, name))
    done = gateway.advance(second.id, agent="kiro")
    assert done.state is State.succeeded, done.result
    assert invoices(databases["prod"]) == 75
    assert gateway.status(second.id).evidence == second.evidence

    changed = gateway.propose("kiro", delete("DELETE FROM invoices WHERE id <= 26"))
    assert changed.state is State.sandbox_required
    assert any("no rehearsal of exactly this action" in r for r in changed.decision.reasons)


def test_what_never_promotes(gateway: Gateway, databases: dict[str, str], clock: ManualClock) -> None:
    # evidence from another staging target with the same payload is not this target's twin's
    ledger = gateway.propose("kiro", delete(target="ledger-db"))
    assert gateway.rehearse(ledger.id, "kiro").action.target == "other-staging"
    first = gateway.propose("kiro", delete())
    assert first.state is State.sandbox_required
    assert any("rehearsed on other-staging, not on this target's twin billing-staging" in r
               for r in first.decision.reasons)
    assert gateway.rehearse(first.id, "kiro").state is State.succeeded

    # another agent: its own proposal finds nothing, and it may not rehearse kiro's action
    other = gateway.propose("cline", delete())
    assert other.state is State.sandbox_required
    with pytest.raises(GatewayError) as caught:
        gateway.rehearse(first.id, "cline")
    assert caught.value.code == "unknown_action"

    # expired
    clock.advance(3601)
    late = gateway.propose("kiro", delete())
    assert late.state is State.sandbox_required
    assert any("expired" in r and "evidence_ttl" in r for r in late.decision.reasons)

    # a fresh rehearsal promotes again
    assert gateway.rehearse(late.id, "kiro").state is State.succeeded
    assert gateway.propose("kiro", delete()).state is State.pending_approval


def test_a_failed_rehearsal_blocks_and_says_why(gateway: Gateway, databases: dict[str, str], store: Store) -> None:
    broken = delete("DELETE FROM invoices WHERE missing_column = 1")
    first = gateway.propose("kiro", broken)
    rehearsal = gateway.rehearse(first.id, "kiro")
    assert rehearsal.state is State.failed
    assert rehearsal.evidence is not None and rehearsal.evidence["status"] == "failed"
    again = gateway.propose("kiro", broken)
    assert again.state is State.sandbox_required
    assert any(f"the latest rehearsal {rehearsal.id} on billing-staging did not succeed (failed)" in r for r in again.decision.reasons)

    # A side row edited to say "succeeded" disagrees with its audit entry: it is not evidence.
    with store.transaction() as tx:
        tx.execute("UPDATE evidence SET status = 'succeeded' WHERE id = ?", (rehearsal.id,))
    forged = gateway.propose("kiro", broken)
    assert forged.state is State.sandbox_required and forged.evidence is None


def test_refused_for_rollback_nothing_runs(gateway: Gateway, databases: dict[str, str]) -> None:
    action = delete("DELETE FROM invoices WHERE id = nextval('invoice_numbers')")
    first = gateway.propose("kiro", action)
    rehearsal = gateway.rehearse(first.id, "kiro")
    assert rehearsal.state is State.failed
    assert rehearsal.result is not None and rehearsal.result["status"] == "error"
    assert "nextval(): sequences are not rolled back" in rehearsal.result["error"]
    with psycopg.connect(databases["staging"]) as conn:
        row = conn.execute("SELECT last_value, is_called FROM invoice_numbers").fetchone()
    assert row == (1, False)  # the sequence never moved


def test_bad_rehearsals_are_refused_and_audited(gateway: Gateway, databases: dict[str, str],
                                                audit: Recorded) -> None:
    with pytest.raises(GatewayError) as caught:
        gateway.rehearse("act_unknown", "kiro")
    assert caught.value.code == "unknown_action"
    assert audit.last("rehearsal.refused")["code"] == "unknown_action"

    no_twin = gateway.propose("kiro", delete(target="other-staging", env="staging"))
    with pytest.raises(GatewayError) as caught:
        gateway.rehearse(no_twin.id, "kiro")
    assert caught.value.code == "no_twin"
    assert "targets.other-staging" in str(caught.value)
    assert audit.last("rehearsal.refused")["of"] == no_twin.id


def test_the_example_policy_promotes_a_schema_change_through_its_staging_twin(
        store: Store, audit: Recorded, clock: ManualClock, databases: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/policy.yaml: every production target has a twin; `schema-changes-staging-first` sends an
    ALTER TABLE on billing-db to staging-db (rolled back there), then it needs its two approvals."""
    from interlock.policy import load_policy
    from interlock.sandbox import twins
    from tests.conftest import EXAMPLE_POLICY

    example = load_policy(EXAMPLE_POLICY)
    doc = example.doc
    for name, target in doc.targets.items():
        if doc.environments[target.environment].protected:
            assert target.twin is not None, f"production target {name} has no twin in examples/policy.yaml"
    assert twins.twin_in(doc, "billing-db", "staging") == "staging-db"
    monkeypatch.setenv("BILLING_DSN", databases["prod"])
    monkeypatch.setenv("STAGING_DSN", databases["staging"])
    gateway = Gateway(store, example, audit, Gate(store, example, audit, clock=clock))
    alter = Action(kind=Kind.sql, environment="production", target="billing-db",
                   payload={"sql": "ALTER TABLE invoices ADD COLUMN note text"})
    first = gateway.propose("kiro", alter)
    assert first.state is State.sandbox_required and first.rehearse is not None
    assert first.rehearse["twin"] == "staging-db"
    rehearsal = gateway.rehearse(first.id, "kiro")
    assert rehearsal.state is State.succeeded, rehearsal.result
    assert rehearsal.evidence is not None and rehearsal.evidence["effects"]["rolled_back"] is True
    with psycopg.connect(databases["staging"]) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'"
                            ).fetchone() == (0,)
    promoted = gateway.propose("kiro", alter)
    assert promoted.state is State.pending_approval
    assert promoted.approval is not None and promoted.approval["required"] == [
        "2 approvals from dba or sre, at least 1 from dba"]
    assert promoted.evidence is not None and promoted.evidence["id"] == rehearsal.id


def test_a_rehearsal_that_needs_approval_in_staging_waits_for_it(
        store: Store, audit: Recorded, clock: ManualClock, databases: dict[str, str]) -> None:
    text = POLICY.replace("staging:    {autonomous: destructive}", "staging:    {autonomous: write, approve: {destructive: 1}}")
    strict = load_policy_text(text, "strict-staging.yaml")
    gateway = Gateway(store, strict, audit, Gate(store, strict, audit, clock=clock))
    first = gateway.propose("kiro", delete())
    rehearsal = gateway.rehearse(first.id, "kiro")
    assert rehearsal.state is State.pending_approval and rehearsal.approval is not None
    assert gateway.propose("kiro", delete()).state is State.sandbox_required  # nothing ran yet: no evidence
    gateway.gate.approve(rehearsal.approval["id"], login(store, audit, "bob"))
    done = gateway.advance(rehearsal.id, agent="kiro")
    assert done.state is State.succeeded and done.evidence is not None
    assert invoices(databases["staging"]) == 100
    assert gateway.propose("kiro", delete()).state is State.pending_approval


def test_sandbox_before_staging_when_the_policy_says_so(
        store: Store, audit: Recorded, clock: ManualClock, databases: dict[str, str]) -> None:
    """A chain sandbox → staging → production: the staging rehearsal is itself sandbox_required until the
    sandbox twin has run it; then staging runs it (promoted), then production is promoted."""
    text = POLICY.replace("  staging:    {promotes_to: production}", "  sandbox:    {promotes_to: staging}\n"
                          "  staging:    {promotes_to: production}")
    text = text.replace("strategy: rollback}", "strategy: rollback, twin: billing-sandbox}\n"
                        "  billing-sandbox: {environment: sandbox, kind: sql, dsn: env:SBX_STAGING_DSN}")
    text = text.replace("    staging:    {autonomous: destructive}", "    sandbox:    {autonomous: destructive}\n"
                        "    staging:    {autonomous: destructive}")
    text += ("  - id: staging-deletes-sandboxed\n    when: {environment: staging, target: billing-staging, tags: [delete]}\n"
             "    effect: sandbox\n")
    chained = load_policy_text(text, "chain.yaml")
    gateway = Gateway(store, chained, audit, Gate(store, chained, audit, clock=clock))
    first = gateway.propose("kiro", delete())
    on_staging = gateway.rehearse(first.id, "kiro")
    assert on_staging.state is State.sandbox_required
    assert on_staging.rehearse is not None and on_staging.rehearse["twin"] == "billing-sandbox"
    on_sandbox = gateway.rehearse(on_staging.id, "kiro")
    assert on_sandbox.action.target == "billing-sandbox" and on_sandbox.state is State.succeeded
    again_on_staging = gateway.rehearse(first.id, "kiro")
    assert again_on_staging.state is State.succeeded, again_on_staging.decision
    assert again_on_staging.decision.reasons[-1].startswith(f"promoted with evidence {on_sandbox.id}")
    promoted = gateway.propose("kiro", delete())
    assert promoted.state is State.pending_approval
    assert promoted.evidence is not None and promoted.evidence["id"] == again_on_staging.id
    assert invoices(databases["staging"]) == 100


def test_a_rehearsal_that_times_out_is_stopped_and_blocks(
        store: Store, audit: Recorded, clock: ManualClock, databases: dict[str, str]) -> None:
    text = POLICY.replace("strategy: rollback}", "strategy: rollback, timeout: 1}")
    hasty = load_policy_text(text, "hasty.yaml")
    gateway = Gateway(store, hasty, audit, Gate(store, hasty, audit, clock=clock))
    slow = delete("DELETE FROM invoices WHERE id <= 25 AND pg_sleep(5) IS NOT NULL")
    first = gateway.propose("kiro", slow)
    rehearsal = gateway.rehearse(first.id, "kiro")
    assert rehearsal.result is not None and rehearsal.result["status"] == "timeout", rehearsal.result
    assert rehearsal.evidence is not None and rehearsal.evidence["status"] == "timeout"
    assert invoices(databases["staging"]) == 100
    again = gateway.propose("kiro", slow)
    assert again.state is not State.pending_approval and again.evidence is None
    assert any(f"the latest rehearsal {rehearsal.id} on billing-staging did not succeed (timeout)" in r for r in again.decision.reasons)


def test_an_advisory_clients_own_report_is_never_evidence(gateway: Gateway, databases: dict[str, str]) -> None:
    """Running it on staging yourself (advisory mode) and saying it went well promotes nothing."""
    from interlock.gateway import Mode

    mine = gateway.propose("kiro", delete(target="billing-staging", env="staging"), mode=Mode.advisory)
    assert mine.state is State.allowed
    gateway.report(mine.id, "kiro", {"status": "succeeded", "exit_code": 0})
    assert gateway.propose("kiro", delete()).state is State.sandbox_required
