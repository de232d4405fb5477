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


#: For `FastAPI(exception_handlers=...)`.
HANDLERS: dict[Any, Callable[[Request, Exception], Any]] = {
    ApiError: api_error,
    RequestValidationError: validation_error,
}
