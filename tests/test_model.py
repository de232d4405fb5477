"""The model rejects bad actions with the field named; the fingerprint binds every part of an action."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from interlock.fingerprint import PayloadError, canonical_json, fingerprint
from interlock.model import Action, Risk

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


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**70])
def test_values_json_cannot_carry_are_refused(value: float) -> None:
    with pytest.raises(PayloadError):
        canonical_json({"x": value})
