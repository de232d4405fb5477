"""The human commands (`approvals`, `freeze`, `thaw`, `guards`, and `token`): their ways to Interlock, once.

`human_session` makes the one client choice (`options.client`): the HTTP API as the token's human,
or the store in-process (`on_store`: the policy, the store and an audit log that appends but never
signs; the server or `audit checkpoint` signs). Over HTTP the API's error shape `{"error": {"code",
"message"}}` becomes `error: [code] message` on stderr, exit 1 for a refusal (4xx: the server said
no, and audited it) and 2 when no answer could be had (unreachable, 5xx, not JSON).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import httpx

from interlock import answers, options
from interlock.console import fail
from interlock.identity import AuthError, Principal, authenticate, require_human
from interlock.options import InProcess
from interlock.policy import Policy, PolicyError, load_policy
from interlock.store import Store, StoreError, open_store

if TYPE_CHECKING:
    from interlock.audit import AuditLog

T = TypeVar("T")

#: Seconds one request may take: the human commands never long-poll.
TIMEOUT = 30.0


class HumanApi:
    """Calls `/v1` as the token's human; every failure ends the command with a located error."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach the server at {self.client.base_url}: {type(exc).__name__}", 2)
        try:
            body = response.json()
        except ValueError:
            fail(f"the server answered HTTP {response.status_code} without JSON", 2)
        if response.status_code >= 400:
            problem = body.get("error", {}) if isinstance(body, dict) else {}
            code = problem.get("code", f"http_{response.status_code}")
            refused(code, problem.get("message", response.reason_phrase), response.status_code)
        return body


def refused(code: str, message: str, status: int | None = None) -> NoReturn:
    """End a human command on an error, over HTTP or in-process alike: `[code] message` on stderr,
    exit 1 or 2 by its status (`answers.exit_code_of`); without a status, the one error-code table's
    (`answers.status_of`, 409 for a gate code it does not list, as the server answers)."""
    fail(f"[{code}] {message}", answers.exit_code_of(answers.status_of(code, 409) if status is None else status))


@contextmanager
def human_api(url: str, token: str) -> Iterator[HumanApi]:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=TIMEOUT, follow_redirects=False) as client:
        yield HumanApi(client)


@contextmanager
def human_session(gateway: str | None, db: str, policy: Path | None, token: str | None, key_dir: Path | None, *,
                  local: Callable[[str, Path, str, Path], AbstractContextManager[T]],
                  remote: Callable[[HumanApi], T]) -> Iterator[T]:
    """`remote(api)` with --gateway, `local(db, policy, token, key_dir)` with --policy (one choice)."""
    if not token:
        fail("no token: set INTERLOCK_TOKEN to your human token (or pass --token)", 2)
    chosen = options.client(gateway=gateway, policy=policy, token=token, db=db, key_dir=key_dir, needs_agent=False)
    if isinstance(chosen, InProcess):
        with local(chosen.db, Path(chosen.policy), token, chosen.key_dir) as found:
            yield found
        return
    with human_api(chosen.url, chosen.token) as api:
        yield remote(api)


@contextmanager
def on_store(db: str, policy_path: Path, key_dir: Path) -> Iterator[tuple[Policy, Store, AuditLog]]:
    """The policy, then `appending_store`; every failure is an error line, exit 2."""
    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        fail(f"policy {policy_path} does not load:\n{exc}", 2)
    with appending_store(db, key_dir) as (store, audit):
        yield policy, store, audit


def signed_in(store: Store, token: str, audit: AuditLog, refusal_event: str | None = None) -> Principal:
    """The token's human, checked against the log; otherwise the command ends (exit 1, the reason on
    stderr). An agent's token is audited as `refusal_event` when the command names one."""
    try:
        return require_human(authenticate(store, token, log=audit, audit=audit))
    except AuthError as exc:
        if refusal_event and exc.reason == "agent_token":
            audit.append(refusal_event, {"code": "agent_token", "token_id": exc.token_id, "error": str(exc)})
        fail(str(exc), 1)


@contextmanager
def appending_store(db: str, key_dir: Path) -> Iterator[tuple[Store, AuditLog]]:
    """The migrated store and an audit log that appends with the entry key and never signs (a
    human's command needs no private key: the server or `audit checkpoint` signs); every failure
    is an error line, exit 2."""
    from interlock.audit import AuditError, AuditLog

    try:
        store = open_store(db)
    except StoreError as exc:
        fail(str(exc), 2)
    try:
        store.migrate()
        try:
            audit = AuditLog(store, key_dir=key_dir, sign=False)
        except AuditError as exc:
            fail(str(exc), 2)
        try:
            yield store, audit
        finally:
            audit.close()
    except StoreError as exc:
        fail(f"store error: {exc}", 2)
    finally:
        store.close()
