"""The MCP proxy: an MCP server that stands between an agent and the real (upstream) MCP server.

The proxy starts the upstream server itself (`-- UPSTREAM_COMMAND…`), so the agent only ever talks
to the proxy. Towards the agent it is an ordinary MCP server (stdio, or streamable HTTP):

- `tools/list` shows the upstream's tools that this agent could ever be allowed to call: each tool
  is decided by the policy at its best case (no arguments, which can only add risk); a tool the
  policy denies even then is hidden. Without a local policy (remote gateway, no `--policy`) every
  tool is shown, and every call is still gated.
- every `tools/call` becomes an advisory action of kind `mcp` with payload `{server, tool,
  arguments, annotations}` (the upstream's annotations are hints that can only raise the risk):
  allowed → forwarded; approval required → the call waits for the humans (bounded) and is
  forwarded once approved, else answered with a tool error naming the approval request;
  anything else → a tool error with the reasons. The outcome is reported back (audited).
- every upstream call is bounded by a timeout, and a dead upstream answers errors: a crash or a
  hang upstream never hangs the agent.

Resources and prompts are not proxied: only tools, each through the Gateway (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import signal
import subprocess
import threading
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
from anyio.abc import TaskGroup
from mcp.server import Server
from mcp.server.context import ServerRequestContext

from interlock import answers
from interlock.integrations import mcp_wire as wire
from interlock.integrations.mcp_gate import GatePort
from interlock.integrations.mcp_pipes import PipeLines, PipeWriter, agent_pipes
from interlock.model import Action, DecisionValue, Kind
from interlock.policy import Policy, decide
from interlock.policy.classifying import classify_action

log = logging.getLogger("interlock.mcp_proxy")

DEFAULT_APPROVAL_TIMEOUT = 300.0
DEFAULT_UPSTREAM_TIMEOUT = 60.0
#: A misbehaving upstream that pages forever gets this many pages of tools, no more.
MAX_TOOL_PAGES = 50
#: What the audit log keeps of a failed call's error text (a success keeps only its size: tool
#: output is the upstream's data, not Interlock's to copy).
EXCERPT_CHARS = 500
#: An outcome report that takes longer is given up (and logged); it must not keep the proxy from exiting.
REPORT_TIMEOUT = 30.0


@dataclass(frozen=True)
class ProxySettings:
    agent: str
    environment: str
    server: str  # the upstream's name in every action's payload (and so in its fingerprint)
    target: str | None = None
    approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT


class UpstreamError(Exception):
    """The upstream server failed, hung or is gone; the message says which and what to do."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


# --- the upstream server ------------------------------------------------------------------------


#: Spoken to the upstream: the initialize handshake's newest revision (every stdio server answers it).
UPSTREAM_PROTOCOL = "2025-11-25"
CLIENT_INFO = {"name": "interlock-mcp-proxy", "version": "1"}
#: After its stdin closes, the upstream may take this long to exit; then SIGTERM, then as long again, SIGKILL.
UPSTREAM_EXIT_SECONDS = 2.0


#: One request to the upstream awaiting its answer: None once the connection ended first. A plain
#: asyncio future, set by the reader (the proxy runs on asyncio, `anyio.run`'s default): anyio's Event and
#: fail_after cost more per call than the rest of waiting for an answer (issue 18.6).
_Pending = asyncio.Future


class Upstream:
    """The real MCP server: spawned by the proxy, reached only through it, every call bounded.

    Spoken to over its stdio as plain JSON-RPC (`mcp_wire`), not through the SDK's client: a tool
    result goes back to the agent as the upstream wrote it, checked, never rebuilt (issue 18.6)."""

    def __init__(self, command: list[str], *, timeout: float, env: dict[str, str] | None = None,
                 cwd: str | None = None) -> None:
        if not command:
            raise UpstreamError("no upstream command: give it after `--`, e.g. `-- npx -y "
                                "@modelcontextprotocol/server-filesystem /srv/data`")
        self.command = command
        self.timeout = timeout
        self.env = env
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.dead: str | None = None  # why the upstream is unusable, once it is
        self.tools: dict[str, types.Tool] = {}
        self.listed: dict[str, dict[str, Any]] = {}  # each tool as the upstream described it on the wire
        self.hints: dict[str, dict[str, Any]] = {}  # each tool's annotations as on the wire (`annotations`)
        self._pending: dict[int, _Pending[wire.Response | None]] = {}
        self._ids = itertools.count(1)
        self._writer: PipeWriter | None = None
        self._tasks: TaskGroup | None = None

    async def start(self, stack: AsyncExitStack) -> None:
        """Spawn and initialize the upstream; it is stopped (and killed if need be) when `stack` closes."""
        from mcp.client.stdio import get_default_environment

        try:
            # Its own session: the proxy stops it (and its children) by process group, and a signal to
            # the agent's terminal does not reach it first.
            process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       env=get_default_environment() | (self.env or {}), cwd=self.cwd,
                                       start_new_session=True)
        except (OSError, ValueError) as exc:
            raise UpstreamError(f"cannot start upstream {self.command[0]}: {exc}") from exc
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        for pipe in (process.stdin, process.stdout):
            os.set_blocking(pipe.fileno(), False)
        self._writer = PipeWriter(process.stdin.fileno())
        # Left in reverse: stop the process, then end the reader's task group, then close its pipe (not
        # before: a waited-on descriptor must not be closed and its number reused under the reader).
        stack.callback(process.stdout.close)
        self._tasks = await stack.enter_async_context(anyio.create_task_group())
        stack.push_async_callback(self._stop)
        self._tasks.start_soon(self._read, PipeLines(process.stdout.fileno()))
        try:
            answer = await self._bounded("initialize", "initialize", {
                "protocolVersion": UPSTREAM_PROTOCOL, "capabilities": {}, "clientInfo": CLIENT_INFO})
            if not isinstance(answer.get("protocolVersion"), str):
                raise UpstreamError("its initialize answer names no protocolVersion")
            await self._send(wire.notification("notifications/initialized", {}))
            await self.list_tools()
        except UpstreamError as exc:
            raise UpstreamError(f"upstream {self.command[0]} failed to initialize: {exc} (does the command start "
                                "an MCP server on stdio?)") from exc

    async def list_tools(self) -> list[types.Tool]:
        """Every tool of the upstream (all pages); the last good listing stays known for annotations.
        Validated with the SDK's models: the policy reads each tool's annotations (rare; not per call)."""
        tools: list[types.Tool] = []
        listed: dict[str, dict[str, Any]] = {}
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            answer = await self._bounded("tools/list", "tools/list", {} if cursor is None else {"cursor": cursor})
            try:
                page = types.ListToolsResult.model_validate(answer)
            except ValueError as exc:
                raise UpstreamError(f"upstream tools/list answered a malformed list: {str(exc)[:300]}") from exc
            tools.extend(page.tools)
            listed.update((raw["name"], raw) for raw in answer["tools"])
            cursor = page.next_cursor
            if cursor is None:
                break
        self.tools = {tool.name: tool for tool in tools}
        self.listed = listed
        # Each tool's hints as every call's payload carries them: dumped once per listing, not per call.
        self.hints = {tool.name: tool.annotations.model_dump(by_alias=True, exclude_none=True, mode="json")
                      for tool in tools if tool.annotations is not None}
        return tools

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The upstream's result for the call, as it wrote it (checked by `mcp_wire.check_tool_result`)."""
        what = f"tools/call {name}"
        result = await self._bounded(what, "tools/call", {"name": name, "arguments": arguments})
        try:
            wire.check_tool_result(result)
        except ValueError as exc:
            raise UpstreamError(f"upstream {what} answered a malformed result: {exc}") from exc
        return result

    async def annotations(self, name: str) -> dict[str, Any]:
        """The upstream's annotations for a tool, as on the wire (`readOnlyHint` …); {} when unknown."""
        if name not in self.tools and self.dead is None:
            # Without hints the call is judged by its name and arguments alone (hints only raise risk).
            with contextlib.suppress(UpstreamError):
                await self.list_tools()
        return dict(self.hints.get(name, {}))  # a copy: the payload is the caller's to keep

    async def _bounded(self, what: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """One request, answered within the timeout, as its result object; UpstreamError otherwise."""
        if self.dead is not None:
            raise UpstreamError(f"the upstream server is unusable ({self.dead}); restart the proxy")
        rid = next(self._ids)
        pending: _Pending[wire.Response | None] = asyncio.get_running_loop().create_future()
        self._pending[rid] = pending
        try:
            async with asyncio.timeout(self.timeout):
                await self._send(wire.request(rid, method, params))
                answer = await pending
        except TimeoutError as exc:
            await self._cancel(rid, "timed out")
            raise _timed_out(what, self.timeout) from exc
        except OSError as exc:
            self.dead = f"its connection broke during {what}"
            raise UpstreamError(f"upstream server gone during {what}; restart the proxy") from exc
        except BaseException:
            # The agent cancelled (awaiting the future cancels it): tell the upstream, as the SDK does.
            if not pending.done() or pending.cancelled():
                await self._cancel(rid, "cancelled by the client")
            raise
        finally:
            del self._pending[rid]
        if answer is None:
            self.dead = self.dead or f"it exited or closed its connection during {what}"
            raise UpstreamError(f"upstream server gone during {what}: connection closed; restart the proxy")
        if answer.error is not None:
            raise UpstreamError(f"upstream {what} failed: {str(answer.error['message'])[:EXCERPT_CHARS]}")
        assert answer.result is not None
        return answer.result

    async def _send(self, data: bytes) -> None:
        if self._writer is None:
            raise UpstreamError("the upstream server is not started")
        await self._writer.send(data)

    async def _cancel(self, rid: int, reason: str) -> None:
        """Tell the upstream a request is abandoned: best effort, never waiting long (shielded, since it
        runs while the caller is being cancelled)."""
        with anyio.move_on_after(1.0, shield=True), contextlib.suppress(OSError, UpstreamError):
            await self._send(wire.notification("notifications/cancelled", {"requestId": rid, "reason": reason}))

    async def _read(self, lines: PipeLines) -> None:
        """The upstream's stdout: answers go to their requests; its own requests get a JSON-RPC answer
        (ping, or method not found: the proxy offers the upstream no client features); notifications
        (progress, logs, list changes) are dropped, as they were under the SDK's client."""
        try:
            while (line := await lines.next_line()) is not None:
                if not line.strip():
                    continue
                message = wire.parse(line)
                if isinstance(message, wire.Response):
                    pending = self._pending.get(message.id) if isinstance(message.id, int) else None
                    if pending is not None and not pending.done():
                        pending.set_result(message)
                elif isinstance(message, wire.Request):
                    answer = wire.result(message.id, {}) if message.method == "ping" else \
                        wire.error(message.id, wire.METHOD_NOT_FOUND, f"Method not found: {message.method[:100]}")
                    assert self._tasks is not None
                    self._tasks.start_soon(self._send_quietly, answer)
                elif isinstance(message, wire.Invalid):
                    log.warning("upstream %s wrote a line that is not a JSON-RPC message (%s); ignored",
                                self.command[0], message.message)
        except OSError as exc:
            log.warning("reading upstream %s failed: %s", self.command[0], exc)
        finally:
            lines.close()  # before its descriptor is closed (left after this task ends)
            self.dead = self.dead or "it exited or closed its connection"
            for pending in self._pending.values():
                if not pending.done():
                    pending.set_result(None)  # gone

    async def _send_quietly(self, data: bytes) -> None:
        with contextlib.suppress(OSError, UpstreamError):
            await self._send(data)

    async def _stop(self) -> None:
        """The MCP way to stop a stdio server: close its stdin, let it exit; then SIGTERM, then SIGKILL
        (its whole process group). Shielded and bounded: runs on every way out, cancellation included."""
        process = self.process
        if process is None:
            return
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(OSError):
                assert process.stdin is not None
                process.stdin.close()
            for signum in (None, signal.SIGTERM, signal.SIGKILL):
                if signum is not None:
                    with contextlib.suppress(OSError):
                        os.killpg(process.pid, signum)
                if await _exited(process, UPSTREAM_EXIT_SECONDS):
                    break
            if self._tasks is not None:
                self._tasks.cancel_scope.cancel()  # a child still holding its stdout must not keep the reader


async def _exited(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether the process exited (and was reaped) within `timeout`, polled without blocking the loop."""
    deadline = anyio.current_time() + timeout
    while process.poll() is None:
        if anyio.current_time() >= deadline:
            return False
        await anyio.sleep(0.01)
    return True


def _timed_out(what: str, timeout: float) -> UpstreamError:
    return UpstreamError(f"upstream {what} did not answer within {timeout:g}s (--upstream-timeout); it may "
                         "still be running there", timed_out=True)


# --- which tools the agent may see --------------------------------------------------------------


#: Commands that launch the real server named by their first non-option argument.
LAUNCHERS = frozenset({"npx", "node", "uvx", "uv", "pipx", "bunx", "bun", "deno", "python", "python3", "docker",
                       "podman", "run", "-y", "--yes"})


def server_name(command: list[str]) -> str:
    """A readable default name for the upstream: `npx -y @scope/server-x /dir` → `server-x`."""
    words = [w for w in command if not w.startswith("-")]
    name = words[0] if words else "mcp"
    for word in words:
        name = word
        if word.rsplit("/", 1)[-1] not in LAUNCHERS:
            break
    return (name.rstrip("/").rsplit("/", 1)[-1].split("@", 1)[0] or "mcp")[:64]


def tool_payload(server: str, tool: str, arguments: dict[str, Any], annotations: dict[str, Any]) -> dict[str, Any]:
    return {"server": server, "tool": tool, "arguments": arguments, "annotations": annotations}


def could_ever_allow(policy: Policy, settings: ProxySettings, tool: types.Tool) -> bool:
    """Whether the policy could let this agent call `tool` at all: the decision for its best case
    (no arguments; arguments only add risk) is anything but deny."""
    annotations = tool.annotations.model_dump(by_alias=True, exclude_none=True, mode="json") \
        if tool.annotations else {}
    payload = tool_payload(settings.server, tool.name, {}, annotations)
    try:
        action = Action(kind=Kind.mcp, environment=settings.environment, target=settings.target, payload=payload)
        classification = classify_action(policy, action)
        decision = decide(policy, settings.agent, action, classification)
    except Exception:
        log.exception("cannot decide tool %s for tools/list; hiding it", tool.name[:100])
        return False
    return decision.value is not DecisionValue.deny


def visible_tools(policy: Policy | None, settings: ProxySettings, tools: list[types.Tool]) -> list[types.Tool]:
    """The tools to list. Task execution is not proxied, so tools are listed without it."""
    shown = [t for t in tools if policy is None or could_ever_allow(policy, settings, t)]
    return [t.model_copy(update={"execution": None, "meta": None}) for t in shown]


# --- one tools/call -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Outcome:
    """The outcome of a forwarded call, reported once the agent has its answer (`Proxy.report_now`, else
    `Proxy.report`)."""

    action_id: str
    status: str
    duration_ms: float
    excerpt: str


def tool_error(text: str) -> dict[str, Any]:
    """A `tools/call` result that tells the agent (and its human) what went wrong, as on the wire."""
    return {"content": [{"type": "text", "text": text}], "isError": True}


def refusal(tool: str, proposal: dict[str, Any], approval_timeout: float) -> str:
    """Why a call was not forwarded, in words an agent (and its human) can act on."""
    return answers.explain(proposal, name=tool, waited=approval_timeout,
                           again=f"call {tool} again with the same arguments")


def _texts(result: dict[str, Any]) -> list[str]:
    return [block["text"] for block in result["content"]
            if block.get("type") == "text" and isinstance(block.get("text"), str)]


def result_excerpt(result: dict[str, Any]) -> str:
    """What the audit log keeps of a result: a success's size only (tool output is the upstream's data,
    not Interlock's to copy), a failure's error text (cut to EXCERPT_CHARS)."""
    if not result.get("isError"):
        size = sum(len(text) for text in _texts(result))
        return f"{len(result['content'])} content block(s), {size} characters of text"
    return " ".join(" ".join(_texts(result)).split())[:EXCERPT_CHARS]


class Proxy:
    """The proxy's behaviour, independent of the transport towards the agent."""

    def __init__(self, settings: ProxySettings, gate: GatePort, upstream: Upstream,
                 policy: Policy | None, *, background: TaskGroup) -> None:
        self.settings = settings
        self.gate = gate
        self.upstream = upstream
        self.policy = policy
        # Outcomes are reported here, after the agent has its answer: the proposal (and any approval)
        # is already on record, so the report is bookkeeping and need not delay the tool call.
        self.background = background

    async def list_tools(self) -> list[types.Tool]:
        try:
            tools = await self.upstream.list_tools()
        except UpstreamError as exc:
            log.warning("tools/list: %s; listing the last known tools", exc)
            tools = list(self.upstream.tools.values())
        return visible_tools(self.policy, self.settings, tools)

    async def list_tools_wire(self) -> list[dict[str, Any]]:
        """`list_tools` as on the wire: each visible tool as the upstream described it, without what the
        proxy does not relay (task execution, `_meta`)."""
        shown = await self.list_tools()
        listed = self.upstream.listed
        return [{k: v for k, v in listed[tool.name].items() if k not in ("execution", "_meta")}
                for tool in shown if tool.name in listed]

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The `tools/call` result for the agent, as on the wire: the upstream's own, or a tool error. Its
        outcome is reported in the background task group, after the answer."""
        result, outcome = await self.call_tool_then_report(name, arguments)
        if outcome is not None and not self.report_now(outcome):
            self.background.start_soon(self.report, outcome)
        return result

    async def call_tool_then_report(self, name: str, arguments: dict[str, Any]) -> tuple[dict[str, Any],
                                                                                          Outcome | None]:
        """`call_tool`, with the outcome left to the caller to report once the agent has its answer (the
        relay does it in the call's own task: one task fewer per call), or None when nothing ran."""
        settings = self.settings
        annotations = await self.upstream.annotations(name)
        payload = tool_payload(settings.server, name, arguments, annotations)
        try:
            # Not cut short by the agent's cancellation: once durable, an allowed proposal is also recorded
            # started, so it must reach `_forward`, which reports a cancelled call (bounded by the audit
            # log's append timeout). A cancellation meanwhile lands at the first wait after it.
            with anyio.CancelScope(shield=True):
                proposal = await self.gate.propose("mcp", settings.environment, payload, target=settings.target,
                                                   mode="advisory")
            if proposal.get("state") == "pending_approval":
                proposal = await self.gate.wait(str(proposal["id"]), settings.approval_timeout)
        except Exception as exc:
            # Fail closed: whatever went wrong, the upstream is not called.
            return tool_error(f"Interlock could not decide {name}, so it was not run: {exc}"), None
        if not answers.may_run(proposal):
            return tool_error(refusal(name, proposal, settings.approval_timeout)), None
        if proposal.get("state") == "approved":
            try:  # allowed at once, it was recorded started with its proposal
                await self.gate.started(str(proposal["id"]))
            except Exception as exc:
                return tool_error(f"Interlock could not record that {name} starts, so it was not run: {exc}"), None
        return await self._forward(str(proposal["id"]), name, arguments)

    async def _forward(self, action_id: str, name: str, arguments: dict[str, Any]) -> tuple[dict[str, Any], Outcome]:
        started = time.perf_counter()
        try:
            result = await self.upstream.call_tool(name, arguments)
            status = "failed" if result.get("isError") else "succeeded"
        except UpstreamError as exc:
            result = tool_error(f"Interlock allowed {name} (action {action_id}) but the upstream failed: {exc}")
            status = "timeout" if exc.timed_out else "error"
        except anyio.get_cancelled_exc_class():
            # The agent cancelled (or left) after the call went upstream: say so; it may have run there.
            # Reported in the background: this task is being cancelled.
            cancelled = _outcome(action_id, "error", started, f"the agent cancelled {name} after Interlock "
                                 "forwarded it; whether the upstream ran it is unknown")
            if not self.report_now(cancelled):
                self.background.start_soon(self.report, cancelled)
            raise
        return result, _outcome(action_id, status, started, result_excerpt(result))

    def report_now(self, outcome: Outcome) -> bool:
        """Report `outcome` without waiting, if the gate can (the in-process gate queues its own calls'
        reports for the audit writer): True when done with it, else it is for `report`."""
        try:
            return self.gate.report_later(outcome.action_id, outcome.status, duration_ms=outcome.duration_ms,
                                          output_excerpt=outcome.excerpt)
        except Exception as exc:
            log.warning("could not report the outcome of %s: %s", outcome.action_id, exc)
            return True

    async def report(self, outcome: Outcome) -> None:
        try:
            with anyio.fail_after(REPORT_TIMEOUT):
                await self.gate.report(outcome.action_id, outcome.status, duration_ms=outcome.duration_ms,
                                       output_excerpt=outcome.excerpt)
        except Exception as exc:
            # It ran: the proposal and its approval are on record; only the outcome is missing.
            log.warning("could not report the outcome of %s: %s", outcome.action_id, exc)


def _outcome(action_id: str, status: str, started: float, excerpt: str) -> Outcome:
    return Outcome(action_id, status, round((time.perf_counter() - started) * 1000, 3), excerpt)


def build_server(proxy: Proxy, name: str = "interlock-mcp-proxy") -> Server[Any]:
    """The SDK's MCP server around the proxy, for streamable HTTP (and a stdio that is not a pipe):
    tools only, each call through the Gateway. Over stdio pipes `relay` serves the agent instead."""

    async def on_list_tools(ctx: ServerRequestContext[Any],
                            params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=await proxy.list_tools())

    async def on_call_tool(ctx: ServerRequestContext[Any],
                           params: types.CallToolRequestParams) -> types.CallToolResult:
        result = await proxy.call_tool(params.name, dict(params.arguments or {}))
        return types.CallToolResult.model_validate(result)

    return Server(name, version="1", instructions=INSTRUCTIONS, on_list_tools=on_list_tools,
                  on_call_tool=on_call_tool)


# --- the agent's stdio, relayed -------------------------------------------------------------------


INSTRUCTIONS = "Interlock gates every tool call of this server."
SERVER_INFO = {"name": "interlock-mcp-proxy", "version": "1"}
#: The handshake revisions the relay answers `initialize` with (the client's own if known, else the
#: newest). The stateless 2026 revision's `server/discover` is answered "method not found", which is how
#: a handshake-era server says so: clients then initialize, as they do with every npm stdio server.
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")


def initialize_result(params: dict[str, Any]) -> dict[str, Any]:
    requested = params.get("protocolVersion")
    version = requested if requested in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[-1]
    return {"protocolVersion": version, "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": SERVER_INFO, "instructions": INSTRUCTIONS}


class Relay:
    """The MCP server the agent talks to over stdio pipes, as plain JSON-RPC: `initialize`, `ping`,
    `tools/list`, `tools/call` (each through the Gateway, concurrently) and `notifications/cancelled`;
    anything else is answered "method not found", anything malformed a JSON-RPC error. A tool result is
    relayed as the upstream wrote it: no SDK models on the way (issue 18.6)."""

    def __init__(self, proxy: Proxy, lines: PipeLines, out: PipeWriter) -> None:
        self.proxy = proxy
        self.lines = lines
        self.out = out
        self.calls: dict[wire.RequestId, anyio.CancelScope] = {}

    async def run(self) -> None:
        """Serve until the agent closes its end; then calls still in flight are cancelled (nobody is left
        to read their answers)."""
        async with anyio.create_task_group() as tg:
            while (line := await self.lines.next_line()) is not None:
                if line.strip():
                    await self._dispatch(wire.parse(line), tg)
            tg.cancel_scope.cancel()

    async def _dispatch(self, message: wire.Message, tg: TaskGroup) -> None:
        if isinstance(message, wire.Request):
            if message.method == "tools/call":
                try:
                    name, arguments = wire.tool_call(message.params)
                except ValueError as exc:
                    await self._send(wire.error(message.id, wire.INVALID_PARAMS, f"Invalid params: {exc}"))
                    return
                scope = self.calls[message.id] = anyio.CancelScope()
                tg.start_soon(self._call, message.id, name, arguments, scope)
            elif message.method == "tools/list":
                tg.start_soon(self._list, message.id)
            elif message.method == "initialize":
                await self._send(wire.result(message.id, initialize_result(message.params)))
            elif message.method == "ping":
                await self._send(wire.result(message.id, {}))
            else:
                await self._send(wire.error(message.id, wire.METHOD_NOT_FOUND,
                                            f"Method not found: {message.method[:100]}"))
        elif isinstance(message, wire.Notification):
            if message.method == "notifications/cancelled":
                cancelled = self.calls.get(message.params.get("requestId"))  # type: ignore[arg-type]
                if cancelled is not None:
                    cancelled.cancel()
        elif isinstance(message, wire.Invalid):
            await self._send(wire.error(message.id, message.code, message.message))
        # A response: the proxy sends the agent no requests, so there is nothing to match it to.

    async def _call(self, rid: wire.RequestId, name: str, arguments: dict[str, Any], scope: anyio.CancelScope) -> None:
        outcome: Outcome | None = None
        try:
            with scope:
                try:
                    result, outcome = await self.proxy.call_tool_then_report(name, arguments)
                except Exception as exc:  # a bug, not a refusal: say so, keep serving (the SDK's server did too)
                    log.exception("tools/call %s failed inside the proxy", name[:100])
                    await self._send(wire.error(rid, wire.INTERNAL_ERROR, f"Internal error: {type(exc).__name__}"))
                    return
                await self._send(wire.result(rid, result))
            # Cancelled by the agent: no answer, as MCP asks.
        finally:
            if self.calls.get(rid) is scope:
                del self.calls[rid]
            # After the answer; it ran upstream, so its outcome is written whatever happens.
            if outcome is not None and not self.proxy.report_now(outcome):
                with anyio.CancelScope(shield=True):
                    await self.proxy.report(outcome)

    async def _list(self, rid: wire.RequestId) -> None:
        try:
            tools = await self.proxy.list_tools_wire()
        except Exception as exc:
            log.exception("tools/list failed inside the proxy")
            await self._send(wire.error(rid, wire.INTERNAL_ERROR, f"Internal error: {type(exc).__name__}"))
            return
        await self._send(wire.result(rid, {"tools": tools}))

    async def _send(self, data: bytes) -> None:
        try:
            await self.out.send(data)
        except OSError as exc:  # the agent is gone; its stdin closing ends the relay
            log.debug("cannot answer the agent: %s", exc)


# --- running it ---------------------------------------------------------------------------------


#: Between SIGTERM and SIGKILL to the upstream's process group when the proxy is stopped.
UPSTREAM_GRACE_SECONDS = 1.0
#: After the upstream is gone, how long the proxy's own orderly unwind may take before it just exits.
UNWIND_SECONDS = 5.0


async def run_proxy(settings: ProxySettings, gate: GatePort, command: list[str], policy: Policy | None, *,
                    listen: tuple[str, int] | None = None, upstream_env: dict[str, str] | None = None) -> None:
    """Start the upstream, then serve the agent until it disconnects (stdio), or the process is
    stopped (SIGTERM, SIGHUP, SIGINT; HTTP: uvicorn's own signal handling). On the way out the upstream
    and its children are stopped (killed if they will not exit, hung or SIGSTOPped ones too): the
    upstream runs in its own session, so nothing else would take it down with the proxy."""
    groups: set[int] = set()
    try:
        async with anyio.create_task_group() as tg:
            if listen is None:
                tg.start_soon(_stop_on_signals, tg.cancel_scope, groups)
            await _serve(settings, gate, command, policy, listen, upstream_env, groups)
            tg.cancel_scope.cancel()
    finally:
        _kill_groups(groups)


async def _stop_on_signals(scope: anyio.CancelScope, groups: set[int]) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP, signal.SIGINT) as received:
        async for _ in received:
            # The upstream first, at once: it may be hung, and the stdio reader (a thread blocked on the
            # agent's pipe) can hold up the orderly unwind. SIGTERM, a moment, then SIGKILL (a stopped
            # process only dies of that).
            _signal_groups(groups, signal.SIGTERM)
            await anyio.sleep(UPSTREAM_GRACE_SECONDS)
            _kill_groups(groups)
            scope.cancel()
            # If the unwind still hangs on the blocked reader, leave anyway: nothing is left to stop.
            watchdog = threading.Timer(UNWIND_SECONDS, os._exit, (128 + signal.SIGTERM,))
            watchdog.daemon = True  # an orderly exit before it fires is not delayed by it
            watchdog.start()
            return


def _signal_groups(groups: set[int], signum: int) -> None:
    for group in groups:
        with contextlib.suppress(OSError):
            os.killpg(group, signum)


def _child_groups() -> set[int]:
    """The process groups of this process's children (each upstream leads its own session)."""
    me, groups = os.getpid(), set()
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == me:
                groups.add(os.getpgid(int(entry.parent.name)))
        except (OSError, ValueError, IndexError):
            continue
    return {g for g in groups if g != os.getpgrp()}


def _kill_groups(groups: set[int]) -> None:
    """Last resort after the graceful stop: SIGKILL whatever is left of the upstream's process groups."""
    _signal_groups(groups, signal.SIGKILL)


async def _serve(settings: ProxySettings, gate: GatePort, command: list[str], policy: Policy | None,
                 listen: tuple[str, int] | None, upstream_env: dict[str, str] | None, groups: set[int]) -> None:
    async with AsyncExitStack() as stack:
        stack.push_async_callback(gate.aclose)
        await gate.open()
        upstream = Upstream(command, timeout=settings.upstream_timeout, env=upstream_env)
        await upstream.start(stack)
        groups.update(_child_groups())
        # The gate's heartbeat lives until the reports below are written (left in reverse order).
        alive = await stack.enter_async_context(anyio.create_task_group())
        alive.start_soon(gate.keep_alive)
        stack.callback(alive.cancel_scope.cancel)
        # Entered after the upstream, so it is left first: pending outcome reports finish before the
        # upstream is stopped and the gate closed.
        background = await stack.enter_async_context(anyio.create_task_group())
        proxy = Proxy(settings, gate, upstream, policy, background=background)
        # A serving process: what it built to get here (modules, the policy, the classifiers, the SDK's
        # models) lives as long as it does, so it is kept out of the cyclic collector's sight, whose every
        # full collection walked all of it (as `interlock serve` does: server.app.settle_heap).
        gc.collect()
        gc.freeze()
        if listen is None:
            with agent_pipes() as pipes:
                if pipes is not None:
                    await Relay(proxy, *pipes).run()
                    return
                # A file or a terminal: the SDK's own (threaded) stdio transport.
                from mcp.server.stdio import stdio_server

                async with stdio_server() as (read_stream, write_stream):
                    server = build_server(proxy)
                    await server.run(read_stream, write_stream, server.create_initialization_options())
            return
        import uvicorn

        host, port = listen
        app = build_server(proxy).streamable_http_app(host=host)
        await uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).serve()
