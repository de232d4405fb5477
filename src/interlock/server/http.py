"""uvicorn's httptools protocol with each response written in one piece.

uvicorn writes a response's status line and headers as soon as the app sends `http.response.start`,
then its body as a second write: two system calls (and two TCP segments) per answer. On the server's
event loop those writes were the largest single cost per proposal (py-spy of the live server,
docs/benchmarks.md). Here the head of a response whose length is known (Content-Length, a body still to
come, not HEAD) is held and written with the body's first bytes: same bytes on the wire, one write.
A streamed answer (chunked: the console's event stream) and everything else is written as before.

`OneWriteCycle.send` is uvicorn 0.54's `RequestResponseCycle.send` with that one change (before, a wrapper
around the transport held the head: ~4 µs of Python per answer more than uvicorn's own protocol, in
`bench`-free measurement, for one write less) and header names checked once each (a handful of names,
the same on every answer); header values are checked on every answer, as uvicorn does.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

#: Header names that passed uvicorn's check (bounded: the names an app sends are a small, fixed set).
_NAMES_OK: set[bytes] = set()


class OneWriteCycle(RequestResponseCycle):
    """One request and its answer; `send` writes a known-length answer's head with its body's first bytes."""

    _held: bytes | None = None

    async def send(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()  # pragma: full coverage

        if self.disconnected:
            return  # pragma: full coverage

        if not self.response_started:
            # Sending response status line and headers
            if message["type"] != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{message['type']}'.")

            self.response_started = True
            self.waiting_for_100_continue = False

            status_code = message["status"]
            headers = self.default_headers + list(message.get("headers", []))

            if self.access_log:
                self.access_logger.info('%s - "%s %s HTTP/%s" %d', get_client_addr(self.scope), self.scope["method"],
                                        get_path_with_query_string(self.scope), self.scope["http_version"],
                                        status_code)

            # Write response status line and headers
            content = [STATUS_LINE[status_code]]
            has_connection_close = False

            for name, value in headers:
                if name not in _NAMES_OK:
                    if HEADER_RE.search(name):
                        raise RuntimeError("Invalid HTTP header name.")  # pragma: full coverage
                    if len(_NAMES_OK) < 256:
                        _NAMES_OK.add(name)
                if HEADER_VALUE_RE.search(value):
                    raise RuntimeError("Invalid HTTP header value.")

                name = name.lower()
                if name == b"content-length" and self.chunked_encoding is None:
                    self.expected_content_length = int(value.decode())
                    self.chunked_encoding = False
                elif name == b"transfer-encoding" and value.lower() == b"chunked":
                    self.expected_content_length = 0
                    self.chunked_encoding = True
                elif name == b"connection":
                    connection = [token.lower().strip() for token in value.split(b",")]
                    if b"close" in connection:
                        self.keep_alive = False
                        has_connection_close = True
                content.extend([name, b": ", value, b"\r\n"])

            if not self.keep_alive and not has_connection_close:
                content.append(b"connection: close\r\n")

            if self.chunked_encoding is None and self.scope["method"] != "HEAD" and status_code not in (204, 304):
                # Neither content-length nor transfer-encoding specified
                self.chunked_encoding = True
                content.append(b"transfer-encoding: chunked\r\n")

            content.append(b"\r\n")
            if self.chunked_encoding is False and self.expected_content_length > 0 and self.scope["method"] != "HEAD":
                self._held = b"".join(content)  # the body follows: written with its first bytes
            else:
                self.transport.write(b"".join(content))

        elif not self.response_complete:
            # Sending response body
            if message["type"] != "http.response.body":
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{message['type']}'.")

            body = message.get("body", b"")
            more_body = message.get("more_body", False)

            # Write response body
            if self.scope["method"] == "HEAD":
                self.expected_content_length = 0
            elif self.chunked_encoding:
                content = [b"%x\r\n" % len(body), body, b"\r\n"] if body else []
                if not more_body:
                    content.append(b"0\r\n\r\n")
                self.transport.write(b"".join(content))
            else:
                num_bytes = len(body)
                if num_bytes > self.expected_content_length:
                    raise RuntimeError("Response content longer than Content-Length")
                self.expected_content_length -= num_bytes
                held = self._held
                if held is not None:
                    # A response that never completes is cut off by uvicorn (run_asgi closes the transport);
                    # a head still held goes unsent then, which tells the client the same thing.
                    self._held = None
                    self.transport.write(held + body)
                else:
                    self.transport.write(body)

            # Handle response completion
            if not more_body:
                if self.expected_content_length != 0:
                    raise RuntimeError("Response content shorter than Content-Length")
                self.response_complete = True
                self.message_event.set()
                if not self.keep_alive:
                    self.transport.close()
                self.on_response()

        else:
            # Response already sent
            raise RuntimeError(f"Unexpected ASGI message '{message['type']}' sent, after response already completed.")


class OneWriteHttp(HttpToolsProtocol):
    """`uvicorn.run(..., http=OneWriteHttp)`: HttpToolsProtocol whose responses go out in one write each."""

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # A new cycle's task has been created, not run: its first send is still to come. An upgrade
        # (no new cycle) is left alone.
        if cycle is not None and cycle is not before:
            cycle.__class__ = OneWriteCycle

