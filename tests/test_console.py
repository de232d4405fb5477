"""The approvers' console over HTTP (issue 17), against a real `interlock serve` on SQLite and PostgreSQL:
sign-in and sessions, CSRF, who may vote, escaping, the security headers. tests/test_console_browser.py
drives the same pages in a real Chromium."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlock.audit import AuditLog
from interlock.identity import revoke
from interlock.store import open_store
from interlock.testing import LiveServer, live_server
from tests.conftest import EXAMPLE_POLICY

XSS = '<script>alert(1)</script> "><img src=x onerror=alert(2)>'


def propose(server: LiveServer, token: str, command: str, intent: str = "tidy up") -> dict[str, Any]:
    """A production action that needs two approvals (examples/policy.yaml's hard floor)."""
    with server.client(token) as agent:
        answer = agent.post("/v1/actions", json={
            "kind": "shell", "environment": "production", "payload": {"command": command},
            "rationale": {"intent": intent, "expected_effect": "rows go", "rollback": "restore the backup"}})
    body: dict[str, Any] = answer.json()
    assert body["decision"] == "approval_required", body
    return body


def browser(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, follow_redirects=False, timeout=30)


@contextmanager
def sign_in(server: LiveServer, token: str) -> Iterator[httpx.Client]:
    with browser(server) as client:
        form = client.get("/ui/signin")
        answer = client.post("/ui/signin", data={"csrf": csrf_of(form.text), "token": token, "next": "/ui"})
        assert answer.status_code == 303, answer.text
        yield client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found[1]


def entries(server: LiveServer, event: str) -> list[dict[str, Any]]:
    store = open_store(server.store_url)
    try:
        with store.transaction() as tx:
            rows = tx.fetchall("SELECT entry FROM audit_entries WHERE event = ? ORDER BY idx", (event,))
    finally:
        store.close()
    return [json.loads(r["entry"])["data"] for r in rows]


def test_pages_need_a_session(server: LiveServer) -> None:
    with browser(server) as client:
        for path in ("/ui", "/ui/approvals/apr_x", "/ui/agents/kiro"):
            answer = client.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/signin?next="), path
        assert client.get("/ui/queue/rows").status_code == 401
        assert client.get("/ui/events").status_code == 401
        assert client.get("/ui/events?on=rollouts").status_code == 401


def test_the_events_stream_names_its_channels(server: LiveServer, tokens: dict[str, str]) -> None:
    with sign_in(server, tokens["bob"]) as client:
        for on, status in [("approvals", 200), ("rollouts", 200), ("freezes", 400), ("", 400)]:
            with client.stream("GET", f"/ui/events?on={on}", timeout=30) as answer:
                assert answer.status_code == status, on
                if status == 200:
                    assert next(answer.iter_lines()).startswith("retry:")


def test_security_headers_on_every_console_answer(server: LiveServer, tokens: dict[str, str]) -> None:
    with sign_in(server, tokens["bob"]) as client:
        for path in ("/ui", "/ui/signin", "/ui/static/console.js", "/ui/static/console.css", "/ui/approvals/nope"):
            headers = client.get(path).headers
            csp = headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp, path
            assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff", path


def test_sign_in_sets_a_strict_httponly_cookie_and_sign_out_revokes_it(server: LiveServer,
                                                                       tokens: dict[str, str]) -> None:
    with sign_in(server, tokens["carol"]) as client:
        _sign_out_revokes(server, client)


def _sign_out_revokes(server: LiveServer, client: httpx.Client) -> None:
    cookie = next(c for c in client.cookies.jar if c.name == "interlock_session")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.get_nonstandard_attr("SameSite") == "strict"
    assert cookie.expires is not None
    page = client.get("/ui")
    assert page.status_code == 200 and "carol" in page.text
    stolen = cookie.value
    assert client.post("/ui/signout", data={"csrf": csrf_of(page.text)}).status_code == 303
    with browser(server) as thief:  # the copied cookie is worthless once signed out
        thief.cookies.set("interlock_session", stolen)
        assert thief.get("/ui").status_code == 303
    assert any(e["principal"] == "carol" for e in entries(server, "console.signed_out"))


def test_revoking_the_token_ends_its_sessions(server: LiveServer) -> None:
    secret = server.token("human", "dave")
    with sign_in(server, secret) as client:
        assert client.get("/ui").status_code == 200
        store = open_store(server.store_url)
        try:
            token_id = next(e["token_id"] for e in reversed(entries(server, "console.signed_in"))
                            if e["principal"] == "dave")
            with AuditLog(store, key_dir=server.key_dir) as log:
                revoke(store, token_id, log)
        finally:
            store.close()
        assert client.get("/ui").status_code == 303


@pytest.mark.parametrize("who", ["kiro", "reporter"])
def test_an_agent_token_cannot_sign_in(server: LiveServer, tokens: dict[str, str], who: str) -> None:
    with browser(server) as client:
        form = client.get("/ui/signin")
        answer = client.post("/ui/signin", data={"csrf": csrf_of(form.text), "token": tokens[who]})
        assert answer.status_code == 403 and "cannot sign in" in answer.text
        assert "interlock_session" not in client.cookies
    assert any(e["agent"] == who for e in entries(server, "console.refused"))


def test_sign_in_without_its_form_token_is_refused(server: LiveServer, tokens: dict[str, str]) -> None:
    with browser(server) as client:
        answer = client.post("/ui/signin", data={"token": tokens["bob"]})
        assert answer.status_code == 403 and "interlock_session" not in client.cookies


def test_a_vote_without_the_csrf_token_is_refused(server: LiveServer, tokens: dict[str, str]) -> None:
    request_id = propose(server, tokens["kiro"], "kubectl delete namespace billing-7")["approval"]["id"]
    with sign_in(server, tokens["bob"]) as client:
        for data in ({}, {"csrf": "0" * 64}):
            answer = client.post(f"/ui/approvals/{request_id}/approve", data=data)
            assert answer.status_code == 403 and "did not come from your console page" in answer.text
        with server.client(tokens["bob"]) as api:
            assert api.get(f"/v1/approvals/{request_id}").json()["votes"] == []  # nothing was recorded


def test_the_owner_has_no_approve_button_and_a_forged_post_is_refused(server: LiveServer,
                                                                       tokens: dict[str, str]) -> None:
    request_id = propose(server, tokens["kiro"], "kubectl delete namespace billing-8")["approval"]["id"]
    with sign_in(server, tokens["alice"]) as client:
        page = client.get(f"/ui/approvals/{request_id}")
        assert page.status_code == 200 and "billing-8" in page.text
        assert 'id="approve"' not in page.text and "owns agent kiro" in page.text
        forged = client.post(f"/ui/approvals/{request_id}/approve", data={"csrf": csrf_of(page.text)})
        assert forged.status_code == 403 and "never counts as its approver" in forged.text
    refused = [e for e in entries(server, "approval.refused") if e.get("request_id") == request_id]
    assert refused and refused[-1]["principal"] == "alice" and refused[-1]["code"] == "not_eligible"


def test_a_ui_vote_is_the_same_audited_vote_as_the_api(server: LiveServer, tokens: dict[str, str]) -> None:
    request_id = propose(server, tokens["kiro"], "kubectl delete namespace billing-9")["approval"]["id"]
    with sign_in(server, tokens["bob"]) as client:
        page = client.get(f"/ui/approvals/{request_id}")
        assert 'id="approve"' in page.text and 'id="deny"' in page.text
        answer = client.post(f"/ui/approvals/{request_id}/approve", data={"csrf": csrf_of(page.text)})
        assert answer.status_code == 303
        again = client.get(answer.headers["location"])
        assert "already voted" in again.text and 'id="approve"' not in again.text
    with server.client(tokens["bob"]) as api:
        shown = api.get(f"/v1/approvals/{request_id}").json()
    assert [v["human"] for v in shown["votes"]] == ["bob"]
    approved = [e for e in entries(server, "approval.approved") if e.get("request_id") == request_id]
    assert approved[0]["principal"] == "bob" and approved[0]["token_id"].startswith("tok_")


def test_a_denial_needs_a_reason(server: LiveServer, tokens: dict[str, str]) -> None:
    request_id = propose(server, tokens["kiro"], "kubectl delete namespace billing-10")["approval"]["id"]
    with sign_in(server, tokens["carol"]) as client:
        page = client.get(f"/ui/approvals/{request_id}")
        refused = client.post(f"/ui/approvals/{request_id}/deny", data={"csrf": csrf_of(page.text), "reason": " "})
        assert refused.status_code == 409 and "needs a reason" in refused.text
        done = client.post(f"/ui/approvals/{request_id}/deny", data={"csrf": csrf_of(page.text),
                                                                     "reason": "not during the freeze"})
        assert done.status_code == 303
    with server.client(tokens["carol"]) as api:
        assert api.get(f"/v1/approvals/{request_id}").json()["state"] == "denied"


def test_agent_values_are_rendered_as_text(server: LiveServer, tokens: dict[str, str]) -> None:
    request_id = propose(server, tokens["kiro"], f"kubectl delete namespace billing -l 'x={XSS}'", intent=XSS)["approval"]["id"]
    with sign_in(server, tokens["bob"]) as client:
        for path in (f"/ui/approvals/{request_id}", "/ui", "/ui/queue/rows"):
            text = client.get(path).text
            assert "<script>alert" not in text and "<img src=x" not in text, path
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text or "&lt;script&gt;" in text, path


def test_an_unsafe_next_never_leaves_the_console(server: LiveServer, tokens: dict[str, str]) -> None:
    with browser(server) as client:
        form = client.get("/ui/signin?next=https://evil.example/")
        assert 'value="/ui"' in form.text
        answer = client.post("/ui/signin", data={"csrf": csrf_of(form.text), "token": tokens["bob"],
                                                 "next": "//evil.example/"})
        assert answer.headers["location"] == "/ui"


def test_an_actions_timeline_is_verified_and_the_agent_page_lists_it(server: LiveServer,
                                                                       tokens: dict[str, str]) -> None:
    action = propose(server, tokens["kiro"], "kubectl delete namespace billing-11")
    with sign_in(server, tokens["carol"]) as client:
        page = client.get(f"/ui/actions/{action['id']}")
        assert page.status_code == 200, page.text
        assert "Verified: each of these" in page.text and "action.proposed" in page.text
        assert "covers entries" not in page.text  # a checkpoint, when there is one, says how many it covers
        assert "approval.requested" in page.text or "action.pending" in page.text
        agent = client.get("/ui/agents/kiro")
        assert agent.status_code == 200 and action["id"] in agent.text
        assert client.get("/ui/actions/act_nope").status_code == 404
        assert client.get("/ui/agents/nobody").status_code == 404


def test_the_live_queue_hears_of_a_request_made_through_another_replica(store_url: str, tmp_path: Path) -> None:
    """Two servers on one store (replicas): a page open on the first hears of a request proposed through
    the second, from the store's events, with no poll of its own."""
    with live_server(EXAMPLE_POLICY, store_url, tmp_path) as first, \
            live_server(EXAMPLE_POLICY, store_url, tmp_path) as second:  # one store, one key directory
        bob, kiro = first.token("human", "bob"), first.token("agent", "kiro")
        with sign_in(first, bob) as client, client.stream("GET", "/ui/events", timeout=30) as events:
            lines = events.iter_lines()
            assert next(lines).startswith("retry:")
            request_id = propose(second, kiro, "kubectl delete namespace billing-12")["approval"]["id"]
            assert any(line.startswith("event: approvals") for line in lines)
        with sign_in(first, bob) as client:
            assert request_id in client.get("/ui/queue/rows").text


def test_a_trusted_proxy_header_signs_in_only_from_the_proxy_range(store_url: str, tmp_path: Path) -> None:
    trusted = {"INTERLOCK_TRUST_PROXY_HEADER": "X-Forwarded-User", "INTERLOCK_TRUST_PROXY_FROM": "127.0.0.0/8"}
    elsewhere = {"INTERLOCK_TRUST_PROXY_HEADER": "X-Forwarded-User", "INTERLOCK_TRUST_PROXY_FROM": "10.9.9.9/32"}
    with live_server(EXAMPLE_POLICY, store_url, tmp_path, env=trusted) as proxied:
        with browser(proxied) as client:
            page = client.get("/ui", headers={"X-Forwarded-User": "carol"})
            assert page.status_code == 200 and "carol" in page.text
            assert client.get("/ui", headers={"X-Forwarded-User": "bob"}).status_code == 303  # not carol's any more
        with browser(proxied) as client:
            assert client.get("/ui", headers={"X-Forwarded-User": "kiro"}).status_code == 303  # not a human
            assert client.get("/ui").status_code == 303
    with live_server(EXAMPLE_POLICY, store_url, tmp_path, env=elsewhere) as direct, browser(direct) as client:
        assert client.get("/ui", headers={"X-Forwarded-User": "carol"}).status_code == 303  # not from the proxy


def test_proxy_trust_needs_its_range(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from interlock.cli import app

    result = CliRunner().invoke(app, ["serve", "--policy", str(EXAMPLE_POLICY), "--db", f"sqlite:///{tmp_path / 'x.db'}",
                                      "--trust-proxy-header", "X-Forwarded-User"])
    assert result.exit_code == 2 and "--trust-proxy-from" in result.output


def test_a_terraform_plan_is_a_table_with_deletes_marked(server: LiveServer, tokens: dict[str, str]) -> None:
    plan = {"format_version": "1.2", "resource_changes": [
        {"address": "aws_s3_bucket.assets", "change": {"actions": ["create"]}},
        {"address": "aws_instance.legacy", "change": {"actions": ["delete"]}},
        {"address": "aws_security_group.web", "change": {"actions": ["update"]}}]}
    with server.client(tokens["kiro"]) as agent:
        proposed = agent.post("/v1/actions", json={"kind": "terraform", "environment": "production",
                                                   "payload": {"plan": plan}}).json()
    assert proposed["decision"] == "approval_required", proposed
    with sign_in(server, tokens["bob"]) as client:
        page = client.get(f"/ui/approvals/{proposed['approval']['id']}").text
    rows = re.findall(r'<tr class="(marked)? act-(\w+)">', page)
    assert rows == [("marked", "delete"), ("", "create"), ("", "update")], rows
    assert "3 resource changes" in page


def test_each_command_of_a_shell_line_is_judged_on_the_page(server: LiveServer, tokens: dict[str, str]) -> None:
    request_id = propose(server, tokens["kiro"], "kubectl delete namespace billing-13 && rm -rf /srv/data")["approval"]["id"]
    with sign_in(server, tokens["bob"]) as client:
        page = client.get(f"/ui/approvals/{request_id}").text
    assert "Per command" in page and "<code>rm -rf /srv/data</code>" in page and "recursive delete" in page


@pytest.mark.parametrize(("forwarded", "secure"), [
    ({"x-forwarded-proto": "https"}, True),  # a TLS-terminating proxy on the same host (uvicorn's trusted default)
    ({}, False),
])
def test_behind_a_local_tls_proxy_the_cookie_is_secure(server: LiveServer, forwarded: dict[str, str],
                                                       secure: bool) -> None:
    """uvicorn's proxy headers, which `interlock serve` applies in the app (for every route but the hot one)."""
    form = httpx.get(server.url + "/ui/signin", headers=forwarded)
    assert form.status_code == 200 and ("Secure" in form.headers["set-cookie"]) == secure


def test_over_tls_the_cookie_is_secure_and_host_prefixed(tmp_path: Path) -> None:
    from tests.test_server_operability import self_signed

    cert, key = self_signed(tmp_path)
    with live_server(EXAMPLE_POLICY, f"sqlite:///{tmp_path / 'i.db'}", tmp_path, tls=(cert, key)) as server, \
            httpx.Client(base_url=server.url, verify=server.verify, follow_redirects=False) as client:
        form = client.get("/ui/signin")
        answer = client.post("/ui/signin", data={"csrf": csrf_of(form.text), "token": server.token("human", "bob")})
        assert answer.status_code == 303, answer.text
        set_cookie = answer.headers["set-cookie"]
        assert set_cookie.startswith("__Host-interlock_session=") and "Secure" in set_cookie
        assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie and "Path=/" in set_cookie
        assert "Secure" in form.headers["set-cookie"]  # the sign-in nonce too
        assert client.get("/ui").status_code == 200
