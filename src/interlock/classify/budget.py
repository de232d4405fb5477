"""The time budget of one classification, counted so that the machine's load does not change a judgement.

A shell line is judged within `MAX_SECONDS`; past it the answer is `unknown` (fail closed). Counting that
budget on the wall clock made the same line `write` on an idle machine and `unknown` on a busy CI worker,
and made the first `aws …` line of a process `unknown` while the IAM catalog loaded. So the budget is this
thread's CPU time (`time.thread_time`: waiting for the GIL or for a core is not spent), minus the time
spent loading shared tables once per process (`not_counted`), which is not work done for this input.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from time import thread_time

_EXCLUDED = threading.local()


def spent() -> float:
    """CPU seconds this thread has spent judging, first-use loading excluded; compare against a deadline
    taken from `spent()` too."""
    return thread_time() - getattr(_EXCLUDED, "seconds", 0.0)


@contextmanager
def not_counted() -> Iterator[None]:
    """Leave the enclosed work (a table built once per process) out of every running budget."""
    start = thread_time()
    try:
        yield
    finally:
        _EXCLUDED.seconds = getattr(_EXCLUDED, "seconds", 0.0) + (thread_time() - start)
