"""The model rejects bad actions with the field named; the fingerprint binds every part of an action."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from interlock.audit.log import jsonable
from interlock.fingerprint import PayloadError, canonical_json, fingerprint
from interlock.model import Action, ApprovalRequirement, Decision, DecisionValue, Risk
from interlock.wire import decision_json

GOOD: dict[str, Any] = {"kind": "sql", "environment": "production", "target": "billing-db",
                        "payload": {"sql": "DELETE FROM invoices"},
                        "rationale": {"intent": "clean up", "expected_effect": "rows gone", "rollback": "restore"}}

BAD_ACTIONS = [
    ("unknown field", {**GOOD, "approved": True}, "approved"),
    ("unknown rationale field", {**GOOD, "rationale": {"intent": "x", "urgent": True}}, "rationale.urgent"),
    ("missing environment", {k: v for k, v in GOOD.items() if k != "environment"}, "environment"),
    ("unknown kind", {**GOOD, "kind": "telnet"}, "kind"),
    ("empty payload", {**GOOD, "payload": {}}, "payload"),
    ("payload not an object", {**GOOD, "payload": "DROP TABLE x"}, "payload"),
    ("environment with spaces", {**GOOD, "environment": "prod uction"}, "environment"),
    ("target path traversal", {**GOOD, "target": "../etc"}, "target"),
]


@pytest.mark.parametrize(("name", "data", "field"), BAD_ACTIONS, ids=[b[0] for b in BAD_ACTIONS])
def test_bad_action_names_the_field(name: str, data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Action.model_validate(data)
    locations = [".".join(str(p) for p in e["loc"]) for e in caught.value.errors()]
    assert any(loc.startswith(field) for loc in locations), locations


RISK_ORDER = [
    (Risk.read, Risk.write, True),
    (Risk.write, Risk.read, False),
    (Risk.unknown, Risk.destructive, True),
    (Risk.destructive, Risk.unknown, True),
    (Risk.unknown, Risk.write, False),
]


@pytest.mark.parametrize(("risk", "ceiling", "within"), RISK_ORDER)
def test_risk_order_unknown_counts_as_destructive(risk: Risk, ceiling: Risk, within: bool) -> None:
    assert risk.at_most(ceiling) is within


def test_highest_risk_prefers_unknown() -> None:
    assert Risk.highest([Risk.read, Risk.destructive, Risk.unknown]) is Risk.unknown
    assert Risk.highest([]) is Risk.read
    assert Risk.unknown.effective is Risk.destructive


def test_fingerprint_ignores_key_order_and_whitespace() -> None:
    a = Action.model_validate({**GOOD, "payload": {"sql": "x", "params": {"a": 1, "b": 2}}})
    b = Action.model_validate({**GOOD, "payload": {"params": {"b": 2, "a": 1}, "sql": "x"}})
    assert fingerprint("kiro", a, "v1") == fingerprint("kiro", b, "v1")


def test_fingerprint_ignores_rationale() -> None:
    a = Action.model_validate(GOOD)
    b = Action.model_validate({**GOOD, "rationale": {"intent": "something else entirely"}})
    assert fingerprint("kiro", a, "v1") == fingerprint("kiro", b, "v1")


CHANGES = [
    ("agent", lambda: ("devin", Action.model_validate(GOOD), "v1")),
    ("environment", lambda: ("kiro", Action.model_validate({**GOOD, "environment": "staging"}), "v1")),
    ("target", lambda: ("kiro", Action.model_validate({**GOOD, "target": "other-db"}), "v1")),
    ("no target", lambda: ("kiro", Action.model_validate({**GOOD, "target": None}), "v1")),
    ("kind", lambda: ("kiro", Action.model_validate({**GOOD, "kind": "shell"}), "v1")),
    ("payload by one character", lambda: ("kiro", Action.model_validate({**GOOD, "payload": {"sql": "DELETE FROM invoices "}}), "v1")),
    ("policy version", lambda: ("kiro", Action.model_validate(GOOD), "v2")),
]


@pytest.mark.parametrize(("what", "make"), CHANGES, ids=[c[0] for c in CHANGES])
def test_fingerprint_changes_with_every_bound_field(what: str, make: Any) -> None:
    base = fingerprint("kiro", Action.model_validate(GOOD), "v1")
    assert fingerprint(*make()) != base


def test_canonical_json_is_rfc8785() -> None:
    # RFC 8785 §3.2.3 sorts keys by UTF-16 code units and writes numbers in ECMAScript form.
    assert canonical_json({"b": 1, "a": [1.0, 1e21, "é"]}) == '{"a":[1,1e+21,"é"],"b":1}'.encode()


FLOATS = [0.5, -0.5, 1.25, 2.345, 0.001, 0.00123, 123456.789, 1e15 - 0.5, 2.0, 1e-3 * 0.999, 1e15, 1e21, 5e-324,
          1.7976931348623157e308, 0.1 + 0.2, 1 / 3, -1 / 7, 3.14159e-3, 999999999999999.9]


@pytest.mark.parametrize("value", FLOATS)
def test_floats_are_written_as_rfc8785_writes_them(value: float) -> None:
    """Floats in fast_float's range are written by orjson (the rest by the rfc8785 package): the bytes must
    be the package's either way, for the value and 400 random neighbours of its size."""
    import random

    import rfc8785

    numbers = [value, *(random.Random(value).uniform(-1e6, 1e6) for _ in range(200))]
    numbers += [round(random.Random(value).uniform(0, 1e5), 3) for _ in range(200)]
    for number in numbers:
        assert canonical_json({"f": number, "l": [number]}) == rfc8785.dumps({"f": number, "l": [number]})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**70])
def test_values_json_cannot_carry_are_refused(value: float) -> None:
    with pytest.raises(PayloadError):
        canonical_json({"x": value})


# --- Decision.value is "outcome" on every wire (docs/design-deviations.md, issue 12.6) ---------------

_DECISION = Decision(value=DecisionValue.approval_required, risk=Risk.write, tags=("db",), summary="delete rows",
                     rules=("prod-writes",), reasons=("writes in production need a DBA",), remedy=("ask a DBA",),
                     approvals=(ApprovalRequirement(count=1, from_groups=("dba",), source="prod-writes"),),
                     policy_version="v7")
#: Byte for byte what every earlier version wrote: old audit entries must verify and replay.
_DECISION_JSON = ('{"outcome":"approval_required","risk":"write","tags":["db"],"summary":"delete rows",'
                  '"rules":["prod-writes"],"reasons":["writes in production need a DBA"],"remedy":["ask a DBA"],'
                  '"approvals":[{"count":1,"from_groups":["dba"],"at_least":[],"source":"prod-writes"}],'
                  '"sandbox":null,"policy_version":"v7"}')

DECISION_SHAPES: list[tuple[str, Callable[[Decision], Any], Any]] = [
    ("model_dump_json", lambda d: d.model_dump_json(), _DECISION_JSON),
    ("model_dump(mode=json)", lambda d: d.model_dump(mode="json"), json.loads(_DECISION_JSON)),
    ("audit jsonable", jsonable, json.loads(_DECISION_JSON)),
    ("model_copy keeps the wire name", lambda d: d.model_copy(update={"value": DecisionValue.deny}).model_dump()["outcome"],
     DecisionValue.deny),
    ("model_construct (the engine's fast path)",
     lambda d: Decision.model_construct(value=d.value, risk=d.risk).model_dump(mode="json")["outcome"],
     "approval_required"),
    ("HTTP / check --format json body", lambda d: decision_json(d)["decision"], "approval_required"),
    ("JSON schema names the field outcome", lambda d: next(iter(Decision.model_json_schema(mode="serialization")["properties"])),
     "outcome"),
    ("validation schema too", lambda d: next(iter(Decision.model_json_schema(mode="validation")["properties"])), "outcome"),
]


@pytest.mark.parametrize(("name", "shape", "expected"), DECISION_SHAPES, ids=[s[0] for s in DECISION_SHAPES])
def test_decision_value_serializes_as_outcome(name: str, shape: Callable[[Decision], Any], expected: Any) -> None:
    assert shape(_DECISION) == expected


DECISION_INPUTS = [
    ("the wire name, as old entries hold it", {"outcome": "deny", "risk": "read"}, DecisionValue.deny),
    ("the Python name", {"value": "allow", "risk": "read"}, DecisionValue.allow),
    ("the full pinned JSON", json.loads(_DECISION_JSON), DecisionValue.approval_required),
]


@pytest.mark.parametrize(("name", "data", "expected"), DECISION_INPUTS, ids=[s[0] for s in DECISION_INPUTS])
def test_decision_reads_outcome_and_value(name: str, data: dict[str, Any], expected: DecisionValue) -> None:
    decision = Decision.model_validate(data)
    assert decision.value is expected
    assert Decision.model_validate_json(decision.model_dump_json()) == decision


def test_decision_without_a_value_or_with_an_unknown_field_is_refused() -> None:
    for data in ({"risk": "read"}, {"outcome": "allow", "risk": "read", "verdict": "allow"}):
        with pytest.raises(ValidationError):
            Decision.model_validate(data)


# --- the gateway's shortcuts give what the general functions give --------------------------------------------

PAYLOADS: list[tuple[str, dict[str, Any]]] = [
    ("command", {"command": "ls -la /srv/app"}),
    ("nested, unsorted", {"sql": "x", "params": {"b": [1, 2.5, None, True], "a": "é"}}),
    ("floats ECMAScript writes its own way", {"n": 1.0, "m": 1e21, "k": -0.0}),
    ("astral and surrogate-free unicode", {"text": "emoji 😀", "😀": "key outside the BMP"}),
    ("integers at the safe edge", {"a": 2**53 - 1, "b": -(2**53 - 1)}),
]


@pytest.mark.parametrize(("what", "payload"), PAYLOADS, ids=[p[0] for p in PAYLOADS])
@pytest.mark.parametrize("target", [None, "billing-db"])
def test_fingerprint_with_canonical_payload_is_the_fingerprint(what: str, payload: dict[str, Any],
                                                                target: str | None) -> None:
    from interlock.fingerprint import fingerprint_with

    action = Action.model_validate({**GOOD, "target": target, "payload": payload})
    made = canonical_json(action.payload)
    assert fingerprint_with("kiro", action, "v1", made) == fingerprint("kiro", action, "v1")


@pytest.mark.parametrize(("value", "plain"), [
    ({"command": "ls"}, True),
    ({"a": [1, 2.5, None, True, {"b": "c"}]}, True),
    ({"a": float("nan")}, False),
    ({"a": float("inf")}, False),
    ({"a": (1, 2)}, False),  # a tuple writes as a list: it must not share a list's key
    ({"a": Risk.read}, False),  # a str subclass
    ({1: "x"}, False),
    ({"a": b"bytes"}, False),
])
def test_plain_json_is_only_jsons_own_types(value: Any, plain: bool) -> None:
    from interlock.fingerprint import plain as is_plain

    assert is_plain(value) is plain


@pytest.mark.parametrize("rationale", [None, {"intent": "look"}, GOOD["rationale"]])
@pytest.mark.parametrize(("what", "payload"), PAYLOADS, ids=[p[0] for p in PAYLOADS])
def test_the_entrys_action_is_its_model_dump(what: str, payload: dict[str, Any],
                                              rationale: dict[str, str] | None) -> None:
    from interlock.gateway import _action_json

    action = Action.model_validate({**GOOD, "payload": payload, "rationale": rationale})
    assert _action_json(action, True) == action.model_dump(mode="json")
    assert list(_action_json(action, True)) == list(action.model_dump(mode="json"))
