"""A rollout: one action over a target group in waves, with checks between them and a rollback.

The words are Argo Rollouts' where they fit (`setTargets` for `setCanaryScale`'s count, `percent` for
`setWeight`, `pause`, `analysis`, `maxParallel`, `progressDeadline`, `abortPolicy`). Parsing is pure:
a bad rollout gets a `RolloutError` naming the field (`steps[2].percent`) before anything runs.

    kind: http
    group: web-fleet
    payload: {method: POST, url: /deploy, body: {version: v2}}
    rollback: {payload: {method: POST, url: /deploy, body: {version: v1}}}
    rationale: {intent: ship v2}
    steps:
      - setTargets: 1
      - analysis: {checks: [{name: health, http: {path: /health}, successCondition: "json.healthy == true"}]}
      - pause: {}
      - percent: 100
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from interlock.fingerprint import canonical_json
from interlock.model import Action, Kind, Rationale
from interlock.policy.schema import Duration, Name, PolicyDocument
from interlock.rollout import conditions
from interlock.rollout.groups import GroupError, members


class RolloutError(ValueError):
    """Bad rollout input: nothing ran. `field` says where, the message what to do."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class HttpProbe(Spec):
    path: str | None = Field(default=None, description="under the target's url (http targets)")
    url: str | None = Field(default=None, description="an absolute URL; {target} is the target's name")
    timeout: float = Field(default=5.0, gt=0, le=300)

    @model_validator(mode="after")
    def _one(self) -> HttpProbe:
        if (self.path is None) == (self.url is None):
            raise ValueError("an http probe takes exactly one of `path` (under the target's url) or `url`")
        return self


class SqlProbe(Spec):
    query: str = Field(min_length=1, description="runs read-only on the target; its first column of its first row")


class PrometheusProbe(Spec):
    url: str = Field(pattern=r"^https?://", description="the Prometheus server (HTTP API)")
    query: str = Field(min_length=1, description="an instant query; {target} is the target's name")
    timeout: float = Field(default=5.0, gt=0, le=300)


class ShellProbe(Spec):
    command: tuple[str, ...] = Field(min_length=1, description="argv; INTERLOCK_TARGET names the target")
    timeout: float = Field(default=30.0, gt=0, le=3600)


class Check(Spec):
    name: Name
    http: HttpProbe | None = None
    sql: SqlProbe | None = None
    prometheus: PrometheusProbe | None = None
    shell: ShellProbe | None = None
    success_condition: str | None = Field(default=None, alias="successCondition")
    failure_condition: str | None = Field(default=None, alias="failureCondition")

    @model_validator(mode="after")
    def _one_probe(self) -> Check:
        probes = [p for p in ("http", "sql", "prometheus", "shell") if getattr(self, p) is not None]
        if len(probes) != 1:
            raise ValueError(f"check {self.name} needs exactly one probe of http, sql, prometheus, shell "
                             f"(has {', '.join(probes) or 'none'})")
        if self.shell is None and self.success_condition is None and self.failure_condition is None:
            raise ValueError(f"check {self.name} needs a successCondition or a failureCondition")
        for text in (self.success_condition, self.failure_condition):
            if text is not None:
                conditions.parse(text)
        return self

    @property
    def probe(self) -> str:
        return next(p for p in ("http", "sql", "prometheus", "shell") if getattr(self, p) is not None)


class Analysis(Spec):
    checks: tuple[Check, ...] = Field(min_length=1)
    interval: Duration | None = Field(default=None, description="between measurements (absent: none)")
    count: int = Field(default=1, ge=1, le=10_000, description="measurements to take")
    failure_limit: int = Field(default=0, ge=0, alias="failureLimit", description="failures tolerated")
    consecutive_error_limit: int = Field(default=4, ge=0, alias="consecutiveErrorLimit",
                                         description="errors in a row tolerated")


class Pause(Spec):
    duration: Duration | None = Field(default=None, description="absent: wait for a human's promote")


class Step(Spec):
    set_targets: int | None = Field(default=None, ge=1, alias="setTargets", description="targets changed so far")
    percent: int | None = Field(default=None, ge=1, le=100, description="percent of the group changed so far")
    pause: Pause | None = None
    analysis: Analysis | None = None

    @model_validator(mode="after")
    def _one(self) -> Step:
        keys = [k for k in ("set_targets", "percent", "pause", "analysis") if getattr(self, k) is not None]
        if len(keys) != 1:
            raise ValueError("each step is exactly one of setTargets, percent, pause, analysis "
                             f"(has {', '.join(keys) or 'none'})")
        return self


class Rollback(Spec):
    kind: Kind | None = Field(default=None, description="must be the action's kind when given")
    payload: dict[str, Any] = Field(min_length=1)
    rationale: Rationale | None = None


class RolloutSpec(Spec):
    name: str = Field(default="", max_length=200)
    kind: Kind
    group: Name
    payload: dict[str, Any] = Field(min_length=1)
    rationale: Rationale
    rollback: Rollback
    steps: tuple[Step, ...] = Field(min_length=1)
    max_parallel: int = Field(default=1, ge=1, le=1000, alias="maxParallel")
    progress_deadline: Duration = Field(default=3600, alias="progressDeadline")
    abort_policy: Literal["rollback", "pause"] = Field(default="rollback", alias="abortPolicy")


@dataclass(frozen=True)
class Plan:
    """A parsed rollout against a policy: its members and, per step, how many targets are changed by then."""

    spec: RolloutSpec
    members: tuple[str, ...]
    #: per step: the cumulative target count for setTargets/percent steps, else None
    counts: tuple[int | None, ...]

    def forward(self, target: str, doc: PolicyDocument) -> Action:
        return Action(kind=self.spec.kind, environment=doc.targets[target].environment, target=target,
                      payload=_for_target(self.spec.payload, target, doc), rationale=self.spec.rationale)

    def backward(self, target: str, doc: PolicyDocument) -> Action:
        rationale = self.spec.rollback.rationale or Rationale(
            intent=f"roll back: {self.spec.rationale.intent}"[:4000], rollback=self.spec.rationale.rollback)
        return Action(kind=self.spec.kind, environment=doc.targets[target].environment, target=target,
                      payload=_for_target(self.spec.rollback.payload, target, doc), rationale=rationale)

    def wave_of(self, step: int) -> int:
        """1 for the first setTargets/percent step, 2 for the second …"""
        return sum(1 for c in self.counts[: step + 1] if c is not None)


#: terraform payload fields that may name one hash per target ({target: hash}): each stack's plan file
#: (or revision) is its own, so one group-wide payload names each member's.
PER_TARGET_HASHES = ("plan_sha256", "revision_sha256")


def _for_target(payload: dict[str, Any], target: str, doc: PolicyDocument) -> dict[str, Any]:
    """An http payload's `url` may start with `{target.url}` (the target's base URL, so the classifier
    sees an absolute URL) and name `{target}`; a terraform payload's `plan_sha256` / `revision_sha256`
    may be a mapping of target to hash. Nothing else in a payload is templated."""
    if doc.targets[target].kind is Kind.terraform:
        picked = {k: v[target] for k in PER_TARGET_HASHES if isinstance(v := payload.get(k), dict) and target in v}
        return {**payload, **picked} if picked else payload
    url = payload.get("url")
    if not isinstance(url, str) or "{target" not in url:
        return payload
    base = (doc.targets[target].url or "").rstrip("/")
    return {**payload, "url": url.replace("{target.url}", base).replace("{target}", target)}


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse(body: Any) -> RolloutSpec:
    """The rollout document, or RolloutError naming the first bad field."""
    if not isinstance(body, dict):
        raise RolloutError("invalid_rollout", "a rollout is a mapping (kind, group, payload, rollback, steps …)")
    try:
        return RolloutSpec.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _location(tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-"))))
        message = str(first["msg"]).removeprefix("Value error, ")
        raise RolloutError("invalid_rollout", f"{where or 'rollout'}: {message}", where or None) from None


def plan(spec: RolloutSpec, doc: PolicyDocument) -> Plan:
    """Resolve the group and the steps' counts; every problem the issue lists is an error here."""
    try:
        found = members(doc, spec.group)
    except GroupError as exc:
        raise RolloutError("bad_group", str(exc), "group") from None
    kind = doc.targets[found[0]].kind
    if kind is not spec.kind:
        raise RolloutError("kind_mismatch", f"group {spec.group} holds {kind.value} targets, the action is "
                           f"{spec.kind.value}: propose a {kind.value} action or choose another group", "kind")
    if spec.rollback.kind is not None and spec.rollback.kind is not spec.kind:
        raise RolloutError("rollback_kind", f"the rollback is {spec.rollback.kind.value}, the action is "
                           f"{spec.kind.value}: a rollback is an action of the same kind on the same targets",
                           "rollback.kind")
    if spec.kind is Kind.terraform:
        _check_terraform(spec, found)
    counts: list[int | None] = []
    last = 0
    for i, step in enumerate(spec.steps):
        if step.set_targets is not None:
            count = step.set_targets
            if count > len(found):
                raise RolloutError("bad_steps", f"steps[{i}].setTargets is {count}, but group {spec.group} has "
                                   f"{len(found)} targets", f"steps[{i}].setTargets")
        elif step.percent is not None:
            count = math.ceil(step.percent * len(found) / 100)
        else:
            counts.append(None)
            continue
        if count < last:
            raise RolloutError("bad_steps", f"steps[{i}] sets {count} targets after an earlier step set {last}: "
                               "counts are cumulative and never go down (use abort to go back)", f"steps[{i}]")
        counts.append(count)
        last = count
    if last < len(found):
        raise RolloutError("bad_steps", f"the steps never reach 100% of group {spec.group} (they stop at {last} of "
                           f"{len(found)} targets): end with `- percent: 100`", "steps")
    for i, step in enumerate(spec.steps):
        for check in step.analysis.checks if step.analysis else ():
            if check.sql is not None and spec.kind is not Kind.sql:
                raise RolloutError("bad_check", f"steps[{i}] check {check.name}: a sql probe runs on the targets, "
                                   f"which are {spec.kind.value} targets", f"steps[{i}].analysis")
            if check.http is not None and check.http.path is not None and spec.kind is not Kind.http:
                raise RolloutError("bad_check", f"steps[{i}] check {check.name}: `path` is under an http target's "
                                   "url; these targets are not http: give `url`", f"steps[{i}].analysis")
    return Plan(spec=spec, members=tuple(found), counts=tuple(counts))


def _check_terraform(spec: RolloutSpec, found: list[str]) -> None:
    """terraform: the rollback is a configuration revision (an old saved plan is stale once the forward
    change applied), and a per-target hash mapping names exactly the group's members."""
    rollback = spec.rollback.payload
    if "plan_file" in rollback or "revision" not in rollback:
        raise RolloutError("rollback_revision", "a terraform rollback cannot re-apply a saved plan (it is stale once "
                           "the forward plan applied): name the previous configuration, planned at rollback time: "
                           "rollback: {payload: {revision: revisions/v1, revision_sha256: <hex>}} (docs/rollouts.md)",
                           "rollback.payload")
    for where, payload in (("payload", spec.payload), ("rollback.payload", rollback)):
        for key in PER_TARGET_HASHES:
            value = payload.get(key)
            if isinstance(value, dict) and set(value) != set(found):
                missing, extra = sorted(set(found) - set(value)), sorted(set(value) - set(found))
                wrong = f"missing {', '.join(missing)}" if missing else f"not members: {', '.join(extra)}"
                raise RolloutError("bad_payload", f"{where}.{key} names one hash per target; {wrong} "
                                   f"(group {spec.group}: {', '.join(found)})", f"{where}.{key}")


def fingerprint(agent: str, p: Plan, policy_version: str) -> str:
    """What the rollout's approval binds to: action, rollback, members and steps (any change: new approval)."""
    material = {"agent": agent, "rollout": p.spec.model_dump(mode="json", by_alias=True),
                "members": list(p.members), "policy_version": policy_version}
    return hashlib.sha256(canonical_json(material)).hexdigest()
