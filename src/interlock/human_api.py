"""The human commands' side of the HTTP API (`approvals`, `freeze`, `thaw`, `guards`): one caller.

The human's token goes in the Authorization header; the API's error shape `{"error": {"code",
"message"}}` becomes `error: [code] message` on stderr, exit 1 for a refusal (4xx: the server said
no, and audited it) and 2 when no answer could be had (unreachable, 5xx, not JSON). Which way a
command reaches Interlock (this, or the store in-process) is `options.client`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from interlock.console import fail

#: Seconds one request may take: the human commands never long-poll.
TIMEOUT = 30.0


class HumanApi:
    """Calls `/v1` as the token's human; every failure ends the command with a located error."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach the server at {self.client.base_url}: {type(exc).__name__}", 2)
        try:
            body = response.json()
        except ValueError:
            fail(f"the server answered HTTP {response.status_code} without JSON", 2)
        if response.status_code >= 400:
            problem = body.get("error", {}) if isinstance(body, dict) else {}
            code = problem.get("code", f"http_{response.status_code}")
            fail(f"[{code}] {problem.get('message', response.reason_phrase)}", 1 if response.status_code < 500 else 2)
        return body


@contextmanager
def human_api(url: str, token: str) -> Iterator[HumanApi]:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=TIMEOUT, follow_redirects=False) as client:
        yield HumanApi(client)
