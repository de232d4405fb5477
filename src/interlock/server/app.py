"""`interlock serve`: the HTTP API of DESIGN.md §5 over the one Gateway.

Agents and humans hold different bearer tokens and reach different endpoints; the identity in
every decision and vote comes from the token, never from a request body. Every rejected request
(4xx) is audited. If the store or audit log fails, proposals are denied with 503 (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interlock.gate.requests import api_json
from interlock.gate.service import GateError
from interlock.gateway import TERMINAL, GatewayError, GatewayUnavailable, Mode, Proposal, State
from interlock.identity import AuthError, Principal, authenticate, secret_hash
from interlock.model import Action, Kind, Rationale, Strict
from interlock.policy import Policy, load_policy, run_tests
from interlock.policy.lint import lint_file
from interlock.runtime import Runtime
from interlock.server.logs import configure_logging, log_event, log_request
from interlock.store import StoreError

#: Bodies larger than this are refused before they are read (a payload limit applies after parsing).
DEFAULT_MAX_BODY = 2 * 1024 * 1024
#: A client that takes longer than this to send its body is cut off (slow-loris).
BODY_DEADLINE_SECONDS = 10.0
MAX_WAIT_SECONDS = 300.0
EXPIRY_SWEEP_SECONDS = 5.0


class ServerError(Exception):
    """The server cannot start: the message says why and what to do."""


@dataclass
class Settings:
    policy: Path
    db: str = "sqlite:///.interlock/interlock.db"
    key_dir: Path = Path(".interlock/keys")
    max_body_bytes: int = DEFAULT_MAX_BODY
    public_url: str = "http://127.0.0.1:8700"

    @staticmethod
    def from_env() -> Settings:
        return Settings(policy=Path(os.environ["INTERLOCK_POLICY"]),
                        db=os.environ.get("INTERLOCK_DB", "sqlite:///.interlock/interlock.db"),
                        key_dir=Path(os.environ.get("INTERLOCK_KEY_DIR", ".interlock/keys")))


def check_policy_for_serving(path: Path) -> Policy:
    """The server refuses a policy that fails lint or its own tests (issue: fail closed at start)."""
    errors = [p for p in lint_file(path) if p.severity == "error"]
    if errors:
        raise ServerError("policy refused:\n" + "\n".join(str(p) for p in errors))
    policy = load_policy(path)
    failed = [r for r in run_tests(policy) if not r.passed]
    if failed:
        raise ServerError("policy tests fail:\n" + "\n".join(str(r.location(policy)) for r in failed))
    return policy


# --- request bodies (strict: unknown fields are 422 with the field named) --------------------------


class ActionRequest(Strict):
    kind: Kind
    environment: str
    target: str | None = None
    payload: dict[str, Any]
    rationale: Rationale | None = None
    mode: Mode = Mode.brokered


class ApproveRequest(Strict):
    comment: str = Field(default="", max_length=2000)


class DenyRequest(Strict):
    reason: str = Field(min_length=1, max_length=2000)


class OutcomeRequest(Strict):
    status: str = Field(pattern="^(succeeded|failed|error|timeout)$")
    exit_code: int | None = None
    duration_ms: float | None = None
    output_excerpt: str = Field(default="", max_length=4096)


class JSON(Response):
    """orjson-rendered JSON (FastAPI's ORJSONResponse is deprecated; this is the same ten lines)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


ORJSONResponse = JSON

# --- errors ------------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.field = status, code, field


_GATE_STATUS = {"unknown_request": 404, "not_eligible": 403, "agent_token": 403, "reason_required": 422}


def _error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **({"field": field} if field else {})}}


# --- the body limit and slow clients (pure ASGI: runs before FastAPI reads anything) ----------------


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _reject(scope, send, 413, "body_too_large", f"request body over {self.max_bytes} bytes")
            return
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        has_body = (length is not None and length != b"0") or b"transfer-encoding" in headers
        if ctype != b"application/json" and has_body:
            await _reject(scope, send, 415, "unsupported_media_type",
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
                await _reject(scope, send, 408, "request_timeout",
                              f"body not received within {BODY_DEADLINE_SECONDS:g} s")
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await _reject(scope, send, 413, "body_too_large", f"request body over {self.max_bytes} bytes")
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
    """Metrics and one JSON log line per request. Pure ASGI: Starlette's BaseHTTPMiddleware costs a
    task and a stream per request, which showed in the throughput of `POST /v1/actions`."""

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


async def _reject(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    """Answer a request refused before routing; audited before the answer leaves (nothing unrecorded)."""
    server: Server | None = getattr(getattr(scope.get("app"), "state", None), "server", None)
    if server is not None:
        await server.audit_rejection(scope.get("method", ""), scope.get("path", ""), status, code, None)
    response = JSON(_error_body(code, message), status_code=status)
    await response(scope, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


# --- the server ------------------------------------------------------------------------------------


class TokenCache:
    """Successful token lookups, kept for `ttl` seconds, keyed by the secret's hash.

    A token read is one more store transaction on every request, and it halved the proposals a worker
    could take (the reads contend with the audit writer for the GIL and the database). The price: a
    revocation or expiry made while the server runs takes effect within `ttl` (1 s), not at once.
    Failures are never cached: a refused token is refused again, from the store, every time.
    """

    def __init__(self, ttl: float = 1.0, size: int = 10_000) -> None:
        self.ttl, self.size = ttl, size
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, secret: str) -> Principal | None:
        entry = self._entries.get(secret_hash(secret))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, secret: str, principal: Principal) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()  # crude bound; a busy server simply re-reads
        self._entries[secret_hash(secret)] = (time.monotonic() + self.ttl, principal)


class Server:
    """Everything one process serves with: store, policy, audit log, gate, gateway, metrics."""

    def __init__(self, settings: Settings, policy: Policy | None = None) -> None:
        self.settings = settings
        self.runtime = Runtime(policy or check_policy_for_serving(settings.policy), settings.db, settings.key_dir,
                               public_url=settings.public_url)
        self.policy, self.store, self.audit = self.runtime.policy, self.runtime.store, self.runtime.audit
        self.gate, self.gateway = self.runtime.gate, self.runtime.gateway
        self.changed = asyncio.Event()
        self.tokens = TokenCache()
        self.registry = CollectorRegistry()
        self.requests = Counter("interlock_http_requests", "HTTP requests", ["route", "status"],
                                registry=self.registry)
        self.decisions = Counter("interlock_decisions", "Decisions", ["decision", "kind"], registry=self.registry)
        self.latency = Histogram("interlock_http_request_seconds", "Request latency", ["route"],
                                 registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30, 300))
        self.audit.append("policy.loaded", {"file": str(settings.policy), "policy_hash": self.policy.version,
                                            "rules": len(self.policy.doc.rules)})

    def close(self) -> None:
        self.runtime.close()

    async def audit_rejection(self, method: str, path: str, status: int, code: str, who: Principal | None) -> None:
        data = {"method": method, "path": path[:200], "status": status, "code": code,
                "principal": f"{who.kind}:{who.name}" if who else None}
        if who is not None and who.kind == "agent":
            data["agent"] = who.name
        try:
            await anyio.to_thread.run_sync(self.audit.append, "request.rejected", data)
        except Exception as exc:
            log_event("audit_failed", audit_event="request.rejected", error=type(exc).__name__)

    def ready(self) -> tuple[bool, str]:
        try:
            with self.store.transaction(readonly=True) as tx:
                tx.fetchone("SELECT 1 AS ok")
        except StoreError as exc:
            return False, f"store unavailable: {exc}"
        return True, "ready"


def create_app(settings: Settings, policy: Policy | None = None) -> FastAPI:
    configure_logging()
    server = Server(settings, policy)
    app = FastAPI(title="Interlock", version="0.1.0", default_response_class=ORJSONResponse,
                  description="A safety gateway between AI agents and production systems.")
    app.state.server = server

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        await server.audit_rejection(request.method, request.url.path, exc.status, exc.code,
                                     getattr(request.state, "principal", None))
        return ORJSONResponse(_error_body(exc.code, str(exc), exc.field), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
        where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
        if first.get("type") == "json_invalid":
            status, code, message = 400, "malformed_json", f"body is not valid JSON: {first.get('msg')}"
        elif first.get("type") == "extra_forbidden":
            status, code, message = 422, "unknown_field", f"unknown field {where!r}: remove it"
        else:
            status, code, message = 422, "invalid_field", f"{where}: {first['msg']}"
        await server.audit_rejection(request.method, request.url.path, status, code,
                                     getattr(request.state, "principal", None))
        return ORJSONResponse(_error_body(code, message, where), status_code=status)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Observe, server=server)  # outermost: sees every answer, including the body limit's

    def bearer(request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise ApiError(401, "unauthenticated", "send your Interlock token as `Authorization: Bearer ilk_…`")
        return secret.strip()

    def identify(request: Request, secret: str) -> Principal:
        """The token's principal (runs in a worker thread: it may read the store)."""
        cached = server.tokens.get(secret)
        if cached is not None:
            request.state.principal = cached
            return cached
        try:
            found = authenticate(server.store, secret)
            server.tokens.put(secret, found)
        except AuthError as exc:
            raise ApiError(401, f"token_{exc.reason}", str(exc)) from exc
        except StoreError as exc:
            raise ApiError(503, "store_unavailable", "cannot check the token: the store is unavailable") from exc
        request.state.principal = found
        return found

    async def principal(request: Request) -> Principal:
        secret = bearer(request)
        return await anyio.to_thread.run_sync(identify, request, secret)

    async def agent(who: Principal = Depends(principal)) -> Principal:
        if who.kind != "agent":
            raise ApiError(403, "human_token", "this endpoint is for agents: propose with the agent's own token")
        return who

    async def human(who: Principal = Depends(principal)) -> Principal:
        if who.kind != "human":
            raise ApiError(403, "agent_token", f"agent {who.name} is refused here: only humans review approvals")
        return who

    def gateway_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    async def guarded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await gateway_call(fn, *args, **kwargs)
        except GatewayError as exc:
            status = 404 if exc.code == "unknown_action" else 413 if exc.code == "payload_too_large" else 422
            raise ApiError(status, exc.code, str(exc), exc.field) from exc
        except (GatewayUnavailable, StoreError) as exc:
            raise ApiError(503, "unavailable", f"denied: {exc} (fail closed: nothing ran)") from exc

    # --- agents ---------------------------------------------------------------------------------

    @app.post("/v1/actions", tags=["agents"])
    async def propose(body: ActionRequest, request: Request) -> Response:
        """Propose an action (agent token). The decision, and the result when Interlock ran it."""
        secret = bearer(request)
        action = Action(kind=body.kind, environment=body.environment, target=body.target, payload=body.payload,
                        rationale=body.rationale)

        def decide_and_run() -> Proposal:
            # One worker-thread hop for the token check and the proposal: this is the hot path.
            who = identify(request, secret)
            if who.kind != "agent":
                raise ApiError(403, "human_token", "this endpoint is for agents: propose with the agent's own token")
            return server.gateway.propose(who.name, action, mode=body.mode)

        try:
            proposal = await anyio.to_thread.run_sync(decide_and_run)
        except GatewayError as exc:
            raise ApiError(413 if exc.code == "payload_too_large" else 422, exc.code, str(exc), exc.field) from exc
        except (GatewayUnavailable, StoreError) as exc:
            server.decisions.labels("deny", body.kind.value).inc()
            return ORJSONResponse({"decision": "deny", "state": "denied",
                                   "reasons": [f"{exc} (fail closed: nothing ran)"]}, status_code=503)
        server.decisions.labels(proposal.decision.outcome.value, body.kind.value).inc()
        return ORJSONResponse(proposal.to_json())

    @app.get("/v1/actions/{action_id}", tags=["agents"])
    async def get_action(action_id: str, who: Principal = Depends(principal)) -> Response:
        proposal = await guarded(server.gateway.status, action_id, agent=who.name if who.kind == "agent" else None)
        return ORJSONResponse(proposal.to_json())

    @app.post("/v1/actions/{action_id}/wait", tags=["agents"])
    async def wait(action_id: str, timeout: float = Query(30.0, ge=0, le=MAX_WAIT_SECONDS),
                   who: Principal = Depends(agent)) -> Response:
        """Long poll: returns when the action is decided, executed, denied or expired, or at `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            proposal = await guarded(server.gateway.advance, action_id, who.name)
            if proposal.state in TERMINAL or (proposal.state is State.executing and proposal.result is not None):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            server.changed.clear()
            # Woken at once by an approval on this process; polls for other replicas.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.changed.wait(), timeout=min(0.1, remaining))
        return ORJSONResponse(proposal.to_json())

    @app.post("/v1/actions/{action_id}/outcome", tags=["agents"])
    async def outcome(action_id: str, body: OutcomeRequest, who: Principal = Depends(agent)) -> Response:
        proposal = await guarded(server.gateway.report, action_id, who.name, body.model_dump())
        return ORJSONResponse(proposal.to_json())

    # --- humans ---------------------------------------------------------------------------------

    async def gate_call(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await gateway_call(fn, *args)
        except GateError as exc:
            raise ApiError(_GATE_STATUS.get(exc.code, 409), exc.code, str(exc)) from exc
        except StoreError as exc:
            raise ApiError(503, "unavailable", f"the store is unavailable: {exc}") from exc

    @app.get("/v1/approvals", tags=["humans"])
    async def list_approvals(
        state: str = Query("pending", pattern="^(pending|approved|denied|expired|invalidated|consumed|all)$"),
        who: Principal = Depends(human),
    ) -> Response:
        from interlock.gate.requests import RequestState

        requests = await gate_call(server.gate.list_requests, None if state == "all" else RequestState(state))
        statuses = [await gate_call(server.gate.status, r.id) for r in requests[:500]]
        return ORJSONResponse({"approvals": [api_json(s) for s in statuses]})

    @app.get("/v1/approvals/{request_id}", tags=["humans"])
    async def show_approval(request_id: str, who: Principal = Depends(human)) -> Response:
        return ORJSONResponse(api_json(await gate_call(server.gate.status, request_id)))

    @app.post("/v1/approvals/{request_id}/approve", tags=["humans"])
    async def approve(request_id: str, body: ApproveRequest | None = None,
                      who: Principal = Depends(human)) -> Response:
        status = await gate_call(server.gate.approve, request_id, who)
        server.changed.set()
        return ORJSONResponse(api_json(status))

    @app.post("/v1/approvals/{request_id}/deny", tags=["humans"])
    async def deny(request_id: str, body: DenyRequest, who: Principal = Depends(human)) -> Response:
        status = await gate_call(server.gate.deny, request_id, who, body.reason)
        server.changed.set()
        return ORJSONResponse(api_json(status))

    # --- audit ------------------------------------------------------------------------------

    @app.get("/v1/audit/entries", tags=["audit"])
    async def audit_entries(start: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000),
                            action_id: str | None = None, who: Principal = Depends(human)) -> Response:
        import json as _json

        def read() -> list[dict[str, Any]]:
            with server.store.transaction(readonly=True) as tx:
                if action_id:
                    rows = tx.fetchall("SELECT idx, entry, leaf_hash FROM audit_entries WHERE action_id = ? "
                                       "ORDER BY idx LIMIT ?", (action_id, limit))
                else:
                    rows = tx.fetchall("SELECT idx, entry, leaf_hash FROM audit_entries WHERE idx >= ? "
                                       "ORDER BY idx LIMIT ?", (start, limit))
            return [{"index": r["idx"], "leaf_hash": r["leaf_hash"], **_json.loads(r["entry"])} for r in rows]

        return ORJSONResponse({"entries": await anyio.to_thread.run_sync(read)})

    @app.get("/v1/audit/checkpoint", tags=["audit"])
    async def audit_checkpoint(who: Principal = Depends(human)) -> Response:
        checkpoint = await anyio.to_thread.run_sync(server.audit.checkpoint)
        return ORJSONResponse({**checkpoint.fields, **checkpoint.to_json()})

    @app.get("/v1/audit/proof/{index}", tags=["audit"])
    async def audit_proof(index: int, tree_size: int | None = None, who: Principal = Depends(human)) -> Response:
        try:
            proof = await anyio.to_thread.run_sync(lambda: server.audit.inclusion_proof(index, tree_size))
        except (ValueError, IndexError) as exc:
            raise ApiError(404, "no_such_entry", str(exc)) from exc
        return ORJSONResponse(proof.to_json())

    # --- operations ---------------------------------------------------------------------------

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> Response:
        return ORJSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> Response:
        ok, why = await anyio.to_thread.run_sync(server.ready)
        return ORJSONResponse({"status": "ready" if ok else "not ready", "detail": why,
                               "policy_version": server.policy.version}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"])
    async def metrics() -> Response:
        return PlainTextResponse(generate_latest(server.registry).decode(), media_type=CONTENT_TYPE_LATEST)

    async def expire_requests() -> None:
        """Close requests nobody decided in time (denied: fail closed), audited, even if nobody looks."""
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_SECONDS)
            try:
                if await anyio.to_thread.run_sync(server.gate.expire_due):
                    server.changed.set()
            except Exception as exc:
                log_event("expiry_sweep_failed", error=type(exc).__name__)

    sweeper: list[asyncio.Task[None]] = []

    @app.on_event("startup")
    async def startup() -> None:
        sweeper.append(asyncio.create_task(expire_requests()))

    @app.on_event("shutdown")
    async def shutdown() -> None:
        for task in sweeper:
            task.cancel()
        server.close()

    return app


def create_app_from_env() -> FastAPI:
    """For `uvicorn --factory` with several workers: settings come from INTERLOCK_* variables."""
    return create_app(Settings.from_env())


logging.getLogger("uvicorn.access").disabled = True
