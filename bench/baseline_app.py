"""The hot path's floor (issue 18.5): a minimal pure-ASGI app on uvicorn that parses the same JSON body
as `POST /v1/actions` and answers only once one group-committed, fsync'd SQLite append per request is
durable (WAL, `synchronous=FULL`), the same durability promise Interlock makes. Interlock's proposals/s
is reported as a fraction of this app's req/s measured in the same run (`bench_hotpath`).

    uvicorn --factory bench.baseline_app:create --port 8799      (BASELINE_DB=/tmp/baseline.db)
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Writer:
    """One thread appends whatever is queued in one transaction per batch (group commit)."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        self.queue: queue.SimpleQueue[tuple[str, asyncio.AbstractEventLoop, asyncio.Future[None]]] = \
            queue.SimpleQueue()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            while True:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO log(body) VALUES (?)", [(b,) for b, _, _ in batch])
            self.db.execute("COMMIT")
            for _, loop, future in batch:
                loop.call_soon_threadsafe(_done, future)

    async def append(self, body: str) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self.queue.put((body, loop, future))
        await future


def _done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def create() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    writer = Writer(os.environ.get("BASELINE_DB", "/tmp/interlock-baseline.db"))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        if scope["path"] == "/empty":
            status, answer = 200, b"{}"
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                status, answer = 400, b'{"error":"malformed_json"}'
            else:
                await writer.append(json.dumps(body, separators=(",", ":")))
                status, answer = 200, b'{"ok":true}'
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})

    return app
