"""Health checks: one measurement of one check on one target → Successful | Failed | Inconclusive | Error.

- both conditions given: success true → Successful; failure true → Failed; neither → Inconclusive;
- only successCondition: true → Successful, false → Failed; only failureCondition: true → Failed, else
  Successful; a shell probe with no condition: exit code 0 → Successful;
- anything that goes wrong (unreachable, timeout, a field the condition names is missing, a query with
  no row) is `Error`: counted against consecutiveErrorLimit, never a success.

What a condition sees: http → status, latency_ms, json (the body parsed, or null), body; sql → result
(first column of the first row); prometheus → result (the instant vector's first sample, a number),
samples (all of them); shell → exit_code, output.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from interlock.policy.schema import Target
from interlock.rollout import conditions
from interlock.rollout.model import Check, PrometheusProbe


class Phase(StrEnum):
    successful = "Successful"
    failed = "Failed"
    inconclusive = "Inconclusive"
    error = "Error"


@dataclass(frozen=True)
class Measurement:
    check: str
    target: str
    phase: Phase
    message: str
    value: Any = None

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "target": self.target, "phase": self.phase.value, "message": self.message,
                "value": self.value}


class ProbeError(Exception):
    pass


def judge(check: Check, values: dict[str, Any]) -> tuple[Phase, str]:
    """The phase of one measurement's values under the check's conditions (pure)."""
    success = conditions.parse(check.success_condition) if check.success_condition else None
    failure = conditions.parse(check.failure_condition) if check.failure_condition else None
    if success is None and failure is None:  # a shell probe alone: its exit code
        ok = values.get("exit_code") == 0
        return (Phase.successful, "exit code 0") if ok else (Phase.failed, f"exit code {values.get('exit_code')}")
    try:
        failed = failure(values) if failure else False
        succeeded = success(values) if success else not failed
    except conditions.Missing as exc:
        return Phase.error, str(exc)
    if failed:
        return Phase.failed, f"failureCondition {check.failure_condition!r} is true"
    if succeeded:
        return Phase.successful, f"successCondition {check.success_condition!r} is true" if success else \
            f"failureCondition {check.failure_condition!r} is false"
    if failure is None:
        return Phase.failed, f"successCondition {check.success_condition!r} is false"
    return Phase.inconclusive, "neither condition is true"


def measure(check: Check, target_name: str, target: Target) -> Measurement:
    try:
        values = probe(check, target_name, target)
    except ProbeError as exc:
        return Measurement(check.name, target_name, Phase.error, str(exc))
    except Exception as exc:  # a probe never crashes the runner: it is an Error measurement
        return Measurement(check.name, target_name, Phase.error, f"{type(exc).__name__}: {exc}")
    phase, message = judge(check, values)
    shown = {k: v for k, v in values.items() if k in ("status", "latency_ms", "result", "exit_code")}
    return Measurement(check.name, target_name, phase, message, shown or None)


def probe(check: Check, target_name: str, target: Target) -> dict[str, Any]:
    if check.http is not None:
        url = check.http.url.replace("{target}", target_name) if check.http.url else \
            (target.url or "").rstrip("/") + "/" + (check.http.path or "").lstrip("/")
        started = time.perf_counter()
        try:
            answer = httpx.get(url, timeout=check.http.timeout)
        except httpx.HTTPError as exc:
            raise ProbeError(f"GET {url}: {type(exc).__name__}: {exc}") from None
        latency = round((time.perf_counter() - started) * 1000, 3)
        try:
            body: Any = answer.json()
        except ValueError:
            body = None
        return {"status": answer.status_code, "latency_ms": latency, "json": body, "body": answer.text[:10_000]}
    if check.sql is not None:
        return {"result": _sql(check.sql.query, target)}
    if check.prometheus is not None:
        return prometheus_query(check.prometheus, target_name)
    assert check.shell is not None
    try:
        done = subprocess.run(list(check.shell.command), capture_output=True, timeout=check.shell.timeout,
                              env={**os.environ, "INTERLOCK_TARGET": target_name}, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProbeError(f"shell probe: {type(exc).__name__}: {exc}") from None
    return {"exit_code": done.returncode, "output": done.stdout.decode(errors="replace")[-10_000:]}


def prometheus_query(spec: PrometheusProbe, target_name: str) -> dict[str, Any]:
    """One instant query over the Prometheus HTTP API (`/api/v1/query`): the first sample's value."""
    url = spec.url.rstrip("/") + "/api/v1/query"
    try:
        answer = httpx.get(url, params={"query": spec.query.replace("{target}", target_name)}, timeout=spec.timeout)
        body = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ProbeError(f"prometheus {url}: {type(exc).__name__}: {exc}") from None
    if body.get("status") != "success":
        raise ProbeError(f"prometheus {url}: {body.get('errorType', 'error')}: {body.get('error', body)}")
    data = body.get("data") or {}
    result = data.get("result")
    if data.get("resultType") == "scalar" and isinstance(result, list):
        return {"result": float(result[1]), "samples": [float(result[1])]}
    if data.get("resultType") != "vector" or not isinstance(result, list):
        raise ProbeError(f"prometheus {url}: expected an instant vector, got {data.get('resultType')!r}")
    if not result:
        raise ProbeError(f"prometheus {url}: the query returned no samples")
    samples = [float(s["value"][1]) for s in result]
    return {"result": samples[0], "samples": samples}


def prometheus_answers(spec: PrometheusProbe) -> str | None:
    """Before a rollout starts: None when the server answers the HTTP API, else why not."""
    url = spec.url.rstrip("/") + "/api/v1/query"
    try:
        answer = httpx.get(url, params={"query": "1"}, timeout=spec.timeout)
        if answer.json().get("status") == "success":
            return None
        return f"{url} answered {answer.status_code} without a Prometheus success"
    except (httpx.HTTPError, ValueError) as exc:
        return f"{url} does not answer the Prometheus HTTP API ({type(exc).__name__}: {exc})"


def _sql(query: str, target: Target) -> Any:
    import psycopg

    from interlock.secrets import SecretError, resolve

    if target.dsn is None:
        raise ProbeError("the target has no dsn")
    try:
        dsn = resolve(target.dsn)
    except SecretError as exc:
        raise ProbeError(f"the target's dsn ({target.dsn}) does not resolve: {exc}") from None
    try:
        with psycopg.connect(dsn, connect_timeout=5, autocommit=False) as conn:
            conn.execute("SET TRANSACTION READ ONLY")
            row = conn.execute(query.encode()).fetchone()
            conn.rollback()
    except psycopg.Error as exc:
        # the message names the statement's problem; the dsn (a secret) is never in it
        raise ProbeError(f"sql probe: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if row is None:
        raise ProbeError("sql probe: the query returned no row")
    value = row[0]
    try:
        return float(value) if not isinstance(value, bool | str) else value
    except (TypeError, ValueError):
        return value
