"""Run one program as an action: own process group, controlled environment, bounded output, deadline.

Shared by the shell, kubectl and terraform executors. The program gets a new session (so its whole
process group can be signalled), stdin closed, and only the environment the executor builds — never
the gateway's own (which may hold the gateway's credentials). Output is read as it comes, digested
whole and kept up to a limit, so a program that prints forever costs time, not memory.

Every program starts under `supervisor.py`, a child subreaper: descendants that double-fork or
setsid to escape are re-parented to it, not to init, so they stay findable; when the program ends,
the supervisor kills what is left. At the deadline the whole tree is frozen (SIGSTOP, so it cannot
fork its way out while we look), walked through /proc and killed. A process can still escape by
asking another daemon to start it (systemd-run, at, ssh); run inside the sandbox when that matters.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from interlock.execute.cancel import current as current_cancellation
from interlock.execute.result import ExecutionError, OutputCapture

BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
#: Started first, it re-parents escaping descendants to itself and kills leftovers (see its docstring).
SUPERVISOR = Path(__file__).with_name("supervisor.py")
#: After the program exits, how long we keep reading output that its leftovers may still hold open.
DRAIN_GRACE = 0.5
_CHUNK = 64 * 1024


def base_env(home: str) -> dict[str, str]:
    """The environment every executed program starts from; the target's `env` is added on top."""
    return {"PATH": BASE_PATH, "HOME": home, "LANG": "C.UTF-8"}


@dataclass
class ProcessOutcome:
    exit_code: int | None
    timed_out: bool
    output: OutputCapture
    stderr: OutputCapture | None = None
    cancelled: str | None = None  # why it was stopped before its end (a freeze), if it was


def descendants(root: int) -> set[int]:
    """Every live process whose parent chain leads to `root` (from /proc; any session)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _signal(pids: set[int], group: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_tree(pid: int, grace: float = 0.0) -> None:
    """Kill `pid`, its process group and all its descendants. With `grace`, SIGTERM first so a
    program like terraform can release its state lock."""
    if grace > 0:
        _signal(descendants(pid) | {pid}, pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
    frozen: set[int] = {pid}
    for _ in range(10):  # freeze until the tree stops growing, then kill it all at once
        current = descendants(pid) | frozen
        _signal(current - frozen | {pid}, pid, signal.SIGSTOP)
        if current == frozen:
            break
        frozen = current
    _signal(frozen, pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return info is None


def run_process(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: str,
    timeout: float,
    output: OutputCapture,
    stderr: OutputCapture | None = None,
    kill_grace: float = 0.0,
    supervised: bool = True,
) -> ProcessOutcome:
    """Run `argv`; stderr goes into `output` too unless a separate `stderr` capture is given.
    `supervised=False` skips the supervisor for a program that keeps its own tree on a leash (bubblewrap
    with `--die-with-parent` and a PID namespace: its whole tree dies with it)."""
    program = argv[0] if os.path.isabs(argv[0]) else shutil.which(argv[0], path=env.get("PATH", BASE_PATH))
    cancellation = current_cancellation()
    if cancellation is not None and cancellation.cancelled:
        return ProcessOutcome(exit_code=None, timed_out=False, output=output, stderr=stderr,
                              cancelled=cancellation.reason)
    if program is None:
        raise ExecutionError(f"program {argv[0]!r} is not on the executor's PATH ({env.get('PATH', BASE_PATH)})")
    try:
        leash = [sys.executable, "-I", "-S", str(SUPERVISOR)] if supervised else []
        proc = subprocess.Popen(
            [*leash, os.path.abspath(program), *argv[1:]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if stderr is not None else subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise ExecutionError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
    selector = selectors.DefaultSelector()
    assert proc.stdout is not None
    selector.register(proc.stdout, selectors.EVENT_READ, output)
    if stderr is not None and proc.stderr is not None:
        selector.register(proc.stderr, selectors.EVENT_READ, stderr)
    deadline = time.monotonic() + timeout
    timed_out = False
    exited_at: float | None = None
    reaped = threading.Lock()  # held while reaping: after that its pid may belong to another process

    def stop() -> None:
        with reaped:
            if proc.returncode is None:
                kill_tree(proc.pid)

    forget = cancellation.on_cancel(stop) if cancellation is not None else (lambda: None)
    try:
        while selector.get_map():
            now = time.monotonic()
            if exited_at is None and not _alive(proc.pid):
                exited_at = now
                # Not reaped yet (WNOWAIT), so the group id cannot have been reused: kill leftovers.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            if exited_at is not None and now - exited_at > DRAIN_GRACE:
                break  # an escaped process still holds the pipe; stop listening to it
            if not timed_out and exited_at is None and now >= deadline:
                timed_out = True
                kill_tree(proc.pid, kill_grace)
                exited_at = time.monotonic()
            wait = 0.1 if exited_at is not None else max(0.0, min(0.1, deadline - now))
            for key, _ in selector.select(timeout=wait):
                data = os.read(key.fd, _CHUNK)
                if data:
                    key.data.feed(data)
                else:
                    selector.unregister(key.fileobj)
        # The pipes are closed; the program may still run (it closed its own stdout): deadline rules.
        while not timed_out and _alive(proc.pid):
            if time.monotonic() >= deadline:
                timed_out = True
                kill_tree(proc.pid, kill_grace)
                break
            time.sleep(0.01)
        # Exited but not reaped (WNOWAIT), so its group id cannot have been reused: kill leftovers
        # that detached from the output pipe (`nohup … &`).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with reaped:
            proc.wait(timeout=5)
    finally:
        forget()
        selector.close()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        if proc.poll() is None:
            kill_tree(proc.pid)
            proc.wait(timeout=5)
    return ProcessOutcome(exit_code=proc.returncode, timed_out=timed_out, output=output, stderr=stderr,
                          cancelled=cancellation.reason if cancellation is not None else None)
