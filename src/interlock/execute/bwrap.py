"""shell rehearsal: the command in real bubblewrap, on a view of the twin's working directory that
writes never reach, and the list of files it created, changed and deleted.

Debian's bubblewrap 0.8 has no overlay options, so the view is made one of two ways:
- `overlay` (root only): a kernel overlay mount of the working directory (lower, never written) and a
  throwaway upper directory, mounted in a private mount namespace (`unshare -m`) so it vanishes with
  the run; the upper directory *is* the list of effects (whiteouts are deletions);
- `copy` (the portable default): a throwaway copy of the working directory, compared with the
  original afterwards.

Inside: the host's programs, libraries and `/etc` read-only (not `/root`, `/home`, `/srv`, `/var`,
`/opt`, nor the host's and Interlock's secrets in `/etc`), a fresh `/tmp`, `/dev` and `/proc` of its
own, no network unless the twin says `network: true`, every namespace unshared, and the tree killed
at the deadline (bubblewrap's PID namespace dies with its first process; the executor's supervisor
kills the rest). The working directory is bound at its real path, so the command sees the paths it
would see on the twin.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from interlock.execute.process import run_process
from interlock.execute.result import (
    Clock,
    CredentialRedactor,
    ExecutionError,
    ExecutionResult,
    OutputCapture,
    Status,
    make_result,
)
from interlock.execute.shell import BASH, command_of, target_env
from interlock.model import Action
from interlock.policy.schema import Target

Mode = Literal["overlay", "copy"]
#: Each list in the evidence keeps this many files; the counts are always complete.
MAX_LISTED = 1000
_HASH_CHUNK = 1024 * 1024


def bwrap_binary() -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise ExecutionError("bubblewrap is not installed on the gateway host, so a shell rehearsal cannot be "
                             "isolated: install it (apt-get install bubblewrap), nothing was run")
    return found


@functools.cache
def overlay_available() -> bool:
    """Whether this process may mount a kernel overlay in a private mount namespace (root, a kernel
    with overlayfs, `unshare` present). Probed once."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory(prefix="interlock-overlay-probe-") as probe:
        for part in ("l", "u", "w", "m"):
            os.mkdir(os.path.join(probe, part))
        script = 'mount -t overlay overlay -o "lowerdir=$1/l,upperdir=$1/u,workdir=$1/w" "$1/m"'
        try:
            done = subprocess.run(["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script, "sh", probe],
                                  capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0


@dataclass
class _Entry:
    mode: int
    size: int
    mtime_ns: int


def _walk(root: Path) -> dict[str, _Entry]:
    """Files and symlinks under `root` (relative path → stat), not following links; directories are
    listed only when empty (as `dir/`), so a created empty directory still shows."""
    found: dict[str, _Entry] = {}
    for current, dirs, files in os.walk(root):
        base = Path(current)
        for name in files + [d for d in dirs if os.path.islink(base / d)]:
            st = os.lstat(base / name)
            found[str((base / name).relative_to(root))] = _Entry(st.st_mode, st.st_size, st.st_mtime_ns)
        if not dirs and not files and base != root:
            st = os.lstat(base)
            found[str(base.relative_to(root)) + "/"] = _Entry(st.st_mode, 0, st.st_mtime_ns)
    return found


def _digest(path: Path, mode: int) -> str:
    if stat.S_ISLNK(mode):
        return hashlib.sha256(os.readlink(path).encode()).hexdigest()
    if not stat.S_ISREG(mode):
        return ""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _mode(mode: int) -> str:
    return oct(stat.S_IMODE(mode))


class Effects:
    """Files created, changed (content hash and mode) and deleted, bounded for the audit log."""

    def __init__(self) -> None:
        self.created: list[dict[str, str]] = []
        self.changed: list[dict[str, str]] = []
        self.deleted: list[str] = []
        self.counts = {"created": 0, "changed": 0, "deleted": 0}

    def add(self, what: str, item: Any) -> None:
        self.counts[what] += 1
        listed: list[Any] = getattr(self, what)
        if len(listed) < MAX_LISTED:
            listed.append(item)

    def to_json(self) -> dict[str, Any]:
        return {"created": sorted(self.created, key=lambda f: f["path"]),
                "changed": sorted(self.changed, key=lambda f: f["path"]),
                "deleted": sorted(self.deleted), "counts": dict(self.counts),
                "truncated": any(n > MAX_LISTED for n in self.counts.values())}


def diff_trees(before: Path, after: Path) -> Effects:
    """What changed from `before` to `after` (copy mode: the original and the used copy). A file whose
    size, mtime and mode are unchanged is not hashed (the copy preserves them)."""
    effects = Effects()
    old, new = _walk(before), _walk(after)
    for path, entry in new.items():
        was = old.get(path)
        if was is None:
            digest = _digest(after / path, entry.mode)
            effects.add("created", {"path": path, "sha256": digest, "mode": _mode(entry.mode)})
        elif (was.size, was.mtime_ns, was.mode) != (entry.size, entry.mtime_ns, entry.mode):
            now_hash, was_hash = _digest(after / path, entry.mode), _digest(before / path, was.mode)
            if now_hash != was_hash or was.mode != entry.mode:
                effects.add("changed", {"path": path, "sha256": now_hash, "mode": _mode(entry.mode),
                                        "was_sha256": was_hash, "was_mode": _mode(was.mode)})
    for path in old:
        if path not in new:
            effects.add("deleted", path)
    return effects


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque") == b"y"
    except OSError:
        return False


def diff_upper(lower: Path, upper: Path) -> Effects:
    """What an overlay's upper directory says happened to `lower`: whiteouts are deletions, an opaque
    directory replaced the lower one, other entries are created or (copied up) changed files."""
    effects = Effects()
    lower_files = _walk(lower)

    def deleted_under(rel: str, keep: set[str]) -> None:
        prefix = rel + "/" if rel else ""
        for path in lower_files:
            if (path.startswith(prefix) or path == rel) and path not in keep:
                effects.add("deleted", path)

    for current, dirs, files in os.walk(upper):
        base = Path(current)
        rel_dir = str(base.relative_to(upper)) if base != upper else ""
        if rel_dir and _opaque(base):
            inside = {str((Path(c) / f).relative_to(upper)) for c, _, fs in os.walk(base) for f in fs}
            deleted_under(rel_dir, inside)
        for name in files + [d for d in dirs if os.path.islink(base / d)]:
            path = base / name
            rel = str(path.relative_to(upper))
            st = os.lstat(path)
            if _is_whiteout(st):
                deleted_under(rel, set())
                continue
            was = lower_files.get(rel)
            entry = {"path": rel, "sha256": _digest(path, st.st_mode), "mode": _mode(st.st_mode)}
            if was is None:
                effects.add("created", entry)
                continue
            was_hash = _digest(lower / rel, was.mode)
            if was_hash != entry["sha256"] or was.mode != st.st_mode:
                effects.add("changed", {**entry, "was_sha256": was_hash, "was_mode": _mode(was.mode)})
        if not dirs and not files and base != upper and not (lower / rel_dir).exists():
            effects.add("created", {"path": rel_dir + "/", "sha256": "", "mode": _mode(os.lstat(base).st_mode)})
    return effects


#: What a rehearsal sees of the host, read-only: programs, libraries and configuration. Not /root,
#: /home, /srv, /var, /opt or the gateway's own directories: its keys, its store and other targets'
#: credentials are not a rehearsal's business.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
#: Inside /etc, hidden all the same (credentials of the host and of Interlock).
HIDDEN_FILES = ("/etc/shadow", "/etc/gshadow")
HIDDEN_DIRS = ("/etc/interlock", "/etc/ssl/private")


def _system_view() -> list[str]:
    argv: list[str] = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for path in HIDDEN_FILES:
        if os.path.exists(path):
            argv += ["--ro-bind", "/dev/null", path]
    for path in HIDDEN_DIRS:
        if os.path.isdir(path):
            argv += ["--tmpfs", path]
    return argv


def _sandbox_argv(bwrap: str, view: str, inside: str, network: bool, command: str, env: dict[str, str]) -> list[str]:
    argv = [bwrap, "--die-with-parent", "--unshare-all"]
    if network:
        argv.append("--share-net")
    argv += [*_system_view(), "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
             "--bind", view, inside, "--chdir", inside, "--clearenv"]
    for name, value in sorted(env.items()):
        argv += ["--setenv", name, value]
    return [*argv, BASH, "-c", command]


def _overlay_ok(workdir: str) -> bool:
    # overlay options are comma-separated and colon-separated: such paths cannot be given safely.
    return not any(c in workdir for c in ",:\\")


def run_in_bwrap(action: Action, target: Target | None, timeout: float, redactor: CredentialRedactor, clock: Clock,
                 *, mode: Mode | None = None) -> tuple[ExecutionResult, dict[str, Any]]:
    """Run the shell action in bubblewrap; returns the result and the effects on the working directory."""
    command = command_of(action)
    bwrap = bwrap_binary()
    limit = target.max_output_bytes if target is not None else 1024 * 1024
    network = bool(target is not None and target.network)
    with tempfile.TemporaryDirectory(prefix="interlock-rehearsal-", ignore_cleanup_errors=True) as scratch:
        root = Path(scratch)
        if target is not None and target.workdir is not None:
            source = Path(target.workdir)
            if not source.is_dir():
                raise ExecutionError(f"twin workdir {target.workdir!r} does not exist or is not a directory: create it")
            source = source.resolve()
        else:
            source = root / "empty"
            source.mkdir()
        chosen: Mode = mode or ("overlay" if overlay_available() and _overlay_ok(str(source)) else "copy")
        env = target_env(target, redactor, home="/tmp")
        output = OutputCapture(limit)
        if chosen == "overlay":
            for part in ("upper", "work", "merged"):
                (root / part).mkdir()
            inner = _sandbox_argv(bwrap, str(root / "merged"), str(source), network, command, env)
            script = ('mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4" || exit 125; '
                      'shift 4; exec "$@"')
            argv = [shutil.which("unshare") or "unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script,
                    "sh", str(source), str(root / "upper"), str(root / "work"), str(root / "merged"), *inner]
        else:
            copy = root / "copy"
            shutil.copytree(source, copy, symlinks=True)
            argv = _sandbox_argv(bwrap, str(copy), str(source), network, command, env)
        # No supervisor: bubblewrap's PID namespace and --die-with-parent already take the whole tree down.
        outcome = run_process(argv, env={"PATH": "/usr/bin:/bin"}, cwd=scratch, timeout=timeout, output=output,
                              supervised=False)
        effects = diff_upper(source, root / "upper") if chosen == "overlay" else diff_trees(source, root / "copy")
        size = sum(e.size for e in _walk(source).values())
    details = {"isolation": f"bubblewrap ({chosen})", "network": network, "workdir_bytes": size,
               "files": effects.to_json(), "exit_code": outcome.exit_code}
    if outcome.timed_out:
        result = make_result(Status.timeout, redactor, clock, output, exit_code=outcome.exit_code,
                             error=f"the rehearsal timed out after {timeout:g}s; the process tree was killed")
    else:
        ok = outcome.exit_code == 0
        result = make_result(Status.succeeded if ok else Status.failed, redactor, clock, output,
                             exit_code=outcome.exit_code, error=None if ok else f"exited with code {outcome.exit_code}")
    return result, details
