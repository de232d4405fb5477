"""One service of a toy fleet, for the rollout walkthrough (docs/rollouts.md) and tests: a real HTTP
process with a "deploy" and a health endpoint.

    python examples/fleet_service.py [--version v1] [--breaks-on v3]   # prints its port, then serves

POST /deploy {"version"} changes its version (each deploy is remembered); GET /health answers 200
{"healthy": true}, or 500 {"healthy": false} while its version is one it `--breaks-on`; GET /state
answers {"version", "deploys": [...]}.
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
