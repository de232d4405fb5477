"""A rollout with a failing wave and its rollback, end to end on this machine (docs/rollouts.md).

Starts four real services (examples/fleet_service.py; web-2 breaks on v3), writes a policy with a
target group, submits a rollout of v3 in waves with a health check after each, approves it once as
bob, and runs it: wave 1 (web-1) passes its check, wave 2 (web-2) fails it, and the rollback puts v1
back on web-2 then web-1; web-3 and web-4 are never touched. Prints the progress view at each stage.

    .venv/bin/python examples/rollout_walkthrough.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
from rich.console import Console

from interlock.identity import Principal
from interlock.rollout.cli import view
from interlock.rollout.service import Rollouts
from interlock.runtime import Runtime

HERE = Path(__file__).resolve().parent
NAMES = ["web-1", "web-2", "web-3", "web-4"]

ROLLOUT = {
    "name": "ship v3",
    "kind": "http",
    "group": "web-fleet",
    "payload": {"method": "POST", "url": "{target.url}/deploy", "body": {"version": "v3"}},
    "rationale": {"intent": "ship v3 to the web fleet", "rollback": "deploy v1 again"},
    "rollback": {"payload": {"method": "POST", "url": "{target.url}/deploy", "body": {"version": "v1"}}},
    "steps": [
        {"setTargets": 1},
        {"analysis": {"checks": [{"name": "health", "http": {"path": "/health"},
                                  "successCondition": "status == 200 and json.healthy == true"}]}},
        {"setTargets": 2},
        {"analysis": {"checks": [{"name": "health", "http": {"path": "/health"},
                                  "successCondition": "status == 200 and json.healthy == true"}]}},
        {"percent": 100},
    ],
}


def main() -> None:
    console = Console(width=120)
    services = {}
    try:
        for name in NAMES:
            args = [sys.executable, str(HERE / "fleet_service.py"), *(["--breaks-on", "v3"] if name == "web-2" else [])]
            process = subprocess.Popen(args, stdout=subprocess.PIPE)
            assert process.stdout is not None
            services[name] = (process, f"http://127.0.0.1:{int(process.stdout.readline())}")
        targets = "".join(f"  {n}: {{environment: production, kind: http, url: '{url}', "
                          "http_methods: {POST: write}}\n" for n, (_, url) in services.items())
        with tempfile.TemporaryDirectory() as tmp:
            policy = Path(tmp) / "policy.yaml"
            policy.write_text(f"""version: 1
humans: {{alice: {{groups: [sre]}}, bob: {{groups: [sre]}}}}
agents: {{deployer: {{owner: alice, roles: [deployer]}}}}
environments: {{production: {{protected: true}}}}
targets:
{targets}groups:
  web-fleet: [{", ".join(NAMES)}]
roles: {{deployer: {{production: {{autonomous: read, approve: {{write: 1}}}}}}}}
""")
            with Runtime(policy, f"sqlite:///{tmp}/interlock.db", Path(tmp) / "keys") as runtime:
                rollouts = Rollouts(runtime.store, runtime.policy, runtime.audit, runtime.gateway)
                rollout = rollouts.submit("deployer", ROLLOUT)
                console.rule("submitted: one approval for 4 targets, forward and rollback")
                console.print(view(rollout.to_json()))
                rollouts.approve(rollout.id, Principal(kind="human", name="bob", token_id="tok_bob"))
                rollouts.tick(rollout.id)  # what the runner in `interlock serve` does
                console.rule("after the runner: wave 2 failed its check, the changed targets rolled back")
                console.print(view(rollouts.get(rollout.id).to_json()))
        console.rule("what each service saw")
        for name, (_, url) in services.items():
            console.print(f"{name}: deploys {httpx.get(f'{url}/state').json()['deploys']}")
    finally:
        for process, _ in services.values():
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
