"""The per-request metrics (server.state.Server.observe_request and count_decision, kept by server/metrics.py):
every answer is counted once, under its route, status, decision and kind, and exposed as prometheus_client's
Counter and Histogram expose the same observations."""

from __future__ import annotations

import re

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from interlock.server.metrics import Counts, Latencies
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


#: (route, status, seconds) answered, and (decision, kind) decided, in order: every bucket edge, a new label set
#: late, the same label set again.
OBSERVED = [("/v1/actions", 200, 0.0004), ("/v1/actions", 200, 0.001), ("unmatched", 401, 0.0025),
            ("/v1/actions", 422, 0.0031), ("/v1/actions", 200, 0.3), ("/v1/audit/entries", 200, 4.9),
            ("/v1/actions", 503, 31.0), ("/v1/actions", 200, 301.0), ("unmatched", 401, 0.01)]
DECIDED = [("allow", "shell"), ("approval_required", "shell"), ("allow", "sql"), ("allow", "shell"), ("deny", "http")]


def _text(registry: CollectorRegistry) -> str:
    """The exposition with every `_created` time replaced (they are the clock at each label set's first use)."""
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", generate_latest(registry).decode())


def test_the_per_request_metrics_are_exposed_as_prometheus_client_exposes_them() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    buckets = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30, 300)
    requests = Counts("interlock_http_requests", "HTTP requests", ["route", "status"])
    decisions = Counts("interlock_decisions", "Decisions", ["decision", "kind"])
    latency = Latencies("interlock_http_request_seconds", "Request latency", ["route"], buckets=buckets)
    for collector in (requests, decisions, latency):
        ours.register(collector)
    their_requests = Counter("interlock_http_requests", "HTTP requests", ["route", "status"], registry=theirs)
    their_decisions = Counter("interlock_decisions", "Decisions", ["decision", "kind"], registry=theirs)
    their_latency = Histogram("interlock_http_request_seconds", "Request latency", ["route"], registry=theirs,
                              buckets=buckets)
    for route, status, seconds in OBSERVED:
        requests.inc(route, str(status))
        latency.observe(seconds, route)
        their_requests.labels(route, str(status)).inc()
        their_latency.labels(route).observe(seconds)
    for decision, kind in DECIDED:
        decisions.inc(decision, kind)
        their_decisions.labels(decision, kind).inc()
    assert _text(ours) == _text(theirs)
    assert "interlock_http_request_seconds_bucket{le=\"0.001\",route=\"/v1/actions\"} 2.0" in _text(ours)
