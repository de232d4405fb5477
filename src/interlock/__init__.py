"""Interlock: a safety gateway between AI agents and production systems."""

from __future__ import annotations

__version__ = "0.1.0"

# `typing` alone costs agent hooks start-up time: this spelling of TYPE_CHECKING needs no import.
TYPE_CHECKING = False

# The SDK names load lazily: `import interlock` stays cheap for agent hooks that start a process per tool call.
_SDK = ("Client", "AsyncClient", "LocalClient", "guarded", "Denied", "ApprovalPending", "ApprovalExpired",
        "InterlockError", "sql_rows")
__all__ = [
    "ApprovalExpired",
    "ApprovalPending",
    "AsyncClient",
    "Client",
    "Denied",
    "InterlockError",
    "LocalClient",
    "__version__",
    "guarded",
    "sql_rows",
]

if TYPE_CHECKING:
    from interlock.client import (
        ApprovalExpired,
        ApprovalPending,
        AsyncClient,
        Client,
        Denied,
        InterlockError,
        LocalClient,
        guarded,
        sql_rows,
    )


def __getattr__(name: str) -> object:
    if name in _SDK:
        from interlock import client

        return getattr(client, name)
    raise AttributeError(f"module 'interlock' has no attribute {name!r}")
