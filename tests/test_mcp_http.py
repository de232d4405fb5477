"""The remote MCP proxy's own HTTP/1.1 (mcp_http) against a real socket server: what it sends, which
answers it takes, which it refuses (the caller fails closed), and when it keeps a connection."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import httpx
import pytest

from interlock.client import Call
from interlock.integrations.mcp_http import plain_http

OK = b'{"id":"act_1","state":"allowed"}'

# (answer the server writes, then whether it closes → status read or the error raised, connection kept)
ANSWERS: list[tuple[bytes, bool, int | type[Exception], bool]] = [
    (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 32\r\n\r\n" + OK, False, 200, True),
    (b"HTTP/1.1 422 Unprocessable\r\ncontent-length: 2\r\n\r\n{}", False, 422, True),
    (b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 32\r\n\r\n" + OK, True, 200, False),
    (b"HTTP/1.0 200 OK\r\ncontent-length: 32\r\n\r\n" + OK, True, 200, False),
    (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n20\r\n" + OK + b"\r\n0\r\n\r\n", False,
     httpx.ReadError, False),
    (b"HTTP/1.1 200 OK\r\n\r\n" + OK, True, httpx.ReadError, False),  # no length: refused, not guessed
    (b"SSH-2.0-OpenSSH\r\n\r\n", True, httpx.ReadError, False),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n" + OK, True, httpx.ReadError, False),  # cut short
    (b"", True, httpx.ReadError, False),  # closed without answering
]


async def _server(answer: bytes, close: bool, seen: list[bytes]) -> tuple[asyncio.Server, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                seen.append(head + await reader.readexactly(length))
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/base"


@pytest.mark.parametrize(("answer", "close", "expected", "kept"), ANSWERS)
def test_answers_taken_and_refused(answer: bytes, close: bool, expected: int | type[Exception], kept: bool) -> None:
    async def main() -> None:
        seen: list[bytes] = []
        server, url = await _server(answer, close, seen)
        transport = plain_http(url, "tok")
        assert transport is not None
        call = Call("POST", "/v1/actions", body={"kind": "mcp", "payload": {"tool": "é"}}, params={"x": 1})
        try:
            if isinstance(expected, int):
                response = await transport.send(call, 5.0)
                assert response.status_code == expected and response.content == answer.partition(b"\r\n\r\n")[2]
                assert response.request.url.path == "/base/v1/actions"
            else:
                with pytest.raises(expected):
                    await transport.send(call, 5.0)
            assert len(transport.idle) == (1 if kept else 0)
            request = seen[0]
            assert request.startswith(b"POST /base/v1/actions?x=1 HTTP/1.1\r\n")
            assert b"Authorization: Bearer tok\r\n" in request
            assert request.endswith('{"kind":"mcp","payload":{"tool":"é"}}'.encode())
        finally:
            await transport.aclose()
            server.close()

    asyncio.run(main())


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    """uvicorn closes idle kept-alive connections (5 s): the next request opens a new one."""
    async def main() -> None:
        seen: list[bytes] = []
        answer = b"HTTP/1.1 200 OK\r\ncontent-length: 32\r\n\r\n" + OK
        server, url = await _server(answer, True, seen)  # answers, then closes as if idle too long
        transport = plain_http(url, "tok")
        assert transport is not None
        try:
            for _ in range(3):
                await transport.send(Call("GET", "/v1/actions/act_1"), 5.0)
                await asyncio.sleep(0.05)  # the close arrives while the connection is idle
            assert len(seen) == 3
        finally:
            await transport.aclose()
            server.close()

    asyncio.run(main())


@pytest.mark.parametrize(("url", "plain"), [
    ("http://127.0.0.1:8080", True), ("http://gw.internal/prefix", True),
    ("https://gw.example.com", False),  # TLS stays with httpx
    ("http://user:pw@gw", False), ("http://gw?x=1", False),
])
def test_plain_http_only_for_plain_urls(url: str, plain: bool) -> None:
    assert (plain_http(url, "tok") is not None) == plain


@pytest.mark.parametrize("body", [{"n": math.nan}, {"n": math.inf}])
def test_a_body_json_cannot_carry_is_refused_before_sending(body: dict[str, Any]) -> None:
    transport = plain_http("http://127.0.0.1:9", "tok")
    assert transport is not None
    with pytest.raises(ValueError):
        asyncio.run(transport.send(Call("POST", "/v1/actions", body=body), 1.0))


@pytest.mark.parametrize("action_id", ["act_1\r\nX-Injected: 1", "act 1", "act_\u00e9"])
def test_a_path_that_could_carry_a_header_is_refused_before_sending(action_id: str) -> None:
    transport = plain_http("http://127.0.0.1:9", "tok")
    assert transport is not None
    with pytest.raises(httpx.UnsupportedProtocol):
        asyncio.run(transport.send(Call("GET", f"/v1/actions/{action_id}"), 1.0))
