"""BodyLimit reads a body against one deadline and one size bound, then replays it to the app.

Driven directly as ASGI (no server, no store: the path is outside /v1/, so no token is needed): each case is
the messages a client sends → the status answered and the body the app saw. The stalled client waits on a
real `asyncio.Event` that never fires, against a 50 ms deadline (a transport deadline, not a policy one)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from interlock.server.middleware import BodyLimit

STALL = object()


async def _serve(messages: list[Any], max_bytes: int = 10) -> tuple[int | None, bytes | None]:
    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    queue = list(messages)

    async def receive() -> dict[str, Any]:
        message = queue.pop(0) if queue else STALL
        if message is STALL:
            await asyncio.Event().wait()
        assert isinstance(message, dict)
        return message

    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {"type": "http", "method": "POST", "path": "/ui/form", "headers": [(b"content-type", b"application/json"),
             (b"transfer-encoding", b"chunked")], "state": {}}
    await BodyLimit(app, max_bytes=max_bytes, deadline=0.05)(scope, receive, send)
    return (status[0] if status else None), (seen[0] if seen else None)


def _chunk(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


@pytest.mark.parametrize(("case", "messages", "status", "app_saw"), [
    ("one chunk", [_chunk(b"{}", False)], 200, b"{}"),
    ("two chunks, joined", [_chunk(b'{"a"', True), _chunk(b":1}", False)], 200, b'{"a":1}'),
    ("over the bound in the second chunk", [_chunk(b"12345", True), _chunk(b"123456", False)], 413, None),
    ("stalls after a chunk", [_chunk(b"{", True), STALL], 408, None),
    ("stalls before any chunk", [STALL], 408, None),
    ("disconnects", [_chunk(b"{", True), {"type": "http.disconnect"}], None, None),
])
def test_a_body_is_read_against_one_deadline_and_bound(case: str, messages: list[Any], status: int | None,
                                                        app_saw: bytes | None) -> None:
    assert asyncio.run(_serve(messages)) == (status, app_saw), case


def test_the_timeout_answer_names_the_deadline() -> None:
    bodies: list[bytes] = []

    async def run() -> None:
        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                bodies.append(message["body"])

        scope = {"type": "http", "method": "POST", "path": "/ui/form", "headers": [(b"content-length", b"2"),
                 (b"content-type", b"application/json")], "state": {}}
        await BodyLimit(lambda *_: None, max_bytes=10, deadline=0.05)(scope, receive, send)  # type: ignore[arg-type]

    asyncio.run(run())
    assert json.loads(bodies[0])["error"] == {"code": "request_timeout", "message": "body not received within 0.05 s"}
