"""The error shape of the API and the handlers that produce it.

Every error is `{"error": {"code", "message", "field"?}}`; every one is audited as `request.rejected`
before the answer leaves. Gateway and gate errors become API errors here, with the status of
`interlock.answers.status_of` (the one error-code → status table).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import anyio
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from interlock.answers import status_of
from interlock.gate.service import GateError
from interlock.gateway import GatewayError, GatewayUnavailable
from interlock.identity import Principal
from interlock.server.responses import JSON
from interlock.server.state import Server
from interlock.store import StoreError


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.field = status, code, field


def error_body(code: str, message: str, field: str | None = None, status: int = 400) -> dict[str, Any]:
    """The error shape; a 503 (store or audit log unreachable) also says `"decision": "deny"`: whatever
    was asked, nothing runs without its record."""
    body: dict[str, Any] = {"error": {"code": code, "message": message, **({"field": field} if field else {})}}
    if status == 503:
        body["decision"] = "deny"
    return body


def gateway_error(exc: GatewayError) -> ApiError:
    return ApiError(status_of(exc.code, 422), exc.code, str(exc), exc.field)


async def call_gateway(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a gateway call in a worker thread; its errors become API errors (store down: 503, nothing ran)."""
    try:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
    except GatewayError as exc:
        raise gateway_error(exc) from exc
    except (GatewayUnavailable, StoreError) as exc:
        raise ApiError(503, "unavailable", f"denied: {exc} (fail closed: nothing ran)") from exc


async def call_gate(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a gate call in a worker thread; its errors become API errors."""
    try:
        return await anyio.to_thread.run_sync(lambda: fn(*args))
    except GateError as exc:
        raise ApiError(status_of(exc.code, 409), exc.code, str(exc)) from exc
    except StoreError as exc:
        raise ApiError(503, "unavailable", f"the store is unavailable: {exc}") from exc


def _server(request: Request) -> Server:
    server: Server = request.app.state.server
    return server


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return await refusal(_server(request), request.method, request.url.path, exc,
                         getattr(request.state, "principal", None))


async def refusal(server: Server, method: str, path: str, exc: ApiError, who: Principal | None) -> Response:
    """An API error's answer, audited as `request.rejected` before it leaves."""
    await server.audit_rejection(method, path, exc.status, exc.code, who)
    return JSON(error_body(exc.code, str(exc), exc.field, exc.status), status_code=exc.status)


def validation_problem(errors: Sequence[Any]) -> tuple[int, str, str, str]:
    """(status, code, message, field) of a request body's validation errors (FastAPI's, or the plain
    hot route's in the same shape: `loc` starts with "body"); the first error is the one reported."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
    if first.get("type") == "json_invalid":
        return 400, "malformed_json", f"body is not valid JSON: {first.get('msg')}", where
    if first.get("type") == "extra_forbidden":
        return 422, "unknown_field", f"unknown field {where!r}: remove it", where
    return 422, "invalid_field", f"{where}: {first['msg']}", where


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    status, code, message, where = validation_problem(exc.errors())
    await _server(request).audit_rejection(request.method, request.url.path, status, code,
                                           getattr(request.state, "principal", None))
    return JSON(error_body(code, message, where), status_code=status)


#: A body `json.loads` fails on other than with a JSONDecodeError (bytes it takes for UTF-16 or UTF-32).
UNREADABLE_BODY = "body is not valid JSON: it could not be decoded; send UTF-8"


#: The methods an `Allow` header may name.
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's 405 names only the first route's). Asked
    of each route by method, through `matches`: included routers answer for all their routes."""
    routes = request.app.router.routes
    return [m for m in METHODS
            if any(r.matches({**request.scope, "method": m})[0] is Match.FULL for r in routes)]


async def http_error(request: Request, exc: Exception) -> Response:
    """Routing's own refusals (no such path, wrong method) in the error shape; under /v1 audited like the
    rest (elsewhere they are browsers' and scanners' guesses: /favicon.ico is no event)."""
    assert isinstance(exc, StarletteHTTPException)
    headers: dict[str, str] = {}
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        headers["allow"] = ", ".join(allowed)
        code, message = "method_not_allowed", f"{request.method} is not served here: use {' or '.join(allowed)}"
    elif exc.status_code == 404:
        code, message = "not_found", f"no endpoint at {request.url.path}: see /docs for the API"
    elif exc.status_code == 400:  # FastAPI's answer to a body json.loads cannot even decode
        code, message = "malformed_json", UNREADABLE_BODY
    else:
        code, message = f"http_{exc.status_code}", str(exc.detail)
    if request.url.path.startswith("/v1/"):
        await _server(request).audit_rejection(request.method, request.url.path, exc.status_code, code,
                                               getattr(request.state, "principal", None))
    return JSON(error_body(code, message), status_code=exc.status_code, headers=headers)


#: For `FastAPI(exception_handlers=...)`.
HANDLERS: dict[Any, Callable[[Request, Exception], Any]] = {
    ApiError: api_error,
    RequestValidationError: validation_error,
    StarletteHTTPException: http_error,
}


class ErrorDetail(BaseModel):
    code: str = Field(description="what went wrong, machine-readable (docs/api.md lists them)")
    message: str = Field(description="what went wrong, where, and what to do")
    field: str | None = Field(default=None, description="the request field at fault, dotted")


class ErrorBody(BaseModel):
    """The error shape, as /openapi.json documents it for every operation."""

    error: ErrorDetail
    decision: str | None = Field(default=None, description='"deny" on a 503: nothing ran without its record')


#: Every error answer an operation can give, documented with the one error shape (`include_router(responses=)`).
#: 422 replaces FastAPI's own `HTTPValidationError`, which this API never answers.
DOCUMENTED: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what} for status, what in [
        (400, "malformed JSON, a body nested too deep"),
        (401, "no token, an unknown or expired token"),
        (403, "a token of the wrong kind, or not eligible"),
        (404, "no such action, approval request, entry, freeze or rollout"),
        (408, "the body was not received in time"),
        (409, "the state forbids it (already voted, expired, already thawed)"),
        (413, "the body or the payload is too large"),
        (415, "the body is not JSON"),
        (422, "a field is missing, unknown or invalid (`field` names it)"),
        (503, "the store or the audit log is unavailable: denied, nothing ran"),
    ]
}
