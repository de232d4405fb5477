"""Sandbox first over HTTP, the SDK and the CLI, against a real `interlock serve` on both stores: a
production `rm -rf build/` is sandbox_required with the twin and the exact way to rehearse; the SDK's
`rehearse` runs it in bubblewrap on the staging twin (its directory intact, the deleted files in the
evidence); proposing again asks for approval with the evidence shown (API, `approvals show`); two
approvals run it in production. `interlock rehearse` does the same from the command line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock.client import AsyncClient, BadRequest, Client
from interlock.testing import LiveServer, live_server
from tests.conftest import DIALECTS, PgAdmin, fresh_url
from tests.gate_fixtures import DEPLOYER_STAGING_THEN_PRODUCTION, STAGING_THEN_PRODUCTION

POLICY = """
version: 1
humans:
  alice: {groups: [sre]}
  bob:   {groups: [sre]}
  carol: {groups: [sre]}
""" + STAGING_THEN_PRODUCTION + """\
targets:
  prod-host:    {environment: production, kind: shell, workdir: "{prod}", twin: staging-host}
  staging-host: {environment: staging, kind: shell, workdir: "{staging}"}
""" + DEPLOYER_STAGING_THEN_PRODUCTION + """\
rules:
  - id: prod-shell-rehearsed
    when: {environment: production, kind: shell, risk: [write, destructive]}
    effect: sandbox
"""


def build_tree(root: Path) -> Path:
    (root / "build").mkdir(parents=True)
    (root / "build" / "a.o").write_text("a")
    (root / "build" / "b.o").write_text("b")
    (root / "src.c").write_text("int x;\n")
    return root


@pytest.fixture(scope="module", params=DIALECTS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           pg_admin: PgAdmin) -> Iterator[tuple[LiveServer, Path, Path]]:
    tmp = tmp_path_factory.mktemp(f"sandbox-http-{request.param}")
    prod, staging = build_tree(tmp / "prod"), build_tree(tmp / "staging")
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY.replace("{prod}", str(prod)).replace("{staging}", str(staging)))
    with fresh_url(request.param, tmp, pg_admin, "interlock_sandbox") as url, live_server(policy, url, tmp) as live:
        yield live, prod, staging


def test_rehearse_and_promote_over_http(served: tuple[LiveServer, Path, Path]) -> None:
    server, prod, staging = served
    kiro = Client(server.url, server.token("agent", "kiro"), timeout=120)
    first = kiro.propose("shell", "production", {"command": "rm -rf build/"}, target="prod-host")
    assert first["state"] == "sandbox_required"
    assert first["rehearse"] == {"twin": "staging-host", "environment": "staging",
                                 "endpoint": f"POST /v1/actions/{first['id']}/rehearse",
                                 "cli": f"interlock rehearse {first['id']}"}

    with pytest.raises(BadRequest) as caught:  # another agent may not rehearse (or promote) it
        Client(server.url, server.token("agent", "cline")).rehearse(first["id"])
    assert caught.value.code == "unknown_action"

    rehearsal = kiro.rehearse(first["id"])
    assert rehearsal["state"] == "succeeded", rehearsal
    assert rehearsal["rehearsal"]["of"] == first["id"]
    assert rehearsal["evidence"]["effects"]["files"]["deleted"] == ["build/a.o", "build/b.o"]
    assert (staging / "build" / "a.o").exists() and (prod / "build" / "a.o").exists()

    second = kiro.propose("shell", "production", {"command": "rm -rf build/"}, target="prod-host")
    assert second["state"] == "pending_approval", second
    assert second["evidence"]["id"] == rehearsal["id"]
    request_id = second["approval"]["id"]
    for name in ("bob", "carol"):
        with server.client(server.token("human", name)) as human:
            view = human.get(f"/v1/approvals/{request_id}").json()
            assert view["evidence"]["id"] == rehearsal["id"]
            assert "deleted 2" in view["evidence"]["description"]
            if name == "bob":
                shown = subprocess.run(
                    [sys.executable, "-m", "interlock.cli", "approvals", "show", request_id, "--gateway", server.url],
                    env={**os.environ, "INTERLOCK_TOKEN": server.token("human", "bob")}, capture_output=True,
                    text=True, timeout=120)
                assert f"evidence:  rehearsal {rehearsal['id']} on staging-host" in shown.stdout, shown
            assert human.post(f"/v1/approvals/{request_id}/approve", json={}).status_code == 200
    done = kiro.wait(second["id"], 60)
    assert done["state"] == "succeeded", done
    assert not (prod / "build").exists()
    assert (staging / "build" / "a.o").exists()


def test_interlock_rehearse_on_the_command_line(served: tuple[LiveServer, Path, Path]) -> None:
    server, _, staging = served
    token = server.token("agent", "kiro")
    first = Client(server.url, token).propose("shell", "production", {"command": "touch made-here"},
                                             target="prod-host")
    assert first["state"] == "sandbox_required"
    env = {**os.environ, "INTERLOCK_TOKEN": token}
    cli = [sys.executable, "-m", "interlock.cli", "rehearse", first["id"], "--gateway", server.url]
    text = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    assert "on twin staging-host: succeeded" in text.stdout
    assert "files created 1" in text.stdout
    as_json = subprocess.run([*cli, "--format", "json"], env=env, capture_output=True, text=True, timeout=120)
    body = json.loads(as_json.stdout)
    assert [f["path"] for f in body["evidence"]["effects"]["files"]["created"]] == ["made-here"]
    assert not (staging / "made-here").exists()
    async def rehearse_async() -> dict[str, object]:
        async with AsyncClient(server.url, token, timeout=120) as client:
            return await client.rehearse(first["id"])

    assert asyncio.run(rehearse_async())["state"] == "succeeded"  # the async SDK, same endpoint
    unknown = subprocess.run([sys.executable, "-m", "interlock.cli", "rehearse", "act_nope", "--gateway", server.url],
                             env=env, capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "no action 'act_nope'" in unknown.stderr
