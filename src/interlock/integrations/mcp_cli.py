"""`interlock mcp-proxy`: put Interlock between an agent and an MCP server.

    interlock mcp-proxy --agent kiro --env staging --policy policy.yaml -- \\
        npx -y @modelcontextprotocol/server-filesystem /srv/data

The agent's MCP client starts this command instead of the server; the proxy starts the server.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import anyio
import typer

from interlock import options
from interlock.vocabulary import DEFAULT_DB, DEFAULT_WAIT

#: Mount with these so `-- UPSTREAM…` and the upstream's own options reach the command untouched.
CONTEXT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _fail(message: str, code: int = 2) -> typer.Exit:
    print(f"interlock mcp-proxy: {message}", file=sys.stderr)
    return typer.Exit(code)


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _fail(f"--listen {value!r}: write HOST:PORT, e.g. 127.0.0.1:8765")
    return host.strip("[]"), int(port)


@options.shared
def mcp_proxy(
    ctx: typer.Context,
    upstream: Annotated[list[str] | None, typer.Argument(
        help="the upstream MCP server's command, after `--`", show_default=False)] = None,
    agent: options.Agent = None,
    env: options.Env = None,
    target: Annotated[str | None, typer.Option(
        "--target", help="the policy's mcp target for this server (its mcp_tools risks are trusted)")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="the server's name in each action (default: the target, else the command's name)")] = None,
    gateway: options.Gateway = None,
    token: options.Token = None,
    policy: options.PolicyFile = None,
    db: options.Db = DEFAULT_DB,
    key_dir: options.KeyDir = None,
    wait: options.Wait = DEFAULT_WAIT,
    upstream_timeout: Annotated[float, typer.Option(
        "--upstream-timeout", min=0.1, help="seconds any one upstream call may take")] = 60.0,
    listen: Annotated[str | None, typer.Option(
        "--listen", help="serve streamable HTTP on HOST:PORT instead of stdio")] = None,
) -> None:
    """Proxy an MCP server: every tool call goes through Interlock first.

    With --gateway the calls go to a running `interlock serve` (the agent's token in INTERLOCK_TOKEN),
    and a --policy given as well only filters tools/list; with --policy alone the Gateway runs here."""
    from interlock.integrations.mcp_gate import GatePort, LocalGate, remote_gate
    from interlock.integrations.mcp_proxy import ProxySettings, UpstreamError, run_proxy, server_name
    from interlock.policy import Policy, PolicyError, load_policy

    command = [*(upstream or []), *ctx.args]
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise _fail("give the upstream server's command after `--`, e.g. "
                    "`-- npx -y @modelcontextprotocol/server-filesystem /srv/data`")
    if not agent or not env:
        raise _fail("--agent and --env are required")
    # The one client choice's rule: a value typed on the command line beats the environment's.
    if gateway and policy and options.on_command_line("gateway") != options.on_command_line("policy"):
        gateway, policy = (gateway, None) if options.on_command_line("gateway") else (None, policy)
    if gateway is None and policy is None:
        raise _fail("give --gateway URL (a remote `interlock serve`) or --policy FILE (in-process)")
    if gateway is not None and not token:
        raise _fail("--gateway needs the agent's token: set INTERLOCK_TOKEN")
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="interlock mcp-proxy: %(message)s")

    loaded: Policy | None = None
    gate: GatePort
    try:
        if gateway is not None:
            if policy is not None:
                loaded = load_policy(policy)
            gate = remote_gate(gateway, token or "")
        else:
            assert policy is not None
            local = LocalGate(policy, agent, db=db, key_dir=options.key_dir_for(db, key_dir))
            loaded = local.client.runtime.policy
            gate = local
    except PolicyError as exc:
        raise _fail(f"policy {policy}: {exc}") from exc
    except Exception as exc:
        raise _fail(f"cannot start: {exc}") from exc

    try:
        upstream_env = _target_env(loaded, target)
    except Exception as exc:
        raise _fail(str(exc)) from exc
    settings = ProxySettings(agent=agent, environment=env, target=target,
                             server=name or target or server_name(command),
                             approval_timeout=wait, upstream_timeout=upstream_timeout)
    address = _parse_listen(listen) if listen else None
    if address is not None and address[0] not in LOOPBACK:
        logging.warning("--listen %s: the HTTP endpoint has no authentication of its own; anyone who reaches it "
                        "calls tools as agent %s. Keep it on loopback or behind an authenticating proxy.",
                        listen, agent)
    try:
        anyio.run(lambda: run_proxy(settings, gate, command, loaded, listen=address, upstream_env=upstream_env),
                  backend_options=_loop_options())
    except UpstreamError as exc:
        raise _fail(str(exc), 1) from exc
    except KeyboardInterrupt:
        pass


def _loop_options() -> dict[str, bool]:
    """uvloop when it is installed (with uvicorn[standard], as `interlock serve` runs on it): the event loop's
    own work per relayed message (wake-ups, callbacks, timers) in C instead of asyncio's Python."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


def _target_env(policy: object, target: str | None) -> dict[str, str] | None:
    """The target's `env` credential references, resolved here so the agent never holds them."""
    from interlock.policy import Policy
    from interlock.secrets import resolve

    if not isinstance(policy, Policy) or target is None:
        return None
    found = policy.doc.targets.get(target)
    if found is None:
        raise ValueError(f"--target {target!r} is not in the policy's targets")
    return {key: resolve(ref) for key, ref in found.env.items()} or None


#: `python -m interlock.integrations.mcp_cli …` runs the command alone (until `interlock` mounts it).
standalone = typer.Typer(add_completion=False)
standalone.command("mcp-proxy", context_settings=CONTEXT_SETTINGS)(mcp_proxy)

if __name__ == "__main__":
    standalone(prog_name="interlock mcp-proxy")
