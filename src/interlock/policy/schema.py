"""The policy file's schema (documented in docs/policy.md, exported by `interlock policy schema`).

Pydantic models with `extra="forbid"`: a misspelled key is an error with its line, never ignored.
Cross-references (groups, agents, environments, targets, roles) and the hard floor are checked in
`load.py`, where the source locations are known.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from interlock.classify.paths import DEFAULT_RULES, PathRules
from interlock.guard.windows import OneOff, Recurring, parse_window
from interlock.model import DEFAULT_MAX_PAYLOAD_BYTES, DecisionValue, Kind, Risk

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Name = Annotated[str, Field(pattern=NAME)]
#: Where a credential comes from: an environment variable or a file. Never the secret itself.
SECRET_REF_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/.+)$"
SecretRef = Annotated[str, Field(pattern=SECRET_REF_PATTERN)]

_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> int:
    """'90s', '15m', '1h', '2d' (or a number of seconds) → seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '15m', '1h'")
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION.match(str(value).strip())
        if not match:
            raise ValueError(f"{value!r} is not a duration: write e.g. '90s', '15m', '1h' or '2d'")
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


Duration = Annotated[int, BeforeValidator(parse_duration)]
#: A SQL function name as calls write it: `report_totals` or `schema.report_totals` (compared in lower case).
SqlFunction = Annotated[
    str,
    BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v),
    Field(pattern=r"^([a-z_][a-z0-9_$]*\.)?[a-z_][a-z0-9_$]*$"),
]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _as_list(value: Any) -> Any:
    """`when` conditions accept one value or a list of values (any of them matches)."""
    return [value] if isinstance(value, str) else value


OneOrMany = Annotated[tuple[str, ...], BeforeValidator(_as_list)]


class Human(Model):
    groups: tuple[Name, ...] = ()
    description: str = ""


class Agent(Model):
    owner: Name = Field(description="the human who runs this agent; never counts as its approver")
    roles: tuple[Name, ...] = ()
    description: str = ""


class Environment(Model):
    protected: bool = Field(default=False, description="production-like: destructive actions always need humans")
    promotes_to: Name | None = Field(default=None, description="the next environment in the promotion chain")
    description: str = ""


class AwsTarget(Model):
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: SecretRef | None = None
    secret_access_key: SecretRef | None = None
    session_token: SecretRef | None = None


class Target(Model):
    """Something an executor acts on. Its credentials are references, resolved only by executors."""

    environment: Name
    kind: Kind
    description: str = ""
    dsn: SecretRef | None = Field(default=None, description="sql: connection string reference")
    dialect: str = Field(default="postgres", description="sql: sqlglot dialect used to classify")
    url: str | None = Field(default=None, description="http: base URL")
    headers: dict[str, SecretRef] = Field(default_factory=dict, description="http: header → secret reference")
    http_methods: dict[str, Risk] = Field(default_factory=dict, description="http: method → risk override")
    mcp_tools: dict[str, Risk] = Field(default_factory=dict, description="mcp: tool → trusted risk")
    read_only_functions: tuple[SqlFunction, ...] = Field(
        default=(), description="sql: this database's own functions that only read (`report_totals`, `billing.totals`)"
    )
    kubeconfig: SecretRef | None = None
    context: str | None = Field(default=None, description="kubectl: kubeconfig context")
    workdir: str | None = Field(default=None, description="shell/terraform: working directory")
    env: dict[str, SecretRef] = Field(default_factory=dict, description="environment variables for the executor")
    aws: AwsTarget | None = None
    timeout: Duration = Field(default=30, description="executor timeout")
    max_output_bytes: int = Field(default=1024 * 1024, ge=1024)
    twin: Name | None = Field(
        default=None, description="the target of the same kind, in an earlier environment, where this target's "
        "actions are rehearsed first (docs/sandbox.md)"
    )
    strategy: Literal["rollback", "apply"] = Field(
        default="rollback", description="sql, when this target is a twin: `rollback` runs a rehearsal in one "
        "transaction and rolls it back; `apply` commits it on the twin"
    )
    network: bool = Field(
        default=False, description="shell, when this target is a twin: rehearsals may reach the network"
    )
    labels: dict[Name, str] = Field(default_factory=dict, description="free labels; a target group may select on them")
    audit_output: Literal["digest", "excerpt"] = Field(
        default="digest",
        description="what the permanent audit log keeps of an execution's output: its size and SHA-256 "
        "(digest), or also a redacted excerpt of its head (excerpt: production data in the log for good)",
    )

    @field_validator("http_methods")
    @classmethod
    def _upper_methods(cls, value: dict[str, Risk]) -> dict[str, Risk]:
        return {k.upper(): v for k, v in value.items()}


AutonomyLevel = Literal["ask", "read", "write", "destructive"]
ApprovableRisk = Literal["read", "write", "destructive"]


class Approvals(Model):
    """`count` distinct humans from `from` groups (anyone, when omitted); the agent's owner never counts."""

    count: int = Field(ge=1, le=20)
    from_groups: tuple[Name, ...] = Field(default=(), alias="from")
    at_least: dict[Name, Annotated[int, Field(ge=1, le=20)]] = Field(
        default_factory=dict, description="per-group minimums, e.g. {dba: 1}"
    )

    @model_validator(mode="after")
    def _at_least_fits(self) -> Approvals:
        if sum(self.at_least.values()) > self.count:
            raise ValueError(f"at_least asks for {sum(self.at_least.values())} approvals but count is {self.count}")
        return self


def _approvals_shorthand(value: Any) -> Any:
    """`approve: {write: 1}` is shorthand for `{write: {count: 1}}`."""
    if not isinstance(value, dict):
        return value
    out = {}
    for risk, spec in value.items():
        if isinstance(spec, int) and not isinstance(spec, bool):
            spec = {"count": spec}
        elif not isinstance(spec, dict):
            raise ValueError(f"approve.{risk}: give a number of approvals (e.g. 2) or {{count: 2, from: [dba]}}, "
                             f"not {spec!r}")
        out[risk] = spec
    return out


def _read_needs_one() -> dict[ApprovableRisk, Approvals]:
    return {"read": Approvals(count=1)}


class RoleScope(Model):
    """What a role may do in one environment (not a *grant*: in DESIGN.md §2 a grant is what a
    satisfied approval request yields; this is the role's standing scope).

    `autonomous`: the highest risk the agent may take alone (`ask`: nothing alone, the default).
    `approve`: for risks above that, the approvals that let it run; a risk above `autonomous` with no entry
    is denied. Default `{read: 1}`: read-only, and even reads ask, unless the policy opts in.
    """

    autonomous: AutonomyLevel = "ask"
    approve: Annotated[dict[ApprovableRisk, Approvals], BeforeValidator(_approvals_shorthand)] = Field(
        default_factory=lambda: _read_needs_one()
    )


class When(Model):
    """Conditions of a rule; every condition given must hold. A list means any of its values."""

    agent: OneOrMany = ()
    role: OneOrMany = ()
    environment: OneOrMany = ()
    kind: Annotated[tuple[Kind, ...], BeforeValidator(_as_list)] = ()
    target: OneOrMany = ()
    risk: Annotated[tuple[Risk, ...], BeforeValidator(_as_list)] = Field(
        default=(), description="matches the classified risk; `destructive` also matches `unknown`"
    )
    tags: OneOrMany = Field(default=(), description="all of these tags must be present")
    input: OneOrMany = Field(default=(), description="regular expressions; any match over the action's input")


Effect = Literal["allow", "deny", "approve", "sandbox"]


class Rule(Model):
    id: Annotated[str, Field(pattern=NAME)]
    description: str = ""
    when: When = Field(default_factory=When)
    effect: Effect
    reason: str = ""
    approvals: Approvals | None = None
    sandbox: Name | None = Field(default=None, description="for effect sandbox: where to run first")

    @model_validator(mode="after")
    def _effect_fields(self) -> Rule:
        if self.effect == "approve" and self.approvals is None:
            raise ValueError("effect approve needs `approvals: {count: N, from: [group]}`")
        if self.effect != "approve" and self.approvals is not None:
            raise ValueError(f"`approvals` only applies to effect approve, not {self.effect}")
        if self.effect != "sandbox" and self.sandbox is not None:
            raise ValueError(f"`sandbox` only applies to effect sandbox, not {self.effect}")
        return self


class PolicyTest(Model):
    """An inline test: this agent proposing this input here must get `expect`."""

    name: str = ""
    agent: Name
    env: Name
    kind: Kind
    target: Name | None = None
    input: str
    risk: Risk | None = Field(default=None, description="override the classifier (tests the policy alone)")
    tags: tuple[str, ...] | None = None
    expect: DecisionValue
    at: str | None = Field(default=None, description="the time the test runs at (RFC 3339, e.g. "
                           "'2026-07-18T10:00:00Z'): change-freeze windows apply; without it, none does")
    approvals: int | None = Field(default=None, description="expected total number of approvals required")
    rule: str | None = Field(default=None, description="a rule id expected among the deciding rules")


class Webhook(Model):
    name: Name | None = Field(default=None, description="what the webhook outbox and `webhook.failed` call it "
                              "(default: a digest of format and URL, so a changed URL drops pending deliveries)")
    url: str = Field(pattern=r"^https?://")
    secret: SecretRef | None = Field(default=None, description="HMAC-SHA256 signing key reference")
    format: Literal["json", "slack"] = "json"
    events: tuple[str, ...] = ()


class Defaults(Model):
    approval_ttl: Duration = Field(default=3600, description="how long an approval request stays open")
    grant_ttl: Duration = Field(default=900, description="how long a satisfied request's grant stays usable")
    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD_BYTES, ge=1024, le=64 * 1024 * 1024)
    evidence_ttl: Duration = Field(default=86400, description="how long a rehearsal's evidence can promote an action")


def _glob(value: Any) -> Any:
    if isinstance(value, str) and (not value.strip() or "\x00" in value):
        raise ValueError("a path pattern must be non-empty text")
    return value


PathGlob = Annotated[str, BeforeValidator(_glob)]
#: A scratch root: an absolute directory (`/scratch`) or an environment variable (`$BUILD_TMP`).
ScratchRoot = Annotated[str, Field(pattern=r"^(/[^\x00]*[^/\x00]|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)$")]


class Paths(Model):
    """Protected paths, secret files and scratch roots, judged the same in every kind (file, shell, mcp)."""

    protected: tuple[PathGlob, ...] = Field(
        default=(), description="globs whose writes, deletes and moves are destructive + protected-target"
    )
    secret: tuple[PathGlob, ...] = Field(
        default=(), description="globs of credential files: reading one is write + secrets"
    )
    scratch: tuple[ScratchRoot, ...] = Field(
        default=(), description="throw-away roots: removing something below one is write, not destructive"
    )
    defaults: bool = Field(
        default=True, description="keep the built-in lists and add these; false: these lists replace them"
    )

    def rules(self) -> PathRules:
        if self.defaults and not (self.protected or self.secret or self.scratch):
            return DEFAULT_RULES  # the shared instance: its compiled expressions are built once
        if not self.defaults:
            return PathRules(protected=self.protected, secret=self.secret, scratch=self.scratch)
        base = DEFAULT_RULES
        return PathRules(
            protected=base.protected + self.protected,
            secret=base.secret + self.secret,
            scratch=base.scratch + self.scratch,
        )


# --- guards (docs/guards.md) ----------------------------------------------------------------------

_SUB_SECOND = re.compile(r"^(\d+)ms$")


def parse_timeout(value: Any) -> float:
    """'250ms', '2s', '1m' (or a number of seconds) → seconds."""
    if isinstance(value, str) and (match := _SUB_SECOND.match(value.strip())):
        seconds = int(match.group(1)) / 1000
        if seconds <= 0:
            raise ValueError("a timeout must be positive")
        return seconds
    if isinstance(value, float) and value > 0:
        return value
    return float(parse_duration(value))


def _windows(value: Any) -> tuple[Recurring | OneOff, ...]:
    items = value if isinstance(value, list | tuple) else [value]
    if not items:
        raise ValueError("give at least one window, e.g. 'sat-sun 00:00-24:00 UTC'")
    return tuple(parse_window(v) for v in items)


Windows = Annotated[
    tuple[Any, ...],
    BeforeValidator(_windows),
    PlainSerializer(lambda ws: [w.describe() for w in ws]),
    WithJsonSchema({"description": "a window ('mon-fri 18:00-08:00 Europe/Berlin', '2026-12-24 to 2026-12-27 UTC',"
                    " or {days, from, to, zone} / {start, end, zone}) or a list of them"}),
]
Timeout = Annotated[float, BeforeValidator(parse_timeout)]


class ChangeFreeze(Model):
    """A change freeze: inside its window every non-read action in scope needs `approvers` on top of
    everything else, or is denied when no approvers are named. An empty scope list means all."""

    name: Name | None = None
    environments: tuple[Name, ...] = ()
    targets: tuple[Name, ...] = ()
    agents: tuple[Name, ...] = ()
    window: Windows
    reason: str = Field(min_length=1, description="shown in every answer the freeze changes")
    approvers: Approvals | None = None


class Breakers(Model):
    """Circuit breakers per agent and per agent × target (defaults justified in docs/guards.md)."""

    consecutive_failures: int = Field(default=5, ge=1, le=10_000, description="pybreaker's fail_max")
    consecutive_denials: int = Field(default=5, ge=1, le=10_000)
    failure_rate: float = Field(default=50.0, gt=0, le=100, description="percent of executions in `window`")
    minimum_calls: int = Field(default=10, ge=1, le=100_000, description="executions before the rate counts")
    window: Duration = Field(default=600, description="the failure-rate window")
    cool_down: Duration = Field(default=60, description="open → half-open after this long")
    half_open_successes: int = Field(default=3, ge=1, le=1000, description="successes that close it again")


class Detector(Model):
    enforce: bool = Field(default=True, description="false: shadow mode, records and alerts, never trips")


class CountDetector(Detector):
    threshold: int = Field(ge=1, le=1_000_000_000)
    window: Duration = 60


class StreakDetector(Detector):
    threshold: int = Field(ge=1, le=1_000_000)


class FirstActionDetector(Detector):
    environments: tuple[Name, ...] = Field(default=(), description="where it applies (empty: everywhere)")


class WorkingHoursDetector(Detector):
    agents: dict[Name, Windows] = Field(default_factory=dict, description="agent → its working hours")


class Anomalies(Model):
    burst: CountDetector | None = Field(default=None, description="destructive proposals by one agent in a window")
    denial_streak: StreakDetector | None = Field(default=None, description="denials in a row (policy probing)")
    first_action: FirstActionDetector | None = Field(default=None, description="an agent's first action on a target")
    working_hours: WorkingHoursDetector | None = None
    blast_radius: CountDetector | None = Field(
        default=None, description="rows deleted, resources destroyed, files removed by one agent in a window")


class Guards(Model):
    thaw_by: tuple[Name, ...] = Field(default=(), description="groups that may thaw a freeze (empty: any human)")
    decision_timeout: Timeout | None = Field(
        default=None, description="a store slower than this answers deny (e.g. '2s', '500ms')")
    freezes: tuple[ChangeFreeze, ...] = ()
    breakers: Breakers | None = None
    anomalies: Anomalies = Field(default_factory=Anomalies)


class TargetGroup(Model):
    """A named set of targets of one kind that a rollout changes in waves (docs/rollouts.md): a list of
    target names, or a selector on target labels (`{selector: {tier: billing}}`)."""

    targets: tuple[Name, ...] = ()
    selector: dict[Name, str] = Field(default_factory=dict, description="every label must match")


def _group_shorthand(value: Any) -> Any:
    """`billing-dbs: [db-eu, db-us]` is `billing-dbs: {targets: [db-eu, db-us]}`."""
    return {"targets": value} if isinstance(value, list | tuple) else value


class PolicyDocument(Model):
    """The whole policy file."""

    version: Literal[1]
    description: str = ""
    defaults: Defaults = Field(default_factory=Defaults)
    paths: Paths = Field(default_factory=Paths)
    humans: dict[Name, Human] = Field(default_factory=dict)
    agents: dict[Name, Agent] = Field(default_factory=dict)
    environments: dict[Name, Environment]
    targets: dict[Name, Target] = Field(default_factory=dict)
    groups: dict[Name, Annotated[TargetGroup, BeforeValidator(_group_shorthand)]] = Field(
        default_factory=dict, description="target groups for rollouts: a list of targets or a label selector")
    roles: dict[Name, dict[str, RoleScope]] = Field(
        default_factory=dict, description="role → environment (or '*' for any other) → grant"
    )
    rules: tuple[Rule, ...] = ()
    notify: tuple[Webhook, ...] = ()
    guards: Guards = Field(default_factory=Guards)
    tests: tuple[PolicyTest, ...] = ()

    @field_validator("notify")
    @classmethod
    def _unique_webhook_names(cls, hooks: tuple[Webhook, ...]) -> tuple[Webhook, ...]:
        names = [h.name for h in hooks if h.name]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"two notify entries are named {', '.join(twice)}: give each webhook its own name")
        return hooks
