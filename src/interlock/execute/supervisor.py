"""The first process of every executed program: keeps the whole process tree on a leash.

Run as a script (`python -I -S supervisor.py PROGRAM ARGS…`; standard library only, so it starts in
milliseconds). It makes itself a *child subreaper* (prctl PR_SET_CHILD_SUBREAPER): a descendant that
double-forks or calls setsid to escape is re-parented to the supervisor instead of init, so it stays
in the tree the executor can find and kill. When PROGRAM ends, the supervisor kills everything that
is left, reaps it, and exits with PROGRAM's status (dying by the same signal when PROGRAM did).

It ignores SIGTERM/SIGINT so that a graceful stop reaches the program while the supervisor, still
alive, keeps the tree together for the final SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(name))
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def kill_all_descendants() -> None:
    me = os.getpid()
    frozen: set[int] = set()
    for _ in range(10):  # freeze until the tree stops growing
        current = descendants(me)
        for pid in current - frozen:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
        if current <= frozen:
            break
        frozen |= current
    for pid in frozen:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: supervisor.py PROGRAM [ARGS…]", file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    try:
        child = os.fork()
    except OSError as exc:
        print(f"interlock supervisor: cannot fork: {exc}", file=sys.stderr)
        return 126
    if child == 0:
        # Ignored signals survive exec: give the program the defaults a shell would (Python itself
        # ignores SIGPIPE, which would turn `yes | head` into an endless stream of EPIPE errors).
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        try:
            os.execv(argv[0], argv)
        except OSError as exc:
            print(f"interlock supervisor: cannot run {argv[0]}: {exc.strerror}", file=sys.stderr)
            os._exit(127)
    status = 0
    while True:
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            status = wait_status
            break
    kill_all_descendants()
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        died_of = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):  # SIGKILL cannot be (re)set, it needs no reset
            signal.signal(died_of, signal.SIG_DFL)
        os.kill(os.getpid(), died_of)
    return os.waitstatus_to_exitcode(status) if not os.WIFSIGNALED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
