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

import contextlib
import logging
import os
import signal
import threading
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anyio
import mcp.types as types
from anyio import AsyncFile
from anyio.abc import TaskGroup
from mcp import Client, MCPError, StdioServerParameters
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT

from interlock import answers
from interlock.integrations.mcp_gate import GatePort
from interlock.integrations.mcp_pipes import agent_pipes
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


class Upstream:
    """The real MCP server: spawned by the proxy, reached only through it, every call bounded."""

    def __init__(self, command: list[str], *, timeout: float, env: dict[str, str] | None = None,
                 cwd: str | None = None) -> None:
        if not command:
            raise UpstreamError("no upstream command: give it after `--`, e.g. `-- npx -y "
                                "@modelcontextprotocol/server-filesystem /srv/data`")
        self.command = command
        self.timeout = timeout
        self.params = StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=cwd)
        self.client: Client | None = None
        self.dead: str | None = None  # why the upstream is unusable, once it is
        self.tools: dict[str, types.Tool] = {}

    async def start(self, stack: AsyncExitStack) -> None:
        """Spawn and initialize the upstream; it is stopped (and killed if need be) when `stack` closes."""
        client = Client(self.params, cache=None, read_timeout_seconds=self.timeout)
        try:
            # Not under fail_after: the client's task group must outlive this call. Its requests
            # (initialize included) are bounded by read_timeout_seconds instead.
            self.client = await stack.enter_async_context(client)
            await self.list_tools()
        except OSError as exc:
            raise UpstreamError(f"cannot start upstream {self.command[0]}: {exc}") from exc
        except UpstreamError:
            raise
        except Exception as exc:
            cause = _leaf(exc)
            raise UpstreamError(f"upstream {self.command[0]} failed to initialize: {type(cause).__name__}: "
                                f"{str(cause)[:500]} (does the command start an MCP server on stdio?)") from exc

    async def list_tools(self) -> list[types.Tool]:
        """Every tool of the upstream (all pages); the last good listing stays known for annotations."""
        tools: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            page = await self._bounded("tools/list", lambda c=cursor: self._client().list_tools(cursor=c))
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        self.tools = {tool.name: tool for tool in tools}
        return tools

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        result: types.CallToolResult = await self._bounded(f"tools/call {name}", lambda: self._client().call_tool(
            name, arguments, read_timeout_seconds=self.timeout))
        return result

    async def annotations(self, name: str) -> dict[str, Any]:
        """The upstream's annotations for a tool, as on the wire (`readOnlyHint` …); {} when unknown."""
        if name not in self.tools and self.dead is None:
            # Without hints the call is judged by its name and arguments alone (hints only raise risk).
            with contextlib.suppress(UpstreamError):
                await self.list_tools()
        tool = self.tools.get(name)
        if tool is None or tool.annotations is None:
            return {}
        return tool.annotations.model_dump(by_alias=True, exclude_none=True, mode="json")

    def _client(self) -> Client:
        if self.client is None:
            raise UpstreamError("the upstream server is not started")
        return self.client

    async def _bounded(self, what: str, call: Any) -> Any:
        if self.dead is not None:
            raise UpstreamError(f"the upstream server is unusable ({self.dead}); restart the proxy")
        try:
            with anyio.fail_after(self.timeout):
                return await call()
        except TimeoutError as exc:
            raise _timed_out(what, self.timeout) from exc
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise _timed_out(what, self.timeout) from exc
            if exc.code == CONNECTION_CLOSED:
                self.dead = f"it exited or closed its connection during {what}"
                raise UpstreamError(f"upstream server gone during {what}: {exc.message}; restart the proxy") \
                    from exc
            raise UpstreamError(f"upstream {what} failed: {exc.message}") from exc
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            self.dead = f"its connection broke during {what}"
            raise UpstreamError(f"upstream server gone during {what}; restart the proxy") from exc
        except Exception as exc:
            raise UpstreamError(f"upstream {what} failed: {type(exc).__name__}: {exc}") from exc


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside task-group wrappers (ExceptionGroup of ExceptionGroup of …)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


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


def tool_error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def refusal(tool: str, proposal: dict[str, Any], approval_timeout: float) -> str:
    """Why a call was not forwarded, in words an agent (and its human) can act on."""
    return answers.explain(proposal, name=tool, waited=approval_timeout,
                           again=f"call {tool} again with the same arguments")


def result_excerpt(result: types.CallToolResult) -> str:
    if not result.is_error:
        size = sum(len(block.text) for block in result.content if isinstance(block, types.TextContent))
        return f"{len(result.content)} content block(s), {size} characters of text"
    text = " ".join(block.text for block in result.content if isinstance(block, types.TextContent))
    return " ".join(text.split())[:EXCERPT_CHARS]


class Proxy:
    """The proxy's behaviour, independent of the transport towards the agent."""

    def __init__(self, settings: ProxySettings, gate: GatePort, upstream: Upstream,
                 policy: Policy | None, *, background: TaskGroup | None = None) -> None:
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

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        settings = self.settings
        annotations = await self.upstream.annotations(name)
        payload = tool_payload(settings.server, name, arguments, annotations)
        try:
            proposal = await self.gate.propose("mcp", settings.environment, payload, target=settings.target,
                                               mode="advisory")
            if proposal.get("state") == "pending_approval":
                proposal = await self.gate.wait(str(proposal["id"]), settings.approval_timeout)
        except Exception as exc:
            # Fail closed: whatever went wrong, the upstream is not called.
            return tool_error(f"Interlock could not decide {name}, so it was not run: {exc}")
        if not answers.may_run(proposal):
            return tool_error(refusal(name, proposal, settings.approval_timeout))
        return await self._forward(str(proposal["id"]), name, arguments)

    async def _forward(self, action_id: str, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        started = time.perf_counter()
        try:
            result = await self.upstream.call_tool(name, arguments)
            status = "failed" if result.is_error else "succeeded"
        except UpstreamError as exc:
            result = tool_error(f"Interlock allowed {name} (action {action_id}) but the upstream failed: {exc}")
            status = "timeout" if exc.timed_out else "error"
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        if self.background is None:
            await self._report(action_id, status, duration_ms, result_excerpt(result))
        else:
            self.background.start_soon(self._report, action_id, status, duration_ms, result_excerpt(result))
        return result

    async def _report(self, action_id: str, status: str, duration_ms: float, excerpt: str) -> None:
        try:
            with anyio.fail_after(REPORT_TIMEOUT):
                await self.gate.report(action_id, status, duration_ms=duration_ms, output_excerpt=excerpt)
        except Exception as exc:
            # It ran: the proposal and its approval are on record; only the outcome is missing.
            log.warning("could not report the outcome of %s: %s", action_id, exc)


def build_server(proxy: Proxy, name: str = "interlock-mcp-proxy") -> Server[Any]:
    """The MCP server the agent talks to: tools only, each call through the Gateway."""

    async def on_list_tools(ctx: ServerRequestContext[Any],
                            params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=await proxy.list_tools())

    async def on_call_tool(ctx: ServerRequestContext[Any],
                           params: types.CallToolRequestParams) -> types.CallToolResult:
        return await proxy.call_tool(params.name, dict(params.arguments or {}))

    return Server(name, version="1", instructions="Interlock gates every tool call of this server.",
                  on_list_tools=on_list_tools, on_call_tool=on_call_tool)


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
        upstream = Upstream(command, timeout=settings.upstream_timeout, env=upstream_env)
        await upstream.start(stack)
        groups.update(_child_groups())
        # Entered after the upstream, so it is left first: pending outcome reports finish before the
        # upstream is stopped and the gate closed.
        background = await stack.enter_async_context(anyio.create_task_group())
        server = build_server(Proxy(settings, gate, upstream, policy, background=background))
        if listen is None:
            from mcp.server.stdio import stdio_server

            with agent_pipes() as pipes:
                # Our pipes are duck-typed files: the SDK only iterates lines and writes and flushes text.
                wire = (None, None) if pipes is None else cast("tuple[AsyncFile[str], AsyncFile[str]]", pipes)
                async with stdio_server(*wire) as (read_stream, write_stream):
                    await server.run(read_stream, write_stream, server.create_initialization_options())
            return
        import uvicorn

        host, port = listen
        app = server.streamable_http_app(host=host)
        await uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).serve()
