"""The HTTP API of a real `interlock serve` process, on SQLite and PostgreSQL.

Bad input of every kind gets a clear 4xx naming what was wrong, nothing runs, and the rejection
is in the audit log; identity comes from tokens only; agents never reach human endpoints.
"""

from __future__ import annotations

import functools
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlock.audit import AuditLog
from interlock.store import open_store
from interlock.testing import LiveServer

EXAMPLE = Path(__file__).parent.parent / "examples" / "policy.yaml"


def propose(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/actions", json=body)


def rejected_entries(server: LiveServer) -> list[dict[str, Any]]:
    store = open_store(server.store_url)
    try:
        with store.transaction() as tx:
            rows = tx.fetchall("SELECT entry FROM audit_entries WHERE event = ? ORDER BY idx", ("request.rejected",))
    finally:
        store.close()
    return [json.loads(r["entry"])["data"] for r in rows]


READ = {"kind": "shell", "environment": "production", "payload": {"command": "ls /srv"}, "mode": "advisory"}

BAD_REQUESTS = [
    # (name, headers, raw body, expected status, error code, field)
    ("malformed JSON", {"content-type": "application/json"}, b'{"kind": "shell",', 400, "malformed_json", None),
    ("unknown field", {"content-type": "application/json"}, json.dumps({**READ, "approved": True}).encode(), 422,
     "unknown_field", "approved"),
    ("unknown rationale field", {"content-type": "application/json"},
     json.dumps({**READ, "rationale": {"intent": "x", "approver": "bob"}}).encode(), 422, "unknown_field",
     "rationale.approver"),
    ("missing environment", {"content-type": "application/json"},
     json.dumps({k: v for k, v in READ.items() if k != "environment"}).encode(), 422, "invalid_field", "environment"),
    ("unknown kind", {"content-type": "application/json"}, json.dumps({**READ, "kind": "telnet"}).encode(), 422,
     "invalid_field", "kind"),
    ("wrong content type", {"content-type": "text/plain"}, json.dumps(READ).encode(), 415, "unsupported_media_type",
     None),
    ("form body", {"content-type": "application/x-www-form-urlencoded"}, b"kind=shell", 415, "unsupported_media_type",
     None),
    ("oversized body", {"content-type": "application/json"}, b'{"kind": "' + b"x" * (3 * 1024 * 1024) + b'"}', 413,
     "body_too_large", None),
    ("oversized payload", {"content-type": "application/json"},
     json.dumps({**READ, "payload": {"command": "echo " + "x" * (1024 * 1024 + 10)}}).encode(), 413,
     "payload_too_large", "payload"),
    ("body not an object", {"content-type": "application/json"}, b"[1, 2]", 422, "invalid_field", None),
    # hostile bodies (issue 10.6): each a specific 4xx in the error shape, audited
    ("deeply nested payload", {"content-type": "application/json"},
     json.dumps({**READ, "payload": {"command": "ls", "x": functools.reduce(lambda a, _: [a], range(400), 0)}})
     .encode(), 400, "payload_too_deep", None),
    ("nesting beyond the JSON parser", {"content-type": "application/json"}, b"[" * 100_000 + b"]" * 100_000, 400,
     "payload_too_deep", None),
    ("invalid UTF-8", {"content-type": "application/json"}, b'{"kind": "shell", "environment": "\xff\xfe"}', 400,
     "malformed_json", None),
]


@pytest.mark.parametrize(("name", "headers", "body", "status", "code", "field"), BAD_REQUESTS,
                         ids=[b[0] for b in BAD_REQUESTS])
def test_bad_input_is_a_clear_4xx_and_audited(server: LiveServer, tokens: dict[str, str], name: str,
                                               headers: dict[str, str], body: bytes, status: int, code: str,
                                               field: str | None) -> None:
    before = len(rejected_entries(server))
    with server.client(tokens["kiro"]) as client:
        response = client.post("/v1/actions", content=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    if field:
        assert error["field"] == field
    after = rejected_entries(server)
    assert len(after) == before + 1 and after[-1]["status"] == status


AUTH_CASES = [
    ("no token", None, "/v1/actions", "post", 401, "unauthenticated"),
    ("malformed token", "Bearer hunter2", "/v1/actions", "post", 401, "token_malformed"),
    ("forged token", "Bearer ilk_a_" + "A" * 43, "/v1/actions", "post", 401, "token_unknown"),
    ("basic auth", "Basic a2lybzpwdw==", "/v1/actions", "post", 401, "unauthenticated"),
]


@pytest.mark.parametrize(("name", "header", "path", "method", "status", "code"), AUTH_CASES,
                         ids=[a[0] for a in AUTH_CASES])
def test_missing_or_wrong_tokens(server: LiveServer, name: str, header: str | None, path: str, method: str,
                                 status: int, code: str) -> None:
    headers = {"authorization": header} if header else {}
    response = httpx.request(method.upper(), server.url + path, json=READ, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert "hunter2" not in response.text


@pytest.mark.parametrize("body", [b'{"kind": "telnet"}', b'{"kind": ', b"[" * 500 + b"]" * 500, b"\xff"])
def test_a_bad_body_without_a_valid_token_is_a_401_and_with_one_is_audited_with_its_principal(
        server: LiveServer, tokens: dict[str, str], body: bytes) -> None:
    """Authenticate before validating the body (issue 10.6)."""
    headers = {"content-type": "application/json"}
    stranger = httpx.post(server.url + "/v1/actions", content=body, headers=headers)
    assert stranger.status_code == 401 and stranger.json()["error"]["code"] == "unauthenticated"
    assert rejected_entries(server)[-1]["principal"] is None
    with server.client(tokens["kiro"]) as client:
        known = client.post("/v1/actions", content=body, headers=headers)
    assert 400 <= known.status_code < 500 and known.status_code != 401, known.text
    last = rejected_entries(server)[-1]
    assert (last["principal"], last["agent"], last["status"]) == ("agent:kiro", "kiro", known.status_code)


def test_agents_never_reach_human_endpoints(server: LiveServer, tokens: dict[str, str]) -> None:
    with server.client(tokens["kiro"]) as agent:
        pending = propose(agent, kind="shell", environment="production", payload={"command": "rm -rf /srv/cache"},
                          mode="advisory").json()
        request_id = pending["approval"]["id"]
        for method, path in [("GET", "/v1/approvals"), ("GET", f"/v1/approvals/{request_id}"),
                             ("POST", f"/v1/approvals/{request_id}/approve"),
                             ("POST", f"/v1/approvals/{request_id}/deny"), ("GET", "/v1/audit/entries")]:
            response = agent.request(method, path, json={"reason": "x"} if path.endswith("deny") else None)
            assert response.status_code == 403, (path, response.text)
            assert response.json()["error"]["code"] == "agent_token"
    with server.client(tokens["bob"]) as human:
        assert propose(human, **READ).status_code == 403  # and humans do not propose as agents


def test_identity_comes_from_the_token_not_the_body(server: LiveServer, tokens: dict[str, str]) -> None:
    with server.client(tokens["kiro"]) as agent:
        pending = propose(agent, kind="shell", environment="production", payload={"command": "rm -rf /srv/a"},
                          mode="advisory").json()
    request_id = pending["approval"]["id"]
    with server.client(tokens["alice"]) as owner:
        # Naming someone else in the body is refused outright, and alice's own vote never counts.
        assert owner.post(f"/v1/approvals/{request_id}/approve", json={"human": "bob"}).status_code == 422
        response = owner.post(f"/v1/approvals/{request_id}/approve")
        assert response.status_code == 403 and response.json()["error"]["code"] == "not_eligible"
    with server.client(tokens["reporter"]) as other_agent:
        assert other_agent.get(f"/v1/actions/{pending['id']}").status_code == 404  # not its action


def test_decisions_explain_themselves(server: LiveServer, tokens: dict[str, str]) -> None:
    with server.client(tokens["kiro"]) as agent:
        allowed = propose(agent, **READ).json()
        assert allowed["decision"] == "allow" and allowed["state"] == "allowed" and allowed["autonomous"] is True
        assert set(allowed) >= {"id", "decision", "risk", "tags", "reasons", "rules", "fingerprint"}
        denied = propose(agent, kind="sql", environment="sandbox", payload={"sql": "DROP DATABASE billing"}).json()
        assert denied["decision"] == "deny" and denied["rules"] == ["no-drop-database"]
        assert agent.get(f"/v1/actions/{denied['id']}").json()["state"] == "denied"


def test_deny_needs_a_reason_and_ends_the_request(server: LiveServer, tokens: dict[str, str]) -> None:
    with server.client(tokens["kiro"]) as agent:
        pending = propose(agent, kind="shell", environment="production", payload={"command": "rm -rf /srv/b"},
                          mode="advisory").json()
    request_id = pending["approval"]["id"]
    with server.client(tokens["bob"]) as bob:
        assert bob.post(f"/v1/approvals/{request_id}/deny", json={}).status_code == 422
        assert bob.post(f"/v1/approvals/{request_id}/deny", json={"reason": "not during the freeze"}).status_code == 200
    with server.client(tokens["carol"]) as carol:
        late = carol.post(f"/v1/approvals/{request_id}/approve")
        assert late.status_code == 409 and late.json()["error"]["code"] == "denied"
    with server.client(tokens["kiro"]) as agent:
        waited = agent.post(f"/v1/actions/{pending['id']}/wait", params={"timeout": 1}).json()
        assert waited["state"] == "rejected"


def test_long_poll_released_by_the_last_approval(server: LiveServer, tokens: dict[str, str]) -> None:
    with server.client(tokens["kiro"]) as agent:
        pending = propose(agent, kind="shell", environment="production", payload={"command": "rm -rf /srv/c"},
                          mode="advisory").json()
        request_id = pending["approval"]["id"]
        with server.client(tokens["bob"]) as bob, server.client(tokens["dave"]) as dave:
            assert bob.post(f"/v1/approvals/{request_id}/approve").status_code == 200
            started = agent.post(f"/v1/actions/{pending['id']}/wait", params={"timeout": 0.2}).json()
            assert started["state"] == "pending_approval"
            assert "still needs 1 more" in started["approval"]["still_needs"]
            assert dave.post(f"/v1/approvals/{request_id}/approve").status_code == 200
        t0 = time.monotonic()
        done = agent.post(f"/v1/actions/{pending['id']}/wait", params={"timeout": 10}).json()
        assert time.monotonic() - t0 < 5
        assert done["state"] == "approved"
        assert sorted(done["approval"]["approved_by"]) == ["bob", "dave"]
        # The grant was single use: the same command proposed again needs a new approval.
        again = propose(agent, kind="shell", environment="production", payload={"command": "rm -rf /srv/c"},
                        mode="advisory").json()
        assert again["state"] == "pending_approval" and again["approval"]["id"] != request_id


def test_advisory_outcome_reported_back(server: LiveServer, tokens: dict[str, str]) -> None:
    with server.client(tokens["kiro"]) as agent:
        allowed = propose(agent, **READ).json()
        reported = agent.post(f"/v1/actions/{allowed['id']}/outcome",
                              json={"status": "succeeded", "exit_code": 0, "output_excerpt": "a b c"})
        assert reported.status_code == 200 and reported.json()["reported"]["exit_code"] == 0
        denied = propose(agent, kind="sql", environment="sandbox", payload={"sql": "DROP DATABASE x"},
                         mode="advisory").json()
        refused = agent.post(f"/v1/actions/{denied['id']}/outcome", json={"status": "succeeded"})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "not_allowed"


def test_operations_endpoints(server: LiveServer, tokens: dict[str, str]) -> None:
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/readyz").json()
    assert ready["status"] == "ready" and len(ready["policy_version"]) == 64
    metrics = httpx.get(server.url + "/metrics").text
    assert "interlock_decisions_total" in metrics and "interlock_http_requests_total" in metrics
    spec = httpx.get(server.url + "/openapi.json").json()
    assert {"/v1/actions", "/v1/actions/{action_id}/wait", "/v1/approvals/{request_id}/approve"} <= set(spec["paths"])


def test_slow_client_is_cut_off(server: LiveServer, tokens: dict[str, str]) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(f"POST /v1/actions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tokens['kiro']}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"kind\"".encode())
        sock.settimeout(20)
        answer = sock.recv(4096).decode(errors="replace")
    assert " 408 " in answer.splitlines()[0]


def test_audit_is_readable_and_verifies(server: LiveServer, tokens: dict[str, str]) -> None:
    with server.client(tokens["bob"]) as human:
        entries = human.get("/v1/audit/entries", params={"limit": 5}).json()["entries"]
        assert entries[0]["event"] == "policy.loaded"
        checkpoint = human.get("/v1/audit/checkpoint").json()
        proof = human.get(f"/v1/audit/proof/{entries[0]['index']}",
                          params={"tree_size": checkpoint["tree_size"]}).json()
        assert proof["index"] == entries[0]["index"]
    store = open_store(server.store_url)
    try:
        with AuditLog(store, key_dir=server.key_dir) as log:
            assert log.verify().ok
    finally:
        store.close()


def test_revoked_token_refused_at_the_next_request(store_url: str, tmp_path: Path) -> None:
    """The server caches token lookups, but a revocation publishes on the `tokens` channel in its own
    transaction: the next request reads the store again and is refused (tests/test_token_cache.py has the
    other ways a cached lookup stops being believed)."""
    from starlette.testclient import TestClient

    from interlock.identity import create_token, revoke
    from interlock.server.app import Settings, create_app

    app = create_app(Settings(policy=EXAMPLE, db=store_url, key_dir=tmp_path / "keys", allow_missing_secrets=True))
    server = app.state.server
    with TestClient(app) as http:
        token_id, secret = create_token(server.store, "agent", "kiro", None, server.audit, policy=server.policy)
        auth = {"Authorization": f"Bearer {secret}"}
        assert http.post("/v1/actions", json=READ, headers=auth).status_code == 200  # now cached
        assert http.post("/v1/actions", json=READ, headers=auth).status_code == 200
        revoke(server.store, token_id, server.audit)
        refused = http.post("/v1/actions", json=READ, headers=auth)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "token_revoked"


def test_an_approval_comment_is_kept_in_the_audit_entry(server: LiveServer, tokens: dict[str, str]) -> None:
    with server.client(tokens["kiro"]) as agent:
        pending = propose(agent, kind="shell", environment="production", payload={"command": "rm -rf /srv/d"},
                          mode="advisory").json()
    request_id = pending["approval"]["id"]
    with server.client(tokens["bob"]) as bob:
        assert bob.post(f"/v1/approvals/{request_id}/approve",
                        json={"comment": "checked with the team"}).status_code == 200
        approved = [e for e in bob.get("/v1/audit/entries", params={"limit": 1000}).json()["entries"]
                    if e["event"] == "approval.approved" and e["data"]["request_id"] == request_id]
    assert [e["data"].get("comment") for e in approved] == ["checked with the team"]
