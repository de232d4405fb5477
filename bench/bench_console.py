"""The approvers' console (issue 17): queue render with 1,000 pending requests, review page render, the
review page's transferred size with its assets, and how long a new request takes to reach a page open
on another replica (server-sent events fed by the store's events), on SQLite and PostgreSQL.

Render times are measured two ways: in the server process's code path (`pages.queue` / `pages.review`
plus the template, no HTTP) and as a loopback GET through a real `interlock serve` (what a browser
waits for). Goals: queue ≤ 50 ms p50, review ≤ 20 ms p50, review + assets ≤ 100 KB.

    .venv/bin/python -m bench.bench_console [--pending 1000] [--n 40]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg

from interlock.runtime import Runtime
from interlock.server.ui import pages, render
from interlock.server.ui.routes import _TEMPLATES
from interlock.server.ui.sessions import csrf_token
from interlock.testing import LiveServer, live_server

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "examples" / "policy.yaml"
PG = os.environ.get("INTERLOCK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


@contextmanager
def _store(dialect: str, workdir: Path) -> Iterator[str]:
    if dialect == "sqlite":
        yield f"sqlite:///{workdir / 'interlock.db'}"
        return
    name = f"interlock_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield f"{PG}/{name}"
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@contextmanager
def _sign_in(server: LiveServer, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        form = client.get("/ui/signin").text
        nonce = re.search(r'name="csrf" value="([^"]+)"', form)
        assert nonce
        answer = client.post("/ui/signin", data={"csrf": nonce[1], "token": token}, follow_redirects=False)
        assert answer.status_code == 303, answer.text
        yield client


def _seed(server: LiveServer, kiro: str, count: int) -> list[str]:
    ids = []
    with server.client(kiro) as agent:
        for i in range(count):
            body = agent.post("/v1/actions", json={
                "kind": "shell", "environment": "production",
                "payload": {"command": f"kubectl delete namespace bench-{i}"},
                "rationale": {"intent": f"remove bench namespace {i}", "expected_effect": "it is gone",
                              "rollback": "re-create it from git"}}).json()
            ids.append(body["approval"]["id"])
    return ids


def _timed(fn: object, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - start) * 1000)
    return out


def _fmt(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):7.2f} ms  p99 {p99:7.2f} ms  (n={len(ordered)})"


def _sse_latency(first: LiveServer, second: LiveServer, bob: str, kiro: str, n: int) -> list[float]:
    """Propose through `second`, time until a page's event stream on `first` says so."""
    samples = []
    with _sign_in(first, bob) as client, second.client(kiro) as agent, \
            client.stream("GET", "/ui/events", timeout=30) as events:
        lines = events.iter_lines()
        next(lines)
        for i in range(n):
            start = time.perf_counter()
            command = f"kubectl delete namespace sse-{i}-{uuid.uuid4().hex[:6]}"
            agent.post("/v1/actions", json={"kind": "shell", "environment": "production",
                                            "payload": {"command": command}})
            for line in lines:
                if line.startswith("event: approvals"):
                    break
            samples.append((time.perf_counter() - start) * 1000)
            for line in lines:  # the event's data line and blank line; later events from the same change
                if not line:
                    break
    return samples


def run(dialect: str, pending: int, n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="interlock-bench-console-") as tmp, _store(dialect, Path(tmp)) as url:
        workdir = Path(tmp)
        with live_server(POLICY, url, workdir) as server, live_server(POLICY, url, workdir) as replica:
            kiro, bob = server.token("agent", "kiro"), server.token("human", "bob")
            seeded = time.perf_counter()
            ids = _seed(server, kiro, pending)
            print(f"{dialect}: seeded {len(ids)} pending requests in {time.perf_counter() - seeded:.1f} s")
            with _sign_in(server, bob) as client:
                assert client.get("/ui").text.count("data-id=") == min(pending, pages.QUEUE_LIMIT)
                queue_http = _timed(lambda: client.get("/ui").raise_for_status(), n)
                review_http = _timed(lambda: client.get(f"/ui/approvals/{ids[0]}").raise_for_status(), n * 3)
                html = client.get(f"/ui/approvals/{ids[0]}").content
                assets = [client.get(f"/ui/static/{name}").content for name in ("console.css", "console.js")]
            runtime = Runtime(POLICY, url, workdir / "keys")
            try:
                gate = runtime.gate
                queue_tpl, review_tpl = _TEMPLATES.get_template("queue.html"), _TEMPLATES.get_template("review.html")
                session = {"principal": {"name": "bob"}, "csrf": csrf_token("x")}

                def queue_inproc() -> None:
                    found = pages.queue(gate, "bob")
                    queue_tpl.render(queue=found, rows_html=render.queue_rows(found.rows), session=session)

                def review_inproc() -> None:
                    status = gate.status(ids[0])
                    review_tpl.render(session=session, notice="", error="", **pages.review(gate, status, "bob"))

                queue_code = _timed(queue_inproc, n)
                review_code = _timed(review_inproc, n * 3)
            finally:
                runtime.close()
            sse = _sse_latency(server, replica, bob, kiro, 20)
        total = len(html) + sum(len(a) for a in assets)
        print(f"{dialect}: queue ({pending} pending)  HTTP   {_fmt(queue_http)}")
        print(f"{dialect}: queue ({pending} pending)  code   {_fmt(queue_code)}")
        print(f"{dialect}: review page            HTTP   {_fmt(review_http)}")
        print(f"{dialect}: review page            code   {_fmt(review_code)}")
        print(f"{dialect}: review page + assets   {total / 1024:.1f} KB (html {len(html) / 1024:.1f}, "
              f"css {len(assets[0]) / 1024:.1f}, js {len(assets[1]) / 1024:.1f}; uncompressed)")
        print(f"{dialect}: new request → other replica's page (SSE)  {_fmt(sse)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pending", type=int, default=1000)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--stores", default="sqlite,postgresql")
    args = parser.parse_args(argv if argv is not None else [])
    for dialect in args.stores.split(","):
        run(dialect, args.pending, args.n)


if __name__ == "__main__":
    main(sys.argv[1:])
