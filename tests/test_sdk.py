"""The Python SDK against a real `interlock serve` (SQLite and PostgreSQL) and in-process.

Client / AsyncClient: propose, wait (with humans approving over HTTP in the test), report, and the
typed errors callers fail closed on. LocalClient: the same JSON without a server. @guarded: the
decorated function runs only when Interlock allows it, and its outcome is reported.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlock import (
    ApprovalExpired,
    ApprovalPending,
    AsyncClient,
    Client,
    Denied,
    InterlockError,
    LocalClient,
    guarded,
)
from interlock.client import BadRequest, Unauthorized, Unavailable, _raise_unless_may_run, build_payload
from interlock.identity import Principal
from interlock.store import open_store
from interlock.testing import LiveServer, free_port, live_server
from tests.conftest import PgAdmin

EXAMPLE = Path(__file__).parent.parent / "examples" / "policy.yaml"


@pytest.fixture
def client(server: LiveServer, tokens: dict[str, str]) -> Iterator[Client]:
    with Client(server.url, tokens["kiro"]) as sdk:
        yield sdk


def unique(prefix: str) -> str:
    """A command no other test proposes: grants bind to the exact action, so tests must not share one."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def approve(server: LiveServer, tokens: dict[str, str], request_id: str, humans: tuple[str, ...] = ("bob", "carol"),
            ) -> dict[str, Any]:
    """Humans approve over HTTP, as they would from the web UI or the CLI."""
    body: dict[str, Any] = {}
    for human in humans:
        with server.client(tokens[human]) as http:
            response = http.post(f"/v1/approvals/{request_id}/approve", json={})
            assert response.status_code == 200, response.text
            body = response.json()
            if body["state"] == "approved":
                break
    return body


def reported_outcomes(server: LiveServer) -> list[dict[str, Any]]:
    store = open_store(server.store_url)
    try:
        with store.transaction() as tx:
            rows = tx.fetchall("SELECT entry FROM audit_entries WHERE event = ? ORDER BY idx", ("execution.reported",))
    finally:
        store.close()
    return [json.loads(r["entry"])["data"] for r in rows]


# --- propose / get / wait / report --------------------------------------------------------------

PROPOSALS = [
    # (agent, kind, environment, payload, mode, expected state)
    ("kiro", "shell", "production", {"command": "ls /srv"}, "advisory", "allowed"),
    ("kiro", "shell", "production", {"command": "rm -rf /srv/{u}"}, "advisory", "pending_approval"),
    ("kiro", "shell", "production", {"command": "kubectl replace --force -f {u}.yaml"}, "advisory", "denied"),
    ("kiro", "sql", "sandbox", {"sql": "DROP DATABASE {u}"}, "brokered", "denied"),
    ("kiro", "sql", "production", {"sql": "ALTER TABLE invoices ADD COLUMN n{u} text"}, "advisory",
     "sandbox_required"),
    ("kiro", "shell", "sandbox", {"command": "echo {u}"}, "brokered", "succeeded"),
    ("kiro", "shell", "sandbox", {"command": "exit 3"}, "brokered", "failed"),
    ("reporter", "shell", "production", {"command": "touch /tmp/{u}"}, "advisory", "denied"),
]


@pytest.mark.parametrize(("agent", "kind", "environment", "payload", "mode", "expected"), PROPOSALS)
def test_propose_answers_the_api_json(server: LiveServer, tokens: dict[str, str], agent: str, kind: str,
                                      environment: str, payload: dict[str, str], mode: str, expected: str) -> None:
    u = uuid.uuid4().hex[:8]
    concrete = {k: v.replace("{u}", u) for k, v in payload.items()}
    with Client(server.url, tokens[agent]) as sdk:
        body = sdk.propose(kind, environment, concrete, mode=mode)
        assert body["state"] == expected, body
        assert body["mode"] == mode
        assert sdk.get(body["id"])["state"] == expected
    if expected == "succeeded":
        assert body["result"]["output"] == f"{u}\n"
    if expected == "pending_approval":
        assert body["approval"]["id"].startswith("apr_")


def test_wait_returns_at_its_timeout_while_approval_is_pending(client: Client) -> None:
    body = client.propose("shell", "production", {"command": unique("rm -rf /srv/wait")}, mode="advisory")
    start = time.monotonic()
    after = client.wait(body["id"], 0.5)
    assert after["state"] == "pending_approval"
    assert 0.4 <= time.monotonic() - start < 10


@pytest.mark.parametrize(("mode", "command", "expected"), [
    ("advisory", "touch /tmp/interlock-sdk-{u}", "approved"),
    ("brokered", "mkdir -p /tmp/interlock-sdk-{u} && echo ran-{u}", "succeeded"),  # a write: one approval
])
def test_human_approval_over_http_ends_the_wait(server: LiveServer, tokens: dict[str, str], client: Client,
                                                mode: str, command: str, expected: str) -> None:
    u = uuid.uuid4().hex[:8]
    line = command.replace("{u}", u)
    body = client.propose("shell", "production", {"command": line}, mode=mode)
    assert body["state"] == "pending_approval", body
    timer = threading.Timer(0.5, approve, (server, tokens, body["approval"]["id"], ("bob",)))
    timer.start()
    try:
        after = client.wait(body["id"], 30)
    finally:
        timer.join()
    assert after["state"] == expected, after
    if mode == "brokered":
        assert after["result"]["output"] == f"ran-{u}\n"


def test_report_records_the_outcome_of_an_advisory_action(client: Client) -> None:
    body = client.propose("shell", "production", {"command": unique("ls /srv/report")}, mode="advisory")
    after = client.report(body["id"], "succeeded", exit_code=0, duration_ms=12.5, output_excerpt="ok")
    # The log keeps the excerpt's size and SHA-256, not its text (issue 10.11: audit_output defaults to digest).
    assert after["reported"] == {"status": "succeeded", "exit_code": 0, "duration_ms": 12.5,
                                 "output_excerpt_bytes": 2, "output_excerpt_sha256": sha256(b"ok").hexdigest()}


def test_async_client_proposes_waits_and_reports(server: LiveServer, tokens: dict[str, str]) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with AsyncClient(server.url, tokens["kiro"]) as sdk:
            allowed = await sdk.propose("shell", "production", {"command": unique("ls /srv/async")}, mode="advisory")
            reported = await sdk.report(allowed["id"], "failed", exit_code=1)
            pending = await sdk.propose("shell", "production", {"command": unique("touch /tmp/async")},
                                        mode="advisory")
            assert pending["state"] == "pending_approval"
            await asyncio.to_thread(approve, server, tokens, pending["approval"]["id"], ("bob",))
            return reported, await sdk.wait(pending["id"], 30), await sdk.get(pending["id"])

    reported, waited, got = asyncio.run(scenario())
    assert reported["reported"]["status"] == "failed"
    assert waited["state"] == "approved"
    assert got["state"] == "approved"


# --- typed errors -----------------------------------------------------------------------------


def _call(server: LiveServer, tokens: dict[str, str], case: str) -> None:
    if case == "bad token":
        Client(server.url, "ilk_a_not-a-token").propose("shell", "production", {"command": "ls"})
    elif case == "human token":
        Client(server.url, tokens["bob"]).propose("shell", "production", {"command": "ls"})
    elif case == "unknown action":
        Client(server.url, tokens["kiro"]).get("act_00000000000000000000")
    elif case == "unknown kind":
        Client(server.url, tokens["kiro"]).propose("telnet", "production", {"command": "ls"})
    elif case == "report on a brokered action":
        sdk = Client(server.url, tokens["kiro"])
        body = sdk.propose("shell", "sandbox", {"command": "true"}, mode="brokered")
        sdk.report(body["id"], "succeeded")
    elif case == "bad outcome status":
        Client(server.url, tokens["kiro"]).report("act_x", "done")
    elif case == "nothing listening":
        Client(f"http://127.0.0.1:{free_port()}", tokens["kiro"]).propose("shell", "production", {"command": "ls"})


@pytest.mark.parametrize(("case", "error", "status", "code"), [
    ("bad token", Unauthorized, 401, "token_malformed"),
    ("human token", Unauthorized, 403, "human_token"),
    ("unknown action", BadRequest, 404, "unknown_action"),
    ("unknown kind", BadRequest, 422, "invalid_field"),
    ("report on a brokered action", BadRequest, 422, "not_advisory"),
    ("bad outcome status", BadRequest, 0, "invalid_field"),
    ("nothing listening", Unavailable, 0, "unreachable"),
])
def test_errors_are_typed(server: LiveServer, tokens: dict[str, str], case: str, error: type[InterlockError],
                          status: int, code: str) -> None:
    with pytest.raises(error) as caught:
        _call(server, tokens, case)
    assert caught.value.status == status
    assert caught.value.code in (code, "token_unknown")  # an unknown-but-well-formed token is also refused


def test_store_down_is_unavailable(tmp_path: Path, pg_admin: PgAdmin) -> None:
    """The store goes away under a running server: the SDK raises Unavailable (the server said deny)."""
    dbname = pg_admin.create_database("interlock_sdk_down")
    try:
        with live_server(EXAMPLE, pg_admin.url(dbname), tmp_path) as live:
            sdk = Client(live.url, live.token("agent", "kiro"))
            assert sdk.propose("shell", "production", {"command": "ls"}, mode="advisory")["state"] == "allowed"
            pg_admin.drop_database(dbname)
            with pytest.raises(Unavailable) as caught:
                sdk.propose("shell", "production", {"command": "ls"}, mode="advisory")
            # 503 by contract; any 5xx must be Unavailable (the first request after the drop can be a 500: a
            # psycopg error escapes the store's read-only transaction, reported to the lead)
            assert caught.value.status >= 500
    finally:
        pg_admin.drop_later(dbname)


# --- LocalClient ------------------------------------------------------------------------------


def test_local_client_answers_the_same_json_in_process(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'local.db'}"
    with LocalClient(EXAMPLE, "kiro", db=db, key_dir=tmp_path / "keys") as local:
        allowed = local.propose("shell", "production", {"command": "ls /srv"}, mode="advisory")
        assert allowed["state"] == "allowed"
        assert local.report(allowed["id"], "succeeded", exit_code=0)["reported"]["status"] == "succeeded"
        ran = local.propose("shell", "sandbox", {"command": "echo local"})
        assert (ran["state"], ran["result"]["output"]) == ("succeeded", "local\n")
        pending = local.propose("shell", "production", {"command": "touch /tmp/local-x"}, mode="advisory")
        assert local.wait(pending["id"], 0.2)["state"] == "pending_approval"
        local.runtime.gate.approve(pending["approval"]["id"], Principal("human", "bob", "tok_test"))
        assert local.wait(pending["id"], 5)["state"] == "approved"
        assert local.get(pending["id"])["state"] == "approved"
        with pytest.raises(BadRequest) as caught:
            local.get("act_nope")
        assert caught.value.code == "unknown_action"
        with pytest.raises(BadRequest):
            local.propose("telnet", "production", {"command": "ls"})


def test_local_client_refuses_an_agent_the_policy_does_not_know(tmp_path: Path) -> None:
    with pytest.raises(Unauthorized):
        LocalClient(EXAMPLE, "mallory", db=f"sqlite:///{tmp_path / 'l.db'}", key_dir=tmp_path / "keys")


def test_local_client_with_a_policy_that_does_not_load_is_unavailable(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("version: 1\nagents: [\n")
    with pytest.raises(Unavailable):
        LocalClient(bad, "kiro", db=f"sqlite:///{tmp_path / 'l.db'}", key_dir=tmp_path / "keys")


# --- @guarded ---------------------------------------------------------------------------------


def test_guarded_runs_an_allowed_call_and_reports_it(server: LiveServer, client: Client) -> None:
    calls: list[str] = []
    marker = unique("ls /srv/guarded")

    @guarded(kind="shell", env="production", client=client)
    def run_shell(command: str) -> str:
        calls.append(command)
        return "listing"

    assert run_shell(marker) == "listing"
    assert calls == [marker]
    assert any(o["outcome"]["status"] == "succeeded" for o in reported_outcomes(server))


def test_guarded_denied_raises_with_reasons_and_rules(client: Client) -> None:
    calls: list[str] = []

    @guarded(kind="sql", env="sandbox", client=client)
    def query(sql: str) -> None:
        calls.append(sql)

    with pytest.raises(Denied) as caught:
        query(f"DROP DATABASE {unique('billing')}")
    assert caught.value.rules == ["no-drop-database"]
    assert caught.value.reasons
    assert calls == []


def test_guarded_retry_of_the_approved_call_runs(server: LiveServer, tokens: dict[str, str], client: Client) -> None:
    calls: list[str] = []
    target = unique("rotate")

    @guarded(env="production", client=client, wait=0.3)
    def update_key(name: str) -> str:
        calls.append(name)
        return "rotated"

    with pytest.raises(ApprovalPending) as caught:
        update_key(target)
    approve(server, tokens, caught.value.request_id)
    assert update_key(target) == "rotated"
    assert calls == [target]


def test_guarded_rejected_raises_denied(server: LiveServer, tokens: dict[str, str], client: Client) -> None:
    @guarded(kind="shell", env="production", client=client, wait=30)
    def run_shell(command: str) -> None:
        raise AssertionError("a rejected action must not run")

    line = unique("touch /tmp/rejected")
    thread = threading.Thread(target=server.decide_when_pending,
                              args=(lambda a: a["action"]["payload"].get("command") == line, tokens["bob"]),
                              kwargs={"verdict": "deny", "reason": "not today"})
    thread.start()
    try:
        with pytest.raises(Denied) as caught:
            run_shell(line)
    finally:
        thread.join()
    assert caught.value.state == "rejected"
    assert any("not today" in r for r in caught.value.reasons)


def test_guarded_failure_is_reported_and_reraised(server: LiveServer, client: Client) -> None:
    @guarded(env="production", client=client)
    def list_things(prefix: str) -> None:
        raise RuntimeError("upstream said no")

    with pytest.raises(RuntimeError, match="upstream said no"):
        list_things(unique("p"))
    digest = sha256(b"RuntimeError: upstream said no").hexdigest()  # the log keeps a digest (issue 10.11)
    assert any(o["outcome"]["status"] == "failed" and o["outcome"]["output_excerpt_sha256"] == digest
               for o in reported_outcomes(server))


def test_guarded_async_with_async_and_sync_clients(server: LiveServer, tokens: dict[str, str]) -> None:
    async def scenario() -> list[str]:
        results = []
        async with AsyncClient(server.url, tokens["kiro"]) as async_sdk:
            @guarded(env="production", client=async_sdk)
            async def get_status(name: str) -> str:
                await asyncio.sleep(0)
                return f"async {name}"

            results.append(await get_status(unique("a")))
        with Client(server.url, tokens["kiro"]) as sync_sdk:
            @guarded(env="production", client=sync_sdk)
            async def list_pods(namespace: str) -> str:
                return f"sync {namespace}"

            results.append(await list_pods(unique("b")))

            @guarded(kind="sql", env="sandbox", client=sync_sdk)
            async def query(sql: str) -> None:
                raise AssertionError("must not run")

            with pytest.raises(Denied):
                await query("DROP DATABASE x")
        return results

    first, second = asyncio.run(scenario())
    assert first.startswith("async a-") and second.startswith("sync b-")


def test_guarded_without_a_client_uses_the_environment(server: LiveServer, tokens: dict[str, str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    @guarded(env="production")
    def list_repos(owner: str) -> str:
        return f"repos of {owner}"

    monkeypatch.delenv("INTERLOCK_URL", raising=False)
    with pytest.raises(Unavailable):  # no gateway configured: fail closed
        list_repos("acme")
    monkeypatch.setenv("INTERLOCK_URL", server.url)
    monkeypatch.setenv("INTERLOCK_TOKEN", tokens["kiro"])
    assert list_repos(unique("acme")).startswith("repos of acme-")


def test_guarded_refuses_arguments_it_cannot_show(client: Client) -> None:
    calls = []

    @guarded(env="production", client=client)
    def store_blob(blob: object) -> None:
        calls.append(blob)

    with pytest.raises(BadRequest) as caught:
        store_blob(object())
    assert caught.value.field == "blob"
    assert calls == []


def test_guarded_gateway_down_fails_closed(tokens: dict[str, str]) -> None:
    calls = []

    @guarded(kind="shell", env="production", client=Client(f"http://127.0.0.1:{free_port()}", tokens["kiro"]))
    def run_shell(command: str) -> None:
        calls.append(command)

    with pytest.raises(Unavailable):
        run_shell("ls")
    assert calls == []


@pytest.mark.parametrize(("kind", "signature_ok"), [("shell", False), ("sql", False), ("mcp", True)])
def test_guarded_checks_the_signature_at_decoration(kind: str, signature_ok: bool) -> None:
    def tool(name: str) -> None: ...

    if signature_ok:
        guarded(kind=kind, env="production", client=Client("http://127.0.0.1:1", "t"))(tool)
    else:
        with pytest.raises(TypeError):
            guarded(kind=kind, env="production", client=Client("http://127.0.0.1:1", "t"))(tool)


def test_guarded_sync_function_refuses_an_async_client() -> None:
    with pytest.raises(TypeError):
        @guarded(env="production", client=AsyncClient("http://127.0.0.1:1", "t"))
        def tool(name: str) -> None: ...


# --- pure pieces, as tables ---------------------------------------------------------------------


def _tool_sql(query: str, limit: int = 10) -> None: ...


def _tool_shell(command: str, cwd: str = "/") -> None: ...


def _tool_other(path: str, recursive: bool = False) -> None: ...


@pytest.mark.parametrize(("kind", "fn", "args", "kwargs", "expected"), [
    ("shell", _tool_shell, ("ls -l",), {}, ("shell", {"command": "ls -l"})),
    ("sql", _tool_sql, (), {"query": "SELECT 1"}, ("sql", {"sql": "SELECT 1"})),
    ("mcp", _tool_other, ("/srv",), {}, ("mcp", {"server": __name__, "tool": "_tool_other",
                                                 "arguments": {"path": "/srv", "recursive": False}})),
    ("http", _tool_other, ("/x",), {"recursive": True},
     ("mcp", {"server": __name__, "tool": "_tool_other", "arguments": {"path": "/x", "recursive": True}})),
])
def test_build_payload(kind: str, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                       expected: tuple[str, dict[str, Any]]) -> None:
    assert build_payload(kind, fn, args, kwargs) == expected


@pytest.mark.parametrize(("body", "error"), [
    ({"state": "allowed"}, None),
    ({"state": "approved"}, None),
    ({"state": "denied", "reasons": ["no"], "rules": ["r"]}, Denied),
    ({"state": "sandbox_required", "reasons": ["staging first"], "rules": ["s"]}, Denied),
    ({"state": "rejected", "approval": {"id": "apr_1", "reason": "no"}}, Denied),
    ({"state": "pending_approval", "approval": {"id": "apr_1", "still_needs": "1 more"}}, ApprovalPending),
    ({"state": "expired", "approval": {"id": "apr_1"}}, ApprovalExpired),
    ({"state": "invalidated", "approval": {"id": "apr_1"}}, ApprovalExpired),
    ({"state": "succeeded"}, Denied),  # brokered states never mean "run it again here"
    ({}, Denied),
])
def test_what_each_state_raises(body: dict[str, Any], error: type[Exception] | None) -> None:
    if error is None:
        _raise_unless_may_run(body)
    else:
        with pytest.raises(error):
            _raise_unless_may_run(body)


def test_http_client_sends_the_documented_body(server: LiveServer, tokens: dict[str, str]) -> None:
    """The SDK's propose and a hand-written HTTP call get the same decision for the same action."""
    line = unique("ls /srv/same")
    with Client(server.url, tokens["kiro"]) as sdk:
        via_sdk = sdk.propose("shell", "production", {"command": line}, mode="advisory",
                              rationale={"intent": "look", "expected_effect": "", "rollback": ""})
    raw = httpx.post(f"{server.url}/v1/actions", headers={"Authorization": f"Bearer {tokens['kiro']}"},
                     json={"kind": "shell", "environment": "production", "payload": {"command": line},
                           "mode": "advisory"}).json()
    assert via_sdk["fingerprint"] == raw["fingerprint"]
    assert via_sdk["decision"] == raw["decision"] == "allow"


# --- Client and AsyncClient: one request-building core, two transports -----------------------------

SHARED_CALLS: list[tuple[str, tuple[Any, ...], type[InterlockError] | None, int, str]] = [
    # (method, arguments, error expected (None: an answer), status, code)
    ("rollouts", (), None, 0, ""),
    ("rollout", ("rol_nope",), BadRequest, 404, "unknown_rollout"),
    ("rollout_command", ("rol_nope", "pause", "why"), Unauthorized, 403, "agent_token"),  # a human's command
    ("get", ("act_nope",), BadRequest, 404, "unknown_action"),
    ("rehearse", ("act_nope",), BadRequest, 404, "unknown_action"),
    ("report", ("act_nope", "succeeded"), BadRequest, 404, "unknown_action"),
]


@pytest.mark.parametrize(("method", "args", "error", "status", "code"), SHARED_CALLS, ids=[c[0] for c in SHARED_CALLS])
def test_client_and_async_client_answer_alike(server: LiveServer, tokens: dict[str, str], method: str,
                                              args: tuple[Any, ...], error: type[InterlockError] | None, status: int,
                                              code: str) -> None:
    def sync() -> Any:
        with Client(server.url, tokens["kiro"]) as sdk:
            return getattr(sdk, method)(*args)

    async def in_async() -> Any:
        async with AsyncClient(server.url, tokens["kiro"]) as sdk:
            return await getattr(sdk, method)(*args)

    for call in (sync, lambda: asyncio.run(in_async())):
        if error is None:
            assert isinstance(call(), list)
            continue
        with pytest.raises(error) as refused:
            call()
        assert (refused.value.status, refused.value.code) == (status, code)


def test_both_clients_have_the_same_api() -> None:
    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_")} - {"close", "aclose"}

    assert public(Client) == public(AsyncClient)
