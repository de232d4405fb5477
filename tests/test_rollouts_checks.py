"""Rollout checks against real things: a SQL rollout over three real PostgreSQL databases with a SQL
check and a reverse migration; Prometheus checks against a small local server that serves the
Prometheus HTTP API format (`/api/v1/query`, instant vectors) — a stand-in for a Prometheus server,
which is not installed here; Error and Inconclusive measurements; the condition table."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import psycopg
import pytest

from interlock.rollout import conditions
from interlock.rollout.checks import Phase, judge
from interlock.rollout.model import Check
from interlock.rollout.service import RolloutPhase, Rollouts
from interlock.runtime import Runtime
from tests.conftest import PgAdmin
from tests.gate_fixtures import ManualClock
from tests.rollout_fleet import fleet
from tests.test_rollouts import BOB, CAROL, policy_text, rollout_doc

REGIONS = ["eu", "us", "ap"]


@pytest.fixture
def region_dbs(pg_admin: PgAdmin, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Three real databases, one per region, each with invoices of its own currency."""
    names = {region: pg_admin.create_database(f"interlock_billing_{region}") for region in REGIONS}
    try:
        for region, name in names.items():
            with psycopg.connect(pg_admin.url(name), autocommit=True) as conn:
                conn.execute(b"CREATE TABLE invoices (id int PRIMARY KEY, region text NOT NULL, amount int)")
                conn.execute(f"INSERT INTO invoices SELECT g, '{region}', g * 10 FROM generate_series(1, 5) g"
                             .encode())
            monkeypatch.setenv(f"BILLING_{region.upper()}_DSN", pg_admin.url(name))
        yield {region: pg_admin.url(name) for region, name in names.items()}
    finally:
        for name in names.values():
            pg_admin.drop_later(name)


SQL_POLICY = """
version: 1
humans:
  alice: {groups: [dba]}
  bob:   {groups: [dba]}
  carol: {groups: [dba]}
agents:
  migrator: {owner: alice, roles: [migrator]}
environments:
  production: {protected: true}
targets:
  billing-eu: {environment: production, kind: sql, dsn: 'env:BILLING_EU_DSN', labels: {app: billing}}
  billing-us: {environment: production, kind: sql, dsn: 'env:BILLING_US_DSN', labels: {app: billing}}
  billing-ap: {environment: production, kind: sql, dsn: 'env:BILLING_AP_DSN', labels: {app: billing}}
groups:
  billing-dbs: {selector: {app: billing}}
roles:
  migrator:
    production: {autonomous: read, approve: {write: 1, destructive: 2}}
"""

#: The migration gives every invoice a currency of EUR: right for the EU database only. The check asks
#: how many invoices outside the EU now claim EUR; the US database (wave 2) fails it.
MIGRATION = {
    "name": "invoices get a currency",
    "kind": "sql",
    "group": "billing-dbs",
    "payload": {"sql": "ALTER TABLE invoices ADD COLUMN currency text NOT NULL DEFAULT 'EUR'"},
    "rationale": {"intent": "invoices carry their currency", "rollback": "drop the column"},
    "rollback": {"payload": {"sql": "ALTER TABLE invoices DROP COLUMN currency"}},
    "steps": [
        {"setTargets": 1},
        {"analysis": {"checks": [{"name": "currency-right", "sql": {
            "query": "SELECT count(*) FROM invoices WHERE currency = 'EUR' AND region <> 'eu'"},
            "successCondition": "result == 0"}]}},
        {"setTargets": 2},
        {"analysis": {"checks": [{"name": "currency-right", "sql": {
            "query": "SELECT count(*) FROM invoices WHERE currency = 'EUR' AND region <> 'eu'"},
            "successCondition": "result == 0"}]}},
        {"percent": 100},
    ],
}


def has_currency(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(b"SELECT count(*) FROM information_schema.columns WHERE table_name = 'invoices' "
                           b"AND column_name = 'currency'").fetchone()
    return bool(row and row[0])


def test_a_sql_rollout_over_three_databases_fails_its_check_and_runs_the_reverse_migration(
        region_dbs: dict[str, str], store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(SQL_POLICY)
    clock = ManualClock(now=datetime.now(UTC))
    with Runtime(path, store_url, tmp_path / "keys", clock=clock) as runtime:
        rollouts = Rollouts(runtime.store, runtime.policy, runtime.audit, runtime.gateway, clock=clock)
        rollout = rollouts.submit("migrator", MIGRATION)
        assert rollout.state["members"] == ["billing-eu", "billing-us", "billing-ap"]
        rollouts.approve(rollout.id, BOB)
        after = rollouts.approve(rollout.id, CAROL)  # DROP COLUMN is destructive: two humans, asked once
        assert after.phase is RolloutPhase.progressing
        rollouts.tick(rollout.id)
        done = rollouts.get(rollout.id)
        assert done.phase is RolloutPhase.rolled_back, done.state["reason"]
        assert "currency-right on billing-us" in done.state["reason"]
        assert [done.targets[t]["state"] for t in done.state["members"]] == ["rolled_back", "rolled_back", "untouched"]
        assert not any(has_currency(url) for url in region_dbs.values()), "the reverse migration ran on eu and us"
        with psycopg.connect(region_dbs["us"]) as conn:
            row = conn.execute(b"SELECT count(*) FROM invoices").fetchone()
        assert row is not None and row[0] == 5


class PrometheusLike:
    """A local HTTP server answering `/api/v1/query` in the Prometheus HTTP API's JSON format: the instant
    vector `error_rate{target="…"}` from `rates` (a target missing there: an empty vector)."""

    def __init__(self, rates: dict[str, float]) -> None:
        self.rates = rates
        self.queries: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query).get("query", [""])[0]
                outer.queries.append(query)
                if url.path != "/api/v1/query":
                    body: dict[str, Any] = {"status": "error", "errorType": "not_found", "error": url.path}
                elif query == "1":
                    body = {"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}}
                else:
                    target = query.partition('target="')[2].partition('"')[0]
                    result = [{"metric": {"__name__": "error_rate", "target": target},
                               "value": [1764100000.0, str(outer.rates[target])]}] if target in outer.rates else []
                    body = {"status": "success", "data": {"resultType": "vector", "result": result}}
                raw = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def error_rate_check(url: str, **conditions_: str) -> dict[str, Any]:
    return {"name": "error-rate", "prometheus": {"url": url, "query": 'error_rate{target="{target}"}'},
            **conditions_}


@pytest.fixture
def prometheus() -> Iterator[PrometheusLike]:
    server = PrometheusLike({})
    yield server
    server.close()


def _rollouts(store_url: str, tmp_path: Path, urls: dict[str, str], clock: ManualClock) -> tuple[Runtime, Rollouts]:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(urls))
    runtime = Runtime(path, store_url, tmp_path / "keys", clock=clock)
    return runtime, Rollouts(runtime.store, runtime.policy, runtime.audit, runtime.gateway, clock=clock)


def test_prometheus_checks_fail_a_wave_pause_when_inconclusive_and_count_errors(
        prometheus: PrometheusLike, store_url: str, tmp_path: Path) -> None:
    clock = ManualClock(now=datetime.now(UTC))
    names = ["web-1", "web-2", "web-3"]
    with fleet(names) as services:
        runtime, rollouts = _rollouts(store_url, tmp_path, {n: s.url for n, s in services.items()}, clock)
        with runtime:
            steps = [{"setTargets": 1}, {"analysis": {"checks": [error_rate_check(
                prometheus.url, successCondition="result < 0.01", failureCondition="result >= 0.05")]}},
                {"setTargets": 2}, {"analysis": {"checks": [error_rate_check(
                    prometheus.url, successCondition="result < 0.01", failureCondition="result >= 0.05")]}},
                {"percent": 100}]
            # web-1 is fine, web-2's error rate is between the conditions: Inconclusive pauses for a human
            prometheus.rates.update({"web-1": 0.0, "web-2": 0.03})
            first = rollouts.submit("deployer", rollout_doc("v2", steps=steps))
            rollouts.approve(first.id, BOB)
            rollouts.tick(first.id)
            paused = rollouts.get(first.id)
            assert paused.phase is RolloutPhase.paused and "Inconclusive" in paused.state["reason"]
            assert 'error_rate{target="web-2"}' in prometheus.queries
            rollouts.abort(first.id, BOB, "inconclusive is not good enough today")
            rollouts.tick(first.id)
            assert rollouts.get(first.id).phase is RolloutPhase.rolled_back

            # a check that keeps erroring (no samples for web-1) fails after consecutiveErrorLimit, never passes
            prometheus.rates.clear()
            erroring = [{"setTargets": 1}, {"analysis": {
                "checks": [error_rate_check(prometheus.url, successCondition="result < 0.01")],
                "count": 5, "interval": "1m", "consecutiveErrorLimit": 1}}, {"percent": 100}]
            second = rollouts.submit("deployer", rollout_doc("v3", steps=erroring))
            rollouts.approve(second.id, BOB)
            rollouts.tick(second.id)
            one_error = rollouts.get(second.id)
            assert one_error.phase is RolloutPhase.progressing and one_error.state["analysis"]["errors"] == 1
            assert one_error.state["analysis"]["last"][0]["phase"] == "Error"
            clock.advance(60)
            rollouts.tick(second.id)
            failed = rollouts.get(second.id)
            assert failed.phase is RolloutPhase.rolled_back and "errored 2 times in a row" in failed.state["reason"]
            assert {n: s.state()["deploys"] for n, s in services.items()} == {
                "web-1": ["v2", "v1", "v3", "v1"], "web-2": ["v2", "v1"], "web-3": []}


CONDITIONS = [
    ({"successCondition": "status == 200"}, {"status": 200}, Phase.successful),
    ({"successCondition": "status == 200"}, {"status": 503}, Phase.failed),
    ({"failureCondition": "result > 0.1"}, {"result": 0.5}, Phase.failed),
    ({"failureCondition": "result > 0.1"}, {"result": 0.01}, Phase.successful),
    ({"successCondition": "result < 0.01", "failureCondition": "result > 0.1"}, {"result": 0.05}, Phase.inconclusive),
    ({"successCondition": "json.healthy == true and latency_ms < 500"},
     {"json": {"healthy": True}, "latency_ms": 12.5}, Phase.successful),
    ({"successCondition": "json.healthy == true"}, {"json": None}, Phase.error),
    ({"successCondition": "json['version'] in ['v2', 'v3']"}, {"json": {"version": "v3"}}, Phase.successful),
    ({"successCondition": "nosuch == 1"}, {"status": 200}, Phase.error),
    ({"successCondition": "result < 1"}, {"result": "text"}, Phase.error),
]


@pytest.mark.parametrize(("conds", "values", "expected"), CONDITIONS)
def test_a_measurement_is_judged_by_its_conditions(conds: dict[str, str], values: dict[str, Any],
                                                   expected: Phase) -> None:
    check = Check.model_validate({"name": "c", "http": {"path": "/"}, **conds})
    assert judge(check, values)[0] is expected


@pytest.mark.parametrize("text", ["open('x')", "a.__class__", "[x for x in y]", "lambda: 1", "1 +", "a if b else c",
                                  "x + 1"])
def test_a_condition_is_data_never_code(text: str) -> None:
    with pytest.raises(conditions.ConditionError):
        conditions.parse(text)


def test_a_shell_probe_is_judged_by_its_exit_code(tmp_path: Path) -> None:
    from interlock.policy.schema import Target
    from interlock.rollout.checks import measure

    target = Target.model_validate({"environment": "production", "kind": "shell"})
    ok = Check.model_validate({"name": "s", "shell": {"command": ["sh", "-c", 'test "$INTERLOCK_TARGET" = h1']}})
    assert measure(ok, "h1", target).phase is Phase.successful
    assert measure(ok, "h2", target).phase is Phase.failed
    missing = Check.model_validate({"name": "s", "shell": {"command": [str(tmp_path / "nope")]}})
    assert measure(missing, "h1", target).phase is Phase.error





SHELL_POLICY = """
version: 1
humans: {alice: {groups: [sre]}, bob: {groups: [sre]}}
agents: {deployer: {owner: alice, roles: [deployer]}}
environments: {production: {protected: true}}
targets:
  host-1: {environment: production, kind: shell, workdir: WORKDIR, timeout: 120}
  host-2: {environment: production, kind: shell, workdir: WORKDIR, timeout: 120}
groups: {hosts: [host-1, host-2]}
roles: {deployer: {production: {autonomous: read, approve: {write: 1, destructive: 2}}}}
"""


def test_the_kill_switch_cancels_a_running_step_its_target_is_outcome_unknown_and_the_rollout_pauses(
        store_url: str, tmp_path: Path) -> None:
    import threading

    from interlock.testing import eventually

    path = tmp_path / "policy.yaml"
    path.write_text(SHELL_POLICY.replace("WORKDIR", str(tmp_path)))
    doc = {"kind": "shell", "group": "hosts", "rationale": {"intent": "a long step"},
           "payload": {"command": "sleep 60"}, "rollback": {"payload": {"command": "true"}},
           "steps": [{"percent": 100}]}
    with Runtime(path, store_url, tmp_path / "keys") as runtime:
        rollouts = Rollouts(runtime.store, runtime.policy, runtime.audit, runtime.gateway)
        rollout = rollouts.submit("deployer", doc)  # reads only: autonomous, no approval needed
        runner = threading.Thread(target=rollouts.tick, args=(rollout.id,))
        runner.start()
        try:
            eventually(lambda: rollouts.get(rollout.id).targets["host-1"]["state"] == "started",
                       what="host-1's step to start")
            runtime.guard.freeze(agent=None, environment="production", target=None, reason="incident 4713",
                                 by="bob")
        finally:
            runner.join(timeout=60)
        stopped = rollouts.get(rollout.id)
        assert stopped.phase is RolloutPhase.paused, stopped.state["reason"]
        assert stopped.targets["host-1"]["state"] == "outcome_unknown"
        assert stopped.targets["host-2"]["state"] == "untouched"
        assert "cancelled" in stopped.targets["host-1"]["message"]
