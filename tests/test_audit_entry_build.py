"""Each audit entry is built in one walk (`audit.log.cleaned`) and written by orjson when that is its
RFC 8785 form: the same data and the same bytes as `redactor(jsonable(data))` through the rfc8785
package, for every kind of value callers pass (the hot path's speed must not change one entry)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.audit import Redactor
from interlock.audit.log import cleaned, entry_json, jsonable, untouched
from interlock.fingerprint import canonical_json, fast_canonical
from interlock.model import Action, Rationale


class Color(enum.StrEnum):
    red = "red"


class Level(enum.IntEnum):
    high = 3


class Name(str):
    pass


AT = dt.datetime(2026, 11, 25, 21, 0, tzinfo=dt.UTC)
ACTION = Action(kind="shell", environment="production", payload={"command": "ls", "token": "ilk_x"},
                rationale=Rationale(intent="look"))

# (what, entry data): every kind of value `jsonable` converts, secrets in keys and in text, and the
# values that leave the fast path (floats, unsafe integers, astral keys; a str subclass, conservatively);
# whether orjson writes it.
DATA: list[tuple[str, dict[Any, Any], bool]] = [
    ("plain", {"agent": "kiro", "n": 3, "ok": True, "none": None, "list": [1, "a", [None]]}, True),
    ("secret key", {"password": "hunter2", "token": "", "api_key": None, "auth": {"x": 1}, "dsn": 0}, True),
    ("secret in text", {"command": "psql postgresql://admin:Sup3r@db/x", "note": "Bearer abcdefghijkl"}, True),
    ("secret key whose value converts", {"secret": Color.red, "token": Path("/p"), "pwd": b""}, True),
    ("pydantic model", {"action": ACTION, "nested": [{"a": ACTION}]}, True),
    ("enums", {"color": Color.red, "level": Level.high, Color.red: "as key", "list": [Color.red]}, True),
    ("datetime, date, path, bytes", {"at": AT, "day": AT.date(), "path": Path("/srv/app"), "raw": b"x\xff"}, True),
    ("tuple and set", {"t": (1, "password=hunter2", (2,)), "s": {"b", "a", "token=abc123456"}}, True),
    ("non-str keys", {1: "one", None: "none", 2.5: "half"}, True),
    ("str subclass", {"name": Name("bob"), "token": Name("t")}, False),
    ("float", {"ratio": 0.5, "big": 1e21, "nested": {"f": [1.0]}}, False),
    ("unsafe integer", {"n": 2**53 + 1}, False),
    ("astral key", {"😀": 1, "\uffff": 2}, False),
    ("astral text", {"emoji": "😀 password=hunter2"}, True),
    ("control characters", {"s": "\x00\x1f\x7f\u2028\"\\\t\n"}, True),
]


@pytest.mark.parametrize(("what", "data", "fast"), DATA, ids=[d[0] for d in DATA])
def test_one_walk_builds_the_same_entry(what: str, data: dict[Any, Any], fast: bool) -> None:
    redactor = Redactor([r"secret-\d+"])
    expected = redactor(jsonable(dict(data)))
    clean, written_by_orjson = cleaned(data, redactor)
    assert clean == expected
    assert cleaned(data, redactor)[0] == expected  # again, with its clean strings remembered
    assert written_by_orjson == fast
    assert not fast or fast_canonical(expected)
    entry = {"event": "action.proposed", "time": "2026-11-25T21:00:00.000000Z", "data": clean}
    try:
        reference = rfc8785.dumps(entry)
    except rfc8785.CanonicalizationError:  # JSON cannot carry it: refused either way
        with pytest.raises(ValueError):
            entry_json(entry)
        return
    assert entry_json(entry) == reference


@pytest.mark.parametrize(("value", "refused"), [({"n": 2**60}, True), ({"f": float("nan")}, True),
                                                 ({"s": "\ud800"}, True), ({"ok": [1, "é"]}, False)])
def test_values_outside_the_fast_path_go_through_rfc8785(value: dict[str, Any], refused: bool) -> None:
    assert not fast_canonical(value) or not refused
    if refused:
        with pytest.raises(ValueError):
            canonical_json(value)
    else:
        assert canonical_json(value) == rfc8785.dumps(value)


def test_deeper_than_orjson_still_canonical() -> None:
    value: Any = "leaf"
    for _ in range(300):
        value = [value]
    assert canonical_json(value) == rfc8785.dumps(value)


_KEYS = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6)
_SCALARS = (st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=12)
            | st.text(alphabet=st.characters(max_codepoint=0x3F), max_size=12))
_VALUES = st.recursive(_SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(_KEYS, c, max_size=4),
                       max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(_VALUES)
def test_fast_canonical_json_is_rfc8785(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_remembered_clean_strings_never_let_a_secret_through() -> None:
    redactor = Redactor([r"secret-\d+"])
    texts = ["ls -la /srv/app", "password=hunter2", "note secret-42", "ls -la /srv/app", "password=hunter2",
             "note secret-42"]
    assert [redactor.safe_text(t) for t in texts] == ["ls -la /srv/app", "password=[REDACTED]", "note [REDACTED]"] * 2


class Plain(str, enum.Enum):  # noqa: UP042 (on purpose: str() of a member is "Plain.agent", yet it equals "agent")
    agent = "agent"


# (what, the first entry's data, the second's): the second is equal to the first, or written alike by orjson,
# after the first's strings and keys were found clean; it must come out as walking it with no memory would.
SECOND: list[tuple[str, dict[Any, Any], dict[Any, Any]]] = [
    ("the same value", {"decision": {"rules": ["a"], "sandbox": None}}, {"decision": {"rules": ["a"], "sandbox": None}}),
    ("NaN written as null", {"c": {"x": None}}, {"c": {"x": float("nan")}}),
    ("infinity written as null", {"c": [None]}, {"c": [float("inf")]}),
    ("a UUID written as its string", {"c": {"id": "6f1c2c4e-2b3a-4c1d-9a7e-0d5f3e2b1a00"}},
     {"c": {"id": uuid.UUID("6f1c2c4e-2b3a-4c1d-9a7e-0d5f3e2b1a00")}}),
    ("an enum written as its value", {"c": {"k": "red"}}, {"c": {"k": Color.red}}),
    ("an enum key equal to a clean key", {"agent": "kiro"}, {Plain.agent: "kiro"}),
    ("a StrEnum key equal to a clean key", {"red": 1}, {Color.red: 1}),
    ("a tuple written as an array", {"c": [1, 2]}, {"c": (1, 2)}),
    ("a str subclass", {"c": ["bob"]}, {"c": [Name("bob")]}),
    ("a str subclass key", {"c": {"bob": 1}}, {"c": {Name("bob"): 1}}),
    ("a bool where an int was", {"c": [1]}, {"c": [True]}),
    ("a secret, masked, then again", {"c": {"password": "hunter2"}}, {"c": {"password": "hunter2"}}),
    ("a secret in text, then again", {"c": ["password=hunter2"]}, {"c": ["password=hunter2"]}),
    ("under a secret key", {"token": {"a": 1}}, {"token": {"a": 1}}),
    ("same value, other key", {"a": {"v": "x"}}, {"b": {"v": "x"}}),
    ("a secret beside clean values", {"a": {"v": "x"}}, {"a": {"v": "x"}, "b": {"password": "p"}}),
]


@pytest.mark.parametrize(("what", "first", "second"), SECOND, ids=[s[0] for s in SECOND])
def test_remembered_strings_and_keys_build_the_same_entry(what: str, first: dict[Any, Any],
                                                          second: dict[Any, Any]) -> None:
    redactor = Redactor()
    for data in (first, second, second):  # the data and whether orjson writes it: as with no memory
        assert cleaned(data, redactor) == cleaned(data, Redactor())
    assert "hunter2" not in repr(redactor.remembered)


# (what, data, whether `cleaned` gives it back as it is): only plain JSON of the exact built-in types that
# redaction leaves alone and orjson writes as RFC 8785.
UNTOUCHED: list[tuple[str, Any, bool]] = [
    ("plain", {"a": [1, "x", None, True, {"b": []}], "c": -(2**53) + 1}, True),
    ("secret key", {"a": {"token": "t"}}, False),
    ("secret key, empty", {"token": ""}, False),  # the walk keeps it: checked there, not here
    ("secret in text", {"a": ["Bearer abcdefghijkl"]}, False),
    ("float", {"a": 1.0}, False),
    ("unsafe integer", {"a": [2**53]}, False),
    ("astral key", {"😀": 1}, False),
    ("lone surrogate", {"a": "\ud800"}, False),
    ("non-ASCII text", {"a": "é😀"}, True),
    ("tuple", {"a": (1,)}, False),
    ("enum value", {"a": Color.red}, False),
    ("enum key", {Color.red: 1}, False),
    ("int key", {1: 1}, False),
    ("model", {"a": ACTION}, False),
]


@pytest.mark.parametrize(("what", "data", "kept"), UNTOUCHED, ids=[u[0] for u in UNTOUCHED])
def test_data_that_needs_nothing_is_kept_not_copied(what: str, data: Any, kept: bool) -> None:
    redactor = Redactor()
    for _ in range(2):  # the second time with its strings and keys remembered
        assert untouched(data, redactor) is kept
        clean, fast = cleaned(data, redactor)
        assert (clean is data) is kept
        assert clean == redactor(jsonable(data))
        assert not kept or fast


def test_an_entry_with_one_secret_keeps_its_other_values() -> None:
    data = {"decision": {"rules": ["a"]}, "action": {"payload": {"password": "hunter2"}}}
    clean, fast = cleaned(data, Redactor())
    assert clean == {"decision": {"rules": ["a"]}, "action": {"payload": {"password": "[REDACTED]"}}} and fast
    assert clean["decision"] is data["decision"] and data["action"]["payload"]["password"] == "hunter2"
