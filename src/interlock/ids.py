"""Random identifiers for the hot path: `secrets.token_hex`, from the OS's CSPRNG read in blocks.

`secrets.token_hex` reads `os.urandom` once per call, a syscall that releases the GIL; on the hot path (an
action id per proposal, on the event loop) every release lets the audit writer's thread take the GIL, and
the loop waits to get it back (docs/benchmarks.md, the hot path's third pass). Reading 4 KiB at a time
gives the same bytes' quality, one syscall per few hundred ids. A forked child starts with an empty
block, never its parent's bytes (two processes must not hand out the same ids).
"""

from __future__ import annotations

import os
import threading

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


def _forget() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork: it never releases in the child
    _pool.clear()


os.register_at_fork(after_in_child=_forget)
