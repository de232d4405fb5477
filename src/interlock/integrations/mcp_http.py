"""The remote MCP proxy's HTTP/1.1 to `interlock serve` over plain `http://`: kept-alive connections,
one request at a time on each, written and read by the event loop itself.

httpx (the SDK's `AsyncClient`) spent ~0.9 ms of CPU per request here against ~0.02 ms for the same
bytes on a bare connection (its pool, httpcore's anyio streams with a cancel scope per read and write,
h11), and the remote proxy makes two requests per tool call (issue 18.6). The request is the one the SDK
builds (`Call`), its body the JSON httpx would write (`json.dumps(..., allow_nan=False)`: a NaN is refused,
never sent as something else); the answer becomes an `httpx.Response`, so the SDK's own checks and errors
apply (`client._raise_for`). Anything this transport does not expect in an answer (no length, a
transfer encoding, a status line it cannot read) fails the request: the caller fails closed. `https://`
keeps httpx (its certificates, its TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from urllib.parse import SplitResult, urlencode

import httpx

from interlock.client import Call

#: Largest answer head (status line and headers) read; a longer one fails the request.
MAX_HEAD = 64 * 1024


class PlainHttp:
    """Requests to one `http://host:port/prefix`, each on an idle kept-alive connection or a new one."""

    def __init__(self, url: SplitResult, token: str) -> None:
        self.host = url.hostname or "localhost"
        self.port = url.port or 80
        self.prefix = url.path.rstrip("/")
        host = url.netloc.rpartition("@")[2]
        self.head = (f"Host: {host}\r\nAuthorization: Bearer {token}\r\nUser-Agent: interlock-sdk\r\n"
                     "Accept: application/json\r\n").encode("latin-1")
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def send(self, call: Call, timeout: float) -> httpx.Response:
        """The answer to `call`; httpx's errors (`httpx.TransportError`) when there is none."""
        target = self.prefix + call.path + (f"?{urlencode(call.params)}" if call.params else "")
        if not target.isprintable() or " " in target or not target.isascii():
            # A path is the SDK's, with ids from the server's answers: never let one carry a header.
            raise httpx.UnsupportedProtocol(f"not a request target: {target[:100]!r}")
        body = b"" if call.body is None else json.dumps(
            call.body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
        request = (f"{call.method} {target} HTTP/1.1\r\n".encode("latin-1") + self.head +
                   (b"Content-Type: application/json\r\n" if call.body is not None else b"") +
                   f"Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body)
        connection = self._idle()
        try:
            async with asyncio.timeout(call.timeout or timeout):
                if connection is None:
                    connection = await asyncio.open_connection(self.host, self.port)
                reader, writer = connection
                writer.write(request)
                status, headers, answer, keep = await _answer(reader)
        except TimeoutError as exc:
            _close(connection)
            raise httpx.ReadTimeout(f"no answer within {call.timeout or timeout:g}s") from exc
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            _close(connection)
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            _close(connection)  # cancelled mid-request: the connection's state is unknown
            raise
        if keep:
            self.idle.append(connection)
        else:
            _close(connection)
        return httpx.Response(status, headers=headers, content=answer,
                              request=httpx.Request(call.method, f"http://{self.host}:{self.port}{target}"))

    def _idle(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A kept-alive connection the server has not closed meanwhile (its idle timeout), or None."""
        while self.idle:
            reader, writer = self.idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            _close((reader, writer))
        return None

    async def aclose(self) -> None:
        while self.idle:
            _close(self.idle.pop())


async def _answer(reader: asyncio.StreamReader) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
    """Status, headers, body and whether the connection may be used again, of one HTTP/1.1 answer with
    a Content-Length (as uvicorn writes every answer of the API); ValueError for anything else."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEAD:
        raise ValueError("answer head too long")
    lines = head[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise ValueError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
    status = int(rest[:3])
    headers: list[tuple[bytes, bytes]] = []
    length: int | None = None
    keep = version == b"HTTP/1.1"
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise ValueError(f"malformed header line {line[:80]!r}")
        name, value = name.strip().lower(), value.strip()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            raise ValueError("a transfer-encoded answer")
        elif name == b"connection":
            keep = value.lower() == b"keep-alive" or (keep and value.lower() != b"close")
        headers.append((name, value))
    if length is None or length < 0:
        raise ValueError("an answer without a Content-Length")
    return status, headers, await reader.readexactly(length), keep


def _close(connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if connection is not None:
        with contextlib.suppress(Exception):
            connection[1].close()


def plain_http(url: str, token: str) -> PlainHttp | None:
    """The transport for `url` when it is plain `http://` (else None: httpx keeps https)."""
    from urllib.parse import urlsplit

    parsed = urlsplit(url)
    if parsed.scheme != "http" or not parsed.hostname or parsed.username or parsed.query:
        return None
    return PlainHttp(parsed, token)
