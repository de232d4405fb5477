"""A rollout's one approval where approvers look, with its members rehearsed on their twins first
(docs/rollouts.md). End to end on this machine:

Starts four real services (examples/fleet_service.py): web-1 and web-2 in production, and their twins
web-1-stg and web-2-stg in staging. The policy sends production web deploys to staging first (a `sandbox`
rule). The agent submits one rollout of v2: Interlock rehearses the deploy and its rollback on each twin,
then opens one ordinary approval request. `interlock approvals show|approve` (run here as real commands,
as bob and carol) show it with every target, the steps and the rollback; once approved, the runner rolls
it out.

    .venv/bin/python examples/rollout_approval.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
from rich.console import Console

from interlock.identity import create_token
from interlock.rollout.cli import view
from interlock.rollout.service import Rollouts
from interlock.runtime import Runtime

HERE = Path(__file__).resolve().parent
NAMES = ["web-1", "web-2", "web-1-stg", "web-2-stg"]

ROLLOUT = {
    "name": "ship v2",
    "kind": "http",
    "group": "web-fleet",
    # the same payload on every member and on its twin: a path under each target's url
    "payload": {"method": "POST", "url": "/deploy", "body": {"version": "v2"}},
    "rationale": {"intent": "ship v2 to the web fleet", "rollback": "deploy v1 again"},
    "rollback": {"payload": {"method": "POST", "url": "/deploy", "body": {"version": "v1"}}},
    "steps": [{"setTargets": 1}, {"analysis": {"checks": [{"name": "health", "http": {"path": "/health"},
                                                          "successCondition": "json.healthy == true"}]}},
              {"percent": 100}],
}


def policy_text(urls: dict[str, str]) -> str:
    targets = "".join(
        f"  {n}: {{environment: {'staging' if n.endswith('-stg') else 'production'}, kind: http, url: '{u}', "
        f"http_methods: {{POST: write}}{'' if n.endswith('-stg') else f', twin: {n}-stg'}}}\n"
        for n, u in urls.items())
    return f"""version: 1
humans: {{alice: {{groups: [sre]}}, bob: {{groups: [sre]}}, carol: {{groups: [sre]}}}}
agents: {{deployer: {{owner: alice, roles: [deployer]}}}}
environments: {{staging: {{promotes_to: production}}, production: {{protected: true}}}}
targets:
{targets}groups:
  web-fleet: [web-1, web-2]
roles:
  deployer:
    staging: {{autonomous: destructive}}
    production: {{autonomous: read, approve: {{write: 1, destructive: 2}}}}
rules:
  - id: web-rehearsed-first
    when: {{environment: production, kind: http, risk: [write, destructive]}}
    effect: sandbox
    sandbox: staging
"""


def main() -> None:
    console = Console(width=120)
    services: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        for name in NAMES:
            process = subprocess.Popen([sys.executable, str(HERE / "fleet_service.py")], stdout=subprocess.PIPE)
            assert process.stdout is not None
            services[name] = (process, f"http://127.0.0.1:{int(process.stdout.readline())}")
        with tempfile.TemporaryDirectory() as tmp:
            policy, db, keys = Path(tmp) / "policy.yaml", f"sqlite:///{tmp}/interlock.db", Path(tmp) / "keys"
            policy.write_text(policy_text({n: url for n, (_, url) in services.items()}))
            with Runtime(policy, db, keys) as runtime:
                rollouts = Rollouts(runtime.store, runtime.policy, runtime.audit, runtime.gateway)
                rollout = rollouts.submit("deployer", ROLLOUT)
                request_id = rollout.state["approval"]["request_id"]
                console.rule("submitted: rehearsed on both twins (forward, then rollback), then one approval request")
                for name, (_, url) in services.items():
                    console.print(f"{name}: deploys {httpx.get(f'{url}/state').json()['deploys']}")
                tokens = {h: create_token(runtime.store, "human", h, 3600, runtime.audit, policy=runtime.policy)[1]
                          for h in ("bob", "carol")}

                def approvals(*args: str, human: str = "bob", lines: int = 1000) -> None:
                    done = subprocess.run([sys.executable, "-m", "interlock.cli", "approvals", *args, "--policy",
                                           str(policy), "--db", db, "--key-dir", str(keys), "--token", tokens[human]],
                                          capture_output=True, text=True, check=False)
                    console.print(f"$ interlock approvals {' '.join(args)}  # as {human}", markup=False,
                                  highlight=False)
                    shown = (done.stdout + done.stderr).rstrip().splitlines()[:lines]
                    console.print("\n".join(shown), markup=False, highlight=False, soft_wrap=True)

                console.rule("the approvers' view: an ordinary approval request")
                approvals("show", request_id)
                approvals("approve", request_id, lines=1)
                approvals("approve", request_id, human="carol", lines=1)
                rollouts.tick(rollout.id)  # what the runner in `interlock serve` does
                console.rule("after the runner")
                console.print(view(rollouts.get(rollout.id).to_json()))
        for name, (_, url) in services.items():
            console.print(f"{name}: deploys {httpx.get(f'{url}/state').json()['deploys']}")
    finally:
        for process, _ in services.values():
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
