"""The action fingerprint: what an approval is bound to (invariant 5).

sha256 over the RFC 8785 (JSON Canonicalization Scheme) form of agent, environment, target,
kind, payload and policy version. RFC 8785 makes the bytes independent of key order, whitespace
and number spelling, so the same action always has the same fingerprint and any change to it
(one character of the payload, another target, a new policy) has a different one.
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

from interlock.model import Action


class PayloadError(ValueError):
    """The payload cannot be canonicalised (a float that is not finite, an integer too large, …)."""


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value; raises PayloadError naming the problem."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise PayloadError(f"payload is not canonical JSON: {exc}") from exc


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


def payload_size(action: Action) -> int:
    return len(canonical_json(action.payload))
