"""CPU time per `POST /v1/actions` for several checkouts of Interlock, interleaved, so a change can be
compared with its parent on a machine others are loading (CPU time per request moves far less with
other processes' load than wall-clock throughput does).

    git worktree add --detach /tmp/before <commit>
    .venv/bin/python -m bench.compare_server /tmp/before .        # ROUNDS=3 N=1500 by default

Each tree runs in its own process with its own `src/` (PYTHONPATH), in-process through the ASGI app
(Starlette's TestClient: the client's cost is included, the same for every tree), on SQLite, an allowed
advisory read after 200 warm-up requests.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CODE = r'''
import json, sys, tempfile, time
from pathlib import Path
from starlette.testclient import TestClient
from interlock.server.app import Settings, create_app
from interlock.identity import create_token
d = Path(tempfile.mkdtemp())
kw = dict(policy=Path("examples/policy.yaml"), db=f"sqlite:///{d}/x.db", key_dir=d / "keys")
try:
    settings = Settings(**kw, allow_missing_secrets=True)
except TypeError:  # trees from before credentials were checked at start
    settings = Settings(**kw)
app = create_app(settings)
server = app.state.server
_, secret = create_token(server.store, "agent", "kiro", None, server.audit, policy=server.policy)
auth = {"Authorization": f"Bearer {secret}"}
body = {"kind": "shell", "environment": "production", "payload": {"command": "ls -la /srv/app"},
        "rationale": {"intent": "look around"}, "mode": "advisory"}
n = int(sys.argv[1])
with TestClient(app) as c:
    for _ in range(200):
        assert c.post("/v1/actions", json=body, headers=auth).status_code == 200
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        c.post("/v1/actions", json=body, headers=auth)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
print(json.dumps({"cpu_us": cpu / n * 1e6, "wall_us": wall / n * 1e6}))
'''


def main(trees: list[str]) -> None:
    rounds, n = int(os.environ.get("ROUNDS", "3")), int(os.environ.get("N", "1500"))
    results: dict[str, list[dict[str, float]]] = {tree: [] for tree in trees}
    for r in range(rounds):
        for tree in trees:
            root = Path(tree).resolve()
            done = subprocess.run([sys.executable, "-c", CODE, str(n)], cwd=root, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(root / "src")}, check=False)
            if done.returncode:
                print(f"{tree}: failed\n{done.stderr[-1500:]}", flush=True)
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            results[tree].append(row)
            print(f"round {r + 1} {tree:<30} cpu {row['cpu_us']:7.0f} µs/request   wall {row['wall_us']:7.0f} µs",
                  flush=True)
    for tree, rows in results.items():
        if rows:
            cpu = [row["cpu_us"] for row in rows]
            print(f"{tree:<30} median cpu {statistics.median(cpu):7.0f} µs/request (min {min(cpu):.0f}), "
                  f"median wall {statistics.median(row['wall_us'] for row in rows):7.0f} µs")


if __name__ == "__main__":
    main(sys.argv[1:] or ["."])
