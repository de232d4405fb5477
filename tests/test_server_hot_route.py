"""`POST /v1/actions` is served by a plain ASGI handler (server.hot.HotRoute, the hot path), not by
FastAPI's layers: every error answer is byte-identical to the one FastAPI gave, and audited as before.

The expected bodies below were recorded from the FastAPI route (main at 2026-11-25 22:20 UTC) before the plain
route existed, except the rows from "empty payload" to "environment not a string" (bare 500s then, 422s since)
and "truncated UTF-32" (FastAPI's bare `detail`, in the error shape since); the two integer rows were recorded
from main before the body was read with orjson (2026-11-26). A real `interlock serve` on SQLite and PostgreSQL
must give exactly these bytes."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlock.identity import create_token
from interlock.model import NAME_RULE
from interlock.server.app import Settings, create_app
from interlock.server.hot import HotRoute
from interlock.testing import LiveServer
from tests.conftest import EXAMPLE_POLICY
from tests.test_server_api import rejected_entries

READ = {"kind": "shell", "environment": "production", "payload": {"command": "ls /srv"}, "mode": "advisory"}
JSON_TYPE = {"content-type": "application/json"}
KINDS = "'shell', 'sql', 'kubectl', 'terraform', 'aws', 'http', 'mcp' or 'file'"


def _body(value: Any) -> bytes:
    return json.dumps(value).encode()


def _error(code: str, message: str, field: str | None = None) -> bytes:
    """The error shape as the server writes it (compact, UTF-8)."""
    error = {"code": code, "message": message, **({"field": field} if field else {})}
    return json.dumps({"error": error}, separators=(",", ":"), ensure_ascii=False).encode()


# (case, who sends it, headers, body, status, the exact answer FastAPI gave)
ANSWERS: list[tuple[str, str | None, dict[str, str], bytes, int, bytes]] = [
    ("malformed JSON", "kiro", JSON_TYPE, b'{"kind": "shell",', 400,
     _error("malformed_json", "body is not valid JSON: JSON decode error", "17")),
    ("malformed JSON at 0", "kiro", JSON_TYPE, b"nope", 400,
     _error("malformed_json", "body is not valid JSON: JSON decode error", "0")),
    ("trailing garbage", "kiro", JSON_TYPE, _body(READ) + b" x", 400,
     _error("malformed_json", "body is not valid JSON: JSON decode error", "102")),
    ("NaN, which Python's JSON reads", "kiro", JSON_TYPE,
     b'{"kind": "shell", "environment": "production", "payload": {"x": NaN}, "mode": "advisory"}', 422,
     _error("invalid_payload", "payload is not canonical JSON: nan is not representable in JCS", "payload")),
    # Integers past 64 bits, which orjson would read as floats: read by json.loads (as main did before orjson).
    ("integer past 64 bits", "kiro", JSON_TYPE,
     b'{"kind": "shell", "environment": "production", "payload": {"command": "ls", "n": 123456789012345678901234567890}}',
     422, _error("invalid_payload", "payload is not canonical JSON: 123456789012345678901234567890 exceeds safe integer "
                 "domain for JSON floats", "payload")),
    ("integer below -2**63", "kiro", JSON_TYPE,
     b'{"kind": "shell", "environment": "production", "payload": {"command": "ls", "n": -9223372036854775809}}',
     422, _error("invalid_payload", "payload is not canonical JSON: -9223372036854775809 exceeds safe integer "
                 "domain for JSON floats", "payload")),
    ("unknown field", "kiro", JSON_TYPE, _body({**READ, "approved": True}), 422,
     _error("unknown_field", "unknown field 'approved': remove it", "approved")),
    ("two unknown fields: the first is named", "kiro", JSON_TYPE, _body({**READ, "approved": True, "zz": 1}), 422,
     _error("unknown_field", "unknown field 'approved': remove it", "approved")),
    ("unknown rationale field", "kiro", JSON_TYPE, _body({**READ, "rationale": {"intent": "x", "approver": "bob"}}),
     422, _error("unknown_field", "unknown field 'rationale.approver': remove it", "rationale.approver")),
    ("missing environment", "kiro", JSON_TYPE, _body({k: v for k, v in READ.items() if k != "environment"}), 422,
     _error("invalid_field", "environment: Field required", "environment")),
    ("empty object", "kiro", JSON_TYPE, b"{}", 422, _error("invalid_field", "kind: Field required", "kind")),
    ("unknown kind", "kiro", JSON_TYPE, _body({**READ, "kind": "telnet"}), 422,
     _error("invalid_field", f"kind: Input should be {KINDS}", "kind")),
    ("kind not a string", "kiro", JSON_TYPE, _body({**READ, "kind": 3}), 422,
     _error("invalid_field", f"kind: Input should be {KINDS}", "kind")),
    ("payload a list", "kiro", JSON_TYPE, _body({**READ, "payload": [1]}), 422,
     _error("invalid_field", "payload: Input should be a valid dictionary", "payload")),
    ("bad mode", "kiro", JSON_TYPE, _body({**READ, "mode": "yolo"}), 422,
     _error("invalid_field", "mode: Input should be 'brokered' or 'advisory'", "mode")),
    # Inputs the Action refuses once refused only when it was built (a bare, unaudited 500): now 422 at the door.
    ("empty payload", "kiro", JSON_TYPE, _body({**READ, "payload": {}}), 422,
     _error("invalid_field", 'payload: should not be empty: say what the action does (e.g. {"command": "ls"})',
            "payload")),
    ("environment with a space", "kiro", JSON_TYPE, _body({**READ, "environment": "prod env"}), 422,
     _error("invalid_field", f"environment: should be a name: {NAME_RULE}", "environment")),
    ("empty environment", "kiro", JSON_TYPE, _body({**READ, "environment": ""}), 422,
     _error("invalid_field", f"environment: should be a name: {NAME_RULE}", "environment")),
    ("environment name too long", "kiro", JSON_TYPE, _body({**READ, "environment": "p" * 129}), 422,
     _error("invalid_field", f"environment: should be a name: {NAME_RULE}", "environment")),
    ("target starting with a dash", "kiro", JSON_TYPE, _body({**READ, "target": "-rf"}), 422,
     _error("invalid_field", f"target: should be a name: {NAME_RULE}", "target")),
    ("environment not a string", "kiro", JSON_TYPE, _body({**READ, "environment": 7}), 422,
     _error("invalid_field", "environment: Input should be a valid string", "environment")),
    ("rationale a string", "kiro", JSON_TYPE, _body({**READ, "rationale": "because"}), 422,
     _error("invalid_field", "rationale: Input should be a valid dictionary or object to extract fields from",
            "rationale")),
    ("body a list", "kiro", JSON_TYPE, b"[1, 2]", 422,
     _error("invalid_field", "body: Input should be a valid dictionary or object to extract fields from", "body")),
    ("body a string", "kiro", JSON_TYPE, b'"x"', 422,
     _error("invalid_field", "body: Input should be a valid dictionary or object to extract fields from", "body")),
    ("body null", "kiro", JSON_TYPE, b"null", 422,
     _error("invalid_field", "body: Input should be a valid dictionary or object to extract fields from", "body")),
    ("empty body", "kiro", JSON_TYPE, b"", 422, _error("invalid_field", "body: Field required", "body")),
    ("empty body, no content type", "kiro", {}, b"", 422, _error("invalid_field", "body: Field required", "body")),
    ("charset parameter", "kiro", {"content-type": "application/json; charset=utf-8"},
     _body({**READ, "kind": "telnet"}), 422, _error("invalid_field", f"kind: Input should be {KINDS}", "kind")),
    ("wrong content type", "kiro", {"content-type": "text/plain"}, _body(READ), 415,
     _error("unsupported_media_type", "send the body as JSON with Content-Type: application/json")),
    ("oversized body", "kiro", JSON_TYPE, b'{"kind": "' + b"x" * (3 * 1024 * 1024) + b'"}', 413,
     _error("body_too_large", "request body over 2097152 bytes")),
    ("oversized payload", "kiro", JSON_TYPE, _body({**READ, "payload": {"command": "echo " + "x" * (1024 * 1024 + 10)}}),
     413, _error("payload_too_large", "payload is 1048605 bytes, over the policy's max_payload_bytes of 1048576",
                 "payload")),
    ("deeply nested", "kiro", JSON_TYPE,
     _body({**READ, "payload": {"command": "ls", "x": functools.reduce(lambda a, _: [a], range(400), 0)}}), 400,
     _error("payload_too_deep", "body nests deeper than 64 levels: flatten the payload")),
    ("invalid UTF-8", "kiro", JSON_TYPE, b'{"kind": "shell", "environment": "\xff\xfe"}', 400,
     _error("malformed_json", "body is not valid JSON: invalid UTF-8 at byte 34; send UTF-8")),
    ("read as UTF-16 by json.loads", "kiro", JSON_TYPE, b'\x00{"x', 400,
     _error("malformed_json", "body is not valid JSON: JSON decode error", "1")),
    ("truncated UTF-32 (was FastAPI's bare, unaudited detail)", "kiro", JSON_TYPE, b"\x00\x00\x00{\x00", 400,
     _error("malformed_json", "body is not valid JSON: it could not be decoded; send UTF-8")),
    ("human token, valid body", "alice", JSON_TYPE, _body(READ), 403,
     _error("human_token", "this endpoint is for agents: propose with the agent's own token")),
    ("human token, bad body: the body is judged first", "alice", JSON_TYPE, _body({**READ, "kind": "telnet"}), 422,
     _error("invalid_field", f"kind: Input should be {KINDS}", "kind")),
    ("no token", None, JSON_TYPE, _body(READ), 401,
     _error("unauthenticated", "send your Interlock token as `Authorization: Bearer ilk_…`")),
    ("forged token", "forged", JSON_TYPE, _body(READ), 401,
     _error("token_unknown", "unknown token: it was never issued here (check the server or --db)")),
]


@pytest.mark.parametrize(("case", "who", "headers", "body", "status", "answer"), ANSWERS, ids=[a[0] for a in ANSWERS])
def test_error_answers_are_byte_identical_and_audited(server: LiveServer, tokens: dict[str, str], case: str,
                                                      who: str | None, headers: dict[str, str], body: bytes,
                                                      status: int, answer: bytes) -> None:
    token = {None: None, "forged": "ilk_a_" + "A" * 43}.get(who, tokens.get(who or ""))
    sent = {**headers, **({"authorization": f"Bearer {token}"} if token else {})}
    before = len(rejected_entries(server))
    response = httpx.post(server.url + "/v1/actions", content=body, headers=sent, timeout=30)
    assert (response.status_code, response.content) == (status, answer)
    assert response.headers["content-type"] == "application/json"
    audited = rejected_entries(server)
    assert len(audited) == before + 1 and (audited[-1]["status"], audited[-1]["code"]) == (
        status, json.loads(answer)["error"]["code"])


def test_a_proposal_is_answered_and_counted_under_its_route(server: LiveServer, tokens: dict[str, str]) -> None:
    answer = httpx.post(server.url + "/v1/actions", json=READ, headers={"authorization": f"Bearer {tokens['kiro']}"})
    assert answer.status_code == 200 and answer.json()["state"] == "allowed"
    metrics = httpx.get(server.url + "/metrics").text
    assert 'interlock_http_requests_total{route="/v1/actions",status="200"}' in metrics
    assert 'interlock_decisions_total{decision="allow",kind="shell"}' in metrics


def test_openapi_still_describes_the_hot_route(server: LiveServer) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    operation = spec["paths"]["/v1/actions"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ActionRequest"}
    assert set(spec["components"]["schemas"]["ActionRequest"]["required"]) == {"kind", "environment", "payload"}
    assert operation["summary"] == "Propose" and "422" in operation["responses"]


STALL = object()
BODY = _body(READ)


def _drive(tmp_path: Path, messages: list[Any]) -> tuple[int | None, bytes, str | None, float | None]:
    """The in-process app (a 50 ms body deadline, a 10-byte-over-READ bound) sent `messages` as its client's
    body: (status answered, its body, the exception that went up to the server, the metrics' count of it)."""
    app = create_app(Settings(policy=EXAMPLE_POLICY, db=f"sqlite:///{tmp_path / 'i.db'}", key_dir=tmp_path / "keys", allow_missing_secrets=True))
    server = app.state.server
    app.hot = HotRoute(server, max_bytes=len(BODY) + 10, deadline=0.05)
    _, token = create_token(server.store, "agent", "kiro", None, server.audit, policy=server.policy)
    queue = list(messages)
    answer: list[dict[str, Any]] = []

    async def receive() -> Any:
        message = queue.pop(0) if queue else STALL
        if message is STALL:
            await asyncio.Event().wait()
        return message

    async def send(message: dict[str, Any]) -> None:
        answer.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/actions", "raw_path": b"/v1/actions", "query_string": b"",
             "headers": [(b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/json"),
                         (b"transfer-encoding", b"chunked")], "state": {}, "client": ("127.0.0.1", 1)}
    raised = None
    try:
        asyncio.run(app(scope, receive, send))
    except Exception as exc:
        raised = type(exc).__name__
    status = answer[0]["status"] if answer else None
    counted = server.registry.get_sample_value("interlock_http_requests_total", {
        "route": "/v1/actions" if status == 200 else "unmatched", "status": str(status or 500)})
    server.close()
    return status, b"".join(m.get("body", b"") for m in answer[1:]), raised, counted


def _chunk(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


@pytest.mark.parametrize(("case", "messages", "status", "answer", "raised"), [
    ("one chunk", [_chunk(BODY, False)], 200, None, None),
    ("three chunks, joined", [_chunk(BODY[:5], True), _chunk(BODY[5:9], True), _chunk(BODY[9:], False)], 200, None,
     None),
    ("over the bound in the second chunk", [_chunk(BODY, True), _chunk(b" " * 11, False)], 413,
     _error("body_too_large", f"request body over {len(BODY) + 10} bytes"), None),
    ("stalls after a chunk", [_chunk(b"{", True), STALL], 408,
     _error("request_timeout", "body not received within 0.05 s"), None),
    ("stalls before any chunk", [STALL], 408, _error("request_timeout", "body not received within 0.05 s"), None),
    ("disconnects: no answer, counted as a 500", [_chunk(b"{", True), {"type": "http.disconnect"}], None, b"", None),
    # What starlette's ServerErrorMiddleware did: a bare 500, and the exception goes on up to uvicorn (which logs it).
    ("a message the app cannot read", [{"body": b"{}"}], 500, b"Internal Server Error", "KeyError"),
])
def test_the_body_is_read_against_one_deadline_and_bound(tmp_path: Path, case: str,
                                                         messages: list[Any], status: int | None,
                                                         answer: bytes | None, raised: str | None) -> None:
    got_status, got_answer, got_raised, counted = _drive(tmp_path, messages)
    assert (got_status, got_raised, counted) == (status, raised, 1.0), case
    if answer is not None:
        assert got_answer == answer, case
    else:
        assert json.loads(got_answer)["state"] == "allowed", case


def test_a_server_without_a_scope_state_is_answered(tmp_path: Path) -> None:
    """httpx's ASGI transport gives no `state` in the scope (uvicorn and Starlette's TestClient do)."""
    app = create_app(Settings(policy=EXAMPLE_POLICY, db=f"sqlite:///{tmp_path / 'i.db'}", key_dir=tmp_path / "keys",
                              allow_missing_secrets=True))
    server = app.state.server
    _, token = create_token(server.store, "agent", "kiro", None, server.audit, policy=server.policy)

    async def propose() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://interlock") as client:
            return await client.post("/v1/actions", json=READ, headers={"authorization": f"Bearer {token}"})

    try:
        answer = asyncio.run(propose())
    finally:
        server.close()
    assert (answer.status_code, answer.json()["state"]) == (200, "allowed")
