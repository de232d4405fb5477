"""How the MCP proxy reaches the Gateway: a remote `interlock serve` or an in-process one.

Both answer the API's JSON (`Proposal.to_json()`), so the proxy does not care which it has. The
remote one is the SDK's `AsyncClient`; the in-process one runs the SDK's `LocalClient` (a
synchronous Gateway on the store) in worker threads, one short step at a time, so a wait for
approval stays cancellable when the MCP client gives up.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.to_thread

from interlock import answers
from interlock.client import AsyncClient, LocalClient
from interlock.client import _outcome_body as outcome_body  # the SDK's own check of a report

#: How often the in-process gate looks for a human's decision while an action waits for approval.
LOCAL_POLL_SECONDS = 0.1


class GatePort(Protocol):
    """The three Gateway calls the proxy makes (the SDK clients' signatures, awaited; a report's answer
    is not read)."""

    async def propose(self, kind: str, environment: str, payload: Mapping[str, Any], *, target: str | None = None,
                      rationale: Any = None, mode: str = "brokered") -> dict[str, Any]: ...

    async def wait(self, action_id: str, timeout: float) -> dict[str, Any]: ...

    async def report(self, action_id: str, status: str, exit_code: int | None = None,
                     duration_ms: float | None = None, output_excerpt: str = "") -> object: ...

    async def aclose(self) -> None: ...


class LocalGate:
    """The Gateway in this process (`--policy`), on the store at `db`."""

    def __init__(self, policy: str | Path, agent: str, *, db: str, key_dir: str | Path) -> None:
        self.client = LocalClient(policy, agent, db=db, key_dir=key_dir)

    async def propose(self, kind: str, environment: str, payload: Mapping[str, Any], *, target: str | None = None,
                      rationale: Any = None, mode: str = "brokered") -> dict[str, Any]:
        def run() -> dict[str, Any]:
            return self.client.propose(kind, environment, payload, target=target, rationale=rationale, mode=mode)

        return await anyio.to_thread.run_sync(run)

    async def wait(self, action_id: str, timeout: float) -> dict[str, Any]:
        async def look(_: float) -> dict[str, Any]:
            # One step at a time (`wait(…, 0)` advances once), so cancelling this coroutine stops the wait.
            return await anyio.to_thread.run_sync(self.client.wait, action_id, 0.0)

        return dict(await answers.wait_async(look, timeout, pause=LOCAL_POLL_SECONDS, sleep=anyio.sleep))

    async def report(self, action_id: str, status: str, exit_code: int | None = None,
                     duration_ms: float | None = None, output_excerpt: str = "") -> None:
        """The outcome's audit entry; nothing is read back (the proxy reports after every call, in the
        background, and the action's state would be one more read of the log it competes with)."""
        outcome = outcome_body(status, exit_code, duration_ms, output_excerpt)
        gateway = self.client.runtime.gateway
        await anyio.to_thread.run_sync(gateway.record_report, action_id, self.client.agent, outcome)

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.client.close)


def remote_gate(url: str, token: str, *, timeout: float = 30.0) -> GatePort:
    """A remote `interlock serve` (`--gateway URL`), as the agent whose token this is."""
    return AsyncClient(url, token, timeout=timeout)
