"""Outbound notifications: a webhook per policy `notify` entry, on new requests and their outcomes.

- Bodies: `json` (the request's facts) or `slack` (an incoming-webhook `text`). Neither carries the
  action's payload (it may hold data the channel should not see) nor anything that approves: the
  link is the authenticated API `GET /v1/approvals/{id}`; approving needs a human's own token.
- Signature: `X-Interlock-Signature: sha256=<hex HMAC-SHA256 of the raw body>` with the policy's
  secret. Against replay the body carries `timestamp` (also sent as `X-Interlock-Timestamp`) and a
  unique `delivery` id: receivers check the signature, refuse a timestamp older than a few minutes
  and remember delivery ids for that long (see `verify`).
- Delivery happens on a background thread, off the request path, with exponential backoff. A failing
  webhook changes nothing about any request; after the last attempt it is audited as `webhook.failed`.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import hmac
import itertools
import json
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from interlock.gate.events import WEBHOOK_FAILED, AuditSink
from interlock.gate.requests import ApprovalRequest
from interlock.policy.schema import Webhook
from interlock.secrets import SecretError, resolve

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


def body_for(
    hook_format: str,
    event: str,
    request: ApprovalRequest,
    *,
    public_url: str,
    timestamp: int,
    delivery: str,
    detail: str = "",
) -> bytes:
    action = request.action
    where = action.environment + (f"/{action.target}" if action.target else "")
    needs = "; ".join(r.describe() for r in request.requirements)
    url = link(public_url, request.id)
    evidence = request.evidence or {}
    if hook_format == "slack":
        seen = f" Evidence: {evidence.get('description') or evidence.get('summary')}." if evidence else ""
        text = (
            f"[Interlock] {event}: agent {request.agent} ({action.kind.value} in {where}) — "
            f"{request.classification.summary} [{request.classification.risk.value}].{seen} "
            f"Needs {needs}. State: {request.state.value}{f' ({detail})' if detail else ''}. Review: {url}"
        )
        doc: dict[str, Any] = {"text": text, "timestamp": timestamp, "delivery": delivery}
    else:
        doc = {
            "event": event,
            "timestamp": timestamp,
            "delivery": delivery,
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
            },
        }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    hook: Webhook = field(compare=False)
    body: bytes = field(compare=False)
    event: str = field(compare=False)
    request_id: str = field(compare=False)
    timestamp: int = field(compare=False)
    delivery: str = field(compare=False)
    attempt: int = field(compare=False, default=0)


#: The reason a delivery cannot be signed: retrying would not help.
_UNSIGNABLE = "cannot sign the delivery"
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


def alert_body(format: str, event: str, alert: dict[str, Any], *, timestamp: int, delivery: str) -> bytes:
    """The signed body of a guard alert: Slack's text, or the alert itself."""
    if format == "slack":
        mode = "enforced: breaker tripped" if alert.get("tripped") else "shadow mode: alert only"
        text = (f"[Interlock] {event}: {alert.get('detector')} for agent {alert.get('agent')}"
                f"{' on ' + str(alert['target']) if alert.get('target') else ''} — {alert.get('detail')}"
                + (f" ({mode})" if event == "guard.tripped" else ""))
        doc: dict[str, Any] = {"text": text, "timestamp": timestamp, "delivery": delivery}
    else:
        doc = {"event": event, "timestamp": timestamp, "delivery": delivery, "alert": alert}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


class Notifier:
    """Sends the policy's webhooks on a background thread; `notify` never blocks on the network."""

    def __init__(
        self,
        webhooks: Sequence[Webhook],
        audit: AuditSink,
        *,
        public_url: str = DEFAULT_PUBLIC_URL,
        attempts: int = 5,
        backoff: float = 0.5,
        timeout: float = 5.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.webhooks = tuple(webhooks)
        self.audit = audit
        self.public_url = public_url
        self.attempts, self.backoff, self.timeout, self.wall = attempts, backoff, timeout, wall
        self._heap: list[_Delivery] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._busy = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        #: Deliveries that gave up after every attempt (this process), for /metrics.
        self.failures = 0

    def notify(self, event: str, request: ApprovalRequest, detail: str = "") -> None:
        def render(hook: Webhook, timestamp: int, delivery: str) -> bytes:
            return body_for(hook.format, event, request, public_url=self.public_url, timestamp=timestamp,
                            delivery=delivery, detail=detail)

        self._enqueue(event, request.id, render)

    def alert(self, event: str, alert: dict[str, Any]) -> None:
        """A guard alert (`guard.tripped`): the same signing, headers and retries as approvals; the
        body names the detector, agent and target, never an action's payload."""

        def render(hook: Webhook, timestamp: int, delivery: str) -> bytes:
            return alert_body(hook.format, event, alert, timestamp=timestamp, delivery=delivery)

        self._enqueue(event, str(alert.get("trigger_action") or alert.get("agent") or ""), render)

    def _enqueue(self, event: str, subject: str, render: Callable[[Webhook, int, str], bytes]) -> None:
        """Queue one delivery of `event` per webhook that wants it (each with its own delivery id),
        and start the sender; `subject` names the request (or the alert's action) in failures."""
        hooks = [h for h in self.webhooks if not h.events or event in h.events]
        if not hooks:
            return
        timestamp = int(self.wall())
        with self._cond:
            if self._closed:
                return
            for hook in hooks:
                delivery = secrets.token_hex(12)
                body = render(hook, timestamp, delivery)
                heapq.heappush(self._heap, _Delivery(time.monotonic(), next(self._seq), hook, body, event, subject,
                                                     timestamp, delivery))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="interlock-webhooks", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued delivery succeeded or gave up; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            while True:
                with self._cond:
                    while not self._closed and (not self._heap or self._heap[0].due > time.monotonic()):
                        wait = self._heap[0].due - time.monotonic() if self._heap else None
                        self._cond.wait(wait)
                    if self._closed and not self._heap:
                        return
                    item = heapq.heappop(self._heap)
                    self._busy += 1
                try:
                    self._attempt(client, item)
                finally:
                    with self._cond:
                        self._busy -= 1
                        self._cond.notify_all()

    def _attempt(self, client: httpx.Client, item: _Delivery) -> None:
        item.attempt += 1
        error = self._send(client, item)
        if error is None:
            return
        if item.attempt < self.attempts and not error.startswith(_UNSIGNABLE):
            item.due = time.monotonic() + self.backoff * (2 ** (item.attempt - 1))
            with self._cond:
                heapq.heappush(self._heap, item)
            return
        self.failures += 1
        data = {
            "event": item.event,
            "request_id": item.request_id,
            "webhook": _where(item.hook.url),
            "attempts": item.attempt,
            "error": error,
            "delivery": item.delivery,
        }
        _report_failure(data)
        # The worker must survive an audit outage; a webhook never approves anything anyway.
        with contextlib.suppress(Exception):
            self.audit.append(WEBHOOK_FAILED, data)

    def _send(self, client: httpx.Client, item: _Delivery) -> str | None:
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(item.timestamp),
            DELIVERY_HEADER: item.delivery,
            "User-Agent": "interlock-webhook/1",
        }
        if item.hook.secret is not None:
            try:
                headers[SIGNATURE_HEADER] = sign(resolve(item.hook.secret), item.body)
            except SecretError as exc:
                return f"{_UNSIGNABLE}: {exc}; set it where the gateway runs"
        try:
            response = client.post(item.hook.url, content=item.body, headers=headers)
        except httpx.HTTPError as exc:
            # The URL may carry a secret (Slack puts one in the path): never let it into the reason.
            reason = str(exc).replace(item.hook.url, _where(item.hook.url))[:300] or "no detail"
            return f"{type(exc).__name__}: could not deliver ({reason})"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code} from the receiver"
