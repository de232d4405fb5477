"""The server's token cache (server.state.TokenCache), on SQLite and PostgreSQL: a cached lookup is believed
only while no token was revoked since it was read, its token has not expired and the safety TTL has not
passed; concurrent first requests with one secret make one store lookup; a revocation through the CLI in
another process bites on every replica at the next request (SQLite) or within the notification latency
(PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from interlock.gate.clock import system_clock
from interlock.identity import AuthError, create_token, revoke
from interlock.server.app import Settings, create_app
from interlock.server.state import Server
from interlock.testing import LiveServer, eventually, live_server

EXAMPLE = Path(__file__).parent.parent / "examples" / "policy.yaml"
READ = {"kind": "shell", "environment": "production", "payload": {"command": "ls /srv"}, "mode": "advisory"}


@contextmanager
def in_process(store_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, Server]]:
    """The app `interlock serve` runs, in this process, so a test can read the cache's count and move its clocks."""
    app = create_app(Settings(policy=EXAMPLE, db=store_url, key_dir=tmp_path / "keys", allow_missing_secrets=True))
    with TestClient(app) as http:
        yield http, app.state.server


def agent_token(server: Server, expires_in: int | None = None) -> tuple[str, dict[str, str]]:
    token_id, secret = create_token(server.store, "agent", "kiro", expires_in, server.audit, policy=server.policy)
    return token_id, {"Authorization": f"Bearer {secret}"}


def status(http: TestClient, auth: dict[str, str]) -> tuple[int, str | None]:
    answer = http.post("/v1/actions", json=READ, headers=auth)
    return answer.status_code, answer.json()["error"]["code"] if answer.status_code != 200 else None


# (what happens after the token's lookup was cached, expected answer, store lookups it takes)
AFTER_CACHING = [
    ("nothing", None, (200, None), 0),
    ("59 s pass (before the token's expiry and the safety TTL)", 59, (200, None), 0),
    ("the token's expiry passes while it is cached", 61, (401, "token_expired"), 1),
    ("the safety TTL passes (a change that bypassed Interlock would be seen)", "ttl", (200, None), 1),
    ("the token is revoked", "revoke", (401, "token_revoked"), 1),
    ("another token is revoked (the generation moved: a re-read, still valid)", "revoke other", (200, None), 1),
]


@pytest.mark.parametrize(("what", "change", "expected", "lookups"), AFTER_CACHING, ids=[a[0] for a in AFTER_CACHING])
def test_a_cached_lookup_is_believed_until_something_could_have_changed_it(
        store_url: str, tmp_path: Path, what: str, change: object, expected: tuple[int, str | None],
        lookups: int) -> None:
    with in_process(store_url, tmp_path) as (http, server):
        token_id, auth = agent_token(server, expires_in=60)  # expires 60 s from now
        other_id, _ = agent_token(server)
        assert status(http, auth) == (200, None)
        before = server.tokens.lookups
        if isinstance(change, int):
            start = system_clock()
            server.tokens.clock = lambda: start + timedelta(seconds=change)
        elif change == "ttl":
            now = server.tokens.now()
            server.tokens.now = lambda: now + server.tokens.ttl + 1
        elif change == "revoke":
            revoke(server.store, token_id, server.audit)
        elif change == "revoke other":
            revoke(server.store, other_id, server.audit)
        assert status(http, auth) == expected, what
        assert server.tokens.lookups - before == lookups, what


def test_a_lookup_that_raced_a_revocation_is_not_believed(store_url: str, tmp_path: Path) -> None:
    """The generation is read before the store is: a revocation committed after the read (its answer still
    says "valid") moves it, so the entry that read made is not believed by the next request."""
    with in_process(store_url, tmp_path) as (http, server):
        token_id, auth = agent_token(server)
        real = server.tokens.lookup

        def read_then_revoked(secret: str, clock: Any) -> Any:
            found = real(secret, clock)
            revoke(server.store, token_id, server.audit)
            return found

        server.tokens.lookup = read_then_revoked
        assert status(http, auth) == (200, None)  # this request's read came first
        server.tokens.lookup = real
        assert status(http, auth) == (401, "token_revoked")


# (token, revoked before the burst, expected answer to each of the 32, store lookups)
BURSTS = [
    ("valid", False, "kiro", 1),
    ("revoked: failures are shared by the burst, never cached after it", True, "token_revoked", 1),
]


@pytest.mark.parametrize(("what", "revoked", "expected", "lookups"), BURSTS, ids=[b[0] for b in BURSTS])
def test_32_concurrent_first_requests_make_one_store_lookup(store_url: str, tmp_path: Path, what: str,
                                                           revoked: bool, expected: str, lookups: int) -> None:
    with in_process(store_url, tmp_path) as (_http, server):
        token_id, auth = agent_token(server)
        secret = auth["Authorization"].removeprefix("Bearer ")
        if revoked:
            revoke(server.store, token_id, server.audit)

        async def burst() -> list[str]:
            answers = await asyncio.gather(*(server.tokens.principal(secret) for _ in range(32)),
                                           return_exceptions=True)
            return [a.name if not isinstance(a, BaseException) else f"token_{getattr(a, 'reason', a)}"
                    for a in answers]

        assert asyncio.run(burst()) == [expected] * 32, what
        assert server.tokens.lookups == lookups
        # A second event loop (another thread's, another TestClient's) has flights of its own.
        second = asyncio.run(burst())
        assert second == [expected] * 32
        assert server.tokens.lookups == lookups + (1 if revoked else 0)  # a valid answer is cached by now
        if revoked:
            with pytest.raises(AuthError):
                server.tokens.fetch(secret)


def test_a_request_that_goes_away_does_not_cancel_the_shared_lookup(store_url: str, tmp_path: Path) -> None:
    """The first request starts the lookup; its client disconnects (the request is cancelled) while the
    lookup runs: the others still get the principal from that one lookup."""
    with in_process(store_url, tmp_path) as (_http, server):
        _, auth = agent_token(server)
        secret = auth["Authorization"].removeprefix("Bearer ")

        async def one_leaves() -> list[str]:
            first = asyncio.create_task(server.tokens.principal(secret))
            await asyncio.sleep(0)  # the first has started the lookup
            others = [asyncio.create_task(server.tokens.principal(secret)) for _ in range(3)]
            first.cancel()
            return [p.name for p in await asyncio.gather(*others)]

        assert asyncio.run(one_leaves()) == ["kiro"] * 3
        assert server.tokens.lookups == 1


# (cache size, secrets looked up in this order, secrets still believed afterwards)
BOUNDS = [
    (3, "abc", "abc"),
    (2, "abc", "bc"),  # the oldest goes first
    (2, "abac", "ac"),  # a lookup again makes an entry young again
]


@pytest.mark.parametrize(("size", "order", "kept"), BOUNDS)
def test_the_cache_is_bounded_oldest_first(store_url: str, tmp_path: Path, size: int, order: str, kept: str) -> None:
    with in_process(store_url, tmp_path) as (_http, server):
        secrets = {name: agent_token(server)[1]["Authorization"].removeprefix("Bearer ") for name in sorted(set(order))}
        server.tokens.size = size
        for name in order:
            server.tokens.fetch(secrets[name])
        assert "".join(name for name, secret in secrets.items() if server.tokens.get(secret)) == kept


# --- replicas: real `interlock serve` processes, the revocation from the CLI in another process -------------

def cli(*args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    done = subprocess.run([sys.executable, "-m", "interlock.cli", "token", *args], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if "--format" in args else done.stdout


@pytest.fixture
def replicas(store_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    with live_server(EXAMPLE, store_url, tmp_path) as one, live_server(EXAMPLE, store_url, tmp_path) as two:
        yield one, two


# (who holds the token, the request it makes, the answer while valid)
HOLDERS = [
    ("agent", "kiro", "POST", "/v1/actions", READ),
    ("human", "bob", "GET", "/v1/approvals", None),
]


def test_a_cli_revocation_is_refused_by_every_replica(replicas: tuple[LiveServer, LiveServer]) -> None:
    one, two = replicas
    made = {name: cli("create", f"--{kind}", name, "--policy", str(EXAMPLE), "--db", one.store_url, "--key-dir",
                      str(one.key_dir), "--format", "json") for kind, name, *_ in HOLDERS}

    def ask(server: LiveServer, name: str) -> int:
        _, _, method, path, body = next(h for h in HOLDERS if h[1] == name)
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {made[name]['secret']}"},
                          timeout=30) as http:
            answer = http.request(method, path, json=body)
        return answer.status_code if answer.status_code != 401 else answer.json()["error"]["code"]

    for server in (one, two):
        for name in made:
            assert [ask(server, name) for _ in range(3)] == [200] * 3  # cached on both replicas by now
    for name, token in made.items():
        cli("revoke", token["id"], "--db", one.store_url, "--key-dir", str(one.key_dir))
        for server in (one, two):
            if one.store_url.startswith("sqlite"):
                assert ask(server, name) == "token_revoked"  # the very next request: the sidecar is exact
            else:  # the NOTIFY's latency (or the listener's 1 s re-read), never the 60 s safety TTL
                eventually(lambda s=server, n=name: ask(s, n) == "token_revoked", timeout=5, every=0.02,  # type: ignore[misc]
                           what=f"{name}'s revoked token refused by {server.url}")
