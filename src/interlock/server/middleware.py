"""Pure ASGI middleware: the body limit (and slow clients) and observation (metrics + one log line).

Pure ASGI rather than Starlette's BaseHTTPMiddleware: that costs a task and a stream per request,
which showed in the throughput of `POST /v1/actions`.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interlock.server.errors import error_body
from interlock.server.logs import log_request
from interlock.server.responses import JSON
from interlock.server.state import Server

#: A client that takes longer than this to send its body is cut off (slow-loris).
BODY_DEADLINE_SECONDS = 10.0


class BodyLimit:
    """Refuses oversized, non-JSON and slowly sent bodies before FastAPI reads anything."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await reject(scope, send, 413, "body_too_large", f"request body over {self.max_bytes} bytes")
            return
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        has_body = (length is not None and length != b"0") or b"transfer-encoding" in headers
        if ctype != b"application/json" and has_body:
            await reject(scope, send, 415, "unsupported_media_type",
                         "send the body as JSON with Content-Type: application/json")
            return
        # Read the whole (bounded) body here, against a deadline, and replay it to the app: FastAPI turns any
        # error raised while it reads a body into a generic 400, which would hide the real reason.
        deadline = time.monotonic() + BODY_DEADLINE_SECONDS
        chunks: list[bytes] = []
        seen = 0
        more = True
        while more:
            try:
                message = await asyncio.wait_for(receive(), timeout=max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                await reject(scope, send, 408, "request_timeout",
                             f"body not received within {BODY_DEADLINE_SECONDS:g} s")
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await reject(scope, send, 413, "body_too_large", f"request body over {self.max_bytes} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: disconnect notifications

        await self.app(scope, replay, send)


class Observe:
    """Metrics and one JSON log line per request; outermost, so it sees every answer."""

    def __init__(self, app: ASGIApp, server: Server) -> None:
        self.app, self.server = app, server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            elapsed = time.perf_counter() - start
            name = getattr(scope.get("route"), "path", "unmatched")
            self.server.requests.labels(name, str(status)).inc()
            self.server.latency.labels(name).observe(elapsed)
            who = scope.get("state", {}).get("principal")
            log_request(scope["method"], scope["path"], status, elapsed,
                        f"{who.kind}:{who.name}" if who else None)


async def reject(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    """Answer a request refused before routing; audited before the answer leaves (nothing unrecorded)."""
    server: Server | None = getattr(getattr(scope.get("app"), "state", None), "server", None)
    if server is not None:
        await server.audit_rejection(scope.get("method", ""), scope.get("path", ""), status, code, None)
    response = JSON(error_body(code, message), status_code=status)
    await response(scope, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
