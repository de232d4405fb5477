"""The words of DESIGN.md §2 as strict data types.

Every model forbids unknown fields: a typo in a request or a policy is an error that names the
field, never a silently ignored key (fail closed).
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import PydanticCustomError

#: Default limit on the canonical JSON size of an action's payload (configurable in the policy).
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$"

#: What a name may be, in words (the pattern is what the OpenAPI document shows).
NAME_RULE = "a letter or digit, then up to 127 letters, digits or _ . : @ / -"


def _named(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError as exc:
        if any(e["type"] == "string_pattern_mismatch" for e in exc.errors()):
            raise PydanticCustomError("name_invalid", f"should be a name: {NAME_RULE}",
                                      {"pattern": NAME_PATTERN}) from None
        raise


def _payload_not_empty(value: dict[str, Any]) -> dict[str, Any]:
    if not value:
        raise PydanticCustomError("payload_empty",
                                  'should not be empty: say what the action does (e.g. {"command": "ls"})')
    return value


#: An environment's or a target's name as an action carries it. `Action` and every request that becomes
#: one share this type, so a name the Action would refuse is refused where it arrives (a 422 naming the
#: field), never later, when the Action is built (a bare 500).
Name = Annotated[str, Field(pattern=NAME_PATTERN), WrapValidator(_named)]

#: An action's payload: a JSON object with at least one key (shared for the same reason as `Name`).
Payload = Annotated[dict[str, Any], Field(json_schema_extra={"minProperties": 1}), AfterValidator(_payload_not_empty)]


class Strict(BaseModel):
    """Base for every Interlock model: unknown fields are rejected, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Kind(enum.StrEnum):
    """What sort of action this is; each kind has a classifier and (later) an executor."""

    shell = "shell"
    sql = "sql"
    kubectl = "kubectl"
    terraform = "terraform"
    aws = "aws"
    http = "http"
    mcp = "mcp"
    file = "file"


class Risk(enum.StrEnum):
    """How much harm an action can do. `unknown` is ranked with `destructive` (invariant 3)."""

    read = "read"
    write = "write"
    destructive = "destructive"
    unknown = "unknown"

    @property
    def rank(self) -> int:
        return _RISK_RANK[self]

    def at_most(self, ceiling: Risk) -> bool:
        return self.rank <= ceiling.rank

    @property
    def effective(self) -> Risk:
        """The risk the policy judges by: `unknown` is judged as `destructive`."""
        return Risk.destructive if self is Risk.unknown else self

    @staticmethod
    def highest(risks: list[Risk]) -> Risk:
        """The most dangerous of several risks; `unknown` wins a tie with `destructive`."""
        if not risks:
            return Risk.read
        return max(risks, key=lambda r: (r.rank, r is Risk.unknown))


_RISK_RANK = {Risk.read: 0, Risk.write: 1, Risk.destructive: 2, Risk.unknown: 2}

#: Tags a classifier may report. Free-form tags are allowed too (policies may match on them),
#: these are the ones Interlock itself emits and documents.
KNOWN_TAGS = (
    "replace",
    "privilege",
    "mass",
    "irreversible",
    "protected-target",
    "network",
    "interpreter",
    "obfuscated",
    "exfiltration",
    "cascade",
    "schema",
    "secrets",
    "scratch",
    # SQL statement tags: what kind of statement it is (or holds), so a policy needs no regex.
    "drop",
    "truncate",
    "alter",
    "grant",
    "revoke",
    "delete",
    "update",
    "insert",
    "create",
    "merge",
    "copy",
    "call",
)


class Rationale(Strict):
    """The agent's structured reason for an action, shown to approvers and kept in the audit log."""

    intent: str = Field(max_length=4000)
    expected_effect: str = Field(default="", max_length=4000)
    rollback: str = Field(default="", max_length=4000)


class Action(Strict):
    """What an agent proposes. The agent's identity is not part of it: it comes from the token."""

    kind: Kind
    environment: Name
    target: Name | None = None
    payload: Payload
    rationale: Rationale | None = None


class Classification(Strict):
    """What a classifier found an action would do."""

    risk: Risk
    tags: tuple[str, ...] = ()
    summary: str
    details: dict[str, Any] = Field(default_factory=dict)
    #: Other action kinds found inside this one: a shell line running `psql -c …` also contains `sql`,
    #: so policy rules about SQL apply to it however it is proposed.
    kinds: tuple[str, ...] = ()

    @field_validator("tags")
    @classmethod
    def _sorted_unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(value)))


class DecisionValue(enum.StrEnum):
    """What the policy decided (DESIGN.md §2 *decision*); a `Decision` carries it with its rules and
    reasons. Not an *outcome*: that word is what happened when an action ran (an advisory report)."""

    allow = "allow"
    deny = "deny"
    approval_required = "approval_required"
    sandbox_required = "sandbox_required"

    @property
    def exit_code(self) -> int:
        """The `interlock check` exit code (DESIGN.md §5)."""
        return {"allow": 0, "deny": 1}.get(self.value, 3)


class ApprovalRequirement(Strict):
    """`count` distinct eligible humans must approve; eligible = members of `from_groups`
    (anyone when empty), never the agent itself nor its owner. `at_least` adds per-group minimums
    ("at least one from dba")."""

    count: int = Field(ge=1, le=100)
    from_groups: tuple[str, ...] = ()
    at_least: tuple[tuple[str, int], ...] = ()
    source: str = Field(description="the rule id or role grant that demanded it")

    def describe(self) -> str:
        who = "anyone" if not self.from_groups else " or ".join(self.from_groups)
        text = f"{self.count} approval{'s' if self.count != 1 else ''} from {who}"
        for group, n in self.at_least:
            text += f", at least {n} from {group}"
        return text


class Decision(Strict):
    """The policy's answer, with everything needed to explain it.

    Its value is spelled "outcome" on every wire (audit entries, `check --format json` callers'
    tooling, webhook bodies) because old versions wrote it so and their entries must still verify and
    replay; Python says `value` (DESIGN.md §2: an *outcome* is what happened when an action ran).
    Validation accepts both names; serialization writes "outcome"."""

    model_config = ConfigDict(serialize_by_alias=True)

    value: DecisionValue = Field(validation_alias=AliasChoices("outcome", "value"), serialization_alias="outcome")
    risk: Risk
    tags: tuple[str, ...] = ()
    summary: str = ""
    rules: tuple[str, ...] = Field(default=(), description="ids of the rules and grants that produced it")
    reasons: tuple[str, ...] = ()
    remedy: tuple[str, ...] = Field(default=(), description="what would allow it, when not allowed")
    approvals: tuple[ApprovalRequirement, ...] = ()
    sandbox: str | None = Field(default=None, description="environment to run in first")
    policy_version: str = ""

    @property
    def allowed(self) -> bool:
        return self.value is DecisionValue.allow




_DECISION_FIELDS = ("value", "risk", "tags", "summary", "rules", "reasons", "remedy", "approvals", "sandbox",
                    "policy_version")
_set_attribute = object.__setattr__


def built_decision(value: DecisionValue, risk: Risk, tags: tuple[str, ...], summary: str, rules: tuple[str, ...],
                   reasons: tuple[str, ...], remedy: tuple[str, ...], approvals: tuple[ApprovalRequirement, ...],
                   sandbox: str | None, policy_version: str) -> Decision:
    """A `Decision` from values the policy engine already checked, built as `Decision.model_construct`
    builds one with every field given (its generic loop over fields and aliases was most of the cost of
    deciding a short command). tests/test_policy_decide.py checks the two agree."""
    made = Decision.__new__(Decision)
    _set_attribute(made, "__dict__", {
        "value": value, "risk": risk, "tags": tags, "summary": summary, "rules": rules, "reasons": reasons,
        "remedy": remedy, "approvals": approvals, "sandbox": sandbox, "policy_version": policy_version})
    _set_attribute(made, "__pydantic_fields_set__", set(_DECISION_FIELDS))
    _set_attribute(made, "__pydantic_extra__", None)
    _set_attribute(made, "__pydantic_private__", None)
    return made
