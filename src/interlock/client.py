"""The Python SDK: propose actions to Interlock from agent code, over HTTP or in-process.

- `Client` / `AsyncClient` talk to `interlock serve` (the HTTP API of DESIGN.md §5) with an agent token.
- `LocalClient` runs the same Gateway in-process (no server); the agent's name stands in for a token.
- `guarded` turns a tool function of an agent framework into an advisory proposal: the function runs
  only if Interlock allows it (alone or after approval), and its outcome is reported back.

Every method answers the API's JSON (`Proposal.to_json()`), so the three clients are interchangeable.
Errors are typed; `Unavailable` means nothing could be decided and callers must fail closed (not run).
This module imports only httpx at load time, so `import interlock.client` stays cheap for agent hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast

import httpx

from interlock import answers

# Defined in interlock.answers (the one place); still importable from here as before.
from interlock.answers import MAX_POLL_SECONDS as MAX_POLL_SECONDS
from interlock.answers import TERMINAL_STATES as TERMINAL_STATES
from interlock.answers import settled as settled
from interlock.vocabulary import DEFAULT_DB, ENV_TOKEN, ENV_URL, InProcess, Remote

if TYPE_CHECKING:
    from interlock.runtime import Runtime

OUTCOME_STATUSES = ("succeeded", "failed", "error", "timeout")
LOCAL_POLL_SECONDS = 0.05


# --- errors ------------------------------------------------------------------------------------


class InterlockError(Exception):
    """Base of every SDK error. `code` is the API's error code, `status` the HTTP status (0: no answer)."""

    def __init__(self, message: str, *, code: str = "error", status: int = 0, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.status, self.field = code, status, field


class Unauthorized(InterlockError):
    """The token was missing, unknown, revoked or of the wrong kind (401/403)."""


class BadRequest(InterlockError):
    """The request was refused as invalid (4xx): nothing ran. `field` names what was wrong."""


class Unavailable(InterlockError):
    """No decision could be had (network error, timeout, 5xx, store down): fail closed, do not run."""


class Denied(InterlockError):
    """The action may not run: the policy denied it, it needs a sandbox run first, or a human rejected it."""

    def __init__(self, reasons: list[str], rules: list[str], *, action_id: str | None = None,
                 state: str = "denied", message: str | None = None) -> None:
        why = "; ".join(reasons) or "no reason given"
        super().__init__(message or f"Interlock {state} the action: {why}", code=state)
        self.reasons, self.rules, self.action_id, self.state = reasons, rules, action_id, state


class ApprovalPending(InterlockError):
    """Approval was still pending when the wait ended. Retry the SAME call later: once approved, the
    grant matches its fingerprint and the retry runs at once."""

    def __init__(self, request_id: str, still_needs: Any, *, action_id: str | None = None,
                 message: str | None = None) -> None:
        super().__init__(message or f"approval request {request_id} is still pending ({still_needs}); "
                         "retry the same call once it is approved", code="pending_approval")
        self.request_id, self.still_needs, self.action_id = request_id, still_needs, action_id


class ApprovalExpired(InterlockError):
    """The approval request expired or was invalidated (e.g. a new policy) before it could be used."""

    def __init__(self, request_id: str | None, state: str, *, action_id: str | None = None,
                 message: str | None = None) -> None:
        super().__init__(message or f"approval request {request_id} is {state}: propose the action again", code=state)
        self.request_id, self.state, self.action_id = request_id, state, action_id


# --- the request bodies (shared by all clients) ------------------------------------------------


def _rationale_json(rationale: Any) -> dict[str, Any] | None:
    if rationale is None:
        return None
    if hasattr(rationale, "model_dump"):
        return cast(dict[str, Any], rationale.model_dump())
    if isinstance(rationale, str):
        return {"intent": rationale}
    return dict(rationale)


def _action_body(kind: str, environment: str, payload: Mapping[str, Any], target: str | None,
                 rationale: Any, mode: str) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": str(kind), "environment": environment, "payload": dict(payload),
                            "mode": str(mode)}
    if target is not None:
        body["target"] = target
    if (r := _rationale_json(rationale)) is not None:
        body["rationale"] = r
    return body


def _outcome_body(status: str, exit_code: int | None, duration_ms: float | None,
                  output_excerpt: str) -> dict[str, Any]:
    if status not in OUTCOME_STATUSES:
        raise BadRequest(f"outcome status {status!r} is not one of {', '.join(OUTCOME_STATUSES)}",
                         code="invalid_field", field="status")
    return {"status": status, "exit_code": exit_code, "duration_ms": duration_ms,
            "output_excerpt": output_excerpt[-4096:]}


def _raise_for(response: httpx.Response) -> dict[str, Any]:
    """The JSON of a 2xx answer, else the typed error it stands for."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success:
        if not isinstance(body, dict):
            raise Unavailable(f"{response.request.url.path}: the gateway answered {response.status_code} without "
                              "a JSON object (fail closed)", code="bad_response", status=response.status_code)
        return body
    error = body.get("error", {}) if isinstance(body, dict) else {}
    if not isinstance(error, dict):
        error = {}
    code = str(error.get("code") or f"http_{response.status_code}")
    message = str(error.get("message") or (body or {}).get("reasons") or response.reason_phrase)
    field = error.get("field")
    status = response.status_code
    text = f"{response.request.method} {response.request.url.path}: {status} {code}: {message}"
    if status in (401, 403):
        raise Unauthorized(text, code=code, status=status, field=field)
    if status >= 500 or status in (408, 429):
        raise Unavailable(text + " (fail closed: do not run)", code=code, status=status, field=field)
    raise BadRequest(text, code=code, status=status, field=field)


def _transport_error(exc: Exception, url: str) -> Unavailable:
    return Unavailable(f"cannot reach the Interlock gateway at {url}: {type(exc).__name__}: {exc} "
                       "(fail closed: do not run)", code="unreachable")


# --- HTTP clients: one core that builds the requests, two thin transports that send them --------


@dataclass(frozen=True, slots=True)
class Call:
    """One request to `/v1`, before any transport: what `_Api` builds and a transport sends."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    #: Seconds for this request when it is not the client's default (a long poll waits longer).
    timeout: float | None = None

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of `httpx.Client.request` / `httpx.AsyncClient.request`."""
        args: dict[str, Any] = {"method": self.method, "url": self.path, "json": self.body, "params": self.params}
        if self.timeout is not None:
            args["timeout"] = self.timeout
        return args


Answer = TypeVar("Answer")


class _Api(Generic[Answer]):
    """Every call an agent (or, for rollouts, a human) makes to `interlock serve`, as a `Call`.

    `Answer` is what the transport gives back for one call: the answer's JSON (`Client`) or an
    coroutine of it (`AsyncClient`); each transport implements only `_send`, `wait` and closing."""

    url: str
    timeout: float

    def _send(self, call: Call) -> Answer:
        raise NotImplementedError

    def _headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "User-Agent": "interlock-sdk"}

    def _poll(self, action_id: str, seconds: float) -> Answer:
        """One long poll of the wait loop (`answers.wait`): at most `seconds` on the server."""
        return self._send(Call("POST", f"/v1/actions/{action_id}/wait", params={"timeout": round(seconds, 3)},
                               timeout=seconds + self.timeout))

    def propose(self, kind: str, environment: str, payload: Mapping[str, Any], *, target: str | None = None,
                rationale: Any = None, mode: str = "brokered") -> Answer:
        return self._send(Call("POST", "/v1/actions", _action_body(kind, environment, payload, target, rationale,
                                                                   mode)))

    def get(self, action_id: str) -> Answer:
        return self._send(Call("GET", f"/v1/actions/{action_id}"))

    def report(self, action_id: str, status: str, exit_code: int | None = None, duration_ms: float | None = None,
               output_excerpt: str = "") -> Answer:
        return self._send(Call("POST", f"/v1/actions/{action_id}/outcome",
                               _outcome_body(status, exit_code, duration_ms, output_excerpt)))

    def rehearse(self, action_id: str) -> Answer:
        """Have Interlock run the action on its target's twin; the answer is the rehearsal, with its
        evidence once it ran (it may need approval in the twin's environment: `wait` on its id)."""
        return self._send(Call("POST", f"/v1/actions/{action_id}/rehearse"))

    # --- rollouts (docs/rollouts.md): an agent starts one; humans' tokens approve and command it ---

    def start_rollout(self, rollout: Mapping[str, Any]) -> Answer:
        """Start a rollout (kind, group, payload, rationale, rollback, steps …); the answer is its state."""
        return self._send(Call("POST", "/v1/rollouts", dict(rollout)))

    def rollout(self, rollout_id: str) -> Answer:
        return self._send(Call("GET", f"/v1/rollouts/{rollout_id}"))

    def rollout_command(self, rollout_id: str, command: str, reason: str = "", *,
                        under_freeze: bool = False) -> Answer:
        """approve | deny | promote | pause | resume | abort (a human's token). `under_freeze` (abort): roll
        back past the freezes in force, as a human in the policy's guards.thaw_by (reason required)."""
        body: dict[str, Any] = {"reason": reason}
        if under_freeze:
            body["under_freeze"] = True
        return self._send(Call("POST", f"/v1/rollouts/{rollout_id}/{command}", body))

    def _rollouts_call(self, limit: int) -> Call:
        return Call("GET", "/v1/rollouts", params={"limit": limit})


class Client(_Api[dict[str, Any]]):
    """A synchronous client of `interlock serve`, for one agent token."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=self._headers(token))

    def _send(self, call: Call) -> dict[str, Any]:
        try:
            response = self._http.request(**call.arguments())
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.url) from exc
        return _raise_for(response)

    def wait(self, action_id: str, timeout: float) -> dict[str, Any]:
        """Long-poll until the action is settled or `timeout` seconds passed; answers its last state."""
        return dict(answers.wait(functools.partial(self._poll, action_id), timeout))

    def rollouts(self, limit: int = 100) -> list[dict[str, Any]]:
        return list(self._send(self._rollouts_call(limit))["rollouts"])

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Api[Coroutine[Any, Any, dict[str, Any]]]):
    """The asynchronous twin of `Client` (same methods, awaited)."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, headers=self._headers(token))

    async def _send(self, call: Call) -> dict[str, Any]:
        try:
            response = await self._http.request(**call.arguments())
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.url) from exc
        return _raise_for(response)

    async def wait(self, action_id: str, timeout: float) -> dict[str, Any]:
        """Long-poll until the action is settled or `timeout` seconds passed; answers its last state."""
        return dict(await answers.wait_async(functools.partial(self._poll, action_id), timeout))

    async def rollouts(self, limit: int = 100) -> list[dict[str, Any]]:
        return list((await self._send(self._rollouts_call(limit)))["rollouts"])

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# --- in-process client -------------------------------------------------------------------------


class LocalClient:
    """The same methods over an in-process Gateway (`interlock.runtime.Runtime`), without a server.

    There is no token, so the agent's name is given; use it where the agent cannot reach a server
    (CI, a single-user laptop). Approvals still come from humans (`interlock approvals approve`) on
    the same store."""

    def __init__(self, policy: str | Path | Any, agent: str, *, db: str = DEFAULT_DB,
                 key_dir: str | Path | None = None) -> None:
        from interlock.runtime import Runtime

        self.agent = agent
        try:
            self.runtime: Runtime = Runtime(policy, db, Path(key_dir) if key_dir else None)
        except Exception as exc:
            raise Unavailable(f"cannot start the in-process gateway (policy {policy}, db {db}): "
                              f"{type(exc).__name__}: {exc} (fail closed: do not run)", code="unavailable") from exc
        if agent not in self.runtime.policy.doc.agents:
            self.runtime.close()
            raise Unauthorized(f"agent {agent!r} is not in the policy's agents: add it there or use another name",
                               code="unknown_agent", status=403)

    @classmethod
    def chosen(cls, choice: InProcess) -> LocalClient:
        """The client for a command's in-process choice (`--policy`, `vocabulary.choose_client`)."""
        return cls(choice.policy, str(choice.agent), db=choice.db, key_dir=choice.key_dir)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        from pydantic import ValidationError

        from interlock.gateway import GatewayError, GatewayUnavailable
        from interlock.store import StoreError

        try:
            return cast(dict[str, Any], fn(*args, **kwargs).to_json())
        except GatewayError as exc:
            raise BadRequest(str(exc), code=exc.code, status=answers.status_of(exc.code, 422),
                             field=exc.field) from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise BadRequest(f"{where}: {first['msg']}", code="invalid_field", status=422, field=where) from exc
        except (GatewayUnavailable, StoreError) as exc:
            raise Unavailable(f"denied: {exc} (fail closed: nothing ran)", code="unavailable", status=503) from exc

    def propose(self, kind: str, environment: str, payload: Mapping[str, Any], *, target: str | None = None,
                rationale: Any = None, mode: str = "brokered") -> dict[str, Any]:
        from interlock.gateway import Mode
        from interlock.model import Action

        body = _action_body(kind, environment, payload, target, rationale, mode)

        def run() -> Any:
            chosen = Mode(body.pop("mode"))
            return self.runtime.gateway.propose(self.agent, Action.model_validate(body), mode=chosen)

        return self._call(run)

    def get(self, action_id: str) -> dict[str, Any]:
        return self._call(self.runtime.gateway.status, action_id, agent=self.agent)

    def wait(self, action_id: str, timeout: float) -> dict[str, Any]:
        def look(_: float) -> dict[str, Any]:
            return self._call(self.runtime.gateway.advance, action_id, self.agent)

        return dict(answers.wait(look, timeout, pause=LOCAL_POLL_SECONDS))

    def report(self, action_id: str, status: str, exit_code: int | None = None, duration_ms: float | None = None,
               output_excerpt: str = "") -> dict[str, Any]:
        outcome = _outcome_body(status, exit_code, duration_ms, output_excerpt)
        return self._call(self.runtime.gateway.report, action_id, self.agent, outcome)

    def rehearse(self, action_id: str) -> dict[str, Any]:
        return self._call(self.runtime.gateway.rehearse, action_id, self.agent)

    def close(self) -> None:
        self.runtime.close()

    def __enter__(self) -> LocalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def client_for(choice: Remote | InProcess, *, timeout: float = 30.0) -> Client | LocalClient:
    """The SDK client for a command's one client choice: the `--gateway` URL with its token, or the
    in-process gateway on `--policy` (`vocabulary.choose_client`)."""
    if isinstance(choice, Remote):
        return Client(choice.url, choice.token, timeout=timeout)
    return LocalClient.chosen(choice)


# --- @guarded ----------------------------------------------------------------------------------

P = ParamSpec("P")
R = TypeVar("R")
SyncClient = Client | LocalClient


def client_from_env() -> Client:
    """The client `@guarded` uses when none is given: INTERLOCK_URL and INTERLOCK_TOKEN."""
    import os

    url, token = os.environ.get(ENV_URL), os.environ.get(ENV_TOKEN)
    if not url or not token:
        raise Unavailable("no Interlock client: pass client=… to @guarded or set INTERLOCK_URL and INTERLOCK_TOKEN "
                          "(fail closed: the tool did not run)", code="no_client")
    return Client(url, token)


def _json_value(name: str, value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        # The approval binds to the exact payload; a value we cannot show exactly is not proposed.
        raise BadRequest(f"argument {name!r} ({type(value).__name__}) is not JSON: Interlock cannot show or "
                         "fingerprint it, so the tool did not run", code="invalid_payload", field=name) from exc


def build_payload(kind: str, fn: Callable[..., Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(kind, payload) for one call of a guarded function."""
    bound = inspect.signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    if kind == "shell":
        return "shell", {"command": str(arguments["command"])}
    if kind == "sql":
        return "sql", {"sql": str(arguments["sql"] if "sql" in arguments else arguments["query"])}
    shown = {name: _json_value(name, value) for name, value in arguments.items() if name not in ("self", "cls")}
    return "mcp", {"server": fn.__module__, "tool": fn.__name__, "arguments": shown}


def _check_signature(kind: str, fn: Callable[..., Any]) -> None:
    params = inspect.signature(fn).parameters
    if kind == "shell" and "command" not in params:
        raise TypeError(f"@guarded(kind='shell') needs a `command` parameter on {fn.__qualname__}")
    if kind == "sql" and not ({"sql", "query"} & set(params)):
        raise TypeError(f"@guarded(kind='sql') needs a `sql` or `query` parameter on {fn.__qualname__}")


def _raise_unless_may_run(body: dict[str, Any], waited: float | None = None) -> None:
    """Raise unless the (settled) proposal lets the function run now; the error's message is
    `answers.explain`'s."""
    state = body.get("state")
    approval = body.get("approval") or {}
    if answers.may_run(body):
        return
    text = answers.explain(body, waited=waited, again="retry the same call")
    if state == "pending_approval":
        raise ApprovalPending(approval.get("id", "?"), approval.get("still_needs"), action_id=body.get("id"),
                              message=text)
    if state in ("expired", "invalidated"):
        raise ApprovalExpired(approval.get("id"), str(state), action_id=body.get("id"), message=text)
    reasons = list(body.get("reasons") or [])
    if state == "rejected" and approval.get("reason"):
        reasons.append(f"rejected: {approval['reason']}")
    if not reasons:
        reasons = [f"the action is {state}: only allowed or approved actions run here"]
    if answers.ran(body):
        text += " It is not run again here: only allowed or approved (advisory) actions run in the caller."
    raise Denied(reasons, list(body.get("rules") or []), action_id=body.get("id"), state=str(state or "denied"),
                 message=text)


def _outcome_of(error: BaseException | None) -> tuple[str, str]:
    if error is None:
        return "succeeded", ""
    return "failed", f"{type(error).__name__}: {error}"[:4096]


def guarded(*, kind: str = "mcp", env: str, target: str | None = None,
            client: SyncClient | AsyncClient | None = None, wait: float = 300,
            rationale: Any = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Gate a tool function: each call is proposed (advisory) and runs only once allowed or approved.

    `kind="shell"` proposes its `command` argument, `kind="sql"` its `sql`/`query` argument, anything
    else an MCP-style `{"server": module, "tool": name, "arguments": {...}}`. Raises `Denied`,
    `ApprovalPending` (after `wait` seconds), `ApprovalExpired`, or `Unavailable` (fail closed).
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        _check_signature(kind, fn)
        if inspect.iscoroutinefunction(fn):
            return cast(Callable[P, R], _guard_async(fn, kind, env, target, client, wait, rationale))
        if isinstance(client, AsyncClient):
            raise TypeError(f"{fn.__qualname__} is synchronous: give @guarded a Client or LocalClient, "
                            "not an AsyncClient")
        return _guard_sync(fn, kind, env, target, client, wait, rationale)

    return decorate


def _guard_sync(fn: Callable[P, R], kind: str, env: str, target: str | None, client: SyncClient | None,
                wait: float, rationale: Any) -> Callable[P, R]:
    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        if client is not None:
            return guarded_call(client, *args, **kwargs)
        with client_from_env() as own:
            return guarded_call(own, *args, **kwargs)

    def guarded_call(sdk: SyncClient, *args: P.args, **kwargs: P.kwargs) -> R:
        real_kind, payload = build_payload(kind, fn, args, kwargs)
        body = sdk.propose(real_kind, env, payload, target=target, rationale=rationale, mode="advisory")
        if body.get("state") == "pending_approval":
            body = sdk.wait(body["id"], wait)
        _raise_unless_may_run(body, wait)
        start = time.monotonic()
        error: BaseException | None = None
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            status, excerpt = _outcome_of(error)
            # It ran; a lost report shows in the audit timeline as an allowed action without outcome.
            with contextlib.suppress(InterlockError):
                sdk.report(body["id"], status, duration_ms=(time.monotonic() - start) * 1000,
                           output_excerpt=excerpt)

    return call


def _guard_async(fn: Callable[P, Awaitable[Any]], kind: str, env: str, target: str | None,
                 client: SyncClient | AsyncClient | None, wait: float, rationale: Any) -> Callable[P, Awaitable[Any]]:
    async def ask(sdk: SyncClient | AsyncClient, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        bound = getattr(sdk, method)
        if isinstance(sdk, AsyncClient):
            return cast(dict[str, Any], await bound(*args, **kwargs))
        return cast(dict[str, Any], await asyncio.to_thread(bound, *args, **kwargs))

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> Any:
        if client is not None:
            return await guarded_call(client, *args, **kwargs)
        with client_from_env() as own:
            return await guarded_call(own, *args, **kwargs)

    async def guarded_call(sdk: SyncClient | AsyncClient, *args: P.args, **kwargs: P.kwargs) -> Any:
        real_kind, payload = build_payload(kind, fn, args, kwargs)
        body = await ask(sdk, "propose", real_kind, env, payload, target=target, rationale=rationale,
                         mode="advisory")
        if body.get("state") == "pending_approval":
            body = await ask(sdk, "wait", body["id"], wait)
        _raise_unless_may_run(body, wait)
        start = time.monotonic()
        error: BaseException | None = None
        try:
            return await fn(*args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            status, excerpt = _outcome_of(error)
            # It ran; a lost report shows in the audit timeline as an allowed action without outcome.
            with contextlib.suppress(InterlockError):
                await ask(sdk, "report", body["id"], status, duration_ms=(time.monotonic() - start) * 1000,
                          output_excerpt=excerpt)

    return call


def sql_rows(answer: Mapping[str, Any], statement: int | None = None) -> list[dict[str, Any]]:
    """The rows a brokered sql action returned, as dicts (column → JSON value), from the answer of the
    call that ran it (`propose` or `wait`). `statement`: its index in the payload; by default the last
    statement that returned rows. Rows are not kept in the audit log, so a later `get` has only counts.

        answer = client.propose("sql", "production", {"sql": "SELECT id, owner FROM accounts"}, target="db")
        for row in sql_rows(answer): print(row["id"], row["owner"])
    """
    statements = (answer.get("result") or {}).get("statements")
    if not statements or all("rows" not in st for st in statements):
        raise InterlockError("this answer has no sql result: rows come only in the answer of the call that ran "
                             "the action (propose, or the wait that saw it run)", code="no_rows")
    with_rows = [st for st in statements if st.get("rows") is not None]
    chosen = statements[statement] if statement is not None else (with_rows[-1] if with_rows else None)
    if chosen is None or chosen.get("rows") is None:
        raise InterlockError("that statement returned no rows (it wrote, or the rows were not kept)", code="no_rows")
    names = [c["name"] for c in chosen.get("columns") or []]
    return [dict(zip(names, row, strict=False)) for row in chosen["rows"]]
