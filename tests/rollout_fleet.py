"""A fleet of real local HTTP services, one process each, for the rollout tests and bench.

Each service (`python tests/rollout_fleet.py --breaks-on v3`) prints its port, then serves:
POST /deploy {"version"} (the change; counted), GET /health (200 + {"healthy": true} unless its version is
one it `--breaks-on`, then 500 + {"healthy": false}), GET /state ({"version", "deploys": [versions]}).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx


@dataclass
class Service:
    name: str
    url: str
    process: subprocess.Popen[bytes]

    def state(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.url}/state", timeout=10).json()
        return body


@contextlib.contextmanager
def fleet(names: list[str], breaks_on: dict[str, str] | None = None) -> Iterator[dict[str, Service]]:
    """Start one process per name; `breaks_on` maps a name to the version that makes it unhealthy."""
    started: dict[str, Service] = {}
    try:
        for name in names:
            args = [sys.executable, str(Path(__file__)), "--version", "v1"]
            if breaks_on and name in breaks_on:
                args += ["--breaks-on", breaks_on[name]]
            process = subprocess.Popen(args, stdout=subprocess.PIPE)
            assert process.stdout is not None
            port = int(process.stdout.readline().decode().strip())
            started[name] = Service(name, f"http://127.0.0.1:{port}", process)
        yield started
    finally:
        for service in started.values():
            service.process.terminate()
        for service in started.values():
            service.process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", default="v1")
    parser.add_argument("--breaks-on", action="append", default=[])
    args = parser.parse_args()
    state: dict[str, Any] = {"version": args.version, "deploys": []}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            if self.path == "/health":
                healthy = state["version"] not in args.breaks_on
                self._answer(200 if healthy else 500, {"version": state["version"], "healthy": healthy})
            elif self.path == "/state":
                self._answer(200, state)
            else:
                self._answer(404, {"error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path != "/deploy" or not isinstance(body.get("version"), str):
                self._answer(400, {"error": "POST /deploy {\"version\": ...}"})
                return
            state["version"] = body["version"]
            state["deploys"].append(body["version"])
            self._answer(200, {"version": state["version"]})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
