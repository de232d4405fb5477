"""Random identifiers for the hot path: `secrets.token_hex`, from the OS's CSPRNG read in blocks, and the
same behind a time prefix (`ordered_hex`) for ids that are indexed.

`secrets.token_hex` reads `os.urandom` once per call, a syscall that releases the GIL; on the hot path (an
action id per proposal, on the event loop) every release lets the audit writer's thread take the GIL, and
the loop waits to get it back (docs/benchmarks.md, the hot path's third pass). Reading 4 KiB at a time
gives the same bytes' quality, one syscall per few hundred ids. A forked child starts with an empty
block, never its parent's bytes (two processes must not hand out the same ids).
"""

from __future__ import annotations

import os
import threading
import time

_BLOCK = 4096
_lock = threading.Lock()
_pool = bytearray()


def token_hex(nbytes: int) -> str:
    """`nbytes` random bytes as hex, as `secrets.token_hex(nbytes)` (each byte used once)."""
    with _lock:
        if len(_pool) < nbytes:
            _pool.extend(os.urandom(max(_BLOCK, nbytes)))
        taken = bytes(_pool[-nbytes:])
        del _pool[-nbytes:]
    return taken.hex()


def ordered_hex(nbytes: int) -> str:
    """`token_hex(nbytes)` behind the time in milliseconds (12 hex digits): ids made later sort later, with
    the same random bytes after the time as `token_hex` gives (never fewer: two ids made in the same
    millisecond must still never meet). An index on such ids grows at its right edge: a random id lands each
    insert on another page of the index (audit_entries.action_id), which was ~15 µs of SQLite's work per
    audit entry at 20,000 entries, and grows with the log. The time is the proposal's, already in its entry."""
    return f"{time.time_ns() // 1_000_000:012x}{token_hex(nbytes)}"


def _forget() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork: it never releases in the child
    _pool.clear()


os.register_at_fork(after_in_child=_forget)
