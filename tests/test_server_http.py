"""server/http.py: uvicorn's httptools protocol writing a response whose length is known in one piece.
Same bytes as uvicorn's own protocol for every shape of answer; only the number of writes differs.

The transport records what the protocol writes (the socket below it is not what is tested here; the live
server tests run every answer through a real one)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from interlock.server.http import OneWriteHttp

JSON_HEAD = [(b"content-type", b"application/json"), (b"content-length", b"11")]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers shaped by the path: the hot route's JSON, a fixed length sent in two parts, a stream, no body,
    and an app that fails after starting its answer."""
    shape = scope["path"].strip("/")
    await receive()
    if shape == "json":
        await send({"type": "http.response.start", "status": 200, "headers": JSON_HEAD})
        await send({"type": "http.response.body", "body": b'{"ok":true}'})
    elif shape == "parts":
        await send({"type": "http.response.start", "status": 200, "headers": JSON_HEAD})
        await send({"type": "http.response.body", "body": b'{"ok"', "more_body": True})
        await send({"type": "http.response.body", "body": b":true}"})
    elif shape == "stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif shape == "empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    elif shape == "fails":
        await send({"type": "http.response.start", "status": 200, "headers": JSON_HEAD})
        raise RuntimeError("the app broke after starting its answer")


class Recorder(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def served(protocol_class: type[HttpToolsProtocol], method: str, path: str) -> Recorder:
    config = Config(app=app, http=protocol_class, server_header=False, date_header=False, log_level="critical")
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = Recorder()
    protocol.connection_made(transport)
    protocol.data_received(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    for _ in range(50):  # the request's task runs on this loop
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    return transport


@pytest.mark.parametrize(("method", "path", "writes", "uvicorn_writes"), [
    ("POST", "/json", 1, 2),  # the hot route's answer: head and body in one write
    ("POST", "/parts", 2, 3),  # head with the first part, then the rest
    ("GET", "/stream", 3, 3),  # streamed (chunked): the head goes at once, as uvicorn sends it
    ("GET", "/empty", 2, 2),  # no body to wait for: the head at once (then uvicorn's empty write)
    ("HEAD", "/json", 1, 1),  # a HEAD answer has no body: the head goes at once
])
def test_one_write_per_answer_same_bytes(method: str, path: str, writes: int, uvicorn_writes: int) -> None:
    ours = asyncio.run(served(OneWriteHttp, method, path))
    uvicorns = asyncio.run(served(HttpToolsProtocol, method, path))
    assert (len(ours.writes), len(uvicorns.writes)) == (writes, uvicorn_writes)
    assert b"".join(ours.writes) == b"".join(uvicorns.writes)
    assert b"".join(ours.writes).startswith(b"HTTP/1.1 ")
    assert ours.closed == uvicorns.closed


def test_an_answer_started_and_never_finished_is_cut_off() -> None:
    """uvicorn closes the connection after sending the head; here the held head is never sent: the client
    gets no answer either way, and no partial one."""
    ours = asyncio.run(served(OneWriteHttp, "POST", "/fails"))
    uvicorns = asyncio.run(served(HttpToolsProtocol, "POST", "/fails"))
    assert (ours.writes, ours.closed) == ([], True)
    assert (len(uvicorns.writes), uvicorns.closed) == (1, True)
