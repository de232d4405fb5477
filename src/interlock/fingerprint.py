"""The action fingerprint: what an approval is bound to (invariant 5).

sha256 over the RFC 8785 (JSON Canonicalization Scheme) form of agent, environment, target,
kind, payload and policy version. RFC 8785 makes the bytes independent of key order, whitespace
and number spelling, so the same action always has the same fingerprint and any change to it
(one character of the payload, another target, a new policy) has a different one.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

import orjson
import rfc8785

from interlock.model import Action


class PayloadError(ValueError):
    """The payload cannot be canonicalised (a float that is not finite, an integer too large, …)."""


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value; raises PayloadError naming the problem.

    Values without floats, unsafe integers, lone surrogates or astral-plane keys (`fast_canonical`)
    are written by orjson with sorted keys: the identical bytes (tested against the rfc8785 package)
    at a fraction of the cost, on the hot path (every fingerprint and audit entry). Anything else goes
    through the rfc8785 package."""
    if fast_canonical(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # nested deeper than orjson goes (254 levels): the rfc8785 package decides
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise PayloadError(f"payload is not canonical JSON: {exc}") from exc


MAX_SAFE_INT = 2**53 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_OR_ASTRAL = re.compile("[\ud800-\udfff\U00010000-\U0010ffff]")


def fast_text(text: str) -> bool:
    """A string orjson writes exactly as RFC 8785 does (no lone surrogate)."""
    return text.isascii() or _SURROGATE.search(text) is None


def fast_key(key: str) -> bool:
    """A key that sorts the same by code point (orjson) as by UTF-16 unit (RFC 8785)."""
    return key.isascii() or _SURROGATE_OR_ASTRAL.search(key) is None


def fast_float(value: float) -> bool:
    """A float orjson writes exactly as RFC 8785 does: not a whole number (RFC 8785 writes 2.0 as 2) and
    between 0.001 and 10**15 in size (beyond, the two choose exponent notation differently). Both write
    the shortest digits that read back as the same double; tests/test_model.py checks them against the
    rfc8785 package. A duration in milliseconds, a ratio: the floats of an audit entry."""
    return 1e-3 <= abs(value) < 1e15 and not value.is_integer()


def fast_canonical(value: Any) -> bool:
    """True when orjson's sorted output of `value` is its RFC 8785 form: only dicts with string keys,
    lists, strings, safe integers, booleans, None and floats in `fast_float`'s range (RFC 8785 spells the
    other floats its own way)."""
    if isinstance(value, str):
        return fast_text(value)
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -MAX_SAFE_INT <= value <= MAX_SAFE_INT
    if isinstance(value, float):
        return fast_float(value)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not fast_key(key) or not fast_canonical(item):
                return False
        return True
    if isinstance(value, list):
        return all(fast_canonical(item) for item in value)
    return False


def fingerprint(agent: str, action: Action, policy_version: str) -> str:
    material = {
        "agent": agent,
        "environment": action.environment,
        "target": action.target,
        "kind": action.kind.value,
        "payload": action.payload,
        "policy_version": policy_version,
    }
    return hashlib.sha256(canonical_json(material)).hexdigest()


def fingerprint_with(agent: str, action: Action, policy_version: str, payload: bytes) -> str:
    """`fingerprint`, given `payload` = canonical_json(action.payload) (the size check made it already).
    RFC 8785 writes an object as its members sorted by key, joined without whitespace, so the material's
    bytes are its members' canonical forms in key order (tests/test_model.py checks the two agree)."""
    material = b"".join((
        b'{"agent":', canonical_json(agent), b',"environment":', canonical_json(action.environment),
        b',"kind":', canonical_json(action.kind.value), b',"payload":', payload,
        b',"policy_version":', canonical_json(policy_version), b',"target":', canonical_json(action.target), b"}"))
    return hashlib.sha256(material).hexdigest()


def plain(value: Any) -> bool:
    """Only JSON's own types, exactly (no subclasses, tuples or other objects), finite floats; nested no
    deeper than orjson writes. Such a value's `orjson.dumps` bytes tell it apart from every other such value
    (keys in their order, 1 from 1.0 and from true), so they can key what is judged of it."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    try:
        if kind is dict:
            return all(type(key) is str and plain(item) for key, item in value.items())
        if kind is list:
            return all(plain(item) for item in value)
    except RecursionError:
        return False
    return False


def payload_size(action: Action) -> int:
    return len(canonical_json(action.payload))
