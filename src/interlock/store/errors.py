"""The two ways the store fails, and scrubbing passwords out of what is reported."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit


class StoreError(Exception):
    """A database operation failed (bad SQL, constraint violation, nested transaction, …)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or opened; callers fail closed (deny)."""


def redact_url(url: str) -> str:
    """The URL with any password replaced by '***', safe for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable store URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


_PASSWORD_KV = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def scrub(message: str, url: str) -> str:
    """Remove the URL's password (and any `password=...` conninfo) from an error message."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        message = message.replace(password, "***")
    return _PASSWORD_KV.sub(r"\1***", message)


class StoreConflict(StoreError):
    """A constraint was violated (duplicate key, foreign key, check): the write was refused."""
