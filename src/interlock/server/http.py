"""uvicorn's httptools protocol with each response written in one piece.

uvicorn writes a response's status line and headers as soon as the app sends `http.response.start`,
then its body as a second write: two system calls (and two TCP segments) per answer. On the server's
event loop those writes were the largest single cost per proposal (py-spy of the live server,
docs/benchmarks.md). Here the head of a response whose length is known (Content-Length, a body still to
come, not HEAD) is held and written with the body's first bytes: same bytes on the wire, one write.
A streamed answer (chunked: the console's event stream) and everything else is written as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class _HeadWithBody:
    """One request's transport as its RequestResponseCycle sees it (the connection's own is untouched)."""

    __slots__ = ("_cycle", "_first", "_head", "_transport")

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        self._transport, self._cycle = transport, cycle
        self._head: bytes | None = None
        self._first = True  # the first write after the response started is its head

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._head is not None:
            data, self._head = self._head + bytes(data), None
        elif self._first and self._cycle.response_started:
            self._first = False
            cycle = self._cycle
            if (cycle.chunked_encoding is False and cycle.expected_content_length > 0
                    and cycle.scope["method"] != "HEAD"):
                self._head = bytes(data)  # the body follows: uvicorn checks it fills Content-Length
                return
        self._transport.write(data)

    def close(self) -> None:
        # A response that never completed is cut off, as uvicorn does; a head still held goes unsent, which
        # tells the client the same thing (no complete answer) before its connection closes.
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttp(HttpToolsProtocol):
    """`uvicorn.run(..., http=OneWriteHttp)`: HttpToolsProtocol whose responses go out in one write each."""

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # A new cycle's task has been created, not run: its first write is still to come. An upgrade
        # (no new cycle) is left alone.
        if cycle is not None and cycle is not before:
            cycle.transport = _HeadWithBody(self.transport, cycle)  # type: ignore[assignment]
