"""Where a command writes: harmless sinks, devices, system paths, the working directory `cd` set."""

from __future__ import annotations

import posixpath
import re
from contextvars import ContextVar

from interlock.classify.programs.base import (
    D,
    R,
    U,
    Verdict,
    W,
    Word,
    name_set,
)

_HARMLESS_DEVICES = frozenset(
    name_set("/dev/null /dev/stdout /dev/stderr /dev/tty /dev/zero /dev/full /dev/random /dev/urandom")
)


_SYSTEM_DIRS = name_set(
    """
    /etc /boot /bin /sbin /usr /lib /lib32 /lib64 /var/lib /root /sys /proc /dev /var/spool/cron
    /var/backups /var/log
    """
)


_SENSITIVE_HOME = re.compile(
    r"^(~|\$HOME|/home/[^/]+)/\.(ssh|bashrc|bash_profile|profile|zshrc|gnupg|aws|kube|config/systemd)"
)


_MASS_PATHS = frozenset(
    name_set(
        """
        / /* ~ ~/ ~/* * .* . ./ ./* .. ../ ../* $HOME ${HOME} /home /home/* /var /usr /etc /srv /opt
        /root /boot /var/lib
        """
    )
)


def _normal(path: str) -> str:
    if path.startswith("/"):
        path = posixpath.normpath(path)
    squeezed = re.sub(r"/+", "/", path)
    return squeezed.rstrip("/") or "/"


def is_mass_path(path: str) -> bool:
    return (
        path in _MASS_PATHS
        or _normal(path) in _MASS_PATHS
        or (_normal(path).endswith("/*") and _normal(path).count("/") <= 2)
    )


def is_system_path(path: str) -> bool:
    p = _normal(path)
    if p == "/" or p.startswith("/dev/fd/") or p in _HARMLESS_DEVICES:
        return p == "/"
    return any(p == d or p.startswith(d + "/") for d in _SYSTEM_DIRS) or bool(_SENSITIVE_HOME.match(p))


def is_device(path: str) -> bool:
    p = _normal(path)
    return p.startswith("/dev/") and p not in _HARMLESS_DEVICES and not p.startswith("/dev/fd/")


def harmless_sink(path: str) -> bool:
    p = _normal(path)
    return p in _HARMLESS_DEVICES or p.startswith("/dev/fd/")


#: The directory relative paths resolve against, as `cd` in the same line changed it:
#: "" = unchanged (the agent's own directory), a path, or None when a `cd` went somewhere we
#: cannot know (`cd "$DIR"`). Set by the classifier for the duration of one classification.
WORKING_DIR: ContextVar[str | None] = ContextVar("WORKING_DIR", default="")


def resolve_path(path: str) -> str | None:
    """Where a path points, as far as we know: absolute when `cd` made it so, or None."""
    if path.startswith(("/", "~", "$HOME")):
        return path
    cwd = WORKING_DIR.get()
    if cwd is None:
        return None
    if cwd:
        return cwd.rstrip("/") + "/" + path
    # Relative to a directory we do not know: `../../etc/passwd` still names /etc from most places.
    climbed = re.sub(r"^(\./|\.\./)+", "", path)
    if climbed != path and path.startswith(".."):
        return "/" + climbed
    return path


def change_dir(target: str | None) -> None:
    """Record a `cd` (None: to a place produced by an expansion)."""
    cwd = WORKING_DIR.get()
    if target is None or target == "-" or cwd is None:
        WORKING_DIR.set(None)
    elif target.startswith(("/", "~")):
        WORKING_DIR.set(target)
    elif cwd:
        WORKING_DIR.set(posixpath.normpath(cwd.rstrip("/") + "/" + target))
    else:
        # From a directory we do not know, `cd ../../etc` most likely lands in /etc; `cd ..` or
        # `cd build` stay somewhere we do not know, as before.
        climbed = "/" + re.sub(r"^(\./|\.\./)+", "", target)
        if target.startswith("..") and is_system_path(climbed):
            WORKING_DIR.set(climbed)


def write_to(word: Word, action: str = "writes to") -> Verdict:
    """Writing to one file: harmless sink, device, system file, ordinary file or unknown place."""
    written = word.value
    if written is None:
        return Verdict(U, f"{action} a path produced by an expansion ({word.text})")
    path = resolve_path(written)
    if path is None:
        return Verdict(U, f"{action} {written} after a cd we cannot follow")
    if harmless_sink(path):
        return Verdict(R, f"{action} {written}")
    if _normal(path).startswith(("/dev/tcp/", "/dev/udp/")):
        return Verdict(U, f"{action} a network socket {path}", frozenset({"network", "exfiltration"}), (path,))
    if is_device(path):
        return Verdict(D, f"{action} device {path}", frozenset({"irreversible"}), (path,))
    if is_system_path(path):
        return Verdict(D, f"{action} system path {path}", frozenset(), (path,))
    return Verdict(W, f"{action} {written}", frozenset(), (written,))


def paths_of(words: list[Word]) -> tuple[str, ...]:
    return tuple(w.show for w in words)
