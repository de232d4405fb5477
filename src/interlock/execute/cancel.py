"""Cancelling a running execution from another thread (a freeze arrived while it runs).

The Gateway runs each execution inside `cancellable(c)`; executors ask `current()` for it and
register what stops them (kill the process tree, cancel the SQL backend) with `on_cancel`. A
cancelled execution ends with status `cancelled` and the reason.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar

_CURRENT: ContextVar[Cancellation | None] = ContextVar("interlock_cancellation", default=None)


class Cancellation:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.reason: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.reason is not None

    def cancel(self, reason: str) -> bool:
        """Stop the execution (once); False if it was cancelled already."""
        with self._lock:
            if self.reason is not None:
                return False
            self.reason = reason
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()
        return True

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` on cancel (now, if cancelled already); returns the function that unregisters it."""
        with self._lock:
            if self.reason is None:
                self._callbacks.append(callback)
                return lambda: self._forget(callback)
        callback()
        return lambda: None

    def _forget(self, callback: Callable[[], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._callbacks.remove(callback)


def current() -> Cancellation | None:
    return _CURRENT.get()


@contextlib.contextmanager
def cancellable(cancellation: Cancellation) -> Iterator[Cancellation]:
    token = _CURRENT.set(cancellation)
    try:
        yield cancellation
    finally:
        _CURRENT.reset(token)
