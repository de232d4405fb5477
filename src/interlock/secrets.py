"""Resolve the policy's credential references (`env:NAME`, `file:/path`) at the edge, when used.

The policy never holds a secret, only where to find one; values are read by executors and the
webhook signer at the moment they need them and are never logged. Errors name the reference, never
the value.
"""

from __future__ import annotations

import os
from pathlib import Path


class SecretError(Exception):
    """A credential reference that cannot be resolved; the message names the reference only."""


def resolve(ref: str) -> str:
    scheme, _, where = ref.partition(":")
    if scheme == "env":
        value = os.environ.get(where)
        if value is None:
            raise SecretError(f"environment variable {where} (from {ref!r}) is not set")
        return value
    if scheme == "file":
        try:
            return Path(where).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"cannot read {where} (from {ref!r}): {exc.strerror or type(exc).__name__}") from exc
    raise SecretError(f"{ref!r} is not a credential reference: write env:NAME or file:/path")
