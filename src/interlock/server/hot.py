"""`POST /v1/actions` ahead of FastAPI: the hot path as one plain ASGI handler (docs/design-deviations.md).

`app.InterlockApp` (the FastAPI app `create_app` builds) hands this one method and path to `HotRoute`
before any layer of its own; every other request goes through FastAPI and its middleware as before. What
those layers did for a proposal, `HotRoute` does in one function, in the same order and with the same
answers, statuses, headers, metrics, log line and audit entries:

- starlette's ServerErrorMiddleware (outermost in FastAPI): an exception with no answer started is
  answered by a bare 500 and goes on up to uvicorn, which logs it;
- middleware.Observe: one count and latency per answer under its route ("unmatched" for the refusals
  made before routing, as BodyLimit's were), the request log line;
- middleware.BodyLimit: the token first (401, 503), then the body's length (413), media type (415),
  deadline (408) and readability (400, `body_problem`); every refusal audited before it leaves;
- the plain route (routes.actions.propose_plain before): validation (byte-identical errors, audited),
  an agent's token (403), the gateway (`routes.actions.answered`), the answer's bytes written once.

FastAPI's ExceptionTelemetryMiddleware and AppBodyLimitMiddleware did nothing here (telemetry off, no body
size in the scope). Measured: docs/benchmarks.md, "Hot path, 2026-11-26 second session".
"""

from __future__ import annotations

import asyncio
from time import monotonic, perf_counter
from typing import Any

import orjson
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message, Receive, Scope, Send

from interlock.identity import Principal
from interlock.server.deps import bearer_secret, principal_of, require_agent
from interlock.server.errors import UNREADABLE_BODY, ApiError, error_body, refusal, validation_problem
from interlock.server.logs import log_request
from interlock.server.middleware import BODY_DEADLINE_SECONDS, body_problem, reject
from interlock.server.routes.actions import PROPOSE, UnreadableBody, answered, parsed_body
from interlock.server.state import Server

METHOD, PATH = "POST", PROPOSE.path
#: The metrics' route label of a request refused before routing (what Observe names it).
UNMATCHED = "unmatched"
JSON_TYPE = (b"content-type", b"application/json")


class _Seen:
    """What the observation of one request needs: the status answered (0: none started yet), the
    route it is counted under, its principal."""

    __slots__ = ("route", "status", "who")
    status: int
    route: str
    who: Principal | None

    def __init__(self) -> None:
        self.status, self.route, self.who = 0, UNMATCHED, None


class HotRoute:
    """`POST /v1/actions`, every layer FastAPI's app gave it in one plain ASGI callable."""

    def __init__(self, server: Server, max_bytes: int, deadline: float = BODY_DEADLINE_SECONDS) -> None:
        self.server, self.max_bytes, self.deadline = server, max_bytes, deadline
        self.deadlines = BodyDeadlines(deadline)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = perf_counter()
        seen = _Seen()
        try:
            await self._serve(scope, receive, send, seen)
        except Exception:
            if not seen.status:  # ServerErrorMiddleware's answer; uvicorn logs the exception
                await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        finally:
            elapsed = perf_counter() - start
            status = seen.status or 500
            self.server.observe_request(seen.route, status, elapsed)
            who = seen.who
            log_request(METHOD, PATH, status, elapsed, f"{who.kind}:{who.name}" if who else None)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, seen: _Seen) -> None:
        server = self.server
        # The headers BodyLimit read from `dict(scope["headers"])`: the last of a repeated name wins there too.
        authorization = length = ctype = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-length":
                length = value
            elif name == b"content-type":
                ctype = value
            elif name == b"transfer-encoding":
                chunked = True
        # Authenticate before judging the body: a stranger's bad body is a 401, and a bad body sent with a
        # valid token is audited with its principal.
        secret = bearer_secret(authorization.decode("latin-1")) if authorization is not None else None
        if secret is None:
            await self._reject(scope, send, seen, 401, "unauthenticated",
                               "send your Interlock token as `Authorization: Bearer ilk_…`")
            return
        who = server.tokens.get(secret)
        if who is None:
            try:
                who = await principal_of(server, secret)
            except ApiError as exc:
                await self._reject(scope, send, seen, exc.status, exc.code, str(exc))
                return
        scope.setdefault("state", {})["principal"] = seen.who = who  # (not every ASGI server gives a state)
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._reject(scope, send, seen, 413, "body_too_large", f"request body over {self.max_bytes} bytes",
                               who)
            return
        media = ctype.split(b";")[0].strip().lower() if ctype is not None else b""
        if media != b"application/json" and ((length is not None and length != b"0") or chunked):
            await self._reject(scope, send, seen, 415, "unsupported_media_type",
                               "send the body as JSON with Content-Type: application/json", who)
            return
        body = await self._body(scope, receive, send, seen)
        if body is None:
            return
        problem = body_problem(body)
        if problem is not None:
            await self._reject(scope, send, seen, *problem, who)
            return
        seen.route = PATH  # routed: from here on counted under the route (BodyLimit's refusals were not)
        try:
            parsed, errors = parsed_body(body)
            if parsed is None:
                status, code, text, where = validation_problem(errors)
                await server.audit_rejection(METHOD, PATH, status, code, who)
                content = orjson.dumps(error_body(code, text, where))  # what JSON renders
            else:
                status, content = await answered(server, require_agent(who), *parsed)
        except UnreadableBody:
            await self._send(scope, send, seen, await refusal(server, METHOD, PATH,
                                                              ApiError(400, "malformed_json", UNREADABLE_BODY), who))
            return
        except ApiError as exc:
            await self._send(scope, send, seen, await refusal(server, METHOD, PATH, exc, who))
            return
        # What JSONResponse sent (same headers, same order), without building one.
        seen.status = status
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(content)).encode()), JSON_TYPE]})
        await send({"type": "http.response.body", "body": content})

    async def _body(self, scope: Scope, receive: Receive, send: Send, seen: _Seen) -> bytes | None:
        """The whole (bounded) body, read against the deadline; None once the request was answered (408,
        413) or the client left."""
        chunks: list[bytes] = []
        seen_bytes = 0
        more = True
        deadlines = self.deadlines.here()
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        deadlines.reading[task] = monotonic() + self.deadline
        if deadlines.sweep is None:
            deadlines.arm()
        try:
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                seen_bytes += len(chunk)
                if seen_bytes > self.max_bytes:
                    break
                chunks.append(chunk)
                more = message.get("more_body", False)
        except asyncio.CancelledError:
            # asyncio.timeout's rule: a timeout only if the deadline cancelled the task, and nothing else did too.
            if task not in deadlines.expired or task.uncancel() > cancelling:
                raise
            await self._reject(scope, send, seen, 408, "request_timeout",
                               f"body not received within {self.deadline:g} s")
            return None
        finally:
            deadlines.reading.pop(task, None)
            deadlines.expired.discard(task)
        if seen_bytes > self.max_bytes:
            await self._reject(scope, send, seen, 413, "body_too_large", f"request body over {self.max_bytes} bytes")
            return None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _reject(self, scope: Scope, send: Send, seen: _Seen, status: int, code: str, message: str,
                      who: Principal | None = None) -> None:
        await reject(scope, self._recording(send, seen), status, code, message, who=who)

    async def _send(self, scope: Scope, send: Send, seen: _Seen, response: Response) -> None:
        await response(scope, _no_body, self._recording(send, seen))

    @staticmethod
    def _recording(send: Send, seen: _Seen) -> Send:
        """`send` noting the status of the answer it starts (rare answers; the proposal's own notes it inline)."""
        async def recorded(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen.status = message["status"]
            await send(message)

        return recorded


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class BodyDeadlines:
    """The body deadline of many requests kept by one sweep, not one timer each.

    `asyncio.timeout` arms and cancels a timer for every request (~5-10 µs with uvloop, more than the rest
    of reading the body); here a request being read is one dict entry, and a sweep every tenth of the
    deadline (at most every second) cancels the readers past it. So a stalled client is cut off between
    the deadline and 1.1 times it (10-11 s), never before. Per event loop: a task is only ever cancelled
    from its own loop's thread."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.every = min(1.0, deadline / 10)
        self._loops: dict[asyncio.AbstractEventLoop, _LoopDeadlines] = {}

    def here(self) -> _LoopDeadlines:
        """This event loop's readers (`reading`: task → when its deadline passes; `expired`: the tasks the
        sweep cancelled); the reader arms the sweep (`arm`) when none is due."""
        loop = asyncio.get_running_loop()
        here = self._loops.get(loop)
        if here is None:
            for old in [old for old in self._loops if old.is_closed()]:
                del self._loops[old]
            here = self._loops[loop] = _LoopDeadlines(loop, self.every)
        return here


class _LoopDeadlines:
    __slots__ = ("every", "expired", "loop", "reading", "sweep")

    def __init__(self, loop: asyncio.AbstractEventLoop, every: float) -> None:
        self.loop, self.every = loop, every
        self.reading: dict[asyncio.Task[Any], float] = {}
        self.expired: set[asyncio.Task[Any]] = set()
        self.sweep: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        self.sweep = self.loop.call_later(self.every, self._sweep)

    def _sweep(self) -> None:
        self.sweep = None
        now = monotonic()
        for task, due in list(self.reading.items()):
            if due <= now:
                del self.reading[task]
                self.expired.add(task)
                task.cancel()
        if self.reading:
            self.arm()
