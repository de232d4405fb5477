"""The app state: everything one server process serves with (store, policy, audit log, gate, gateway,
metrics, token cache), built once by `create_app` and read by routes through `request.app.state.server`."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

import anyio
from prometheus_client import CollectorRegistry, Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from interlock.credentials import Missing, references, unresolved
from interlock.gate.clock import Clock, system_clock
from interlock.gate.events import GateAudit
from interlock.identity import Principal, authenticate_until, secret_hash
from interlock.policy import Policy, load_policy, run_tests
from interlock.policy.lint import lint_file
from interlock.recovery import Sweeper, count_unknown
from interlock.runtime import Runtime
from interlock.server.logs import log_event
from interlock.server.metrics import Counts, Latencies
from interlock.store import Store, StoreError
from interlock.store.events import Channel, subscriber
from interlock.vocabulary import DEFAULT_DB, ENV_DB, ENV_KEY_DIR, ENV_POLICY

#: Bodies larger than this are refused before they are read (a payload limit applies after parsing).
DEFAULT_MAX_BODY = 2 * 1024 * 1024


class ServerError(Exception):
    """The server cannot start: the message says why and what to do."""


@dataclass
class Settings:
    policy: Path
    db: str = DEFAULT_DB
    key_dir: Path | None = None  # None: beside the store (vocabulary.default_key_dir)
    max_body_bytes: int = DEFAULT_MAX_BODY
    public_url: str = "http://127.0.0.1:8700"
    #: Start even when credential references do not resolve (each is reported); see check_credentials.
    allow_missing_secrets: bool = False
    #: The console trusts this header (set by an authenticating proxy) to name the human, only from
    #: these address ranges; off (None) by default (docs/console.md: the risks).
    trust_proxy_header: str | None = None
    trust_proxy_from: tuple[str, ...] = ()

    @staticmethod
    def from_env() -> Settings:
        key_dir = os.environ.get(ENV_KEY_DIR)
        return Settings(policy=Path(os.environ[ENV_POLICY]), db=os.environ.get(ENV_DB, DEFAULT_DB),
                        key_dir=Path(key_dir) if key_dir else None,
                        allow_missing_secrets=os.environ.get(ENV_ALLOW_MISSING_SECRETS) == "1",
                        public_url=os.environ.get(ENV_PUBLIC_URL) or "http://127.0.0.1:8700",
                        trust_proxy_header=os.environ.get(ENV_TRUST_PROXY_HEADER) or None,
                        trust_proxy_from=tuple(os.environ.get(ENV_TRUST_PROXY_FROM, "").split()))


#: Carries `--allow-missing-secrets` to the worker processes of `serve --workers N`.
ENV_ALLOW_MISSING_SECRETS = "INTERLOCK_ALLOW_MISSING_SECRETS"
#: Where approvers reach the server (webhook links), when not `scheme://host:port` (a reverse proxy).
ENV_PUBLIC_URL = "INTERLOCK_PUBLIC_URL"
#: `--trust-proxy-header` / `--trust-proxy-from` (ranges separated by spaces), also read by the workers.
ENV_TRUST_PROXY_HEADER = "INTERLOCK_TRUST_PROXY_HEADER"
ENV_TRUST_PROXY_FROM = "INTERLOCK_TRUST_PROXY_FROM"


def check_credentials(policy: Policy, allow_missing: bool) -> list[Missing]:
    """Every credential reference the policy names must resolve here, or the server does not start
    (misconfiguration is loud: found now, not after two humans approved). With `allow_missing` the
    missing ones are returned, to be reported on stderr and in /readyz."""
    missing = unresolved(references(policy.doc))
    if missing and not allow_missing:
        raise ServerError("credential references that cannot be resolved here:\n"
                          + "\n".join(f"  {m}" for m in missing)
                          + "\nset them where the server runs (docs/deploy.md), or start with "
                            "--allow-missing-secrets: actions on those targets are then denied, never sent "
                            "to approvers")
    return missing


def check_policy_for_serving(path: Path) -> Policy:
    """The server refuses a policy that fails lint or its own tests (issue: fail closed at start)."""
    errors = [p for p in lint_file(path) if p.severity == "error"]
    if errors:
        raise ServerError("policy refused:\n" + "\n".join(str(p) for p in errors))
    policy = load_policy(path)
    failed = [r for r in run_tests(policy) if not r.passed]
    if failed:
        raise ServerError("policy tests fail:\n" + "\n".join(str(r.location(policy)) for r in failed))
    return policy


#: How a cache miss is answered: the secret's principal and its token's expiry (None: never), read from the
#: store at the clock's time; AuthError or StoreError otherwise (identity.authenticate_until).
Lookup = Callable[[str, Clock], tuple[Principal, datetime | None]]


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    generation: int  # the `tokens` channel's generation read before the lookup that made this entry
    stale_at: float  # `now()` past which the entry is not believed whatever the generation says
    expires: datetime | None  # the token's own expiry


class TokenCache:
    """Successful token lookups, keyed by the secret's hash, believed while nothing could have changed them.

    A token read is one more store transaction on every request, and it halved the proposals a worker
    could take (the reads contend with the audit writer for the GIL and the database). An entry is
    believed while (1) the `tokens` event channel's generation is the one read *before* its lookup (a
    revocation publishes on it in its own transaction, identity.revoke, so a revocation that raced the
    lookup drops the entry too), (2) the token's own expiry has not passed, and (3) `ttl` seconds have
    not passed: a safety net for a change that bypassed Interlock (a row edited in the database).
    How fast (1) bites: SQLite at the next request (the generation looks at the publishers' sidecar file);
    PostgreSQL when the NOTIFY arrives (milliseconds), or at the listener's 1 s re-read if it was missed;
    while the PostgreSQL listener is disconnected nothing is believed (every request reads the store).
    Failures are never cached: a refused token is refused again, from the store, every time.

    Lookups are single flight: concurrent requests with one secret on one event loop share one store
    read (when the entries go stale, 32 in-flight requests used to take 32 worker threads to the store).
    `now` and `clock` are injectable so tests move time instead of sleeping.
    """

    def __init__(self, lookup: Lookup, generation: Callable[[], int | None], ttl: float = 60.0, size: int = 10_000,
                 now: Callable[[], float] = time.monotonic, clock: Clock = system_clock) -> None:
        self.lookup, self.generation = lookup, generation
        self.ttl, self.size, self.now, self.clock = ttl, size, now, clock
        #: Store lookups made (misses); a test and the benchmarks read it.
        self.lookups = 0
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()  # writers only (lookups run on worker threads); readers need none
        #: In-flight lookups per event loop (a process may run several: tests, `TestClient`s), by secret hash.
        self._flights: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Flight]] = (
            weakref.WeakKeyDictionary())

    def get(self, secret: str) -> Principal | None:
        """The cached principal, or None (a miss: ask `principal` or `fetch`)."""
        entry = self._entries.get(secret_hash(secret))
        return None if entry is None or not self._believed(entry, self.generation()) else entry.principal

    def _believed(self, entry: _Entry, generation: int | None) -> bool:
        return (generation is not None and entry.generation == generation and self.now() < entry.stale_at
                and (entry.expires is None or self.clock() < entry.expires))

    def fetch(self, secret: str) -> Principal:
        """The principal from the store (a worker thread's call: it blocks), cached when the answer is a
        principal. AuthError or StoreError otherwise."""
        generation = self.generation()  # before the read: a revocation committed during it moves it
        with self._lock:
            self.lookups += 1
        principal, expires = self.lookup(secret, self.clock)
        if generation is not None:
            self._put(secret_hash(secret), _Entry(principal, generation, self.now() + self.ttl, expires))
        return principal

    def _put(self, key: str, entry: _Entry) -> None:
        with self._lock:
            self._entries.pop(key, None)  # re-inserted last: the oldest entries are the first to go
            while len(self._entries) >= self.size:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = entry

    async def principal(self, secret: str) -> Principal:
        """The principal, from the cache or from one store lookup in a worker thread shared by every
        request with this secret on this event loop that asks while it runs (and started after the
        last revocation this process knows of). AuthError or StoreError as `fetch`."""
        found = self.get(secret)
        if found is not None:
            return found
        loop = asyncio.get_running_loop()
        flights = self._flights.get(loop)
        if flights is None:
            flights = self._flights.setdefault(loop, {})
        key, generation = secret_hash(secret), self.generation()
        flight = flights.get(key)
        if flight is None or flight.generation != generation:
            flight = _Flight(generation, loop.create_task(self._fly(secret)))
            flights[key] = flight
            flight.task.add_done_callback(partial(_landed, flights, key, flight))
        # shield: a request that goes away (its client disconnected) does not cancel the others' lookup
        return await asyncio.shield(flight.task)

    async def _fly(self, secret: str) -> Principal:
        return await anyio.to_thread.run_sync(self.fetch, secret)


@dataclass(frozen=True)
class _Flight:
    generation: int | None
    task: asyncio.Task[Principal]


def _landed(flights: dict[str, _Flight], key: str, flight: _Flight, task: asyncio.Task[Principal]) -> None:
    if flights.get(key) is flight:
        del flights[key]
    if not task.cancelled():
        task.exception()  # retrieved here: a failure nobody else awaited is not logged as "never retrieved"


def tokens_generation(store: Store) -> Callable[[], int | None]:
    """The `tokens` channel's generation as this process knows it, or None when it cannot be trusted (the
    PostgreSQL listener is down, or SQLite's re-read failed): then no cached lookup is believed."""
    sub = subscriber(store)

    def current() -> int | None:
        if sub.closed or not sub.listening:  # closed: the store is closing with it (nothing to believe)
            return None
        try:
            return sub.generation(Channel.tokens)
        except StoreError:
            return None

    return current


class Server:
    """Everything one process serves with: store, policy, audit log, gate, gateway, metrics."""

    def __init__(self, settings: Settings, policy: Policy | None = None) -> None:
        self.settings = settings
        self.runtime = Runtime(policy or check_policy_for_serving(settings.policy), settings.db, settings.key_dir,
                               public_url=settings.public_url)
        self.policy, self.store, self.audit = self.runtime.policy, self.runtime.store, self.runtime.audit
        try:
            self.missing_secrets = check_credentials(self.policy, settings.allow_missing_secrets)
        except ServerError:
            self.runtime.close()
            raise
        self.gate, self.gateway = self.runtime.gate, self.runtime.gateway
        #: Set when an approval request changes on this process: wakes long polls at once.
        self.changed = asyncio.Event()
        self.tokens = TokenCache(partial(_lookup, self.store, self.audit), tokens_generation(self.store))
        #: The recovery sweep (set by the lifespan; interlock.recovery).
        self.sweeper: Sweeper | None = None
        self.registry = CollectorRegistry()
        # prometheus_client's Counter and Histogram, exposed the same without a lock per observation
        # (server/metrics.py); registered in the order they always were, so /metrics lists them so.
        self.requests = Counts("interlock_http_requests", "HTTP requests", ["route", "status"])
        self.decisions = Counts("interlock_decisions", "Decisions", ["decision", "kind"])
        self.latency = Latencies("interlock_http_request_seconds", "Request latency", ["route"],
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30, 300))
        for collector in (self.requests, self.decisions, GateCollector(self), self.runtime.guard.collector(),
                          self.latency):
            self.registry.register(collector)
        self.audit.append("policy.loaded", {"file": str(settings.policy), "policy_hash": self.policy.version,
                                            "rules": len(self.policy.doc.rules)})
        # Requests left pending under another policy are re-decided now (issue 10.7): re-pinned when the
        # new policy asks for exactly the same approvals, else invalidated with the reason, so no agent
        # waits forever on a request nobody can vote on.
        self.redecided = self.gateway.redecide_pending()
        from interlock.rollout.service import Rollouts

        self.rollouts = Rollouts(self.store, self.policy, self.audit, self.gateway)
        #: Set when a rollout is started or commanded on this process: wakes the runner at once.
        self.rollouts_changed = asyncio.Event()

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency (on the event loop: server/metrics.py). Route names
        are templates (or "unmatched"), so the label sets stay few."""
        self.requests.inc(route, str(status))
        self.latency.observe(seconds, route)

    def count_decision(self, decision: str, kind: str) -> None:
        """Count one decision (decisions × kinds: a handful of label sets)."""
        self.decisions.inc(decision, kind)

    def close(self) -> None:
        self.runtime.close()

    async def audit_rejection(self, method: str, path: str, status: int, code: str, who: Principal | None) -> None:
        data = {"method": method, "path": path[:200], "status": status, "code": code,
                "principal": f"{who.kind}:{who.name}" if who else None}
        if who is not None and who.kind == "agent":
            data["agent"] = who.name
        try:
            await anyio.to_thread.run_sync(self.audit.append, "request.rejected", data)
        except Exception as exc:
            log_event("audit_failed", audit_event="request.rejected", error=type(exc).__name__)

    def ready(self) -> tuple[bool, str]:
        try:
            with self.store.transaction(readonly=True) as tx:
                tx.fetchone("SELECT 1 AS ok")
        except StoreError as exc:
            return False, f"store unavailable: {exc}"
        if self.missing_secrets:
            return True, ("ready, but credentials missing (actions on these targets are denied): "
                          + "; ".join(str(m) for m in self.missing_secrets))
        return True, "ready"

    def pending_approvals(self) -> int:
        with self.store.transaction(readonly=True) as tx:
            row = tx.fetchone("SELECT count(*) AS n FROM approval_requests WHERE state = 'pending'")
        return int(row["n"]) if row else 0


class GateCollector(Collector):
    """Read at scrape time: pending approval requests (from the store, so every replica agrees) and
    this process's webhook deliveries that gave up."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        pending = GaugeMetricFamily("interlock_pending_approvals", "Approval requests waiting for humans")
        try:
            pending.add_metric([], self.server.pending_approvals())
        except StoreError:
            pending.add_metric([], float("nan"))
        yield pending
        unknown = CounterMetricFamily("interlock_outcome_unknown",
                                      "Actions whose replica died while they ran (never re-run; a human checks)")
        try:
            unknown.add_metric([], count_unknown(self.server.store))
        except StoreError:
            unknown.add_metric([], float("nan"))
        yield unknown
        notifier = self.server.gate.notifier
        failed = CounterMetricFamily("interlock_webhook_failures", "Webhook deliveries that failed after every retry")
        failed.add_metric([], notifier.failures if notifier is not None else 0)
        yield failed
        waiting = GaugeMetricFamily("interlock_webhook_outbox_pending",
                                    "Webhook deliveries in the store's outbox not yet sent or given up (all replicas')")
        try:
            waiting.add_metric([], notifier.pending() if notifier is not None else 0)
        except StoreError:
            waiting.add_metric([], float("nan"))
        yield waiting


def _lookup(store: Store, log: GateAudit, secret: str, clock: Clock) -> tuple[Principal, datetime | None]:
    return authenticate_until(store, secret, log=log, clock=clock)
