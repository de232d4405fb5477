"""http executor against a real local HTTP server (http.server on 127.0.0.1, in a thread)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from interlock.execute import Status, execute
from interlock.execute.http import resolve_url
from interlock.execute.result import ExecutionError
from interlock.policy.schema import Target
from tests.execute_fixtures import action, assert_no_secret, target

TOKEN = "tok-7f3a9c1e5b2d8f40"
BIG = 3 * 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        path = self.path
        if path.startswith("/api/status/"):
            self._reply(int(path.rsplit("/", 1)[1]), b"status")
        elif path == "/api/redirect-in":
            self._reply(302, b"", {"Location": "/api/echo?via=redirect"})
        elif path == "/api/redirect-out":
            self._reply(302, b"", {"Location": "http://example.com/steal"})
        elif path == "/api/redirect-up":
            self._reply(302, b"", {"Location": "/admin"})
        elif path == "/api/big":
            self._reply(200, b"b" * BIG)
        elif path == "/api/slow":
            time.sleep(5)
            self._reply(200, b"late")
        else:
            seen = {"method": self.command, "path": path, "headers": dict(self.headers.items()), "body": body}
            self._reply(200, json.dumps(seen).encode(), {"Content-Type": "application/json"})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def api(base: str, monkeypatch: pytest.MonkeyPatch) -> Target:
    monkeypatch.setenv("INTERLOCK_TEST_API_TOKEN", f"Bearer {TOKEN}")
    return target("http", url=base, headers={"Authorization": "env:INTERLOCK_TEST_API_TOKEN"}, timeout=5)


@pytest.mark.parametrize(
    ("requested", "expected_path"),
    [
        ("echo", "/api/echo"),
        ("/echo", "/api/echo"),
        ("items/7?full=1", "/api/items/7"),
        ("{base}/echo", "/api/echo"),
        ("{base}", "/api"),
        ("./echo", "/api/echo"),  # dot segments inside the base are normalised, not refused
        ("a/b/../c", "/api/a/c"),
    ],
)
def test_urls_under_the_base_are_allowed(base: str, requested: str, expected_path: str) -> None:
    assert resolve_url(base, requested.format(base=base)).path == expected_path


@pytest.mark.parametrize(
    "requested",
    [
        "http://example.com/api/echo",
        "http://127.0.0.1:1/api/echo",
        "https://127.0.0.1/api/echo",
        "//example.com/api/echo",
        "../admin",
        "echo/../../admin",
        "%2e%2e/admin",
        "%252e%252e/admin",
        "..\\admin",
        "{root}/apix",
        "{root}/admin",
        "http://user:pw@{host}/api/echo",
        "echo\r\nX-Injected: 1",
    ],
)
def test_urls_leaving_the_base_are_refused(base: str, requested: str) -> None:
    root = base.rsplit("/api", 1)[0]
    with pytest.raises(ExecutionError):
        resolve_url(base, requested.format(root=root, host=root.split("//", 1)[1]))


def test_target_headers_are_added_and_never_shown(api: Target) -> None:
    result = execute(action("http", {"method": "GET", "url": "echo", "headers": {"X-Trace": "1"}}), api)
    assert (result.status, result.http_status) == (Status.succeeded, 200)
    seen = json.loads(result.output)
    assert seen["headers"]["Authorization"] == "[REDACTED]" and seen["headers"]["X-Trace"] == "1"
    assert_no_secret(result, TOKEN)


@pytest.mark.parametrize(
    ("payload", "status", "http_status", "check"),
    [
        ({"method": "POST", "url": "echo", "body": {"a": 1}}, Status.succeeded, 200, "application/json"),
        ({"method": "PUT", "url": "echo", "body": "plain"}, Status.succeeded, 200, '"body": "plain"'),
        ({"method": "DELETE", "url": "status/404"}, Status.failed, 404, "status"),
        ({"method": "GET", "url": "status/503"}, Status.failed, 503, "status"),
        ({"method": "GET", "url": "redirect-in"}, Status.succeeded, 200, "/api/echo?via=redirect"),
        ({"method": "GET", "url": "redirect-out"}, Status.failed, 302, ""),
        ({"method": "GET", "url": "redirect-up"}, Status.failed, 302, ""),
        ({"method": "HEAD", "url": "echo"}, Status.succeeded, 200, ""),
    ],
)
def test_requests(api: Target, payload: dict[str, Any], status: Status, http_status: int, check: str) -> None:
    result = execute(action("http", payload), api)
    assert (result.status, result.http_status) == (status, http_status), result.error
    assert check in result.output
    assert_no_secret(result, TOKEN)


def test_a_large_response_is_digested_whole_and_kept_bounded(api: Target) -> None:
    result = execute(action("http", {"method": "GET", "url": "big"}), api.model_copy(update={"max_output_bytes": 4096}))
    assert (result.status, result.output_bytes, result.truncated, len(result.output)) == (
        Status.succeeded,
        BIG,
        True,
        4096,
    )


def test_a_slow_target_times_out(api: Target) -> None:
    started = time.monotonic()
    result = execute(action("http", {"method": "GET", "url": "slow"}), api, timeout=1)
    assert result.status is Status.timeout and time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"method": "GET", "url": "echo", "headers": {"authorization": "Bearer mine"}}, "set by the target"),
        ({"method": "GET", "url": "echo", "headers": {"Host": "example.com"}}, "'Host' may not be set"),
        ({"method": "GET", "url": "http://example.com/"}, "leaves the target's base"),
        ({"method": "TRACE", "url": "echo"}, "http method 'TRACE'"),
        ({"method": "GET"}, "needs `url`"),
        ({"method": "POST", "url": "echo", "body": 3}, "`body` must be"),
    ],
)
def test_refused_requests_are_errors(api: Target, payload: dict[str, Any], message: str) -> None:
    result = execute(action("http", payload), api)
    assert result.status is Status.error
    assert result.error is not None and message in result.error


def test_a_missing_header_credential_names_the_reference(base: str) -> None:
    result = execute(
        action("http", {"method": "GET", "url": "echo"}),
        target("http", url=base, headers={"Authorization": "env:INTERLOCK_TEST_UNSET_TOKEN"}),
    )
    assert result.status is Status.error
    assert result.error is not None and "'env:INTERLOCK_TEST_UNSET_TOKEN'" in result.error
