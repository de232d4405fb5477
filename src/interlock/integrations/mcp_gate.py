"""How the MCP proxy reaches the Gateway: a remote `interlock serve` or an in-process one.

Both answer the API's JSON (`Proposal.to_json()`), so the proxy does not care which it has. The
remote one is the SDK's `AsyncClient`; the in-process one runs the SDK's `LocalClient` (a
synchronous Gateway on the store) in worker threads, one short step at a time, so a wait for
approval stays cancellable when the MCP client gives up. The outcome report of an allowed call is
never waited for: held for the next proposal (at most HOLD_SECONDS) and queued for the audit writer just
before that proposal's entries, usually in the same durable batch; it is durable before the next
proposal is, since the writer commits in queue order.

The in-process gate also says when a call goes upstream: it holds a heartbeat lease in the store
(`mcp-proxy:<host:pid:…>`, renewed while the proxy lives) and writes `execution.started` naming it for
every call it forwards (with the proposal itself when allowed at once: no extra durable write). A proxy
that dies before reporting (SIGKILL, a crash, the machine) leaves a started action with no outcome; once
its lease expires, the recovery sweep of any `interlock serve` on the store, or of the next proxy to
start on it, marks it `outcome_unknown` (interlock.recovery; docs/integrations.md). A remote proxy
cannot: the server cannot tell when that process dies (its actions stay `allowed` without a report).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.to_thread
import httpx

from interlock import answers
from interlock.client import AsyncClient, Call, LocalClient
from interlock.client import _action_body as action_body  # the SDK's own request body
from interlock.client import _outcome_body as outcome_body  # the SDK's own check of a report
from interlock.client import _raise_for as raise_for  # the SDK's own reading of an answer
from interlock.client import _transport_error as transport_error  # and of no answer
from interlock.integrations.mcp_http import plain_http
from interlock.store.lease import DEFAULT_TTL_SECONDS

if TYPE_CHECKING:
    from interlock.audit.log import Appending
    from interlock.recovery import Heartbeat

log = logging.getLogger("interlock.mcp_proxy")

#: How often the in-process gate looks for a human's decision while an action waits for approval.
LOCAL_POLL_SECONDS = 0.1
_NOT_OWN: Any = object()
#: Proposals decided at once, each in a thread of the in-process gate's own (concurrent tool calls).
PROPOSING_THREADS = 8
#: How long an outcome report is held for the next proposal's durable batch, at most (then queued alone).
HOLD_SECONDS = 0.05
#: On close, how long each queued outcome report may still take to be durable (the writer drains anyway).
REPORT_WAIT_SECONDS = 30.0


class GatePort(Protocol):
    """The three Gateway calls the proxy makes (the SDK clients' signatures, awaited; a report's answer
    is not read)."""

    async def propose(self, kind: str, environment: str, payload: Mapping[str, Any], *, target: str | None = None,
                      rationale: Any = None, mode: str = "brokered") -> dict[str, Any]: ...

    async def wait(self, action_id: str, timeout: float) -> dict[str, Any]: ...

    async def report(self, action_id: str, status: str, exit_code: int | None = None,
                     duration_ms: float | None = None, output_excerpt: str = "") -> object: ...

    def report_later(self, action_id: str, status: str, *, duration_ms: float | None = None,
                     output_excerpt: str = "") -> bool:
        """`report` without waiting, when this gate can (True: queued); False: `report` it instead."""

    async def open(self) -> None:
        """Before serving: the gate's own setup (the in-process one's heartbeat lease)."""

    async def started(self, action_id: str) -> None:
        """An approved action is about to go upstream (an allowed one was recorded started by `propose`)."""

    async def keep_alive(self) -> None:
        """Hold the gate's heartbeat while the proxy serves; returns when cancelled (or at once)."""

    async def aclose(self) -> None: ...


class LocalGate:
    """The Gateway in this process (`--policy`), on the store at `db`."""

    def __init__(self, policy: str | Path, agent: str, *, db: str, key_dir: str | Path) -> None:
        self.client = LocalClient(policy, agent, db=db, key_dir=key_dir)
        self.heartbeat: Heartbeat | None = None
        self.ttl = DEFAULT_TTL_SECONDS
        #: The target of each action this gate proposed that may run (or may once approved), until its
        #: report: what `Gateway.record_own_report` needs instead of reading the action back.
        self.runnable: dict[str, str | None] = {}
        self.awaiting: dict[str, str | None] = {}  # the same, of actions pending approval, until their wait
        #: Outcome reports queued for the audit writer and not yet checked (`collect`), oldest first.
        self.reports: deque[tuple[str, Appending]] = deque()
        #: Outcome reports of its own calls not queued yet (`report_later`): queued just before the next
        #: proposal's entries (usually one durable batch, one commit, for both), else after HOLD_SECONDS.
        self.held: deque[tuple[str, tuple[str, dict[str, Any]]]] = deque()
        self._release: asyncio.TimerHandle | None = None
        self._threads = ThreadPoolExecutor(max_workers=PROPOSING_THREADS, thread_name_prefix="interlock-mcp-gate")

    async def open(self) -> None:
        """Take this proxy's heartbeat lease, then run one recovery sweep round (under the sweep's lease):
        a proxy that died on this store before is found by the next one even with no server running."""
        from interlock.recovery import Heartbeat, replica_job
        from interlock.server.background import RECOVERY_JOB, Timing
        from interlock.store.lease import default_holder

        self.ttl = Timing.from_env().lease
        runtime = self.client.runtime
        self.heartbeat = Heartbeat(runtime.store, replica_job(f"mcp-proxy:{default_holder()}"), ttl=self.ttl)
        await anyio.to_thread.run_sync(self.heartbeat.beat)
        await anyio.to_thread.run_sync(_sweep_once, runtime, RECOVERY_JOB, self.ttl)

    async def propose(self, kind: str, environment: str, payload: Mapping[str, Any], *, target: str | None = None,
                      rationale: Any = None, mode: str = "brokered") -> dict[str, Any]:
        """The Gateway's `propose` in a worker thread, with this proxy's heartbeat as `started` (an allowed
        call's `execution.started` goes in its proposal's batch). Not `propose_async` on the proxy's own
        loop: measured under load, deciding on the loop made calls slower (docs/benchmarks.md, 18.6)."""
        client = self.client
        started = self.heartbeat.job if self.heartbeat is not None and mode == "advisory" else None

        def run() -> dict[str, Any]:
            from interlock.gateway import Mode
            from interlock.model import Action

            # Queued while this thread holds the interpreter to decide: the audit writer, woken by them,
            # usually takes them in the same batch as this proposal's entries, queued right after.
            self.release()
            body = action_body(kind, environment, payload, target, rationale, mode)
            chosen = Mode(body.pop("mode"))
            return client._call(lambda: client.runtime.gateway.propose(
                client.agent, Action.model_validate(body), mode=chosen, started=started))

        try:
            # The gate's own thread pool, not anyio's `to_thread` (its limiter, cancel scope and run-variable
            # lookups cost the loop more per call than the hop itself). Not cancellable: the proxy shields it.
            answer = await asyncio.get_running_loop().run_in_executor(self._threads, run)
        finally:
            # Every outcome queued before this proposal was written in its batch or an earlier one.
            self.collect()
        if answer.get("state") in ("allowed", "approved"):
            self.runnable[str(answer["id"])] = target
        elif answer.get("state") == "pending_approval":
            self.awaiting[str(answer["id"])] = target
        return answer

    async def wait(self, action_id: str, timeout: float) -> dict[str, Any]:
        async def look(_: float) -> dict[str, Any]:
            # One step at a time (`wait(…, 0)` advances once), so cancelling this coroutine stops the wait.
            return await anyio.to_thread.run_sync(self.client.wait, action_id, 0.0)

        target = self.awaiting.pop(action_id, None)
        answer = dict(await answers.wait_async(look, timeout, pause=LOCAL_POLL_SECONDS, sleep=anyio.sleep))
        if answer.get("state") == "approved":
            self.runnable[action_id] = target
        return answer

    async def report(self, action_id: str, status: str, exit_code: int | None = None,
                     duration_ms: float | None = None, output_excerpt: str = "") -> None:
        """The outcome's audit entry; nothing is read back (the proxy reports after every call, and the
        action's state would be one more read of the log it competes with). An action this gate proposed
        and saw allowed is reported without a check of its state (`Gateway.own_report`) and never waited
        for: held for the next proposal's batch (at most HOLD_SECONDS), then queued without a wait
        (`AuditLog.append_later`: no thread, no wake-up). It is durable before this proxy's next proposal
        is (the writer commits in queue order), which `collect` checks; a crash before that leaves the
        action started without an outcome, which the recovery sweep marks outcome_unknown. Any other
        report goes through `record_report`'s checks."""
        outcome = outcome_body(status, exit_code, duration_ms, output_excerpt)
        if self._queue_own(action_id, outcome):
            return
        gateway = self.client.runtime.gateway
        await anyio.to_thread.run_sync(gateway.record_report, action_id, self.client.agent, outcome)

    def report_later(self, action_id: str, status: str, *, duration_ms: float | None = None,
                     output_excerpt: str = "") -> bool:
        """`report` of this gate's own allowed call, queued at once (True); False for any other."""
        return action_id in self.runnable and self._queue_own(
            action_id, outcome_body(status, None, duration_ms, output_excerpt))

    def _queue_own(self, action_id: str, outcome: dict[str, Any]) -> bool:
        """Hold the report of this gate's own allowed call for the next proposal's batch (at most
        HOLD_SECONDS: then it is queued on its own); False when the call is not its own."""
        target = self.runnable.pop(action_id, _NOT_OWN)
        if target is _NOT_OWN:
            return False
        self.held.append((action_id, self.client.runtime.gateway.own_report(action_id, self.client.agent, target,
                                                                             outcome)))
        if self._release is None:
            self._release = asyncio.get_running_loop().call_later(HOLD_SECONDS, self._released)
        return True

    def _released(self) -> None:
        self._release = None
        self.release()

    def release(self) -> None:
        """Queue the held outcome reports for the audit writer (`AuditLog.append_later`), oldest first. Any
        thread: each report is taken from `held` once (deque pops are atomic)."""
        audit = self.client.runtime.audit
        while True:
            try:
                action_id, entry = self.held.popleft()
            except IndexError:
                return
            try:
                self.reports.append((action_id, audit.append_later(*entry)))
            except Exception as exc:
                log.warning("could not report the outcome of %s: %s", action_id, exc)

    def collect(self, *, wait: float = 0.0) -> None:
        """Check the outcomes queued by `report` that the writer has finished with (all of them, waiting up
        to `wait` seconds each, when `wait` is given): a failed one is logged, as a failed report always
        was. It ran; its proposal and `execution.started` are on record, so the recovery sweep marks it
        outcome_unknown once this proxy is gone."""
        reports = self.reports
        while reports and (wait or reports[0][1].done()):
            action_id, queued = reports.popleft()
            try:
                queued.receipt(timeout=wait or None)
            except Exception as exc:
                log.warning("could not report the outcome of %s: %s", action_id, exc)

    async def started(self, action_id: str) -> None:
        if self.heartbeat is None:
            return
        gateway = self.client.runtime.gateway
        await anyio.to_thread.run_sync(gateway.record_started, action_id, self.client.agent, self.heartbeat.job)

    async def keep_alive(self) -> None:
        """Renew the heartbeat a few times per lease time until cancelled. A renewal that fails (store
        unreachable) is logged and retried: if it stays down a whole lease time, this proxy's open calls
        may be swept as outcome_unknown, and their late reports then win (interlock.recovery)."""
        if self.heartbeat is None:
            return
        while True:
            await anyio.sleep(self.ttl / 3)
            self.collect()  # a failed outcome report is logged within a beat even if no call follows
            try:
                if not await anyio.to_thread.run_sync(self.heartbeat.beat):
                    log.warning("could not renew the proxy's heartbeat lease %s", self.heartbeat.job)
            except Exception as exc:
                log.warning("could not renew the proxy's heartbeat lease: %s", exc)

    async def aclose(self) -> None:
        if self._release is not None:
            self._release.cancel()
            self._release = None

        def close() -> None:
            try:
                self.release()
                self.collect(wait=REPORT_WAIT_SECONDS)  # queued outcomes first, then the lease goes
                if self.heartbeat is not None:  # a clean stop: a call left open is swept at once
                    self.heartbeat.stop()
            finally:
                self.client.close()

        await anyio.to_thread.run_sync(close)
        self._threads.shutdown(wait=False)


def _sweep_once(runtime: Any, job: str, ttl: float) -> None:
    """One recovery sweep round, if no one else (a server) holds the sweep's lease right now."""
    from interlock.recovery import Sweeper
    from interlock.store.lease import Lease

    lease = Lease(runtime.store, job, ttl=ttl)
    try:
        if not lease.acquire():
            return  # a server sweeps this store
        try:
            marked = Sweeper(runtime.store, runtime.audit).sweep()
        finally:
            lease.release()
    except Exception as exc:  # bookkeeping of others' calls: never keeps this proxy from serving
        log.warning("the recovery sweep at start failed: %s", exc)
        return
    if marked:
        log.warning("marked %d call(s) of a proxy that died before reporting as outcome_unknown: %s",
                    len(marked), ", ".join(marked))


class RemoteGate(AsyncClient):
    """A remote `interlock serve` (`--gateway URL`), as the agent whose token this is. It records no
    `execution.started` for forwarded calls: the server cannot tell when this process dies. Over plain
    `http://` its requests go on the proxy's own kept-alive connections (`mcp_http`), not httpx's."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        super().__init__(url, token, timeout=timeout)
        self.plain = plain_http(self.url, token)

    async def _send(self, call: Call) -> dict[str, Any]:
        if self.plain is None:
            return await super()._send(call)
        try:
            response = await self.plain.send(call, self.timeout)
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.url) from exc
        return raise_for(response)

    async def aclose(self) -> None:
        if self.plain is not None:
            await self.plain.aclose()
        await super().aclose()

    def report_later(self, action_id: str, status: str, *, duration_ms: float | None = None,
                     output_excerpt: str = "") -> bool:
        return False  # a report is an HTTP request: awaited, after the answer

    async def open(self) -> None:
        return None

    async def started(self, action_id: str) -> None:
        return None

    async def keep_alive(self) -> None:
        return None


def remote_gate(url: str, token: str, *, timeout: float = 30.0) -> GatePort:
    """A remote `interlock serve` (`--gateway URL`), as the agent whose token this is."""
    return RemoteGate(url, token, timeout=timeout)
