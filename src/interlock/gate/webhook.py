"""Outbound notifications: a webhook per policy `notify` entry, on approval requests and their outcomes,
and on alerts (a tripped guard, an action whose outcome is unknown).

- Bodies: `json` (the request's or alert's facts) or `slack` (an incoming-webhook `text`). Neither
  carries the action's payload (it may hold data the channel should not see) nor anything that approves:
  the link is the console's review page; approving needs a human's own sign-in or token.
- Signature: `X-Interlock-Signature: sha256=<hex HMAC-SHA256 of the raw body>` with the policy's
  secret. Against replay the body carries `timestamp` (also sent as `X-Interlock-Timestamp`) and the
  delivery's `delivery` id: receivers check the signature, refuse a timestamp older than a few minutes
  and remember delivery ids for that long (see `verify`).
- Durable, at least once (issue 18.2): a delivery is a row of the webhook outbox (`interlock.gate.outbox`)
  written in the same transaction as its cause: the gate's state change (`stage`, called by the gate
  inside its transaction) or the audit entry of an alert (`stage_entries`, an audit batch hook). The one
  process holding the `webhook-delivery` lease sends due rows, retries with exponential backoff on the
  injected clock, and deletes each once sent. A holder killed mid-delivery leaves its row; the next
  holder sends it again with the **same delivery id** (at least once: receivers dedupe on it).
- A row names the webhook (`webhook_name`) and never holds its URL or secret: both are resolved from the
  policy at send time. A failing webhook changes nothing about any request; after the last attempt it is
  audited as `webhook.failed`, in the transaction that removes the row (exactly one such entry).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from interlock.audit.events import AuditEvent
from interlock.gate import outbox
from interlock.gate.clock import Clock, system_clock
from interlock.gate.events import WEBHOOK_FAILED
from interlock.gate.outbox import Delivery
from interlock.gate.requests import ApprovalRequest
from interlock.policy.schema import Webhook
from interlock.secrets import SecretError, resolve
from interlock.store import Store, Transaction
from interlock.store.events import Channel, publish, subscriber
from interlock.store.lease import DEFAULT_TTL_SECONDS, Lease

SIGNATURE_HEADER = "X-Interlock-Signature"
TIMESTAMP_HEADER = "X-Interlock-Timestamp"
DELIVERY_HEADER = "X-Interlock-Delivery"
#: Where approvers review requests; links point here, never to an action that approves.
DEFAULT_PUBLIC_URL = os.environ.get("INTERLOCK_PUBLIC_URL", "http://127.0.0.1:8000")
REPLAY_WINDOW_SECONDS = 300


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    now: float | None = None,
    window: int = REPLAY_WINDOW_SECONDS,
) -> bool:
    """What a receiver does: constant-time signature check, then the body's timestamp must match the
    header and be recent (a replayed old delivery is refused; dedupe `delivery` ids within the window)."""
    if not signature or not timestamp or not hmac.compare_digest(sign(secret, body), signature):
        return False
    try:
        sent = int(json.loads(body)["timestamp"])
        claimed = int(timestamp)
    except (ValueError, KeyError, TypeError):
        return False
    current = time.time() if now is None else now
    return sent == claimed and abs(current - sent) <= window


def link(public_url: str, request_id: str) -> str:
    """The console's review page of a request (docs/console.md): where a human reads and votes."""
    return f"{public_url.rstrip('/')}/ui/approvals/{request_id}"


def api_link(public_url: str, request_id: str) -> str:
    return f"{public_url.rstrip('/')}/v1/approvals/{request_id}"


def request_doc(hook_format: str, event: str, request: ApprovalRequest, *, public_url: str,
                detail: str = "") -> dict[str, Any]:
    """The body of an approval notification without `timestamp` and `delivery` (see `seal`)."""
    action = request.action
    where = action.environment + (f"/{action.target}" if action.target else "")
    needs = "; ".join(r.describe() for r in request.requirements)
    url = link(public_url, request.id)
    evidence = request.evidence or {}
    rollout = rollout_facts(request.rollout) if request.rollout else None
    if hook_format == "slack":
        seen = f" Evidence: {evidence.get('description') or evidence.get('summary')}." if evidence else ""
        if rollout is not None:
            where = f"{len(rollout['targets'])} targets of group {rollout['group']}"
            seen = f" {rollout_text(rollout)}.{seen}"
        text = (
            f"[Interlock] {event}: agent {request.agent} ({action.kind.value} in {where}) — "
            f"{request.classification.summary} [{request.classification.risk.value}].{seen} "
            f"Needs {needs}. State: {request.state.value}{f' ({detail})' if detail else ''}. Review: {url}"
        )
        doc: dict[str, Any] = {"text": text}
    else:
        doc = {
            "event": event,
            "detail": detail,
            "request": {
                "id": request.id,
                "state": request.state.value,
                "agent": request.agent,
                "kind": action.kind.value,
                "environment": action.environment,
                "target": action.target,
                "summary": request.classification.summary,
                "risk": request.classification.risk.value,
                "tags": list(request.classification.tags),
                "fingerprint": request.fingerprint,
                "requirements": [r.describe() for r in request.requirements],
                "expires_at": request.expires_at.isoformat(),
                "link": url,
                "review_url": url,
                "api_url": api_link(public_url, request.id),
                "evidence": request.evidence,
                **({"rollout": rollout} if rollout is not None else {}),
            },
        }
    return doc


def rollout_facts(view: Mapping[str, Any]) -> dict[str, Any]:
    """What a notification says of a rollout's approval: every target with its wave and decisions, the
    steps (their kind, target counts and check names), the deadline. Like an action's notification, no
    payload (the forward or rollback action's): the review page and the API show those to approvers."""
    steps = []
    for step in view.get("steps", []):
        body = step.get("step", {})
        kind = next(iter(body), "?")
        checks = [c.get("name") for c in body.get("analysis", {}).get("checks", [])] if kind == "analysis" else []
        steps.append({"index": step.get("index"), "kind": kind,
                      **({"targets": step["targets"], "wave": step.get("wave")} if "targets" in step else {}),
                      **({"checks": checks} if checks else {}),
                      **({"duration": body["pause"].get("duration")} if kind == "pause" else {})})
    targets = [{"name": t.get("name"), "wave": t.get("wave"),
                **{d: {k: t.get(d, {}).get(k) for k in ("decision", "risk", "sandboxed") if k in t.get(d, {})}
                   for d in ("forward", "rollback")}} for t in view.get("targets", [])]
    return {"id": view.get("id"), "name": view.get("name"), "group": view.get("group"), "targets": targets,
            "steps": steps, "progress_deadline": view.get("progress_deadline"),
            "abort_policy": view.get("abort_policy"), "max_parallel": view.get("max_parallel")}


def rollout_text(facts: Mapping[str, Any]) -> str:
    """One Slack sentence: the targets by wave, the checks, the rollback and the deadline."""
    waves: dict[Any, list[str]] = {}
    for t in facts["targets"]:
        waves.setdefault(t["wave"], []).append(str(t["name"]))
    shown = "; ".join(f"wave {w}: {', '.join(names[:10])}{' …' if len(names) > 10 else ''}"
                      for w, names in waves.items())
    checks = sorted({c for s in facts["steps"] for c in s.get("checks", [])})
    failing = "rolls back the changed targets" if facts["abort_policy"] == "rollback" else "pauses for a human"
    return (f"Rollout {facts['id']} ({shown}); checks: {', '.join(checks) or 'none'}; a failed check "
            f"{failing}; progressDeadline {facts['progress_deadline']} s")


def seal(doc: Mapping[str, Any], *, timestamp: int, delivery: str) -> bytes:
    """The bytes sent (and signed): the document with this attempt's `timestamp` and the delivery's id."""
    return json.dumps({**doc, "timestamp": timestamp, "delivery": delivery}, separators=(",", ":"),
                      sort_keys=True).encode()


def body_for(hook_format: str, event: str, request: ApprovalRequest, *, public_url: str, timestamp: int,
             delivery: str, detail: str = "") -> bytes:
    """The signed body of an approval notification."""
    return seal(request_doc(hook_format, event, request, public_url=public_url, detail=detail),
                timestamp=timestamp, delivery=delivery)


def alert_doc(format: str, event: str, alert: Mapping[str, Any]) -> dict[str, Any]:
    """The body of an alert without `timestamp` and `delivery`: Slack's text, or the alert itself."""
    if format == "slack":
        mode = "enforced: breaker tripped" if alert.get("tripped") else "shadow mode: alert only"
        text = (f"[Interlock] {event}: {alert.get('detector')} for agent {alert.get('agent')}"
                f"{' on ' + str(alert['target']) if alert.get('target') else ''} — {alert.get('detail')}"
                + (f" ({mode})" if event == AuditEvent.GUARD_TRIPPED else ""))
        return {"text": text}
    return {"event": event, "alert": dict(alert)}


def alert_body(format: str, event: str, alert: dict[str, Any], *, timestamp: int, delivery: str) -> bytes:
    """The signed body of an alert."""
    return seal(alert_doc(format, event, alert), timestamp=timestamp, delivery=delivery)


def _alert_doc_for(hook: Webhook, *, event: str, alert: Mapping[str, Any]) -> dict[str, Any]:
    return alert_doc(hook.format, event, alert)


def outcome_unknown_alert(data: Mapping[str, Any]) -> dict[str, Any]:
    """The alert of an `execution.outcome_unknown` entry (interlock.recovery): what a human must check."""
    action_id = data.get("action_id")
    return {"detector": "recovery-sweep", "agent": data.get("agent"), "target": data.get("target"),
            "trigger_action": action_id,
            "detail": f"action {action_id} started on {data.get('replica')}, which stopped before its outcome "
                      "was recorded: outcome unknown, not re-run; check the target"}


#: The one list of what a `notify` entry can be told (its `events:`; none listed = all of them).
#: Approval events are staged by the gate with the request's state change; alert events from their audit
#: entry, through `ALERTS` (event → the alert its entry's data makes).
APPROVAL_EVENTS = (AuditEvent.APPROVAL_REQUESTED, AuditEvent.APPROVAL_APPROVED, AuditEvent.APPROVAL_DENIED,
                   AuditEvent.APPROVAL_EXPIRED, AuditEvent.APPROVAL_INVALIDATED)
ALERTS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    AuditEvent.GUARD_TRIPPED: dict,
    AuditEvent.EXECUTION_OUTCOME_UNKNOWN: outcome_unknown_alert,
}
EVENTS = (*APPROVAL_EVENTS, *ALERTS)

#: The lease job whose one holder sends every replica's deliveries (`SELECT * FROM leases`).
WEBHOOK_JOB = "webhook-delivery"
#: Deliveries sent per round before the lease is looked at again.
ROUND_LIMIT = 100


def webhook_name(hook: Webhook) -> str:
    """How an outbox row names its webhook: the policy's `name`, else a digest of format and URL (a
    Slack URL is a secret; its digest is not)."""
    if hook.name:
        return hook.name
    return "url-" + hashlib.sha256(f"{hook.format} {hook.url}".encode()).hexdigest()[:16]


def wants(hook: Webhook, event: str) -> bool:
    return not hook.events or event in hook.events


#: The reasons a delivery is given up at once: retrying would not help.
_UNSIGNABLE = "cannot sign the delivery"
_GONE = "no webhook named"
_log = logging.getLogger("interlock")


def _report_failure(data: dict[str, Any]) -> None:
    """On stderr as well as in the audit log: an operator watching the server sees it at once."""
    if _log.handlers:  # the server's JSON log lines
        fields = {("webhook_event" if k == "event" else k): v for k, v in data.items()}
        _log.warning("webhook_failed", extra={"fields": fields})
        return
    print(f"interlock: webhook delivery failed: {data['event']} for {data['request_id']} to {data['webhook']} "
          f"after {data['attempts']} attempt(s): {data['error']}", file=sys.stderr, flush=True)


def _where(url: str) -> str:
    # Webhook URLs often carry a secret in their path (Slack); audit only scheme and host.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}"


class OutboxAudit(Protocol):
    """What the notifier needs of the log: `webhook.failed` is written with the row's removal."""

    def append_in(self, tx: Any, event: str, data: dict[str, Any]) -> Any: ...


class Notifier:
    """Stages the policy's webhooks in the outbox and sends them from a thread of its own while this
    process holds the `webhook-delivery` lease; `stage` never touches the network."""

    def __init__(
        self,
        webhooks: Sequence[Webhook],
        audit: OutboxAudit,
        store: Store,
        *,
        public_url: str = DEFAULT_PUBLIC_URL,
        attempts: int = 5,
        backoff: float = 0.5,
        timeout: float = 5.0,
        clock: Clock = system_clock,
        lease_ttl: float = DEFAULT_TTL_SECONDS,
        wall: Callable[[], float] = time.time,
        autostart: bool = True,
    ) -> None:
        """`autostart`: start the sender with the first delivery staged here (False: the caller runs
        `start()`, or rounds of `deliver_due()` while it holds `lease`)."""
        self.webhooks = tuple(webhooks)
        self.audit, self.store = audit, store
        self.public_url = public_url
        self.attempts, self.backoff, self.timeout = attempts, backoff, timeout
        #: Due times and backoff run on `clock`; the signed `timestamp` is the receiver's replay check, so
        #: it is real time (`wall`).
        self.clock, self.wall = clock, wall
        self.lease = Lease(store, WEBHOOK_JOB, ttl=lease_ttl, clock=clock)
        self.autostart = autostart
        self._by_name = {webhook_name(h): h for h in self.webhooks}
        self._alerting = frozenset(e for e in ALERTS if any(wants(h, e) for h in self.webhooks))
        self._staged: set[str] = set()  # ids staged by this process and not yet seen gone (flush)
        self._lock = threading.Lock()
        self._woken = threading.Event()
        self._rounds = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: Deliveries this process gave up after every attempt, for /metrics.
        self.failures = 0
        add_hook = getattr(audit, "add_hook", None)
        if self._alerting and callable(add_hook):
            add_hook(self.stage_entries)

    # --- staging: inside the transaction of the cause ---------------------------------------------

    def stage(self, tx: Transaction, event: str, request: ApprovalRequest, detail: str = "") -> None:
        """Add the deliveries of an approval `event` inside the gate's transaction that makes it."""
        self._add(tx, event, request.id, lambda hook: request_doc(hook.format, event, request,
                                                                   public_url=self.public_url, detail=detail))

    def stage_entries(self, tx: Transaction, batch: list[tuple[str, Mapping[str, Any]]]) -> None:
        """The audit batch hook: an alert entry's deliveries commit with the entry (its redacted data)."""
        if not any(event in self._alerting for event, _ in batch):
            return
        for event, data in batch:
            if event in self._alerting:
                alert = ALERTS[event](data)
                subject = str(alert.get("trigger_action") or alert.get("agent") or "")
                self._add(tx, event, subject, partial(_alert_doc_for, event=event, alert=alert))

    def _add(self, tx: Transaction, event: str, subject: str, render: Callable[[Webhook], dict[str, Any]]) -> None:
        rows = [Delivery(secrets.token_hex(12), webhook_name(h), event, subject, render(h))
                for h in self.webhooks if wants(h, event)]
        if not rows:
            return
        outbox.add(tx, rows, self.clock())
        publish(tx, Channel.webhooks)  # wakes the lease holder, whichever replica it is
        ids = [r.delivery for r in rows]
        tx.on_commit(lambda: self._committed(ids))

    def _committed(self, ids: Iterable[str]) -> None:
        with self._lock:
            self._staged.update(ids)
        if self.autostart:
            self.start()
        self._woken.set()

    # --- sending: the lease holder's thread --------------------------------------------------------

    def start(self, ttl: float | None = None) -> None:
        """Run the sender (idempotent), holding the lease for `ttl` seconds at a time (default: as built).
        The server starts it at once, so a replica takes over deliveries staged elsewhere; a local mode
        starts it with its first delivery."""
        with self._lock:
            if self._stopping.is_set() or (self._thread is not None and self._thread.is_alive()):
                return
            if ttl is not None:
                self.lease.ttl = ttl
            self._thread = threading.Thread(target=self._run, name="interlock-webhooks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        renew = self.lease.ttl / 3
        unsubscribe: Callable[[], None] | None = None
        try:
            unsubscribe = subscriber(self.store).subscribe(Channel.webhooks, lambda _event: self._woken.set())
        except Exception as exc:  # the renew timer still finds new rows
            _log.warning("webhook sender cannot hear other replicas' deliveries at once: %s", exc)
        last_try = float("-inf")
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            while not self._stopping.is_set():
                self._woken.clear()
                wait = renew
                try:
                    # Take the lease when we lack it (a wake-up may mean its holder left), renew it in time.
                    if not self.lease.held or time.monotonic() - last_try >= renew:
                        last_try = time.monotonic()
                        self.lease.acquire()
                    wait = renew - (time.monotonic() - last_try)
                    if self.lease.held:
                        later = self.deliver_due(client)
                        if later is not None:
                            wait = min(wait, (later - self.clock()).total_seconds())
                except Exception as exc:  # the store is down, say: try again next round
                    _log.warning("webhook delivery round failed: %s: %s", type(exc).__name__, exc)
                with self._rounds:
                    self._rounds.notify_all()
                self._woken.wait(max(0.01, wait))
        if unsubscribe is not None:
            unsubscribe()
        with contextlib.suppress(Exception):
            self.lease.release()

    def deliver_due(self, client: httpx.Client | None = None) -> datetime | None:
        """One round by the lease holder: send every due delivery (renewing the lease as it goes; it stops
        if the lease is lost). Returns when the next one is due (None: the outbox is empty)."""
        with self.store.transaction(readonly=True) as tx:
            rows = outbox.due(tx, self.clock(), ROUND_LIMIT)
        renewed = time.monotonic()
        with contextlib.ExitStack() as stack:
            if client is None:
                client = stack.enter_context(httpx.Client(timeout=self.timeout, follow_redirects=False))
            for row in rows:
                if time.monotonic() - renewed >= self.lease.ttl / 3:
                    if not self.lease.acquire():
                        return None  # another replica has the job now
                    renewed = time.monotonic()
                self._attempt(client, row)
        with self.store.transaction(readonly=True) as tx:
            later = outbox.next_due(tx)
        if len(rows) == ROUND_LIMIT and later is not None:
            return self.clock()  # more are due now
        return later

    def _attempt(self, client: httpx.Client, row: Delivery) -> None:
        hook = self._by_name.get(row.webhook)
        error = (f"{_GONE} {row.webhook!r} in the policy any more (removed or its URL changed)" if hook is None
                 else self._send(client, hook, row))
        attempts = row.attempts + 1
        with self.store.transaction() as tx:
            if error is None:
                outbox.done(tx, row)
                return
            if attempts < self.attempts and not error.startswith((_UNSIGNABLE, _GONE)):
                delay = self.backoff * (2 ** (attempts - 1))
                outbox.retry(tx, row, self.clock() + timedelta(seconds=delay), error)
                return
            if not outbox.done(tx, row):
                return  # another holder finished it
            data = {"event": row.event, "request_id": row.subject,
                    "webhook": _where(hook.url) if hook is not None else row.webhook,
                    "attempts": attempts, "error": error, "delivery": row.delivery}
            self.audit.append_in(tx, WEBHOOK_FAILED, data)
        self.failures += 1
        _report_failure(data)

    def _send(self, client: httpx.Client, hook: Webhook, row: Delivery) -> str | None:
        timestamp = int(self.wall())
        body = seal(row.doc, timestamp=timestamp, delivery=row.delivery)
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            DELIVERY_HEADER: row.delivery,
            "User-Agent": "interlock-webhook/1",
        }
        if hook.secret is not None:
            try:
                headers[SIGNATURE_HEADER] = sign(resolve(hook.secret), body)
            except SecretError as exc:
                return f"{_UNSIGNABLE}: {exc}; set it where the gateway runs"
        try:
            response = client.post(hook.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            # The URL may carry a secret (Slack puts one in the path): never let it into the reason.
            reason = str(exc).replace(hook.url, _where(hook.url))[:300] or "no detail"
            return f"{type(exc).__name__}: could not deliver ({reason})"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code} from the receiver"

    # --- waiting and stopping ------------------------------------------------------------------------

    def pending(self) -> int:
        """Deliveries in the outbox (every process's), for /metrics."""
        with self.store.transaction(readonly=True) as tx:
            return outbox.count(tx)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every delivery this process staged was sent or given up (by whichever process holds
        the lease); False on timeout."""
        deadline = time.monotonic() + timeout
        self.start()
        while True:
            with self._lock:
                ids = set(self._staged)
            if ids:
                with self.store.transaction(readonly=True) as tx:
                    left = outbox.waiting(tx, ids)
                with self._lock:
                    self._staged -= ids - left
                ids = left
            if not ids:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._woken.set()
            with self._rounds:
                self._rounds.wait(min(0.1, remaining))

    def close(self, timeout: float = 10.0) -> None:
        """Stop sending (what is left stays in the outbox for the next holder) and release the lease."""
        self._stopping.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(timeout)
