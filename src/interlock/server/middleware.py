"""Pure ASGI middleware: the body limit (and slow clients) and observation (metrics + one log line).

Pure ASGI rather than Starlette's BaseHTTPMiddleware: that costs a task and a stream per request,
which showed in the throughput of `POST /v1/actions`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interlock.identity import Principal
from interlock.server.deps import bearer_secret, principal_of
from interlock.server.errors import ApiError, error_body
from interlock.server.logs import log_request
from interlock.server.responses import JSON
from interlock.server.state import Server

#: A client that takes longer than this to send its body is cut off (slow-loris).
BODY_DEADLINE_SECONDS = 10.0
#: Deeper JSON is refused at parse time (`payload_too_deep`): hundreds of levels would exhaust the
#: recursion of validation, fingerprinting and classification further in (a 500, unaudited).
MAX_JSON_DEPTH = 64


def body_problem(body: bytes) -> tuple[int, str, str] | None:
    """What is wrong with a request body before any model sees it: not UTF-8, nested too deep, or (when
    it is deep enough to need parsing here) not JSON. None: let the route validate it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return 400, "malformed_json", f"body is not valid JSON: invalid UTF-8 at byte {exc.start}; send UTF-8"
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return None  # cannot nest deeper than its brackets: the common case costs two byte counts
    try:
        value = json.loads(text)
    except RecursionError:
        return 400, "payload_too_deep", f"body nests deeper than {MAX_JSON_DEPTH} levels: flatten the payload"
    except ValueError as exc:
        return 400, "malformed_json", f"body is not valid JSON: {exc}"
    if json_depth(value) > MAX_JSON_DEPTH:
        return 400, "payload_too_deep", f"body nests deeper than {MAX_JSON_DEPTH} levels: flatten the payload"
    return None


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in item if isinstance(child, dict | list))
    return deepest


class BodyLimit:
    """Refuses oversized, non-JSON and slowly sent bodies before FastAPI reads anything."""

    def __init__(self, app: ASGIApp, max_bytes: int, deadline: float = BODY_DEADLINE_SECONDS) -> None:
        self.app, self.max_bytes, self.deadline = app, max_bytes, deadline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        who: Principal | None = None
        if scope["path"].startswith("/v1/"):
            # Authenticate before judging the body: a stranger's bad body is a 401, and a bad body sent
            # with a valid token is audited with its principal.
            who = await _authenticate(scope, send, headers)
            if who is None:
                return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await reject(scope, send, 413, "body_too_large", f"request body over {self.max_bytes} bytes", who=who)
            return
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        has_body = (length is not None and length != b"0") or b"transfer-encoding" in headers
        # The console's forms (server/ui) post urlencoded bodies; everything else speaks JSON.
        form = ctype == b"application/x-www-form-urlencoded" and scope["path"].startswith("/ui/")
        if ctype != b"application/json" and has_body and not form:
            await reject(scope, send, 415, "unsupported_media_type",
                         "send the body as JSON with Content-Type: application/json", who=who)
            return
        # Read the whole (bounded) body here, against a deadline, and replay it to the app: FastAPI turns any
        # error raised while it reads a body into a generic 400, which would hide the real reason.
        # One timer for the whole body (not one `wait_for` task and timer per message): the same deadline.
        chunks: list[bytes] = []
        seen = 0
        more = True
        try:
            async with asyncio.timeout(self.deadline):
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    seen += len(chunk)
                    if seen > self.max_bytes:
                        break
                    chunks.append(chunk)
                    more = message.get("more_body", False)
        except TimeoutError:
            await reject(scope, send, 408, "request_timeout", f"body not received within {self.deadline:g} s")
            return
        if seen > self.max_bytes:
            await reject(scope, send, 413, "body_too_large", f"request body over {self.max_bytes} bytes")
            return
        body = b"".join(chunks)
        if who is not None:
            problem = body_problem(body)
            if problem is not None:
                await reject(scope, send, *problem, who=who)
                return
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
            self.server.observe_request(name, status, elapsed)
            who = scope.get("state", {}).get("principal")
            log_request(scope["method"], scope["path"], status, elapsed,
                        f"{who.kind}:{who.name}" if who else None)


async def _authenticate(scope: Scope, send: Send, headers: dict[bytes, bytes]) -> Principal | None:
    """The request's principal (kept in the scope's state for the route and its audit), or None once
    the request was refused (401, or 503 deny when the store cannot say)."""
    server = _server_of(scope)
    if server is None:
        return None
    secret = bearer_secret(headers.get(b"authorization", b"").decode("latin-1"))
    if secret is None:
        await reject(scope, send, 401, "unauthenticated", "send your Interlock token as `Authorization: Bearer ilk_…`")
        return None
    try:
        who = server.tokens.get(secret) or await principal_of(server, secret)
    except ApiError as exc:
        await reject(scope, send, exc.status, exc.code, str(exc))
        return None
    scope.setdefault("state", {})["principal"] = who
    return who


def _server_of(scope: Scope) -> Server | None:
    server: Server | None = getattr(getattr(scope.get("app"), "state", None), "server", None)
    return server


async def reject(scope: Scope, send: Send, status: int, code: str, message: str, *,
                 who: Principal | None = None) -> None:
    """Answer a request refused before routing; audited before the answer leaves (nothing unrecorded)."""
    server = _server_of(scope)
    if server is not None:
        await server.audit_rejection(scope.get("method", ""), scope.get("path", ""), status, code, who)
    response = JSON(error_body(code, message, status=status), status_code=status)
    await response(scope, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
