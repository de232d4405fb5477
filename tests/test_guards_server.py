"""Guards over HTTP with real processes: two `interlock serve` on one store (SQLite file and
PostgreSQL), a freeze through one honoured by the other, a long shell action killed and recorded as
cancelled, thaw refused to the ineligible, a destructive burst split across both servers that still
trips, the alert signed at a real local webhook receiver, and an audit log that verifies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlock.audit import AuditLog
from interlock.store import open_store
from interlock.testing import LiveServer, eventually, live_server
from tests import gate_fixtures as support
from tests.gate_fixtures import SECRET, Receiver

receiver = support.receiver

POLICY = """
version: 1
humans:
  alice: {groups: [sre]}
  carol: {groups: [dba]}
  dave:  {groups: [dba]}
agents:
  kiro: {owner: dave, roles: [deployer]}
environments:
  sandbox:    {}
  production: {protected: true}
roles:
  deployer:
    sandbox:    {autonomous: destructive}
    production: {autonomous: read, approve: {write: 1, destructive: 2}}
guards:
  thaw_by: [sre]
  anomalies:
    burst: {threshold: 6, window: 10m}
notify:
  - {url: "RECEIVER", secret: "env:GUARDS_WEBHOOK_SECRET", events: [guard.tripped]}
"""


@pytest.fixture
def pair(store_url: str, tmp_path: Path, receiver: Receiver) -> Iterator[tuple[LiveServer, LiveServer]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("RECEIVER", receiver.url))
    env = {"GUARDS_WEBHOOK_SECRET": SECRET}
    with live_server(policy, store_url, tmp_path, env) as one, live_server(policy, store_url, tmp_path, env) as two:
        yield one, two


def propose(client: httpx.Client, command: str, env: str = "sandbox") -> dict[str, Any]:
    response = client.post("/v1/actions", json={"kind": "shell", "environment": env,
                                                 "payload": {"command": command}})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_two_servers_share_freezes_cancellations_and_bursts(pair: tuple[LiveServer, LiveServer],
                                                            receiver: Receiver) -> None:
    one, two = pair
    agent_token = one.token("agent", "kiro")
    agent_one, agent_two = one.client(agent_token), two.client(agent_token)
    alice_one, alice_two = one.client(one.token("human", "alice")), two.client(one.token("human", "alice"))
    carol = two.client(one.token("human", "carol"))

    # agents are refused at every guard endpoint; bad freezes are 4xx and freeze nothing
    for method, path in (("POST", "/v1/freezes"), ("GET", "/v1/freezes"), ("DELETE", "/v1/freezes/frz_x"),
                         ("GET", "/v1/guards")):
        assert agent_one.request(method, path, json={"reason": "x"} if method == "POST" else None).status_code == 403
    assert alice_one.post("/v1/freezes", json={"environment": "sandbox"}).json()["error"]["code"] == "reason_required"
    assert alice_one.post("/v1/freezes", json={"environment": "prod", "reason": "x"}).status_code == 422
    assert propose(agent_two, "true")["state"] == "succeeded"

    # a long action runs on server two when the freeze arrives through server one
    running: list[dict[str, Any]] = []
    worker = threading.Thread(target=lambda: running.append(propose(agent_two, "sleep 60; echo never")))
    worker.start()
    assert eventually(lambda: _started(two.store_url, "sleep 60"), timeout=30)
    frozen = alice_one.post("/v1/freezes", json={"environment": "sandbox", "reason": "incident 4711"})
    assert frozen.status_code == 201, frozen.text
    freeze_id = frozen.json()["id"]
    assert alice_two.post("/v1/freezes", json={"environment": "sandbox", "agent": "kiro", "reason": "again"}
                          ).status_code == 409  # already covered
    denied = eventually(lambda: (a := propose(agent_two, "true"))["decision"] == "deny" and a, timeout=5)
    assert denied and f"freeze:{freeze_id}" in denied["rules"] and "incident 4711" in denied["reasons"][-1]
    worker.join(timeout=30)
    assert running and running[0]["state"] == "cancelled"
    assert "incident 4711" in running[0]["result"]["error"]
    assert agent_two.get(f"/v1/actions/{running[0]['id']}").json()["state"] == "cancelled"

    # thaw: refused to a dba (not in thaw_by), nothing unfrozen; then alice thaws through server two
    refused = carol.delete(f"/v1/freezes/{freeze_id}")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_eligible"
    assert propose(agent_one, "true")["decision"] == "deny"
    assert alice_two.delete(f"/v1/freezes/{freeze_id}").status_code == 200
    assert eventually(lambda: propose(agent_one, "true")["state"] == "succeeded", timeout=5)
    assert alice_one.get("/v1/freezes").json()["freezes"] == []

    # a burst of destructive proposals split across both servers still trips the agent's breaker
    for client in (agent_one, agent_two) * 3:
        assert propose(client, "rm -rf build")["decision"] == "allow"
    held = propose(agent_one, "ls")
    assert held["decision"] == "approval_required" and "anomaly burst" in held["reasons"][-1]
    status = alice_two.get("/v1/guards").json()
    assert [b["state"] for b in status["breakers"]] == ["open"]

    # the alert reached the real receiver, signed
    alerts = eventually(lambda: [r for r in receiver.received if json.loads(r["body"]).get("event") == "guard.tripped"])
    assert len(alerts) == 1 and alerts[0]["valid"]
    assert json.loads(alerts[0]["body"])["alert"]["detector"] == "burst"
    assert "interlock_guard_alerts" in alice_one.get("/metrics").text

    # the CLI against the server (--gateway): freeze, status, thaw
    alice = one.token("human", "alice")
    made = _cli(["freeze", "--agent", "kiro", "--reason", "from the CLI", "--format", "json"], one.url, alice)
    assert made["created_by"] == "alice" and made["scope"] == "agent kiro in every environment"
    assert [f["id"] for f in _cli(["guards", "status", "--format", "json"], two.url, alice)["freezes"]] == [made["id"]]
    assert _cli(["thaw", made["id"], "--format", "json"], two.url, alice)["thawed_by"] == "alice"
    history = alice_one.get("/v1/freezes", params={"all": "true"}).json()["freezes"]
    assert {f["id"] for f in history} == {freeze_id, made["id"]} and not any(f["active"] for f in history)

    with open_store(one.store_url) as store, AuditLog(store, key_dir=one.key_dir) as log:
        assert log.verify().ok
        events = [e["event"] for e in log.search(text="frz_", limit=100)]
    assert {"guard.frozen", "guard.thawed", "guard.refused"} <= set(events)


def _started(store_url: str, command: str) -> bool:
    with open_store(store_url) as store, store.transaction(readonly=True) as tx:
        rows = tx.fetchall("SELECT entry FROM audit_entries WHERE event = 'execution.started'")
        ids = [json.loads(r["entry"])["data"]["action_id"] for r in rows]
        for action_id in ids:
            first = tx.fetchone("SELECT entry FROM audit_entries WHERE action_id = ? AND event = 'action.proposed'",
                                (action_id,))
            if first and command in first["entry"]:
                return True
    return False


def _cli(args: list[str], url: str, token: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    env.update({"INTERLOCK_URL": url, "INTERLOCK_TOKEN": token})
    done = subprocess.run([sys.executable, "-m", "interlock.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
