"""The CLI's two consoles, shared by every command module."""

from __future__ import annotations

import sys

from rich.console import Console

# Not a terminal (CI, pipes): a wide fixed width so tables do not wrap into unreadable columns.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)
