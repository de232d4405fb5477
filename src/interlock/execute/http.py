"""http: one request to the target's API, with the target's headers (credentials) added.

Target fields: `url` (the base: every request must stay under it), `headers` (name → credential
reference), `timeout`, `max_output_bytes`. Payload: `{"method", "url", "headers"?, "body"?}`; `url` is
a path under the base (`items/7` or `/items/7`) or an absolute URL under the base. Anything else —
another host, another scheme or port, user info, a path that climbs out of the base — is refused:
the agent must not turn the gateway's credentials against a host the policy did not name (SSRF).
Redirects are followed only while they stay under the base.
"""

from __future__ import annotations

import functools
import posixpath
import ssl
import time
from typing import Any
from urllib.parse import unquote

import certifi
import httpx

from interlock.execute.result import (
    Clock,
    CredentialRedactor,
    ExecutionError,
    ExecutionResult,
    OutputCapture,
    Status,
    make_result,
)
from interlock.model import Action
from interlock.policy.schema import Target

METHODS = {"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"}
#: Headers the agent may never set: routing and framing belong to the gateway.
FORBIDDEN_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"}
MAX_REDIRECTS = 5


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Built once: loading the CA bundle costs more than a local request."""
    return ssl.create_default_context(cafile=certifi.where())


def _under(path: str, base_path: str) -> bool:
    base = base_path.rstrip("/")
    return path == base or path.startswith(base + "/") or base == ""


def resolve_url(base: str, requested: str) -> httpx.URL:
    """The absolute URL for `requested`, or ExecutionError when it would leave `base`."""
    base_url = httpx.URL(base)
    if any(c in requested for c in "\\\r\n\t\x00"):
        raise ExecutionError(f"url {requested[:200]!r} has characters a URL may not hold")
    try:
        candidate = httpx.URL(requested)
    except httpx.InvalidURL as exc:
        raise ExecutionError(f"url {requested[:200]!r} is not a valid URL: {exc}") from None
    if candidate.is_relative_url and not requested.startswith("//"):
        path, _, query = requested.partition("?")
        url = base_url.copy_with(
            path=base_url.path.rstrip("/") + "/" + path.lstrip("/"), query=query.encode() if query else None
        )
    else:
        url = candidate
    if (url.scheme, url.host, url.port) != (base_url.scheme, base_url.host, base_url.port):
        raise ExecutionError(
            f"url {requested[:200]!r} leaves the target's base {base}: only paths under it may be requested"
        )
    if url.userinfo:
        raise ExecutionError(f"url {requested[:200]!r} carries user info; credentials come from the target")
    # Servers decode %2e%2e and collapse dot segments: judge the path as the server will see it.
    raw = url.raw_path.decode("ascii", errors="replace").partition("?")[0]
    decoded = unquote(unquote(raw))
    segments = decoded.split("/")
    if ".." in segments or "." in segments or "\\" in decoded:
        raise ExecutionError(f"url {requested[:200]!r} uses dot segments; write the plain path under the base")
    if not _under(posixpath.normpath(decoded) if decoded else "/", base_url.path):
        raise ExecutionError(f"url {requested[:200]!r} is outside the target's base path {base_url.path!r}")
    return url


def request_headers(action: Action, target: Target, redactor: CredentialRedactor) -> dict[str, str]:
    agent_headers = action.payload.get("headers") or {}
    if not isinstance(agent_headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in agent_headers.items()
    ):
        raise ExecutionError("http payload `headers` must be an object of strings")
    configured = {name.lower() for name in target.headers}
    headers: dict[str, str] = {}
    for name, value in agent_headers.items():
        if name.lower() in FORBIDDEN_HEADERS:
            raise ExecutionError(f"header {name!r} may not be set by the agent")
        if name.lower() in configured:
            raise ExecutionError(f"header {name!r} is set by the target (a credential); the agent may not override it")
        headers[name] = value
    for name, ref in target.headers.items():
        value = redactor.resolve(ref, f"target header {name}")
        # The token part alone (after "Bearer "), in case the server echoes only that.
        token = value.rsplit(" ", 1)[-1]
        redactor.add(token if len(token) >= 8 else None)
        headers[name] = value
    return headers


def body_of(action: Action) -> dict[str, Any]:
    body = action.payload.get("body")
    if body is None:
        return {}
    if isinstance(body, str):
        return {"content": body.encode()}
    if isinstance(body, dict | list):
        return {"json": body}
    raise ExecutionError("http payload `body` must be a string or a JSON object/array")


def run(
    action: Action, target: Target | None, timeout: float, redactor: CredentialRedactor, clock: Clock
) -> ExecutionResult:
    assert target is not None
    if not target.url:
        raise ExecutionError("http target has no `url`: add the base URL the agent may call under")
    method = str(action.payload.get("method", "GET")).upper()
    if method not in METHODS:
        raise ExecutionError(f"http method {method[:20]!r} is not one of {', '.join(sorted(METHODS))}")
    requested = action.payload.get("url")
    if not isinstance(requested, str) or not requested:
        raise ExecutionError('http payload needs `url`, a path under the target\'s base (e.g. "items/7")')
    url = resolve_url(target.url, requested)
    headers = request_headers(action, target, redactor)
    body = body_of(action)
    output = OutputCapture(target.max_output_bytes)
    deadline = time.monotonic() + timeout
    try:
        # trust_env=False: the gateway's proxy settings and .netrc must not apply to a target call.
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, verify=_tls_context()) as client:
            for _ in range(MAX_REDIRECTS + 1):
                request = client.build_request(method, url, headers=headers, **body)
                response = client.send(request, stream=True)
                try:
                    if response.is_redirect and "location" in response.headers:
                        location = response.headers["location"]
                        try:
                            url = resolve_url(target.url, str(url.join(location)))
                        except ExecutionError as exc:
                            return make_result(
                                Status.failed,
                                redactor,
                                clock,
                                output,
                                http_status=response.status_code,
                                error=f"redirect refused: {exc}",
                            )
                        if response.status_code in (301, 302, 303) and method not in ("GET", "HEAD"):
                            method, body = "GET", {}
                        continue
                    for chunk in response.iter_bytes():
                        output.feed(chunk)
                        if time.monotonic() > deadline:
                            return make_result(
                                Status.timeout,
                                redactor,
                                clock,
                                output,
                                http_status=response.status_code,
                                error=f"response still streaming after {timeout:g}s; stopped reading",
                            )
                finally:
                    response.close()
                ok = response.status_code < 400
                return make_result(
                    Status.succeeded if ok else Status.failed,
                    redactor,
                    clock,
                    output,
                    http_status=response.status_code,
                    error=None if ok else f"HTTP {response.status_code} {response.reason_phrase}",
                )
            return make_result(Status.failed, redactor, clock, output, error=f"more than {MAX_REDIRECTS} redirects")
    except httpx.TimeoutException:
        return make_result(Status.timeout, redactor, clock, output, error=f"no answer within {timeout:g}s")
    except httpx.HTTPError as exc:
        return make_result(Status.error, redactor, clock, output, error=f"request to the target failed: {exc}")
