"""Where a command writes: harmless sinks, devices, system paths, the working directory `cd` set,
and what the shared judge of protected paths, secret files and scratch space (classify/paths.py)
says about the paths a command writes, removes or reads."""

from __future__ import annotations

import posixpath
import re
from contextvars import ContextVar
from dataclasses import dataclass

from interlock.classify import paths
from interlock.classify.paths import DEFAULT_RULES, PathRules
from interlock.classify.programs.base import (
    D,
    Judgement,
    R,
    U,
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


_SLASHES = re.compile(r"/{2,}")
_IN_SYSTEM_DIR = re.compile("(?:" + "|".join(re.escape(d) for d in sorted(_SYSTEM_DIRS)) + ")(?:/|$)")


def _normal(path: str) -> str:
    if path.startswith("/"):
        path = posixpath.normpath(path)
    if "//" in path:
        path = _SLASHES.sub("/", path)
    return path.rstrip("/") or "/"


def is_mass_path(path: str) -> bool:
    if path in _MASS_PATHS:
        return True
    p = _normal(path)
    return p in _MASS_PATHS or (p.endswith("/*") and p.count("/") <= 2)


def is_system_path(path: str) -> bool:
    p = _normal(path)
    if p == "/" or p.startswith("/dev/fd/") or p in _HARMLESS_DEVICES:
        return p == "/"
    return _IN_SYSTEM_DIR.match(p) is not None or _SENSITIVE_HOME.match(p) is not None


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
    if cwd.startswith(("/", "~")):
        return cwd.rstrip("/") + "/" + path
    if cwd:
        # `cd .claude` from the agent's directory: still relative, but a protected path is seen.
        path = posixpath.normpath(cwd + "/" + path)
        if not path.startswith(".."):
            return path
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
    elif not target.startswith(".."):
        WORKING_DIR.set(posixpath.normpath(target))
    else:
        # From a directory we do not know, `cd ../../etc` most likely lands in /etc; `cd ..` or
        # `cd build` stay somewhere we do not know, as before.
        climbed = "/" + re.sub(r"^(\./|\.\./)+", "", target)
        if target.startswith("..") and is_system_path(climbed):
            WORKING_DIR.set(climbed)


@dataclass(frozen=True)
class LineFacts:
    """What one shell classification knows about paths, set once per line by the shell classifier."""

    rules: PathRules = DEFAULT_RULES  # the policy's protected, secret and scratch lists
    may_protect: bool = True  # a protected path may be named in the line (paths.line_may_name)
    may_secret: bool = True  # a secret file may be named in the line
    #: Names of the files written so far (`echo … > Gemfile && bundle install` installs from a
    #: manifest the agent just wrote); None outside a classification.
    written: set[str] | None = None
    #: Destinations of single-file moves so far (a second move onto one overwrites the first).
    moved_onto: set[str] | None = None
    #: Variables whose leading expansion in a word we may spell out (`paths.stable_variables`).
    stable: frozenset[str] = frozenset()


#: The default (outside a classification) is frozen and holds no set: nothing can change it.
LINE: ContextVar[LineFacts] = ContextVar("LINE", default=LineFacts())  # noqa: B039
_PROTECTED = frozenset({"protected-target"})


def write_to(word: Word, action: str = "writes to") -> Judgement:
    """Writing to one file: harmless sink, device, protected or system file, ordinary file or unknown place."""
    written = word.value
    if written is None:
        return Judgement(U, f"{action} a path produced by an expansion ({word.text})")
    path = resolve_path(written)
    if path is None:
        return Judgement(U, f"{action} {written} after a cd we cannot follow")
    normal = _normal(path)
    if normal in _HARMLESS_DEVICES or normal.startswith("/dev/fd/"):
        return Judgement(R, f"{action} {written}")
    if normal.startswith("/dev/"):
        if normal.startswith(("/dev/tcp/", "/dev/udp/")):
            return Judgement(U, f"{action} a network socket {path}", frozenset({"network", "exfiltration"}), (path,))
        return Judgement(D, f"{action} device {path}", frozenset({"irreversible", "protected-target"}), (path,))
    why = protected_path(path, written)
    tags = _PROTECTED if why else frozenset()
    if ("/" in path or "authorized_keys" in path) and paths.grants_power(path):
        tags = tags | {"privilege"}
    if is_system_path(normal):
        return Judgement(D, f"{action} system path {path}", tags, (path,))
    if why is not None:
        return Judgement(D, f"{action} {written}, a protected path ({why})", tags, (path,))
    if paths.is_pattern(written):
        # `sed -i … *.yaml` edits every file the pattern matches, the policy among them.
        why = paths.pattern_protected(path, LINE.get().rules)
        if why is not None:
            return Judgement(D, f"{action} {written}, which may name a protected path ({why})", _PROTECTED, (path,))
    seen = LINE.get().written
    if seen is not None:
        seen.add(written.rpartition("/")[2])
    return Judgement(W, f"{action} {written}", frozenset(), (written,))


#: Sources that hold nothing worth keeping: copying one over a file empties or wipes it.
EMPTY_SOURCES = frozenset({"/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/full"})


def emptied(judgement: Judgement, word: Word, how: str) -> Judgement:
    """A write whose content comes from an empty source (`dd if=/dev/zero of=F`, `tee F < /dev/null`,
    `sort -o F /dev/null`) destroys what F held, as `truncate -s 0 F` does; in scratch space it is
    still only a write."""
    if judgement.risk is not W or word.value is None or in_scratch_word(word):
        return judgement
    return Judgement(D, f"{how} {word.value}", judgement.tags | {"irreversible"}, judgement.paths, judgement.nested)


def protected_path(path: str, written: str | None = None) -> str | None:
    """Why writing `path` (as resolved; `written` as the command spelled it) is protected, or None."""
    line = LINE.get()
    if not line.may_protect:
        return None
    rules = line.rules
    why = paths.protected(path, rules)
    if why is None and written is not None and written != path:
        why = paths.protected(written, rules)
    return why


def removal(words: list[Word]) -> tuple[str | None, bool]:
    """What removing or moving away `words` touches: (why a protected path goes with it, or None;
    whether every one of them is strictly inside scratch space such as /tmp)."""
    line = LINE.get()
    rules, may_protect = line.rules, line.may_protect
    scratch = bool(words)
    for word in words:
        value = word.value
        if value is None:
            scratch = scratch and paths.in_scratch(word.text, rules)
            continue
        path = resolve_path(value)
        for candidate in (path, value) if path is not None and path != value else (value,):
            why = paths.holds_protected(candidate, rules) if may_protect else None
            if why is not None:
                return f"{value}: {why}", False
        scratch = scratch and path is not None and paths.in_scratch(path, rules)
    return None, scratch


def tree_into(dest: Word, action: str) -> Judgement | None:
    """Copying a whole tree into a directory that holds protected files (`cp -r x/ .claude`,
    `rsync -a x/ .github/hooks/`) may overwrite any of them with whatever the tree holds."""
    line = LINE.get()
    if dest.value is None or not line.may_protect:
        return None
    path = resolve_path(dest.value)
    for candidate in (path, dest.value) if path is not None and path != dest.value else (dest.value,):
        why = paths.holds_protected(candidate, line.rules)
        if why is not None:
            return Judgement(D, f"{action} {dest.value} ({why})", _PROTECTED, (dest.value,))
    return None


def names_protected(words: list[Word]) -> str | None:
    """The first of `words` that names a protected path (or a directory holding one), as `PATH: why`."""
    if not LINE.get().may_protect:
        return None
    why, _ = removal([w for w in words if w.value is not None and not w.value.startswith("-")])
    return why


def mentions_protected(text: str) -> str | None:
    """A protected path quoted in code or text (`open('.claude/settings.json','w')`), as `PATH (why)`."""
    line = LINE.get()
    if not line.may_protect:
        return None
    return paths.text_names_protected(text, line.rules)


def in_scratch_word(word: Word) -> bool:
    """True when `word` names a path strictly inside scratch space (`/tmp/build`, `${TMPDIR:?}/x`)."""
    if word.value is None:
        return paths.in_scratch(word.text, LINE.get().rules)
    path = resolve_path(word.value)
    return path is not None and paths.in_scratch(path, LINE.get().rules)


def names_secret(words: list[Word]) -> str | None:
    """The secret file (`~/.aws/credentials`, `.env`, a private key) that one of `words` names, if any."""
    line = LINE.get()
    if not line.may_secret:
        return None
    rules = line.rules
    texts = [word.value if word.value is not None else word.text for word in words]
    if WORKING_DIR.get():
        # After `cd ~/.aws` (or `env -C /etc`), `credentials` is `~/.aws/credentials`.
        texts += [resolved for text in texts if not text.startswith("-") and (resolved := resolve_path(text))]
    if not paths.may_name_secret("\n".join(texts), rules):
        return None
    for text in texts:
        found = paths.word_names_secret(text, rules)
        if found is not None:
            return found
    return None


def paths_of(words: list[Word]) -> tuple[str, ...]:
    return tuple(w.show for w in words)
