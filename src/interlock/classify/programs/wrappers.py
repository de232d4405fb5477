"""Wrappers: programs that run another program (`sudo`, `env`, `timeout`, `watch` …).

A wrapper answers either the inner command (`Unwrapped`, judged in turn) or a judgement of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from interlock.classify.programs.base import (
    D,
    Judgement,
    R,
    Runner,
    Stdin,
    U,
    W,
    Word,
    lit,
    name_set,
    worst,
)
from interlock.classify.programs.targets import (
    write_to,
)

#: Environment variables that change which program runs or what it loads: setting one makes
#: every later command in the line something we cannot judge.
HIJACK_VARIABLES = name_set(
    """
    PATH LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT BASH_ENV ENV PROMPT_COMMAND IFS PYTHONPATH PYTHONSTARTUP
    PYTHONHOME PERL5OPT PERL5LIB PERLLIB RUBYOPT RUBYLIB NODE_OPTIONS NODE_PATH GIT_SSH GIT_SSH_COMMAND
    GIT_EXEC_PATH GIT_CONFIG GIT_CONFIG_GLOBAL GIT_CONFIG_PARAMETERS GIT_CONFIG_COUNT GIT_PAGER PAGER
    EDITOR VISUAL SHELLOPTS BASHOPTS PS4 DYLD_INSERT_LIBRARIES DYLD_LIBRARY_PATH SUDO_ASKPASS
    SSH_ASKPASS GIT_ASKPASS LESSOPEN LESSCLOSE MANPAGER KUBECTL_EXTERNAL_DIFF GIT_EXTERNAL_DIFF
    """
)
#: Variables named like these hold a program to run (`SYSTEMD_EDITOR`, `GIT_PAGER`, `SUDO_ASKPASS`,
#: `GIT_SSH_COMMAND`, `BROWSER`): a command that reads one runs whatever it names.
_PROGRAM_SUFFIXES = ("EDITOR", "PAGER", "VISUAL", "ASKPASS", "BROWSER", "_COMMAND", "_CMD", "_PROGRAM", "SHELL")


def hijacks(variable: str) -> bool:
    """True when setting `variable` changes which program runs or what it loads."""
    return variable in HIJACK_VARIABLES or variable.upper().endswith(_PROGRAM_SUFFIXES)


#: Variable names that hold credentials by convention (AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN, DATABASE_URL …).
_SECRET_VARIABLE = re.compile(
    r"secret|token|passw|credential|private|api_?key|access_?key|_key$|auth|cookie|dsn|_url$", re.I
)


def environment_shown(prog: str, names: list[str] | None = None) -> Judgement:
    """Printing the whole environment (`env`, `printenv`) or a credential-named variable shows the
    tokens the agent's session was started with: a secret read, like `cat .env` (tag `secrets`)."""
    if names is None:
        return Judgement(W, f"{prog} prints the whole environment, credentials included", frozenset({"secrets"}))
    secret = [n for n in names if _SECRET_VARIABLE.search(n) or sets_controls(n)]
    if secret:
        return Judgement(W, f"{prog} prints {', '.join(secret)}, which holds a credential", frozenset({"secrets"}))
    return Judgement(R, f"{prog} prints variables")


def sets_controls(variable: str) -> bool:
    """True for Interlock's own settings (INTERLOCK_POLICY, INTERLOCK_URL, INTERLOCK_TOKEN, …)."""
    return variable.startswith("INTERLOCK_")


def controls_changed(variable: str, how: str = "sets") -> Judgement:
    """Changing one of Interlock's settings in the agent's shell is changing the agent's own controls:
    the commands after it answer to another policy, gateway or token (like writing `.interlock/`)."""
    why = f"{how} {variable}, one of Interlock's own settings (policy, gateway, token)"
    return Judgement(D, why, frozenset({"protected-target"}))


@dataclass(frozen=True)
class Unwrapped:
    """A wrapper's inner command, and what the wrapper adds (e.g. `privilege` for sudo)."""

    words: list[Word]
    tags: frozenset[str] = frozenset()
    wrapper: str = ""
    #: The directory the inner command runs in (`env -C DIR`, `sudo -D DIR`): "" unchanged, None
    #: a directory produced by an expansion.
    chdir: str | None = ""


WrapperResult = Unwrapped | Judgement


def _skip_options(args: list[Word], takes: str, long_takes: Iterable[str] = ()) -> tuple[int, set[str]]:
    """Index of the first operand after getopt-style options, and the letters/names seen."""
    long_set = set(long_takes)
    seen: set[str] = set()
    i = 0
    while i < len(args):
        v = args[i].value
        if v is None or not v.startswith("-") or v == "-":
            break
        i += 1
        if v == "--":
            break
        if v.startswith("--"):
            name, eq, _ = v[2:].partition("=")
            seen.add(name)
            if not eq and name in long_set:
                i += 1
            continue
        for pos, letter in enumerate(v[1:], start=1):
            seen.add(letter)
            if letter in takes:
                if pos == len(v) - 1:
                    i += 1
                break
    return i, seen


def wrap_sudo(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> WrapperResult:
    takes = "ugpChDrtTUR" if prog == "sudo" else "uC"
    i, seen = _skip_options(
        args,
        takes,
        name_set("user group prompt host chdir role type command-timeout other-user chroot close-from"),
    )
    priv = frozenset({"privilege"})
    if i >= len(args):
        if seen & name_set("l list v validate k K reset-timestamp remove-timestamp V version h help"):
            return Judgement(R, f"{prog} lists privileges", priv)
        if seen & {"e", "edit"}:
            return Judgement(W, f"{prog} -e edits a file as root", priv)
        return Judgement(U, f"{prog} opens a root shell", priv)
    if seen & {"e", "edit"}:
        return worst([write_to(w, f"{prog} -e edits") for w in args[i:]]).with_tags("privilege")
    return Unwrapped(args[i:], priv, prog, _chdir_option(args[:i], "-D", "--chdir") if prog == "sudo" else "")


def wrap_su(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> WrapperResult:
    priv = frozenset({"privilege"})
    for j, w in enumerate(args):
        if w.value in ("-c", "--command") and j + 1 < len(args):
            text = args[j + 1].value
            if text is None:
                return Judgement(U, f"{prog} -c with a command produced by an expansion", priv)
            nested = run.shell(text)
            reason = f"{prog} -c: {nested.reason}"
            return Judgement(nested.risk, reason, nested.tags | priv, nested.paths, nested.nested)
    if prog == "runuser":
        i, _ = _skip_options(args, "ugG", ["user", "group"])
        if i < len(args):
            return Unwrapped(args[i:], priv, prog)
    return Judgement(U, f"{prog} opens a shell as another user", priv)


def _chdir_option(args: list[Word], short: str, long: str) -> str | None:
    """The directory a wrapper's `-C DIR`/`-CDIR`/`--chdir DIR`/`--chdir=DIR` names: "" when none is
    given, None when an expansion produces it. Options only: the first operand ends the search."""
    for j, word in enumerate(args):
        v = word.value
        if v is None or v == "--" or not v.startswith("-"):
            return ""
        if v in (short, long):
            return args[j + 1].value if j + 1 < len(args) else None
        if v.startswith(long + "="):
            return v.partition("=")[2]
        if v.startswith(short) and len(v) > 2 and not v.startswith("--"):
            return v[2:]
    return ""


def wrap_env(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> WrapperResult:
    i = 0
    while i < len(args):
        w = args[i]
        v = w.value
        if v is None:
            return Judgement(U, f"env argument produced by an expansion ({w.text})")
        if v in ("-u", "--unset") and i + 1 < len(args) and sets_controls(args[i + 1].value or ""):
            return controls_changed(args[i + 1].value or "", "env unsets")
        if v in ("-u", "--unset", "-C", "--chdir"):
            i += 2
            continue
        if v in ("-S", "--split-string") or v.startswith(("-S", "--split-string=")):
            text = (
                args[i + 1].value
                if v in ("-S", "--split-string") and i + 1 < len(args)
                else v.partition("=")[2]
                if v.startswith("--")
                else v[2:]
            )
            rest = lit(args[i + 2 :] if v in ("-S", "--split-string") else args[i + 1 :])
            if text is None or rest is None:
                return Judgement(U, "env -S with text produced by an expansion")
            nested = run.shell(" ".join([text, *rest]))
            return Judgement(nested.risk, f"env -S: {nested.reason}", nested.tags, nested.paths, nested.nested)
        if v == "--":
            i += 1
            break
        if v.startswith("-"):
            i += 1
            continue
        if "=" in v and not v.startswith("="):
            name = v.partition("=")[0]
            if sets_controls(name):
                return controls_changed(name, "env sets")
            if hijacks(name):
                return Judgement(U, f"env sets {name}, which changes what programs run")
            i += 1
            continue
        break
    if i >= len(args):
        return environment_shown("env")
    return Unwrapped(args[i:], frozenset(), prog, _chdir_option(args[:i], "-C", "--chdir"))


#: wrapper → (short options taking a value, long options taking a value, operands before the command)
_SIMPLE_WRAPPERS: dict[str, tuple[str, tuple[str, ...], int]] = {
    "nice": ("n", ("adjustment",), 0),
    "ionice": ("cnt", ("class", "classdata"), 0),
    "timeout": ("sk", ("signal", "kill-after"), 1),
    "nohup": ("", (), 0),
    "setsid": ("", (), 0),
    "command": ("", (), 0),
    "builtin": ("", (), 0),
    "exec": ("a", (), 0),
    "time": ("fo", ("format", "output"), 0),
    "stdbuf": ("ioe", ("input", "output", "error"), 0),
    "chroot": ("", ("userspec", "groups"), 1),
    "unbuffer": ("", (), 0),
    "caffeinate": ("tw", (), 0),
    "taskset": ("", ("cpu-list",), 1),
    "numactl": ("CNmilp", ("cpunodebind", "membind", "physcpubind", "interleave", "preferred"), 0),
    "xvfb-run": ("nsfe", ("server-num", "server-args", "auth-file", "error-file"), 0),
    "strace": ("eoOpsSuPIbaX", ("output",), 0),
    "ltrace": ("eoOpsSunaAD", ("output",), 0),
    "flock": ("wEc", ("timeout", "conflict-exit-code", "command"), 1),
    "prlimit": ("p", ("pid",), 0),
    "faketime": ("f", (), 1),
    "torsocks": ("", (), 0),
    "proxychains": ("f", (), 0),
    "proxychains4": ("f", (), 0),
    "sg": ("", (), 1),
}


def wrap_simple(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> WrapperResult:
    takes, long_takes, skip = _SIMPLE_WRAPPERS[prog]
    if prog == "nice" and args and args[0].value is not None and re.fullmatch(r"-[0-9]+", args[0].value):
        args = args[1:]
    i, seen = _skip_options(args, takes, long_takes)
    if prog == "command" and seen & {"v", "V"}:
        return Judgement(R, "command -v looks up a program")
    if prog in ("ionice", "taskset", "prlimit", "strace", "ltrace") and seen & {"p", "pid"} and i >= len(args):
        return Judgement(W if prog != "strace" else R, f"{prog} changes or watches a running process")
    if prog == "flock" and (seen & {"c", "command"}):
        for j, w in enumerate(args):
            if w.value in ("-c", "--command") and j + 1 < len(args):
                text = args[j + 1].value
                if text is None:
                    return Judgement(U, "flock -c with a command produced by an expansion")
                nested = run.shell(text)
                return Judgement(nested.risk, f"flock -c: {nested.reason}", nested.tags, nested.paths, nested.nested)
    i += skip
    tags = frozenset({"privilege"}) if prog in ("chroot", "sg") else frozenset()
    if prog == "strace" and "o" in seen:
        tags = tags  # strace -o writes a trace file; the inner command dominates
    if i >= len(args):
        if prog == "chroot":
            return Judgement(U, "chroot opens a shell in another root", tags)
        if prog in ("nice", "time", "command", "builtin", "exec", "nohup"):
            return Judgement(R, f"{prog} without a command")
        return Judgement(U, f"{prog} without a command")
    return Unwrapped(args[i:], tags, prog)


def wrap_watch(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> WrapperResult:
    i, seen = _skip_options(args, "nq", ["interval", "equexit"])
    rest = args[i:]
    if not rest:
        return Judgement(U, "watch without a command")
    if seen & {"x", "exec"}:
        return Unwrapped(rest, frozenset(), prog)
    values = lit(rest)
    if values is None:
        return Judgement(U, "watch command produced by an expansion")
    nested = run.shell(" ".join(values))
    return Judgement(nested.risk, f"watch: {nested.reason}", nested.tags, nested.paths, nested.nested)


def wrap_busybox(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> WrapperResult:
    if not args:
        return Judgement(R, "busybox lists applets")
    return Unwrapped(args, frozenset(), prog)


Wrapper = Callable[[str, list[Word], Stdin, Runner], WrapperResult]


WRAPPERS: dict[str, Wrapper] = {
    "sudo": wrap_sudo,
    "doas": wrap_sudo,
    "su": wrap_su,
    "runuser": wrap_su,
    "env": wrap_env,
    "watch": wrap_watch,
    "busybox": wrap_busybox,
}


WRAPPERS.update({name: wrap_simple for name in _SIMPLE_WRAPPERS})
