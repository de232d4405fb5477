"""Rollouts through a real `interlock serve` (both stores): the agent starts one over the HTTP API, a human
approves it once and promotes it, the leased runner in the server moves it; the server is killed
(SIGKILL) mid-rollout and a new one on the same store resumes it without repeating a step. The CLI
(`interlock rollout …`) is run as a real process against the server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from interlock.rollout.cli import view
from interlock.rollout.runner import JOB as RUNNER_JOB
from interlock.store import open_store
from interlock.testing import eventually, live_server
from tests.rollout_fleet import fleet
from tests.test_rollouts import HEALTH, policy_text, rollout_doc


def cli(server_url: str, token: str, *args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "interlock.cli", "rollout", *args, "--gateway", server_url,
                           "--token", token], capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, done.stdout + done.stderr


def expire_the_runners_lease(store_url: str) -> None:
    """The dead holder's `rollout-runner` lease runs out now, as its 30 s would (the CI waited them):
    the takeover itself is a real one. Lease expiry and takeover by time are test_store_lease.py's."""
    with open_store(store_url) as store, store.transaction() as tx:
        tx.execute("UPDATE leases SET expires_at = acquired_at WHERE job = ?", (RUNNER_JOB,))


def test_a_killed_server_resumes_the_rollout_without_repeating_a_step(store_url: str, tmp_path: Path) -> None:
    names = ["web-1", "web-2", "web-3"]
    with fleet(names) as services:
        policy = tmp_path / "policy.yaml"
        policy.write_text(policy_text({n: s.url for n, s in services.items()}))
        doc = rollout_doc("v2", steps=[{"setTargets": 1}, {"pause": {}}, {"percent": 100}])
        (tmp_path / "rollout.yaml").write_text(json.dumps(doc))
        with live_server(policy, store_url, tmp_path) as first:
            agent, bob = first.token("agent", "deployer"), first.token("human", "bob")
            code, shown = cli(first.url, agent, "start", str(tmp_path / "rollout.yaml"), "--format", "json")
            assert code == 0, shown
            rollout_id = json.loads(shown)["id"]
            with first.client(agent) as http:
                refused = http.post(f"/v1/rollouts/{rollout_id}/approve", json={})
                assert refused.status_code == 403, "an agent never approves"
                bad = http.post("/v1/rollouts", json={**doc, "steps": [{"percent": 120}]})
                assert bad.status_code == 422 and bad.json()["error"]["field"] == "steps[0].percent", bad.text
                short = http.post("/v1/rollouts", json={**doc, "steps": [{"setTargets": 1}]})
                assert short.json()["error"]["code"] == "bad_steps" and "100%" in short.json()["error"]["message"]
            with first.client(bob) as http:
                assert http.post("/v1/rollouts", json=doc).status_code == 403, "a human does not start rollouts"
                assert http.post(f"/v1/rollouts/{rollout_id}/deny", json={}).json()["error"]["code"] == \
                    "reason_required"
            code, shown = cli(first.url, bob, "approve", rollout_id)
            assert code == 0, shown
            with first.client(bob) as http:
                def paused() -> dict[str, Any] | None:
                    body: dict[str, Any] = http.get(f"/v1/rollouts/{rollout_id}").json()
                    return body if body["phase"] == "paused" else None

                at_pause = eventually(paused, what="the rollout at its pause {} step")
            assert [t["state"] for t in at_pause["targets"]] == ["changed", "untouched", "untouched"]
            first.process.kill()  # no goodbye: the runner is gone mid-rollout
            first.process.wait()
        expire_the_runners_lease(store_url)
        with live_server(policy, store_url, tmp_path) as second:
            code, shown = cli(second.url, bob, "promote", rollout_id)
            assert code == 0, shown
            with second.client(bob) as http:
                def finished() -> dict[str, Any] | None:
                    body: dict[str, Any] = http.get(f"/v1/rollouts/{rollout_id}").json()
                    return body if body["phase"] == "succeeded" else None

                done = eventually(finished, what="the rollout to finish on the second server")
            code, listed = cli(second.url, bob, "list", "--format", "json")
            assert code == 0 and rollout_id in listed
            code, status = cli(second.url, bob, "status", rollout_id)
            assert code == 0 and "succeeded" in status and "web-3" in status
        assert {n: s.state()["deploys"] for n, s in services.items()} == {n: ["v2"] for n in names}, \
            "each target changed exactly once across the restart"
        console = Console(record=True, width=120)
        console.print(view(done))
        assert "changed" in console.export_text()


def approvals_cli(server_url: str, token: str, *args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "interlock.cli", "approvals", *args, "--gateway", server_url,
                           "--token", token], capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, done.stdout + done.stderr


def test_a_rollouts_approval_is_an_ordinary_approval_request(store_url: str, tmp_path: Path) -> None:
    """Listed by GET /v1/approvals and `interlock approvals`, with every target's decision, the steps, the
    rollback and the deadline; voted on there under the gate's rules; the rollout follows its request."""
    names = ["web-1", "web-2"]
    with fleet(names) as services:
        policy = tmp_path / "policy.yaml"
        policy.write_text(policy_text({n: s.url for n, s in services.items()}))
        doc = rollout_doc("v2", steps=[{"setTargets": 1}, {"analysis": {"checks": [HEALTH]}}, {"percent": 100}],
                          progressDeadline="30m")
        with live_server(policy, store_url, tmp_path) as server:
            agent, alice, bob = (server.token("agent", "deployer"), server.token("human", "alice"),
                                 server.token("human", "bob"))
            with server.client(agent) as http:
                shipped = http.post("/v1/rollouts", json=doc).json()
                kept = http.post("/v1/rollouts", json=rollout_doc("v3", steps=[{"percent": 100}])).json()
                dropped = http.post("/v1/rollouts", json=rollout_doc("v4", steps=[{"percent": 100}])).json()
            request_id = shipped["approval"]["request_id"]
            with server.client(bob) as http:
                listed = {a["id"]: a for a in http.get("/v1/approvals").json()["approvals"]}
                assert {r["approval"]["request_id"] for r in (shipped, kept, dropped)} <= set(listed)
                seen = listed[request_id]
                assert seen["rollout_id"] == shipped["id"] and seen["fingerprint"] == shipped["fingerprint"]
                view = seen["rollout"]
                assert [(t["name"], t["wave"], t["forward"]["decision"], t["rollback"]["decision"])
                        for t in view["targets"]] == [("web-1", 1, "approval_required", "approval_required"),
                                                      ("web-2", 2, "approval_required", "approval_required")]
                assert view["steps"][1]["step"]["analysis"]["checks"][0]["name"] == "health"
                assert view["rollback"]["payload"]["body"] == {"version": "v1"}
                assert view["progress_deadline"] == 1800 and "2 target(s) of group web-fleet" in seen["summary"]
            code, listed = approvals_cli(server.url, bob, "list")
            assert code == 0 and listed.count("rollout over 2 targets of") == 3 and request_id in listed, listed
            code, shown = approvals_cli(server.url, bob, "show", request_id)
            assert code == 0 and "web-2  wave 2: approval_required (write)" in shown and '"v1"' in shown, shown
            code, refused = approvals_cli(server.url, alice, "approve", request_id)
            assert code == 1 and "never counts as its approver" in refused, refused
            code, voted = approvals_cli(server.url, bob, "approve", request_id, "--format", "json")
            assert code == 0 and json.loads(voted)["state"] == "approved", voted
            with server.client(bob) as http:
                def finished() -> dict[str, Any] | None:
                    body: dict[str, Any] = http.get(f"/v1/rollouts/{shipped['id']}").json()
                    return body if body["phase"] == "succeeded" else None

                done = eventually(finished, what="the rollout approved through /v1/approvals to finish")
                assert done["approval"]["approved_by"] == ["bob"]
                assert http.get(f"/v1/approvals/{request_id}").json()["state"] == "consumed", "its grant, used once"
                no_reason = http.post(f"/v1/approvals/{kept['approval']['request_id']}/deny", json={"reason": ""})
                assert no_reason.status_code == 422
                http.post(f"/v1/approvals/{kept['approval']['request_id']}/deny", json={"reason": "not today"})
                denied = eventually(lambda: (b := http.get(f"/v1/rollouts/{kept['id']}").json())["phase"] == "denied"
                                    and b, what="the denied rollout")
                assert "not today" in denied["reason"]
                assert http.post(f"/v1/rollouts/{dropped['id']}/abort", json={"reason": "wrong week"}).json()[
                    "phase"] == "aborted"
                withdrawn = http.get(f"/v1/approvals/{dropped['approval']['request_id']}").json()
                assert withdrawn["state"] == "invalidated" and "wrong week" in withdrawn["reason"]
                assert http.get("/v1/approvals").json()["approvals"] == [], "nothing left to review"
        assert {n: s.state()["deploys"] for n, s in services.items()} == {"web-1": ["v2"], "web-2": ["v2"]}
