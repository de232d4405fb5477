"""The classifier registry: one pure function per action kind.

A classifier takes an action's payload and a `ClassifyContext` (what the policy says about the
target: SQL dialect, HTTP method overrides, trusted MCP tool risks) and returns a
`Classification`. It must never raise: `classify()` turns any exception into `unknown`
(invariant 3: what cannot be understood is treated as destructive).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from pydantic import Field

from interlock.classify.paths import DEFAULT_RULES, PathRules
from interlock.model import Classification, Kind, Risk, Strict


class ClassifyContext(Strict):
    """Facts about the target that change how an action is judged. Comes from the policy."""

    sql_dialect: str = "postgres"
    #: http: method (upper case) → risk, per target; overrides the default by-method judgement.
    http_methods: dict[str, Risk] = Field(default_factory=dict)
    #: mcp: tool name → risk declared by the policy (trusted, unlike server annotations).
    mcp_tools: dict[str, Risk] = Field(default_factory=dict)
    #: sql: functions of this database that only read (lower case, as written in calls: `report_totals`,
    #: `reporting.report_totals`); a call to any other function we do not know is `unknown`.
    read_only_functions: frozenset[str] = frozenset()
    #: protected paths, secret files and scratch roots (the policy's `paths:` section, see paths.py).
    paths: PathRules = DEFAULT_RULES


Classifier = Callable[[dict[str, Any], ClassifyContext], Classification]

#: Shared by every call that gives no context (the model is frozen, so sharing is safe).
DEFAULT_CONTEXT = _DEFAULT_CONTEXT = ClassifyContext()

_CLASSIFIERS: dict[Kind, Classifier] = {}

#: Modules that register a classifier when imported, one per kind.
_MODULES = {
    Kind.shell: "interlock.classify.shell",
    Kind.sql: "interlock.classify.sql",
    Kind.kubectl: "interlock.classify.kubectl",
    Kind.terraform: "interlock.classify.terraform",
    Kind.aws: "interlock.classify.aws",
    Kind.http: "interlock.classify.http",
    Kind.mcp: "interlock.classify.mcp",
    Kind.file: "interlock.classify.file",
}


def register(kind: Kind) -> Callable[[Classifier], Classifier]:
    def decorate(func: Classifier) -> Classifier:
        _CLASSIFIERS[kind] = func
        return func

    return decorate


def classifier_for(kind: Kind) -> Classifier | None:
    if kind not in _CLASSIFIERS and kind in _MODULES:
        try:
            importlib.import_module(_MODULES[kind])
        except ModuleNotFoundError as exc:
            if exc.name != _MODULES[kind]:
                raise
    return _CLASSIFIERS.get(kind)


#: The `details` key of a classification whose action prints or returns a secret's value (a password, a
#: token, a private key, decrypted data), saying what it discloses. `classify()` makes every such action at
#: least `write` + `secrets` (docs/classifiers.md, "Secrets and credentials"): whoever holds the value can
#: act outside Interlock, so a role that may only read must not walk away with one (mission safeguard 2).
#: Classifiers only recognise the disclosure; this one rule decides what it costs, for every kind.
DISCLOSES = "discloses"


def at_least_write_when_disclosing(result: Classification) -> Classification:
    """A classification that discloses a secret's value, lifted to at least `write` + `secrets`."""
    what = result.details.get(DISCLOSES)
    if not what:
        return result
    update: dict[str, Any] = {}
    if "secrets" not in result.tags:
        update["tags"] = tuple(sorted({*result.tags, "secrets"}))
    if result.risk is Risk.read:
        update["risk"] = Risk.write
        update["summary"] = f"{result.summary}; discloses {what}: at least write"
    return result.model_copy(update=update) if update else result


#: What `Classification(risk=…, tags=…, summary=…, details=…)` sets (kinds left to its default).
CONSTRUCTOR_FIELDS = frozenset({"risk", "tags", "summary", "details"})
_ALL_FIELDS = frozenset({*CONSTRUCTOR_FIELDS, "kinds"})
_set_attribute = object.__setattr__


def built_classification(
    risk: Risk,
    tags: tuple[str, ...],
    summary: str,
    details: dict[str, Any],
    kinds: tuple[str, ...] = (),
    fields_set: frozenset[str] = _ALL_FIELDS,
) -> Classification:
    """A `Classification` from checked values (tags already sorted and unique, as the model's
    validator would make them), built as `Classification.model_construct` builds one: validation
    is a third of the time of a short command, and model_construct's generic loop over the fields
    another tenth. `fields_set`: the fields counted as given (`CONSTRUCTOR_FIELDS` for what the
    constructor called without `kinds` makes). tests/test_shell_classifier.py checks the two agree."""
    made = Classification.__new__(Classification)
    values = {"risk": risk, "tags": tags, "summary": summary, "details": details, "kinds": kinds}
    _set_attribute(made, "__dict__", values)
    _set_attribute(made, "__pydantic_fields_set__", set(fields_set))
    _set_attribute(made, "__pydantic_extra__", None)
    _set_attribute(made, "__pydantic_private__", None)
    return made


def unknown(summary: str, **details: Any) -> Classification:
    return Classification(risk=Risk.unknown, summary=summary, details=details)


#: The kinds met while classifying (a shell line handing SQL to psql meets `sql`): classifiers delegate
#: through `classify()`, which records each kind here, so every kind inside an action is found however
#: deep, and however the classifiers call each other.
_FOUND_KINDS: ContextVar[set[str] | None] = ContextVar("interlock_found_kinds", default=None)


def found_kinds(own: Kind) -> tuple[str, ...]:
    """The other kinds met so far in the classification under way (for classifiers that cache results)."""
    found = _FOUND_KINDS.get()
    return tuple(sorted(found - {own.value})) if found else ()


def classify(kind: Kind, payload: dict[str, Any], context: ClassifyContext | None = None) -> Classification:
    """Classify a payload; never raises. No classifier or a crash → `unknown`."""
    parent = _FOUND_KINDS.get()
    if parent is not None:
        parent.add(kind.value)
    func = classifier_for(kind)
    if func is None:
        return unknown(f"no classifier for {kind.value} actions")
    found: set[str] = set()
    token = _FOUND_KINDS.set(found)
    try:
        result = func(payload, context or _DEFAULT_CONTEXT)
    except Exception as exc:
        result = unknown(f"{kind.value} classifier could not judge this: {type(exc).__name__}", error=str(exc)[:200])
    finally:
        _FOUND_KINDS.reset(token)
    result = at_least_write_when_disclosing(result)
    if not found and not result.kinds:
        return result  # the common case: nothing inside
    found.update(result.kinds)
    found.discard(kind.value)
    inner = tuple(sorted(found))
    if parent is not None:
        parent.update(inner)
    if inner != result.kinds:
        result = result.model_copy(update={"kinds": inner})
    return result


#: The payload field that carries the text form of each kind's input (CLI `INPUT`, corpus `input`).
TEXT_FIELD = {
    Kind.shell: "command",
    Kind.sql: "sql",
    Kind.kubectl: "command",
    Kind.aws: "command",
}

#: Every form each kind's input may take (`interlock classify`, `--jsonl`, policy tests), said in errors.
ACCEPTED_FORMS = {
    Kind.shell: 'a shell command line, or {"command": "…"}',
    Kind.sql: 'SQL text, or {"sql": "…"}',
    Kind.kubectl: 'a kubectl command line ("kubectl get pods"), {"command": "kubectl …"} or {"args": ["get", "pods"]}',
    Kind.aws: 'an aws CLI line ("aws ec2 describe-instances"), an IAM action ("ec2:DescribeInstances"), '
    '{"command": "aws …"} or {"operation": "ec2:DescribeInstances", "params": {…}}',
    Kind.http: 'a "METHOD URL" line ("GET https://api.example.com/v1/x", any case) or '
    '{"method": "GET", "url": "https://…", "headers": {…}, "body": …}',
    Kind.mcp: '{"server": "…", "tool": "…", "arguments": {…}, "annotations": {…}}',
    Kind.terraform: 'the JSON of `terraform show -json PLANFILE`, or {"plan": <that JSON>}',
    Kind.file: '{"operation": "read|write|edit|create|append|delete", "path": "…"}',
}

_IAM_ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")
_METHOD_URL = re.compile(r"^([A-Za-z]{1,20})\s+(\S+)$")


class InputError(ValueError):
    """Input in none of the forms its kind accepts; the message names the accepted forms."""


def accepted_forms(kind: Kind) -> str:
    return ACCEPTED_FORMS.get(kind, "a JSON object")


def unaccepted(kind: Kind, what: str) -> Classification:
    """`unknown`, saying what was wrong and which input forms the kind accepts."""
    return unknown(f"{what}; {kind.value} input is {accepted_forms(kind)}")


def payload_from_input(kind: Kind, text: str) -> dict[str, Any]:
    """Turn the text a human types (`interlock classify --kind sql "DELETE …"`) into a payload.

    Every documented form is accepted: a payload's JSON object for every kind (`{"args": [...]}` for
    kubectl, `{"operation": …}` for aws), the text form of the text kinds, an IAM action name for aws,
    `METHOD URL` for http, and a bare plan for terraform. Anything else raises `InputError`, whose
    message says which forms are accepted.
    """
    stripped = text.strip()
    value, problem = _json_object(stripped) if stripped.startswith("{") else (None, "")
    if value is not None:
        if kind is Kind.terraform and set(value) != {"plan"}:
            return {"plan": value}
        return value
    if kind is Kind.aws and _IAM_ACTION.match(stripped):
        return {"operation": stripped}
    if kind is Kind.http and (match := _METHOD_URL.match(stripped)):
        return {"method": match.group(1).upper(), "url": match.group(2)}
    field = TEXT_FIELD.get(kind)
    if field is not None:
        return {field: text}
    raise InputError(f"{problem}{kind.value} input must be {accepted_forms(kind)}")


def _json_object(text: str) -> tuple[dict[str, Any] | None, str]:
    """The JSON object in `text`, or None and what is wrong with it (said before the accepted forms)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        return None, f"not valid JSON ({exc}); "
    except RecursionError:
        return None, "not valid JSON (nested too deep); "
    return value if isinstance(value, dict) else None, ""
