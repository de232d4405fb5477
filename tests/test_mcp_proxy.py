"""The MCP proxy end to end: the official `mcp` client ↔ `interlock mcp-proxy` ↔ real npm MCP servers.

Everything is real: the proxy runs as its own process, the upstream is
`@modelcontextprotocol/server-filesystem` (or `server-everything`) from npm on a temporary
directory, the Gateway is a real `interlock serve` (remote mode) or the same store in-process
(local mode), and a human approves or denies over the HTTP API.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from interlock.integrations.mcp_npm import ensure_servers
from interlock.integrations.mcp_proxy import ProxySettings, could_ever_allow, refusal, server_name
from interlock.policy import load_policy_text
from interlock.store import open_store
from interlock.testing import LiveServer, eventually, live_server

REPO = Path(__file__).resolve().parent.parent

POLICY = """\
version: 1
humans:
  alice: {groups: [sre]}
  bob:   {groups: [sre]}
agents:
  kiro: {owner: alice, roles: [developer]}
environments:
  workspace: {}
targets:
  everything:
    environment: workspace
    kind: mcp
    mcp_tools: {trigger-long-running-operation: read, echo: read}
  hostile:
    environment: workspace
    kind: mcp
    mcp_tools: {echo: read, malformed: read, garbage: read, huge_int: read}
roles:
  developer:
    workspace: {autonomous: read, approve: {write: 1, destructive: 1}}
rules:
  - id: no-moving-files
    when: {kind: mcp, input: '"tool":"move_file"'}
    effect: deny
    reason: agents do not move files
  - id: no-secrets
    when: {kind: mcp, input: 'secret'}
    effect: deny
    reason: secret files are off limits to agents
"""

FILESYSTEM_TOOLS = {"read_file", "read_text_file", "read_media_file", "read_multiple_files", "write_file",
                    "edit_file", "create_directory", "list_directory", "list_directory_with_sizes",
                    "directory_tree", "search_files", "get_file_info", "list_allowed_directories"}
ENTRY = ["-m", "interlock.cli", "mcp-proxy"]


@dataclass
class World:
    server: LiveServer
    policy: Path
    agent_token: str
    human_token: str
    tmp: Path
    npm_bin: Path

    def proxy(self, mode: str, upstream: list[str], *options: str) -> StdioServerParameters:
        """`interlock mcp-proxy` as the agent's MCP client would start it. The SDK's client passes the
        server only a few variables (PATH, HOME …), so PYTHONPATH names this tree's code: without it the
        proxy would be whatever `interlock` the venv has installed."""
        env = {"PYTHONPATH": str(REPO / "src")}
        if mode == "local":
            gate = ["--policy", str(self.policy), "--db", self.server.store_url, "--key-dir", str(self.server.key_dir)]
        else:
            gate = ["--gateway", self.server.url] + (["--policy", str(self.policy)] if mode == "remote" else [])
            env["INTERLOCK_TOKEN"] = self.agent_token
        args = [*ENTRY, "--agent", "kiro", "--env", "workspace", *gate, *options, "--", *upstream]
        return StdioServerParameters(command=sys.executable, args=args, env=env, cwd=str(self.tmp))

    def filesystem(self, directory: Path) -> list[str]:
        return [str(self.npm_bin / "mcp-server-filesystem"), str(directory)]

    def hostile(self) -> list[str]:
        return [sys.executable, str(REPO / "tests" / "mcp_hostile_server.py")]

    def everything(self, pidfile: Path) -> list[str]:
        # The shell records the upstream's pid, then becomes it (exec), so the test can kill it.
        return ["sh", "-c", f'echo $$ > "{pidfile}"; exec "{self.npm_bin / "mcp-server-everything"}" stdio']


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    npm_bin = ensure_servers(REPO / ".interlock" / "npm")
    tmp = tmp_path_factory.mktemp("mcp")
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    with live_server(policy, f"sqlite:///{tmp / 'interlock.db'}", tmp) as server:
        yield World(server, policy, server.token("agent", "kiro"), server.token("human", "bob"), tmp, npm_bin)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / "notes.txt").write_text("hello from the workspace\n")
    return directory


def run(params: StdioServerParameters, scenario: Callable[[Client], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with Client(params, cache=None, read_timeout_seconds=120) as client:
            return await scenario(client)

    return anyio.run(main)


def text_of(result: Any) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


async def decide_when_pending(world: World, path: str, verdict: str, reason: str = "") -> str:
    """Act as a human over the HTTP API: find the pending request for `path`, approve or deny it."""
    def for_path(a: dict[str, Any]) -> bool:
        return bool(a["action"]["payload"].get("arguments", {}).get("path") == path)

    return await anyio.to_thread.run_sync(lambda: world.server.decide_when_pending(
        for_path, world.human_token, verdict=verdict, reason=reason))


def audited(world: World, tool: str) -> list[list[tuple[str, dict[str, Any]]]]:
    """The audit entries of each action that called `tool`, oldest action first."""
    return audited_at(world.server.store_url, tool)


def audited_at(url: str, tool: str) -> list[list[tuple[str, dict[str, Any]]]]:
    store = open_store(url)
    try:
        with store.transaction() as tx:
            rows = tx.fetchall("SELECT event, action_id, entry FROM audit_entries WHERE action_id IS NOT NULL "
                               "ORDER BY idx", ())
    finally:
        store.close()
    actions: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for row in rows:
        data = json.loads(row["entry"])["data"]
        if row["event"] == "action.proposed" and data["action"]["payload"].get("tool") == tool:
            actions[row["action_id"]] = []
        # The action's own steps; the gate's entries (approval.*, grant.*) carry its id too since votes
        # and grants name their action (integrity issue 10.10).
        if row["action_id"] in actions and row["event"].startswith(("action.", "execution.")):
            actions[row["action_id"]].append((row["event"], data))
    return list(actions.values())


# --- pure parts: which tools are listed, what a refusal says --------------------------------------

SETTINGS = ProxySettings(agent="kiro", environment="workspace", server="fs")
VISIBILITY = [
    # (tool, annotations, target, expected to be listed)
    ("read_text_file", {"readOnlyHint": True}, None, True),
    ("write_file", {"readOnlyHint": False, "destructiveHint": True}, None, True),  # with approval
    ("move_file", {"readOnlyHint": False, "destructiveHint": True}, None, False),  # a deny rule names it
    ("read_secret", {"readOnlyHint": True}, None, False),  # denied whatever its arguments
    ("frobnicate", {}, None, True),  # unknown risk: destructive, approvable here
    ("echo", {}, "everything", True),
]


@pytest.mark.parametrize(("tool", "annotations", "target", "listed"), VISIBILITY)
def test_tools_list_shows_what_could_ever_be_allowed(tool: str, annotations: dict[str, Any], target: str | None,
                                                     listed: bool) -> None:
    import mcp.types as types

    policy = load_policy_text(POLICY, "policy.yaml")
    settings = ProxySettings(agent="kiro", environment="workspace", server="fs", target=target)
    described = types.Tool(name=tool, input_schema={"type": "object"},
                           annotations=types.ToolAnnotations.model_validate(annotations))
    assert could_ever_allow(policy, settings, described) is listed


@pytest.mark.parametrize(("agent", "environment", "listed"), [
    ("kiro", "workspace", True),
    ("stranger", "workspace", False),  # not in the policy: default deny hides everything
    ("kiro", "production", False),  # not an environment of the policy
])
def test_tools_list_hides_everything_from_strangers(agent: str, environment: str, listed: bool) -> None:
    import mcp.types as types

    policy = load_policy_text(POLICY, "policy.yaml")
    settings = ProxySettings(agent=agent, environment=environment, server="fs")
    tool = types.Tool(name="read_text_file", input_schema={"type": "object"})
    assert could_ever_allow(policy, settings, tool) is listed


REFUSALS = [
    # (proposal, words the tool error must contain)
    ({"id": "act_1", "state": "denied", "reasons": ["agents do not move files"], "remedy": ["ask a human"]},
     ["act_1", "denied", "agents do not move files", "ask a human"]),
    ({"id": "act_2", "state": "pending_approval", "reasons": ["writes need approval"],
      "approval": {"id": "apr_9", "still_needs": "still needs 1 more from sre"}},
     ["act_2", "apr_9", "still needs 1 more from sre", "not approved within 5s", "interlock approvals approve apr_9"]),
    ({"id": "act_3", "state": "rejected", "reasons": [], "approval": {"id": "apr_8", "reason": "not today"}},
     ["act_3", "apr_8", "not today"]),
    ({"id": "act_4", "state": "expired", "reasons": [], "approval": {"id": "apr_7", "reason": "timed out"}},
     ["apr_7", "expired", "again"]),
    ({"id": "act_5", "state": "sandbox_required", "reasons": ["staging first"], "remedy": ["run in staging"]},
     ["sandbox", "staging first", "run in staging"]),
    ({}, ["unknown", "no reason given"]),
]


@pytest.mark.parametrize(("proposal", "words"), REFUSALS)
def test_refusal_names_the_request_and_the_reason(proposal: dict[str, Any], words: list[str]) -> None:
    text = refusal("write_file", proposal, 5)
    for word in words:
        assert word in text


@pytest.mark.parametrize(("command", "name"), [
    (["npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv/data"], "server-filesystem"),
    (["/opt/bin/mcp-server-filesystem", "/tmp"], "mcp-server-filesystem"),
    (["uvx", "mcp-server-git"], "mcp-server-git"),
    (["docker", "run", "-i", "ghcr.io/github/github-mcp-server"], "github-mcp-server"),
    (["npx", "@scope/pkg@1.2.3"], "pkg"),
    (["python", "-m", "my_server"], "my_server"),
])
def test_default_server_name(command: list[str], name: str) -> None:
    assert server_name(command) == name


# --- end to end: mcp client ↔ proxy ↔ server-filesystem -----------------------------------------------

REPORTS = [
    # (tool, the gate's decision, when the action is read back, what the outcome report does)
    ("read_text_file", "allowed", "next call", "recorded"),  # not awaited: durable with (or before) the next proposal
    ("read_text_file", "allowed", "idle", "recorded"),  # no next call: queued after HOLD_SECONDS anyway
    ("read_text_file", "allowed", "closed", "recorded"),  # a proxy that stops writes what it queued first
    ("move_file", "denied", "next call", "not_allowed"),  # the Gateway refuses a report of what it did not allow
    ("write_file", "pending_approval", "next call", "not_allowed"),
]


@pytest.mark.parametrize(("tool", "state", "when", "expected"), REPORTS)
def test_the_in_process_gate_reports_without_reading_back(store_url: str, tmp_path: Path, tool: str, state: str,
                                                          when: str, expected: str) -> None:
    """LocalGate.report of its own allowed call is Gateway.own_report's entry, queued without waiting and
    durable before the next proposal is; any other goes through record_report's checks (and is awaited)."""
    from interlock.client import LocalClient
    from interlock.integrations.mcp_gate import HOLD_SECONDS, LocalGate

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    payload = {"server": "fs", "tool": tool, "arguments": {"path": "/srv/notes.txt"}, "annotations": {}}

    async def main() -> str:
        gate = LocalGate(policy, "kiro", db=store_url, key_dir=tmp_path / "keys")
        try:
            proposal = await gate.propose("mcp", "workspace", payload, mode="advisory")
            assert proposal["state"] == state
            try:
                assert await gate.report(str(proposal["id"]), "succeeded", duration_ms=1.5,
                                         output_excerpt="1 content block(s)") is None
            except Exception as exc:
                return str(getattr(exc, "code", exc))
            if when == "next call":
                await gate.propose("mcp", "workspace", payload, mode="advisory")
            elif when == "idle":
                await anyio.sleep(HOLD_SECONDS * 2)
                await anyio.to_thread.run_sync(lambda: gate.collect(wait=5.0))
            if when != "closed":
                after = await anyio.to_thread.run_sync(gate.client.get, str(proposal["id"]))
        finally:
            await gate.aclose()
        if when == "closed":
            with LocalClient(policy, "kiro", db=store_url, key_dir=tmp_path / "keys") as reader:
                after = reader.get(str(proposal["id"]))
        assert after["reported"]["status"] == "succeeded" and after["reported"]["duration_ms"] == 1.5
        assert "output_excerpt" not in after["reported"]  # the log keeps its size and digest only
        return "recorded"

    assert anyio.run(main) == expected


MODES = ["remote", "local"]
#: An allowed call's entries: the in-process gate records it started (with its proposal, one write), so a
#: proxy that dies before reporting leaves it to the recovery sweep; a remote server cannot tell.
STEPS = {"remote": ["action.proposed", "execution.reported"],
         "local": ["action.proposed", "execution.started", "execution.reported"]}


@pytest.mark.parametrize(("mode", "expected"), [
    ("remote", FILESYSTEM_TOOLS),
    ("local", FILESYSTEM_TOOLS),
    ("unfiltered", FILESYSTEM_TOOLS | {"move_file"}),  # remote without a policy: all listed, all gated
])
def test_tools_list_through_the_proxy(world: World, data: Path, mode: str, expected: set[str]) -> None:
    async def scenario(client: Client) -> set[str]:
        return {tool.name for tool in (await client.list_tools()).tools}

    assert run(world.proxy(mode, world.filesystem(data)), scenario) == expected


@pytest.mark.parametrize("mode", MODES)
def test_reads_pass_and_are_audited(world: World, data: Path, mode: str) -> None:
    async def scenario(client: Client) -> Any:
        return await client.call_tool("read_text_file", {"path": str(data / "notes.txt")})

    result = run(world.proxy(mode, world.filesystem(data)), scenario)
    assert not result.is_error and "hello from the workspace" in text_of(result)
    last = audited(world, "read_text_file")[-1]
    assert [event for event, _ in last] == STEPS[mode]
    assert last[0][1]["decision"]["decision"] == "allow"
    assert last[-1][1]["outcome"]["status"] == "succeeded"


@pytest.mark.parametrize("mode", MODES)
def test_write_waits_for_a_human_then_runs(world: World, data: Path, mode: str) -> None:
    path = str(data / f"approved-{mode}.txt")

    async def scenario(client: Client) -> tuple[Any, str]:
        async with anyio.create_task_group() as tg:
            approved: list[str] = []

            async def human() -> None:
                approved.append(await decide_when_pending(world, path, "approve"))

            tg.start_soon(human)
            result = await client.call_tool("write_file", {"path": path, "content": "approved by bob\n"})
        return result, approved[0]

    before = snapshot(data)
    result, request_id = run(world.proxy(mode, world.filesystem(data)), scenario)
    assert not result.is_error, text_of(result)
    assert Path(path).read_text() == "approved by bob\n"
    assert set(snapshot(data)) == set(before) | {Path(path).name}
    last = audited(world, "write_file")[-1]
    started = ["execution.started"] if mode == "local" else []
    assert [event for event, _ in last] == ["action.proposed", "action.pending", "action.approved", *started,
                                            "execution.reported"]
    assert last[2][1]["request_id"] == request_id
    assert last[-1][1]["outcome"]["status"] == "succeeded"


DENIED_CALLS = [
    # (mode, tool, arguments (paths relative to the data directory), words of the tool error)
    ("remote", "write_file", {"path": "secret.txt", "content": "x"}, ["denied", "secret files are off limits"]),
    ("local", "write_file", {"path": "secret.txt", "content": "x"}, ["denied", "secret files are off limits"]),
    ("remote", "move_file", {"source": "notes.txt", "destination": "moved.txt"}, ["agents do not move files"]),
    ("unfiltered", "move_file", {"source": "notes.txt", "destination": "moved.txt"}, ["agents do not move files"]),
    ("local", "edit_file", {"path": "notes.txt", "edits": [{"oldText": "hello", "newText": "bye"}],
                            "comment": "secret"}, ["secret files are off limits"]),
]


@pytest.mark.parametrize(("mode", "tool", "arguments", "words"), DENIED_CALLS)
def test_denied_call_leaves_the_directory_untouched(world: World, data: Path, mode: str, tool: str,
                                                    arguments: dict[str, Any], words: list[str]) -> None:
    absolute = {k: str(data / v) if k in ("path", "source", "destination") else v for k, v in arguments.items()}

    async def scenario(client: Client) -> Any:
        return await client.call_tool(tool, absolute)

    before = snapshot(data)
    result = run(world.proxy(mode, world.filesystem(data)), scenario)
    assert result.is_error
    for word in words:
        assert word in text_of(result)
    assert snapshot(data) == before


@pytest.mark.parametrize(("verdict", "words"), [
    ("deny", ["a human denied approval request", "not during the freeze"]),
    ("none", ["was not approved within 1s", "interlock approvals approve apr_"]),
])
def test_unapproved_write_is_an_error_naming_the_request(world: World, data: Path, verdict: str,
                                                         words: list[str]) -> None:
    path = str(data / f"unapproved-{verdict}.txt")

    async def scenario(client: Client) -> Any:
        async with anyio.create_task_group() as tg:
            if verdict == "deny":
                tg.start_soon(decide_when_pending, world, path, "deny", "not during the freeze")
            return await client.call_tool("write_file", {"path": path, "content": "x"})

    timeout = "30" if verdict == "deny" else "1"
    result = run(world.proxy("remote", world.filesystem(data), "--wait", timeout), scenario)
    assert result.is_error
    for word in words:
        assert word in text_of(result)
    assert not Path(path).exists()


def test_gateway_down_fails_closed(world: World, data: Path, tmp_path: Path) -> None:
    params = world.proxy("unfiltered", world.filesystem(data))
    params.args[params.args.index("--gateway") + 1] = "http://127.0.0.1:9"  # nothing listens there

    async def scenario(client: Client) -> Any:
        return await client.call_tool("read_text_file", {"path": str(data / "notes.txt")})

    result = run(params, scenario)
    assert result.is_error and "could not decide read_text_file" in text_of(result)
    assert "hello from the workspace" not in text_of(result)


# --- a crashing or hanging upstream ---------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_upstream_killed_mid_call_is_an_error_within_the_timeout(world: World, tmp_path: Path) -> None:
    pidfile = tmp_path / "upstream.pid"
    params = world.proxy("remote", world.everything(pidfile), "--target", "everything", "--upstream-timeout", "20")

    async def scenario(client: Client) -> tuple[Any, float, Any]:
        async with anyio.create_task_group() as tg:
            async def kill() -> None:
                await anyio.sleep(1.5)
                os.kill(int(pidfile.read_text()), signal.SIGKILL)

            tg.start_soon(kill)
            started = time.monotonic()
            result = await client.call_tool("trigger-long-running-operation", {"duration": 30, "steps": 3})
            took = time.monotonic() - started
        after = await client.call_tool("echo", {"message": "still there?"})
        return result, took, after

    result, took, after = run(params, scenario)
    assert result.is_error and "upstream server gone" in text_of(result)
    assert took < 10
    assert after.is_error and "restart the proxy" in text_of(after)
    last = audited(world, "trigger-long-running-operation")[-1]
    assert last[-1][0] == "execution.reported" and last[-1][1]["outcome"]["status"] == "error"


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _local_proxy(world: World, store_url: str, tmp_path: Path, pidfile: Path) -> StdioServerParameters:
    """An in-process proxy on `store_url` with a one-second heartbeat lease, before server-everything."""
    params = world.proxy("local", world.everything(pidfile), "--target", "everything", "--upstream-timeout", "120")
    params.args[params.args.index("--db") + 1] = store_url
    params.args[params.args.index("--key-dir") + 1] = str(tmp_path / "keys")
    params.env = {**(params.env or {}), "INTERLOCK_LEASE_SECONDS": "1"}
    return params


def test_proxy_killed_after_forwarding_is_outcome_unknown(world: World, store_url: str, tmp_path: Path) -> None:
    """Issue 18.6: a proxy killed (SIGKILL) while a call it forwarded runs upstream never reports; the call
    was recorded started (with its proposal) under the proxy's heartbeat lease, so once that expires the
    next proxy on the store (or any server's recovery sweep) marks it outcome_unknown. Never re-run; the
    log verifies."""
    pidfile = tmp_path / "upstream.pid"
    params = _local_proxy(world, store_url, tmp_path, pidfile)

    def started() -> bool:
        found = audited_at(store_url, "trigger-long-running-operation")
        return bool(found) and "execution.started" in [event for event, _ in found[-1]]

    async def scenario(client: Client) -> str:
        async with anyio.create_task_group() as tg:
            async def kill_the_proxy_once_forwarded() -> None:
                await anyio.to_thread.run_sync(lambda: eventually(started, timeout=60, what="the call started"))
                await anyio.sleep(0.5)  # the call reaches the upstream (it runs for a minute)
                os.kill(_parent_of(int(pidfile.read_text())), signal.SIGKILL)

            tg.start_soon(kill_the_proxy_once_forwarded)
            try:
                await client.call_tool("trigger-long-running-operation", {"duration": 60, "steps": 2})
            except Exception as exc:  # the proxy is gone: the client's connection closes
                return type(exc).__name__
        return "answered"

    try:
        assert run(params, scenario) != "answered"
    finally:
        with contextlib.suppress(ProcessLookupError, ValueError, FileNotFoundError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
    [killed] = audited_at(store_url, "trigger-long-running-operation")
    assert [event for event, _ in killed] == ["action.proposed", "execution.started"]
    action_id = killed[0][1]["action_id"]
    assert killed[1][1]["replica"].startswith("replica:mcp-proxy:")

    time.sleep(1.5)  # its lease (one second) runs out

    async def next_proxy(client: Client) -> None:
        await client.list_tools()

    run(_local_proxy(world, store_url, tmp_path, tmp_path / "next.pid"), next_proxy)
    [swept] = audited_at(store_url, "trigger-long-running-operation")
    assert [event for event, _ in swept] == ["action.proposed", "execution.started", "execution.outcome_unknown"]
    from interlock.audit import AuditLog
    from interlock.client import LocalClient

    with LocalClient(world.policy, "kiro", db=store_url, key_dir=tmp_path / "keys") as local:
        state = local.get(action_id)
    assert state["state"] == "outcome_unknown" and not state.get("reported")
    store = open_store(store_url)
    try:
        with AuditLog(store, key_dir=tmp_path / "keys") as log:
            assert log.verify().ok
    finally:
        store.close()


def test_upstream_hang_times_out(world: World, tmp_path: Path) -> None:
    params = world.proxy("local", world.everything(tmp_path / "pid"), "--target", "everything",
                         "--upstream-timeout", "2")

    async def scenario(client: Client) -> tuple[Any, float]:
        started = time.monotonic()
        result = await client.call_tool("trigger-long-running-operation", {"duration": 30, "steps": 3})
        return result, time.monotonic() - started

    result, took = run(params, scenario)
    assert result.is_error and "did not answer within 2s" in text_of(result)
    assert took < 8


def test_proxy_stops_the_upstream_when_the_client_leaves(world: World, tmp_path: Path) -> None:
    pidfile = tmp_path / "upstream.pid"

    async def scenario(client: Client) -> int:
        await client.list_tools()
        return int(pidfile.read_text())

    pid = run(world.proxy("remote", world.everything(pidfile), "--target", "everything"), scenario)
    eventually(lambda: not _pid_alive(pid), timeout=10, what="the upstream stopped")


def test_streamable_http_listen(world: World, tmp_path: Path) -> None:
    import subprocess

    from interlock.testing import free_port

    port, pidfile = free_port(), tmp_path / "upstream.pid"
    params = world.proxy("remote", world.everything(pidfile), "--target", "everything",
                         "--listen", f"127.0.0.1:{port}", "--approval-timeout", "1")  # the old spelling still works
    proxy = subprocess.Popen([params.command, *params.args], cwd=tmp_path, env={**os.environ, **(params.env or {})},
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists() or not _listening(port):
            assert proxy.poll() is None, proxy.stderr.read().decode() if proxy.stderr else ""
            assert time.monotonic() < deadline, "the proxy did not start listening"
            time.sleep(0.1)

        async def scenario() -> tuple[set[str], Any, Any]:
            async with Client(f"http://127.0.0.1:{port}/mcp", cache=None) as client:
                names = {tool.name for tool in (await client.list_tools()).tools}
                echo = await client.call_tool("echo", {"message": "over http"})
                gzip = await client.call_tool("gzip-file-as-resource", {"name": "x.gz", "data": "http://127.0.0.1:9/"})
                return names, echo, gzip

        names, echo, gzip = anyio.run(scenario)
        assert {"echo", "get-sum", "gzip-file-as-resource"} <= names
        assert not echo.is_error and "over http" in text_of(echo)
        assert gzip.is_error and "approval request apr_" in text_of(gzip)  # a write: waits, then times out
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
    pid = int(pidfile.read_text())
    eventually(lambda: not _pid_alive(pid), timeout=10, what="the upstream stopped")


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--agent", "kiro", "--env", "workspace", "--policy", "{policy}"], "give the upstream server's command"),
    (["--agent", "kiro", "--env", "workspace", "--", "true"], "give --gateway URL"),
    (["--agent", "kiro", "--policy", "{policy}", "--", "true"], "--agent and --env are required"),
    (["--agent", "kiro", "--env", "workspace", "--gateway", "http://127.0.0.1:9", "--", "true"], "INTERLOCK_TOKEN"),
    (["--agent", "kiro", "--env", "workspace", "--policy", "{policy}", "--db", "sqlite:///{tmp}/x.db",
      "--", "/nonexistent/mcp-server"], "cannot start upstream"),
])
def test_usage_errors_say_what_to_do(world: World, tmp_path: Path, args: list[str], message: str) -> None:
    import subprocess

    argv = [a.format(policy=world.policy, tmp=tmp_path) for a in args]
    env = {k: v for k, v in os.environ.items() if k != "INTERLOCK_TOKEN"}
    done = subprocess.run([sys.executable, *ENTRY, *argv], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env=env, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode != 0
    assert message in done.stderr


def _start_proxy(world: World, tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The proxy as an agent's client starts it, serving (initialized over its stdio), with a real upstream
    the test then SIGSTOPs (hung) while a call to it is in flight."""
    pidfile = tmp_path / "upstream.pid"
    params = world.proxy("local", world.everything(pidfile), "--target", "everything", "--upstream-timeout", "120")
    proxy = subprocess.Popen([params.command, *params.args], cwd=params.cwd, env={**os.environ, **(params.env or {})},
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proxy.stdin is not None and proxy.stdout is not None

    def send(message: dict[str, Any]) -> None:
        assert proxy.stdin is not None
        proxy.stdin.write((json.dumps({"jsonrpc": "2.0", **message}) + "\n").encode())
        proxy.stdin.flush()

    send({"id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                                       "clientInfo": {"name": "test", "version": "1"}}})
    ready, _, _ = select.select([proxy.stdout], [], [], 120)  # the upstream started before the proxy serves
    assert ready and b'"id":1' in proxy.stdout.readline().replace(b" ", b"")
    send({"method": "notifications/initialized"})
    upstream = int(pidfile.read_text())
    os.kill(upstream, signal.SIGSTOP)
    send({"id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hung"}}})
    time.sleep(0.5)  # the call reaches the stopped upstream and waits there
    return proxy, upstream


@pytest.mark.parametrize("how", ["sigterm", "client disconnects"])
def test_the_upstream_dies_with_the_proxy_even_when_hung(world: World, tmp_path: Path, how: str) -> None:
    """Issue 10.9: the upstream runs in its own session; a proxy that is stopped, or whose client goes
    away, while the upstream is hung (here: SIGSTOPped) kills it and its children, never leaves it behind."""
    proxy, upstream = _start_proxy(world, tmp_path)
    try:
        if how == "sigterm":
            proxy.send_signal(signal.SIGTERM)
        else:
            assert proxy.stdin is not None
            proxy.stdin.close()
        proxy.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _pid_alive(upstream) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _pid_alive(upstream), f"upstream {upstream} outlived the proxy ({how})"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(upstream, signal.SIGKILL)
        if proxy.poll() is None:
            proxy.kill()


# --- the relay: what does not parse fails closed; a hostile upstream's answers are checked ----------------

HOSTILE = [
    # (tool, arguments, the tool error?, words of the answer, the reported outcome)
    ("echo", {"message": "hi"}, False, "hi", "succeeded"),
    ("malformed", {}, True, 'answered a malformed result: "content" must be a list', "error"),
    ("garbage", {"message": "after a stray line"}, False, "after a stray line", "succeeded"),  # the line is skipped
    ("huge_int", {"n": 2**52}, False, "4503599627370496", "succeeded"),
    # beyond JSON's safe integers: the Gateway cannot fingerprint it, so it is refused, not rounded and run
    ("huge_int", {"n": 2**70}, True, "payload is not canonical JSON", None),
]


@pytest.mark.parametrize(("tool", "arguments", "is_error", "words", "status"), HOSTILE)
def test_a_hostile_upstreams_answers_are_checked(world: World, tool: str, arguments: dict[str, Any], is_error: bool,
                                                  words: str, status: str | None) -> None:
    async def scenario(client: Client) -> Any:
        return await client.call_tool(tool, arguments)

    before = len(audited(world, tool))
    result = run(world.proxy("local", world.hostile(), "--target", "hostile", "--upstream-timeout", "20"), scenario)
    assert result.is_error is is_error and words in text_of(result), text_of(result)
    if status is None:  # refused before anything was recorded or forwarded
        assert len(audited(world, tool)) == before
        return

    def reported() -> bool:
        return audited(world, tool)[-1][-1][0] == "execution.reported"

    eventually(reported, timeout=10, what="the outcome report")
    assert audited(world, tool)[-1][-1][1]["outcome"]["status"] == status


@pytest.fixture(scope="module")
def raw_proxy(world: World) -> Iterator[Callable[[bytes], dict[str, Any]]]:
    """A proxy (in-process, hostile upstream) spoken to as raw lines: write one, read the answer."""
    params = world.proxy("local", world.hostile(), "--target", "hostile")
    proxy = subprocess.Popen([params.command, *params.args], cwd=params.cwd, env={**os.environ, **(params.env or {})},
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proxy.stdin is not None and proxy.stdout is not None

    def exchange(line: bytes) -> dict[str, Any]:
        assert proxy.stdin is not None and proxy.stdout is not None
        proxy.stdin.write(line + b"\n")
        proxy.stdin.flush()
        ready, _, _ = select.select([proxy.stdout], [], [], 60)
        assert ready, f"no answer to {line!r}"
        answer: dict[str, Any] = json.loads(proxy.stdout.readline())
        return answer

    try:
        yield exchange
    finally:
        proxy.stdin.close()
        proxy.wait(timeout=30)


RAW = [
    # (a line from the agent, the answer's id, its error code, or None for a result (and what it holds))
    (b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},'
     b'"clientInfo":{"name":"raw","version":"1"}}}', 1, None, {"protocolVersion": "2025-06-18"}),
    (b'{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"1999-01-01"}}', 2, None,
     {"protocolVersion": "2025-11-25"}),  # unknown revision: the newest the relay speaks
    (b'{"jsonrpc":"2.0","id":3,"method":"ping"}', 3, None, {}),
    (b'{"jsonrpc":"2.0","id":"s","method":"server/discover","params":{}}', "s", -32601, None),
    (b'{"jsonrpc":"2.0","id":4,"method":"resources/list"}', 4, -32601, None),  # only tools are proxied
    (b"not json at all", None, -32700, None),
    (b'[{"jsonrpc":"2.0","id":5,"method":"ping"}]', None, -32600, None),  # no batches
    (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', None, -32600, None),
    (b'{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"","arguments":{}}}', 6, -32602, None),
    (b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":"rm -rf /"}}', 7, -32602,
     None),
    (b'{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo","arguments":{"message":"ok"}}}', 8,
     None, {"content": [{"type": "text", "text": "ok"}]}),
]


@pytest.mark.parametrize(("line", "rid", "code", "holds"), RAW)
def test_what_does_not_parse_fails_closed(raw_proxy: Callable[[bytes], dict[str, Any]], line: bytes, rid: Any,
                                          code: int | None, holds: dict[str, Any] | None) -> None:
    answer = raw_proxy(line)
    assert answer["jsonrpc"] == "2.0" and answer["id"] == rid
    if code is None:
        assert holds is not None and holds.items() <= answer["result"].items(), answer
    else:
        assert answer["error"]["code"] == code and "result" not in answer


def test_a_call_the_agent_cancels_after_forwarding_is_reported_as_such(world: World, tmp_path: Path) -> None:
    """notifications/cancelled for a call already upstream: no answer to it (as MCP asks), the upstream
    is told, the proxy keeps serving, and the outcome is reported as an error (it may have run)."""
    params = world.proxy("local", world.everything(tmp_path / "pid"), "--target", "everything")
    proxy = subprocess.Popen([params.command, *params.args], cwd=params.cwd, env={**os.environ, **(params.env or {})},
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proxy.stdin is not None and proxy.stdout is not None

    def send(message: dict[str, Any]) -> None:
        assert proxy.stdin is not None
        proxy.stdin.write((json.dumps({"jsonrpc": "2.0", **message}) + "\n").encode())
        proxy.stdin.flush()

    def answer() -> dict[str, Any]:
        assert proxy.stdout is not None
        ready, _, _ = select.select([proxy.stdout], [], [], 60)
        assert ready
        found: dict[str, Any] = json.loads(proxy.stdout.readline())
        return found

    before = len(audited(world, "trigger-long-running-operation"))
    try:
        send({"id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                                           "clientInfo": {"name": "test", "version": "1"}}})
        assert answer()["id"] == 1
        send({"id": 2, "method": "tools/call",
              "params": {"name": "trigger-long-running-operation", "arguments": {"duration": 30, "steps": 3}}})
        eventually(lambda: len(audited(world, "trigger-long-running-operation")) > before, timeout=30,
                   what="the call proposed")
        time.sleep(0.5)  # and gone upstream (it runs for 30 s there)
        send({"method": "notifications/cancelled", "params": {"requestId": 2, "reason": "the user changed their mind"}})
        send({"id": 3, "method": "ping"})
        assert answer() == {"jsonrpc": "2.0", "id": 3, "result": {}}  # and nothing for id 2

        def reported() -> bool:
            return audited(world, "trigger-long-running-operation")[-1][-1][0] == "execution.reported"

        eventually(reported, timeout=30, what="the cancelled call's report")
    finally:
        proxy.stdin.close()
        proxy.wait(timeout=30)
    steps = audited(world, "trigger-long-running-operation")[-1]
    assert [event for event, _ in steps] == ["action.proposed", "execution.started", "execution.reported"]
    assert steps[-1][1]["outcome"]["status"] == "error"
