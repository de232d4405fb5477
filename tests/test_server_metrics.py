"""The per-request metrics keep their labelled children (server.state.Server.observe_request and
count_decision): every answer is still counted once, under its route, status, decision and kind."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from interlock.testing import LiveServer

READ = {"kind": "shell", "environment": "production", "payload": {"command": "ls /srv"}, "mode": "advisory"}


def _samples(server: LiveServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(server.url + "/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


REQUESTS = ("interlock_http_requests_total", (("route", "/v1/actions"), ("status", "200")))
#: Refused before routing (BodyLimit authenticates first), so under "unmatched", as before the cache.
REFUSED = ("interlock_http_requests_total", (("route", "unmatched"), ("status", "401")))
ALLOWED = ("interlock_decisions_total", (("decision", "allow"), ("kind", "shell")))
TIMED = ("interlock_http_request_seconds_count", (("route", "/v1/actions"),))


def test_each_answer_is_counted_once(server: LiveServer, tokens: dict[str, str]) -> None:
    before = _samples(server)
    for _ in range(3):
        answer = httpx.post(server.url + "/v1/actions", json=READ, headers={"authorization": f"Bearer {tokens['kiro']}"})
        assert answer.status_code == 200
    assert httpx.post(server.url + "/v1/actions", json=READ).status_code == 401
    after = _samples(server)
    moved = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in (REQUESTS, REFUSED, ALLOWED, TIMED)}
    assert moved == {REQUESTS: 3.0, REFUSED: 1.0, ALLOWED: 3.0, TIMED: 3.0}
