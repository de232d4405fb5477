"""Per-program judges for the shell classifier, and the catalog of read-only programs.

`judge_argv` takes one command's words after parsing (quotes removed, expansions marked) and
answers what running it would do. It looks through wrappers (`sudo`, `env`, `timeout`, …),
then asks the judge for the program. A program with no judge and not in `READ_ONLY` is
`unknown`: we never assume a program we do not know is harmless.

Decisions worth knowing (see docs/classifiers.md):
- deleting anything (`rm`, `rmdir`, `shred`, `truncate`) is `destructive`; recursive or
  `/`, `~`, `*` adds `mass`.
- `mv`/`cp`/`ln` are `write`; `mv -f`, `ln -f` and any of them onto a system path are `destructive`
  (they replace what was there). Plain `mv` may also replace a file: we call it `write` because
  `-f` is the explicit "replace without asking" and `mv` onto a system path is caught separately.
- Stopping or restarting a service, a container or a process is `destructive` (an outage);
  starting one is `write`.
- A write whose destination comes from an expansion (`> $OUT`) is `unknown`: it could be anywhere.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from interlock.classify.snippets import judge_code
from interlock.model import Kind, Risk

R, W, D, U = Risk.read, Risk.write, Risk.destructive, Risk.unknown


def name_set(text: str) -> frozenset[str]:
    """A set of names from whitespace-separated text: long name lists stay readable."""
    return frozenset(text.split())


@dataclass(frozen=True)
class Word:
    """One shell word: `value` after quote removal, or None when an expansion produces it."""

    value: str | None
    text: str

    @property
    def show(self) -> str:
        return self.value if self.value is not None else self.text


@dataclass(frozen=True)
class Stdin:
    """What a command reads on standard input, as far as we can tell."""

    origin: str = "tty"  # tty | heredoc | herestring | file | pipe
    text: str | None = None  # the content, when it is literal text we can judge
    tags: frozenset[str] = frozenset()  # what the producer says about it (network, obfuscated)
    source: str = ""  # the producer, for summaries: "curl https://x", "file.sql"


TTY = Stdin()


@dataclass(frozen=True)
class Verdict:
    risk: Risk
    reason: str
    tags: frozenset[str] = frozenset()
    paths: tuple[str, ...] = ()
    nested: tuple[dict[str, Any], ...] = field(default=())

    def with_tags(self, *tags: str) -> Verdict:
        return Verdict(self.risk, self.reason, self.tags | frozenset(tags), self.paths, self.nested)


class Runner(Protocol):
    """What judges may ask of the classifier: judge nested shell text, argvs and other kinds."""

    def shell(self, text: str, stdin: Stdin = TTY) -> Verdict: ...

    def argv(self, words: list[Word], stdin: Stdin) -> Verdict: ...

    def delegate(self, kind: Kind, payload: dict[str, Any], dialect: str | None = None) -> Verdict: ...

    def is_function(self, name: str) -> bool: ...


def worst(verdicts: Iterable[Verdict], reason: str | None = None) -> Verdict:
    """The most dangerous verdict; tags and paths are the union of all of them."""
    items = list(verdicts)
    if not items:
        return Verdict(R, reason or "nothing to run")
    if len(items) == 1 and reason is None:
        return items[0]
    top = max(items, key=lambda v: (v.risk.rank, v.risk is U))
    tags = frozenset().union(*(v.tags for v in items))
    paths = tuple(dict.fromkeys(p for v in items for p in v.paths))
    nested = tuple(n for v in items for n in v.nested)
    return Verdict(top.risk, reason or top.reason, tags, paths, nested)


def lit(words: list[Word]) -> list[str] | None:
    """All values, or None when any word comes from an expansion."""
    values = [w.value for w in words]
    return None if any(v is None for v in values) else [v for v in values if v is not None]


# --------------------------------------------------------------------------- options


@dataclass
class Opts:
    flags: set[str]  # short letters and long names ("r", "recursive")
    values: dict[str, str | None]  # options that take a value
    operands: list[Word]


def parse_opts(args: list[Word], takes: str = "", long_takes: Iterable[str] = ()) -> Opts:
    """getopt-style parsing. `takes`: short options with a value; `long_takes`: long ones."""
    long_set = set(long_takes)
    flags: set[str] = set()
    values: dict[str, str | None] = {}
    operands: list[Word] = []
    i = 0
    while i < len(args):
        word = args[i]
        v = word.value
        i += 1
        if v is None or v == "-" or not v.startswith("-"):
            operands.append(word)
            continue
        if v == "--":
            operands.extend(args[i:])
            break
        if v.startswith("--"):
            name, eq, value = v[2:].partition("=")
            if eq:
                values[name] = value
            elif name in long_set:
                values[name] = args[i].value if i < len(args) else None
                i += 1
            flags.add(name)
            continue
        for pos, letter in enumerate(v[1:], start=1):
            if letter in takes:
                rest = v[pos + 1 :]
                if rest:
                    values[letter] = rest
                else:
                    values[letter] = args[i].value if i < len(args) else None
                    i += 1
                flags.add(letter)
                break
            flags.add(letter)
    return Opts(flags, values, operands)


def first_operand(args: list[Word], takes: str = "", long_takes: Iterable[str] = ()) -> tuple[str | None, list[Word]]:
    """The subcommand (first operand) and the words after it."""
    long_set = set(long_takes)
    i = 0
    while i < len(args):
        v = args[i].value
        if v is None:
            return None, args[i + 1 :]
        if v == "--":
            i += 1
            break
        if v.startswith("--"):
            name, eq, _ = v[2:].partition("=")
            i += 1 if eq or name not in long_set else 2
            continue
        if v.startswith("-") and len(v) > 1:
            i += 2 if v[-1] in takes and len(v) == 2 else 1
            continue
        return v, args[i + 1 :]
    if i < len(args):
        return args[i].value, args[i + 1 :]
    return "", []


# --------------------------------------------------------------------------- paths

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


def _paths(words: list[Word]) -> tuple[str, ...]:
    return tuple(w.show for w in words)


# --------------------------------------------------------------------------- deleting files


def judge_rm(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    opts = parse_opts(args)
    recursive = bool(opts.flags & {"r", "R", "recursive"})
    targets = opts.operands
    mass = recursive or any(w.value is not None and is_mass_path(w.value) for w in targets)
    tags = {"irreversible"} | ({"mass"} if mass else set())
    kind = "recursive delete" if recursive else "delete"
    if any(w.value is not None and w.value in ("/", "/*") for w in targets):
        kind += " of the root filesystem"
    return Verdict(D, kind, frozenset(tags), _paths(targets))


def judge_rmdir(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    opts = parse_opts(args)
    return Verdict(D, "removes directories", frozenset(), _paths(opts.operands))


def judge_shred(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    opts = parse_opts(args, "nsx", ["iterations", "size", "random-source", "remove"])
    return Verdict(D, "overwrites files beyond recovery", frozenset({"irreversible"}), _paths(opts.operands))


#: Per disk tool: the options that only print (anything else may rewrite the disk).
_DISK_LISTING = {
    "fdisk": name_set("-l --list"),
    "sfdisk": name_set("-l --list -d --dump -s --show-size -J --json -V --verify"),
    "parted": name_set("-l --list print"),
    "sgdisk": name_set("-p --print -v --verify -i --info -P --pretend"),
    "blkid": name_set("-p -o -s -t -L -U"),
}


def judge_disk(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    values = {w.value for w in args}
    if prog == "wipefs" and not values & name_set("-a --all -o --offset -f --force"):
        return Verdict(R, "wipefs lists signatures")
    listing = _DISK_LISTING.get(prog)
    if listing is not None and values & listing:
        return Verdict(R, f"{prog} lists partitions")
    opts = parse_opts(args)
    return Verdict(
        D, f"{prog} rewrites a disk or filesystem", frozenset({"irreversible", "mass"}), _paths(opts.operands)
    )


def judge_truncate(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    opts = parse_opts(args, "sr", ["size", "reference"])
    return Verdict(D, "truncates files", frozenset({"irreversible"}), _paths(opts.operands))


def judge_dd(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    for word in args:
        if word.value is None:
            return Verdict(U, f"dd operand produced by an expansion ({word.text})")
        if word.value.startswith("of="):
            verdict = write_to(Word(word.value[3:], word.text[3:]), "dd writes to")
            return verdict.with_tags("irreversible") if verdict.risk is D else verdict
    return Verdict(R, "dd copies to standard output")


def judge_find(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    verdicts = [Verdict(R, "find lists files")]
    i = 0
    starts: list[Word] = []
    while i < len(args) and (args[i].value is None or not args[i].value.startswith(("-", "(", "!"))):  # type: ignore[union-attr]
        starts.append(args[i])
        i += 1
    paths = _paths(starts) or (".",)
    while i < len(args):
        v = args[i].value
        i += 1
        if v in ("-delete",):
            verdicts.append(Verdict(D, "find deletes the files it matches", frozenset({"mass", "irreversible"}), paths))
        elif v in ("-exec", "-execdir", "-ok", "-okdir"):
            inner: list[Word] = []
            while i < len(args) and args[i].value not in (";", "+"):
                w = args[i]
                inner.append(Word(None, "{}") if w.value is not None and "{}" in w.value else w)
                i += 1
            i += 1
            if not inner:
                verdicts.append(Verdict(U, f"find {v} without a command"))
                continue
            nested = run.argv(inner, TTY)
            verdicts.append(
                Verdict(
                    nested.risk,
                    f"find {v} runs {inner[0].show}: {nested.reason}",
                    nested.tags,
                    paths,
                    nested.nested,
                )
            )
        elif v in ("-fprint", "-fprint0", "-fprintf", "-fls"):
            if i < len(args):
                verdicts.append(write_to(args[i], f"find {v} writes to"))
            i += 1
        elif v is None:
            verdicts.append(Verdict(U, "find expression produced by an expansion"))
    top = worst(verdicts)
    return Verdict(top.risk, top.reason, top.tags, paths if top.risk is not R else top.paths, top.nested)


# --------------------------------------------------------------------------- files: write


def judge_mv(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    """mv and ln. mv also takes its sources away, so a source on a system path counts too."""
    opts = parse_opts(args, "tS", ["target-directory", "suffix", "backup"])
    dest_value = opts.values.get("t") or opts.values.get("target-directory")
    if dest_value is not None:
        dest: Word | None = Word(dest_value, dest_value)
        sources = opts.operands
    else:
        dest = opts.operands[-1] if len(opts.operands) >= 2 else None
        sources = opts.operands[:-1] if dest is not None else opts.operands
    if dest is None:
        return Verdict(W, f"{prog} without a destination", frozenset(), _paths(sources))
    verdict = write_to(dest, f"{prog} {'moves to' if prog == 'mv' else 'links'}")
    if prog == "mv" and dest.value is not None and harmless_sink(dest.value):
        verdict = Verdict(D, f"mv into {dest.value} destroys the files", frozenset({"irreversible"}))
    verdicts = [verdict]
    if prog == "mv":
        verdicts += [
            write_to(w, "mv moves away").with_tags() for w in sources if w.value is None or is_system_path(w.value)
        ]
    top = worst(verdicts)
    paths = _paths([*sources, dest])
    if opts.flags & {"f", "force"} and top.risk is W:
        return Verdict(D, f"{prog} -f replaces {dest.show}", top.tags | {"replace"}, paths)
    return Verdict(top.risk, top.reason, top.tags, paths)


def judge_cp(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    opts = parse_opts(args, "tS", ["target-directory", "suffix", "backup"])
    dest = opts.values.get("t") or opts.values.get("target-directory")
    target = Word(dest, dest or "") if dest else (opts.operands[-1] if opts.operands else None)
    if target is None:
        return Verdict(W, f"{prog} copies files")
    verdict = write_to(target, f"{prog} copies to")
    if verdict.risk is R:
        verdict = Verdict(R, f"{prog} copies to {target.show}")
    tags = (
        frozenset({"mass"})
        if opts.flags & {"r", "R", "a", "recursive", "archive"} and verdict.risk is D
        else frozenset()
    )
    return Verdict(verdict.risk, verdict.reason, verdict.tags | tags, _paths(opts.operands))


def judge_ln(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    return judge_mv("ln", args, stdin, run)


def judge_touch(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    opts = parse_opts(args, "dtrm" if prog == "touch" else "m", ["date", "reference", "mode", "context"])
    verdicts = [write_to(w, f"{prog} creates") for w in opts.operands]
    # Creating a file or directory overwrites nothing, even in a system path (tag `privilege`).
    verdicts = [
        Verdict(W, v.reason, v.tags - {"irreversible"} | {"privilege"}, v.paths) if v.risk is D else v for v in verdicts
    ]
    return worst(verdicts) if verdicts else Verdict(W, f"{prog} creates files")


def judge_tee(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    opts = parse_opts(args)
    action = "tee appends to" if opts.flags & {"a", "append"} else "tee writes to"
    verdicts = [write_to(w, action) for w in opts.operands]
    return worst(verdicts) if verdicts else Verdict(R, "tee copies standard input to standard output")


def judge_chmod(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    opts = parse_opts(args, "", ["reference", "from"])
    operands = opts.operands
    mode_word = operands[0].value if operands and prog == "chmod" else None
    files = operands[1:] if prog in ("chmod", "chown", "chgrp") else operands
    recursive = bool(opts.flags & {"R", "recursive"})
    tags: set[str] = set()
    if recursive:
        tags.add("mass")
    if mode_word and re.search(
        r"(^[0-7]?[0-7][0-7]7$)|([oa]?\+[rwx]*w)|(^[0-7]?[0-7]7[0-7]$)|([ugo]*\+s)|(^[2-7][0-7]{3}$)",
        mode_word,
    ):
        tags.add("privilege")
    if any(w.value is None for w in files):
        return Verdict(U, f"{prog} on a path produced by an expansion", frozenset(tags), _paths(files))
    system = [w.value for w in files if w.value is not None and (is_system_path(w.value) or is_mass_path(w.value))]
    if system:
        return Verdict(D, f"{prog} changes {', '.join(system)}", frozenset(tags), _paths(files))
    what = "recursively changes" if recursive else "changes"
    noun = {"chmod": "permissions", "chown": "ownership", "chgrp": "group"}.get(prog, "attributes")
    return Verdict(W, f"{prog} {what} {noun}", frozenset(tags), _paths(files))


def judge_sed(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    opts = parse_opts(args, "ef", ["expression", "file"])
    if "f" in opts.values or "file" in opts.values:
        return Verdict(U, "sed runs a script file")
    scripts = [opts.values[k] for k in ("e", "expression") if k in opts.values]
    operands = opts.operands
    if not scripts and operands:
        scripts, operands = [operands[0].value], operands[1:]
    if any(s is None for s in scripts):
        return Verdict(U, "sed script produced by an expansion")
    for script in scripts:
        assert script is not None
        # `e` executes the pattern space as a command; `s///e` runs the replacement.
        if re.search(
            r"(^|[;\n{}])\s*(\d+|\$|/[^/]*/)?(,\s*(\d+|\$|/[^/]*/))?\s*!?\s*e(\s|;|$)|s(.).*\6.*\6[gpiImM0-9w]*e",
            script,
        ):
            return Verdict(D, "sed runs a shell command (e)", frozenset({"interpreter"}))
        target = re.search(r"(^|[;\n}]\s*|s(.).*\2.*\2[gpiImM0-9e]*)w\s*(\S+)", script)
        if target:
            return write_to(Word(target.group(3), target.group(3)), "sed writes to")
    if (
        any(f.startswith("i") for f in opts.flags)
        or "in-place" in opts.flags
        or any(f.startswith("in-place") for f in opts.values)
    ):
        verdicts = [write_to(w, "sed edits") for w in operands]
        return worst(verdicts) if verdicts else Verdict(W, "sed edits")
    return Verdict(R, "sed prints edited text")


def judge_awk(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    opts = parse_opts(args, "fvF", ["file", "assign", "field-separator"])
    if "f" in opts.values or "file" in opts.values:
        return Verdict(U, f"{prog} runs a script file")
    if not opts.operands:
        return Verdict(U, f"{prog} without a program")
    program = opts.operands[0].value
    if program is None:
        return Verdict(U, f"{prog} program produced by an expansion")
    if re.search(r"\bsystem\s*\(|\|\s*getline|print[f]?[^;}]*\|\s*\"", program):
        return Verdict(D, f"{prog} runs shell commands", frozenset({"interpreter"}))
    target = re.search(r"print[f]?[^;}]*?>>?\s*(\"[^\"]*\"|\S+)", program)
    if target:
        path = target.group(1).strip('"')
        return write_to(Word(path if target.group(1).startswith('"') else None, path), f"{prog} writes to")
    return Verdict(R, f"{prog} prints text")


def judge_sort(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    opts = parse_opts(args, "otkSTn" if prog == "sort" else "", ["output", "key", "temporary-directory"])
    out = opts.values.get("o") or opts.values.get("output")
    if prog == "sort" and ("o" in opts.values or "output" in opts.values):
        return write_to(Word(out, out or "$?"), "sort writes to")
    if prog == "uniq" and len(opts.operands) >= 2:
        return write_to(opts.operands[1], "uniq writes to")
    return Verdict(R, f"{prog} prints text")


# --------------------------------------------------------------------------- shells, interpreters


_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "ash", "fish", "busybox-sh", "mksh", "tcsh", "csh"})


def judge_piped_code(stdin: Stdin, what: str, run: Runner, language: str | None = None) -> Verdict:
    """An interpreter reading its program from standard input."""
    if stdin.text is not None:
        if language is None:
            nested = run.shell(stdin.text)
        else:
            snippet = judge_code(language, stdin.text)
            nested = Verdict(
                snippet.risk, snippet.reason, frozenset({"interpreter"}) if snippet.risk is D else frozenset()
            )
        tags = stdin.tags | nested.tags
        risk = nested.risk
        if "obfuscated" in stdin.tags and risk is not U:
            risk = D
        return Verdict(risk, f"{what} runs {stdin.origin} input: {nested.reason}", tags, nested.paths, nested.nested)
    if "network" in stdin.tags:
        return Verdict(D, f"{what} runs code downloaded by {stdin.source}", stdin.tags | {"interpreter"})
    if "obfuscated" in stdin.tags:
        return Verdict(D, f"{what} runs decoded code from {stdin.source}", stdin.tags | {"interpreter"})
    if stdin.origin == "tty":
        return Verdict(U, f"{what} reads commands interactively")
    return Verdict(U, f"{what} runs code from {stdin.source or stdin.origin}", stdin.tags | {"interpreter"})


def judge_shell(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    i = 0
    command: str | None = None
    has_command = False
    while i < len(args):
        v = args[i].value
        if v is None:
            return Verdict(U, f"{prog} argument produced by an expansion ({args[i].text})")
        if v in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            i += 2
            continue
        if (v.startswith("-") and len(v) > 1 and not v.startswith("--")) or v.startswith("+"):
            if "c" in v[1:]:
                has_command = True
                command = args[i + 1].value if i + 1 < len(args) else None
                if i + 1 < len(args) and args[i + 1].value is None:
                    return Verdict(U, f"{prog} -c with a command produced by an expansion")
                break
            if "i" in v[1:]:
                return Verdict(U, f"{prog} -i starts an interactive shell")
            i += 1
            continue
        if v.startswith("--"):
            i += 1
            continue
        return Verdict(U, f"{prog} runs the script {v}")
    if has_command:
        if command is None:
            return Verdict(U, f"{prog} -c without a command")
        nested = run.shell(command)
        return Verdict(nested.risk, f"{prog} -c: {nested.reason}", nested.tags, nested.paths, nested.nested)
    return judge_piped_code(stdin, prog, run)


def judge_eval(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    values = lit(args)
    if values is None:
        return Verdict(U, f"{prog} of text produced by an expansion")
    nested = run.shell(" ".join(values))
    return Verdict(nested.risk, f"eval: {nested.reason}", nested.tags, nested.paths, nested.nested)


_INTERPRETER_FLAG = {
    "python": ("-c", "python"),
    "node": ("-e", "node"),
    "perl": ("-e", "perl"),
    "ruby": ("-e", "ruby"),
    "php": ("-r", "php"),
}


def judge_interpreter(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    flag, language = _INTERPRETER_FLAG[prog]
    in_place = False
    i = 0
    while i < len(args):
        v = args[i].value
        if v is None:
            return Verdict(U, f"{prog} argument produced by an expansion")
        if v in ("--version", "-V", "-v", "--help", "-h") and len(args) == 1:
            return Verdict(R, f"{prog} prints its version")
        if language == "python" and v == "-m":
            module = args[i + 1].value if i + 1 < len(args) else None
            return judge_python_module(module, args[i + 2 :], stdin, run)
        if v == flag or (v in ("--eval", "-E", "-p", "--print") and language in ("node", "perl")):
            code = args[i + 1].value if i + 1 < len(args) else None
            if code is None:
                return Verdict(U, f"{prog} {v} with code produced by an expansion")
            snippet = judge_code(language, code)
            risk = snippet.risk
            if in_place and risk is R:
                risk = W
            tags = frozenset({"interpreter"}) if risk in (D, U) else frozenset()
            return Verdict(risk, snippet.reason + (" (edits files in place)" if in_place else ""), tags)
        if v.startswith(flag) and len(v) > 2 and language != "perl":
            snippet = judge_code(language, v[2:])
            return Verdict(
                snippet.risk, snippet.reason, frozenset({"interpreter"}) if snippet.risk is D else frozenset()
            )
        if language == "perl" and v.startswith("-") and not v.startswith("--"):
            in_place = in_place or "i" in v[1:]
            if v.endswith("e"):
                code = args[i + 1].value if i + 1 < len(args) else None
                if code is None:
                    return Verdict(U, "perl -e with code produced by an expansion")
                snippet = judge_code("perl", code)
                risk = W if in_place and snippet.risk is R else snippet.risk
                return Verdict(risk, snippet.reason, frozenset({"interpreter"}) if risk is D else frozenset())
            i += 1
            continue
        if v.startswith("-") and v != "-":
            i += 1
            continue
        if v == "-":
            break
        return Verdict(U, f"{prog} runs the script {v}", frozenset({"interpreter"}))
    return judge_piped_code(stdin, prog, run, language)


def judge_python_module(module: str | None, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    if module in ("pip", "pip3"):
        return judge_packages("pip", args, stdin, run)
    if module in ("json.tool", "platform", "site", "this", "tabnanny", "py_compile", "pydoc", "timeit"):
        return Verdict(R, f"python -m {module}")
    if module in ("venv", "virtualenv", "ensurepip", "compileall", "zipfile", "tarfile"):
        return Verdict(W, f"python -m {module} writes files")
    return Verdict(U, f"python -m {module} runs a module we do not know", frozenset({"interpreter"}))


def judge_xargs(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    takes = "IdEnLPsaL"
    i = 0
    while i < len(args):
        v = args[i].value
        if v is None:
            return Verdict(U, "xargs option produced by an expansion")
        if v == "--":
            i += 1
            break
        if v.startswith("--"):
            name = v[2:].partition("=")[0]
            i += 2 if "=" not in v and name in ("arg-file", "delimiter", "max-args", "max-procs", "max-lines") else 1
            continue
        if v.startswith("-") and len(v) > 1:
            i += 2 if v[-1] in takes and len(v) == 2 else 1
            continue
        break
    inner = args[i:]
    if not inner:
        return Verdict(R, "xargs echoes its input")
    nested = run.argv([*inner, Word(None, "<input>")], TTY)
    return Verdict(
        nested.risk,
        f"xargs runs {inner[0].show} on its input: {nested.reason}",
        nested.tags,
        nested.paths,
        nested.nested,
    )


# --------------------------------------------------------------------------- databases

_SQL_DIALECT = {"psql": "postgres", "mysql": "mysql", "mariadb": "mysql", "sqlite3": "sqlite"}


def judge_sql_client(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    dialect = _SQL_DIALECT[prog]
    sql: list[str] = []
    if prog == "psql":
        opts = parse_opts(
            args,
            "cdfhpUvoLTP",
            name_set("command dbname file host port username set variable output log-file"),
        )
        if opts.flags & {"l", "list", "version", "V", "help"}:
            return Verdict(R, "psql lists databases")
        script = opts.values.get("f") or opts.values.get("file")
        if "f" in opts.values or "file" in opts.values:
            return Verdict(U, f"psql runs the script file {script}")
        sql = [v for k, v in opts.values.items() if k in ("c", "command") and v is not None]
        if any(w.value is None for w in args):
            for k in ("c", "command"):
                if k in opts.values and opts.values[k] is None:
                    return Verdict(U, "psql -c with SQL produced by an expansion")
        _collect_repeated(args, ("-c", "--command"), sql)
    elif prog in ("mysql", "mariadb"):
        opts = parse_opts(args, "ehuPDS", ["execute", "host", "user", "port", "database", "socket"])
        if opts.flags & {"version", "V", "help"}:
            return Verdict(R, f"{prog} prints its version")
        for k in ("e", "execute"):
            if k in opts.values:
                if opts.values[k] is None:
                    return Verdict(U, f"{prog} -e with SQL produced by an expansion")
                sql.append(opts.values[k] or "")
    else:
        opts = parse_opts(args, "", ["cmd", "separator", "nullvalue"])
        if opts.flags & {"version", "help"}:
            return Verdict(R, "sqlite3 prints its version")
        if any(w.value is None for w in opts.operands[1:]):
            return Verdict(U, "sqlite3 SQL produced by an expansion")
        sql = [w.value for w in opts.operands[1:] if w.value is not None]
        if opts.values.get("cmd"):
            sql.insert(0, opts.values["cmd"] or "")
    if sql:
        nested = run.delegate(Kind.sql, {"sql": "\n".join(sql)}, dialect)
        return Verdict(nested.risk, f"{prog} runs SQL: {nested.reason}", nested.tags, nested.paths, nested.nested)
    if stdin.text is not None:
        nested = run.delegate(Kind.sql, {"sql": stdin.text}, dialect)
        return Verdict(nested.risk, f"{prog} runs SQL from {stdin.origin}: {nested.reason}", nested.tags | stdin.tags)
    if stdin.origin == "tty":
        return Verdict(U, f"{prog} opens an interactive session")
    return Verdict(U, f"{prog} runs SQL from {stdin.source or stdin.origin}")


def _collect_repeated(args: list[Word], names: tuple[str, ...], into: list[str]) -> None:
    """psql accepts several -c; parse_opts keeps only the last one."""
    found: list[str] = []
    for i, w in enumerate(args[:-1]):
        if w.value in names and args[i + 1].value is not None:
            found.append(args[i + 1].value or "")
    for w in args:
        if w.value is not None and w.value.startswith("--command="):
            found.append(w.value.partition("=")[2])
        elif w.value is not None and w.value.startswith("-c") and len(w.value) > 2:
            found.append(w.value[2:])
    if len(found) > len(into):
        into[:] = found


_REDIS_READ = name_set(
    """
    GET MGET KEYS SCAN INFO PING TTL PTTL TYPE EXISTS HGET HGETALL HKEYS HVALS HLEN HEXISTS HMGET LRANGE
    LLEN LINDEX SMEMBERS SCARD SISMEMBER ZRANGE ZCARD ZSCORE ZRANK ZREVRANGE DBSIZE STRLEN GETRANGE ECHO
    TIME LASTSAVE ROLE MEMORY XLEN XRANGE XINFO SLOWLOG SSCAN HSCAN ZSCAN OBJECT PUBSUB COMMAND LOLWUT
    """
)
_REDIS_WRITE = name_set(
    """
    SET SETEX SETNX PSETEX MSET HSET HMSET HSETNX LPUSH RPUSH LINSERT LSET SADD ZADD INCR INCRBY DECR
    DECRBY INCRBYFLOAT APPEND EXPIRE PEXPIRE EXPIREAT PERSIST PUBLISH XADD GETSET SETRANGE HINCRBY
    ZINCRBY PFADD BGSAVE SAVE BGREWRITEAOF
    """
)
_REDIS_DESTRUCTIVE = name_set(
    """
    FLUSHALL FLUSHDB DEL UNLINK SHUTDOWN DEBUG RENAME RENAMENX HDEL SREM ZREM LREM LPOP RPOP SPOP LTRIM
    ZREMRANGEBYSCORE ZREMRANGEBYRANK GETDEL XDEL XTRIM MIGRATE MOVE SWAPDB SLAVEOF REPLICAOF FAILOVER
    RESTORE
    """
)


def judge_redis(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    takes_value = {"-h", "-p", "-a", "-n", "-u", "-s", "-r", "-i", "-d", "--user", "--pass", "--tls-cert"}
    i = 0
    while i < len(args):
        v = args[i].value
        if v is None:
            return Verdict(U, "redis-cli argument produced by an expansion")
        if v in ("--scan", "--bigkeys", "--memkeys", "--stat", "--latency", "--hotkeys", "--version"):
            return Verdict(R, f"redis-cli {v}")
        if v in takes_value:
            i += 2
            continue
        if v.startswith("-"):
            i += 1
            continue
        break
    if i >= len(args):
        if stdin.origin != "tty" and stdin.text is not None:
            lines = [ln.split() for ln in stdin.text.splitlines() if ln.strip()]
            verdicts = [_redis_command([Word(x, x) for x in ln]) for ln in lines]
            return worst(verdicts) if verdicts else Verdict(R, "redis-cli with empty input")
        return Verdict(U, "redis-cli opens an interactive session")
    return _redis_command(args[i:])


def _redis_command(words: list[Word]) -> Verdict:
    name = (words[0].value or "").upper()
    sub = (words[1].value or "").upper() if len(words) > 1 else ""
    if words[0].value is None:
        return Verdict(U, "redis command produced by an expansion")
    if name in ("FLUSHALL", "FLUSHDB"):
        return Verdict(D, f"redis {name} deletes every key", frozenset({"mass", "irreversible"}))
    if name == "CONFIG":
        return Verdict(R if sub == "GET" else D, f"redis CONFIG {sub}")
    if name in ("CLIENT", "CLUSTER", "SCRIPT", "FUNCTION", "ACL", "MODULE"):
        read = sub in name_set("LIST INFO GETNAME ID NODES SLOTS SHARDS EXISTS WHOAMI USERS CAT")
        return Verdict(R if read else D, f"redis {name} {sub}")
    if name in _REDIS_READ:
        return Verdict(R, f"redis {name} reads")
    if name in _REDIS_WRITE:
        return Verdict(W, f"redis {name} writes")
    if name in _REDIS_DESTRUCTIVE:
        return Verdict(D, f"redis {name} deletes or stops")
    return Verdict(U, f"redis {name} not understood")


def judge_pg_tools(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    if prog in ("dropdb", "dropuser"):
        return Verdict(D, f"{prog} drops a {'database' if prog == 'dropdb' else 'role'}", frozenset({"irreversible"}))
    if prog in ("createdb", "createuser"):
        return Verdict(W, f"{prog} creates a {'database' if prog == 'createdb' else 'role'}")
    if prog in ("pg_dump", "pg_dumpall", "mysqldump"):
        opts = parse_opts(args, "fdhpUnNtTrF" if prog != "mysqldump" else "hupPrS", ["file", "result-file"])
        out = opts.values.get("f") or opts.values.get("file") or opts.values.get("r") or opts.values.get("result-file")
        if out:
            return write_to(Word(out, out), f"{prog} writes a dump to")
        return Verdict(R, f"{prog} dumps to standard output")
    if prog == "pg_restore":
        opts = parse_opts(args, "dfhpUnNtTIjL", ["dbname", "file"])
        if opts.flags & {"c", "clean"}:
            return Verdict(D, "pg_restore --clean drops objects before restoring", frozenset({"replace"}))
        if opts.flags & {"l", "list"}:
            return Verdict(R, "pg_restore lists an archive")
        return Verdict(W, "pg_restore restores into a database")
    return Verdict(U, f"{prog} not understood")


# --------------------------------------------------------------------------- version control, infrastructure

_GIT_READ = name_set(
    """
    status log diff show blame grep ls-files ls-tree rev-parse describe shortlog cat-file ls-remote
    whatchanged help version rev-list show-ref show-branch name-rev count-objects fsck verify-commit
    verify-tag for-each-ref merge-base diff-tree diff-files diff-index check-ignore check-attr var
    range-diff cherry annotate
    """
)
_GIT_WRITE = name_set(
    """
    add commit merge rebase cherry-pick pull fetch init clone mv revert am apply notes bisect switch
    format-patch archive bundle submodule sparse-checkout maintenance
    """
)


#: git settings that name a program git runs: setting one makes `git` an arbitrary command.
_GIT_EXEC_SETTING = re.compile(
    r"(alias\.|core\.(pager|sshcommand|editor|fsmonitor|hookspath|gitproxy)|.*\.(command|cmd|helper|textconv"
    r"|program|tool)\b|diff\.external|sequence\.editor|credential|include\.path|includeif)"
)


def judge_git(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    i = 0
    while i < len(args):
        v = args[i].value
        if v is None:
            return Verdict(U, "git argument produced by an expansion")
        if v == "-c" and i + 1 < len(args):
            setting = (args[i + 1].value or "").lower()
            # Settings that name a program git will run turn `git` into an arbitrary command.
            if args[i + 1].value is None or _GIT_EXEC_SETTING.match(setting):
                return Verdict(U, f"git -c {setting} makes git run another program")
            i += 2
            continue
        if v in ("-C", "--git-dir", "--work-tree", "--namespace", "--exec-path"):
            i += 2
            continue
        if v.startswith("-"):
            i += 1
            continue
        break
    if i >= len(args):
        return Verdict(R, "git prints usage")
    sub = args[i].value or ""
    rest = args[i + 1 :]
    values = [w.value for w in rest]
    flags = {x for x in values if x is not None and x.startswith("-")}

    def has(*names: str) -> bool:
        return any(x in flags or any(f.startswith(x + "=") for f in flags) for x in names) or any(
            f[1:2] != "-" and f.startswith("-") and any(len(n) == 2 and n[1] in f[1:] for n in names) for f in flags
        )

    if sub == "push":
        if has("--force", "-f", "--force-with-lease", "--force-if-includes", "--mirror", "--prune") or any(
            v is not None and v.startswith("+") for v in values
        ):
            return Verdict(D, "git push --force rewrites remote history", frozenset({"irreversible", "replace"}))
        if has("--delete", "-d") or any(v is not None and v.startswith(":") and len(v) > 1 for v in values):
            return Verdict(D, "git push --delete deletes a remote branch", frozenset({"irreversible"}))
        return Verdict(W, "git push publishes commits")
    if sub == "reset":
        if has("--hard", "--merge", "--keep"):
            return Verdict(D, "git reset --hard discards changes", frozenset({"irreversible"}))
        return Verdict(W, "git reset moves the branch")
    if sub == "clean":
        if has("-n", "--dry-run"):
            return Verdict(R, "git clean --dry-run lists files")
        return Verdict(D, "git clean deletes untracked files", frozenset({"irreversible", "mass"}))
    if sub == "branch":
        if has("-D") or (has("-d", "--delete") and has("-f", "--force")):
            return Verdict(D, "git branch -D deletes a branch", frozenset({"irreversible"}))
        if has("-d", "--delete", "-m", "-M", "--move", "-c", "-C", "--set-upstream-to", "-u", "--unset-upstream"):
            return Verdict(W, "git branch changes branches")
        operands = [v for v in values if v is not None and not v.startswith("-")]
        listing = name_set("--list -l -a -r -v -vv --all --remotes --show-current --contains --merged")
        if operands and not (flags & listing):
            return Verdict(W, "git branch creates a branch")
        return Verdict(R, "git branch lists branches")
    if sub == "tag":
        if has("-d", "--delete"):
            return Verdict(D, "git tag -d deletes a tag")
        operands = [v for v in values if v is not None and not v.startswith("-")]
        return Verdict(W if operands and not has("-l", "--list") else R, "git tag")
    if sub in ("checkout", "restore"):
        if sub == "restore" and has("--staged", "-S") and not has("--worktree", "-W"):
            return Verdict(W, "git restore --staged unstages")
        if has("-f", "--force") or "--" in values or "." in values or sub == "restore":
            return Verdict(D, f"git {sub} discards working-tree changes", frozenset({"irreversible"}))
        return Verdict(W, f"git {sub} switches branches")
    if sub == "stash":
        action = values[0] if values else "push"
        if action in ("drop", "clear"):
            return Verdict(D, f"git stash {action} deletes stashed changes", frozenset({"irreversible"}))
        if action in ("list", "show"):
            return Verdict(R, f"git stash {action}")
        return Verdict(W, f"git stash {action}")
    if sub in ("filter-branch", "filter-repo", "replace"):
        return Verdict(D, f"git {sub} rewrites history", frozenset({"irreversible", "mass"}))
    if sub == "rm":
        if has("--cached"):
            return Verdict(W, "git rm --cached untracks files")
        return Verdict(D, "git rm deletes files", frozenset({"mass"}) if has("-r") else frozenset())
    if sub == "reflog":
        if values and values[0] in ("expire", "delete"):
            return Verdict(D, f"git reflog {values[0]} drops history", frozenset({"irreversible"}))
        return Verdict(R, "git reflog")
    if sub in ("gc", "prune"):
        return Verdict(D if has("--prune", "--aggressive") or sub == "prune" else W, f"git {sub}")
    if sub == "update-ref":
        return Verdict(D if has("-d") else W, "git update-ref")
    if sub == "worktree":
        action = values[0] if values else ""
        return Verdict(R if action == "list" else D if action in ("remove", "prune") else W, f"git worktree {action}")
    if sub == "remote":
        action = values[0] if values else ""
        if action in ("", "-v", "show", "get-url", "--verbose"):
            return Verdict(R, "git remote lists remotes")
        return Verdict(D if action in ("remove", "rm", "prune") else W, f"git remote {action}")
    if sub == "config":
        if has("--unset", "--unset-all", "--remove-section", "--rename-section", "--edit", "-e"):
            return Verdict(W, "git config changes a setting")
        if (
            has("--get", "--list", "-l", "--get-all", "--get-regexp", "--show-origin")
            or len([v for v in values if v is not None and not v.startswith("-")]) == 1
        ):
            return Verdict(R, "git config reads a setting")
        if any(v is None or _GIT_EXEC_SETTING.match(v.lower()) for v in values):
            return Verdict(U, "git config sets a program git will run")
        return Verdict(W, "git config changes a setting")
    if sub in _GIT_READ:
        return Verdict(R, f"git {sub} reads the repository")
    if sub in _GIT_WRITE:
        return Verdict(W, f"git {sub} changes the repository")
    return Verdict(U, f"git {sub} not understood (an alias or extension?)")


def judge_delegate(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    """kubectl and aws have their own classifiers; they take the command line as text."""
    kind = {"kubectl": Kind.kubectl, "oc": Kind.kubectl, "aws": Kind.aws}[prog]
    values = lit(args)
    if values is None:
        return Verdict(U, f"{prog} argument produced by an expansion")
    line = " ".join([prog if prog != "oc" else "kubectl", *(_quote(v) for v in values)])
    return run.delegate(kind, {"command": line})


def _quote(value: str) -> str:
    if value and re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", value):
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


def judge_terraform(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    values = lit(args)
    if values is None:
        return Verdict(U, f"{prog} argument produced by an expansion")
    words = [v for v in values if not v.startswith("-chdir")]
    sub = next((v for v in words if not v.startswith("-")), "")
    rest = words[words.index(sub) + 1 :] if sub else []
    flags = {v.partition("=")[0] for v in rest if v.startswith("-")}
    operands = [v for v in rest if not v.startswith("-")]
    if sub in ("plan", "show", "validate", "output", "version", "providers", "graph", "console") or (
        sub == "fmt" and flags & {"-check", "-diff"}
    ):
        if sub == "plan" and "-destroy" in flags:
            return Verdict(R, f"{prog} plan -destroy only plans")
        return Verdict(R, f"{prog} {sub} reads")
    if sub in ("init", "fmt", "get", "login", "logout"):
        return Verdict(W, f"{prog} {sub} writes local files")
    if sub == "workspace":
        action = operands[0] if operands else ""
        if action in ("list", "show", ""):
            return Verdict(R, f"{prog} workspace {action}")
        return Verdict(D if action == "delete" else W, f"{prog} workspace {action}")
    if sub == "state":
        action = operands[0] if operands else ""
        if action in ("list", "show", "pull"):
            return Verdict(R, f"{prog} state {action}")
        return Verdict(D, f"{prog} state {action} changes the state", frozenset({"irreversible"}))
    if sub == "destroy" or (sub == "apply" and "-destroy" in flags):
        return Verdict(D, f"{prog} destroy deletes every resource", frozenset({"mass", "irreversible"}))
    if sub == "apply":
        if operands and "-auto-approve" not in flags:
            return Verdict(D, f"{prog} apply of a saved plan changes infrastructure")
        return Verdict(D, f"{prog} apply changes infrastructure without a reviewed plan")
    if sub in ("import", "taint", "untaint", "force-unlock", "refresh", "push"):
        return Verdict(D, f"{prog} {sub} changes the state")
    return Verdict(U, f"{prog} {sub} not understood")


def judge_helm(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    sub, rest = first_operand(args, "nf", ["namespace", "kube-context", "kubeconfig", "values", "set", "version"])
    if sub is None:
        return Verdict(U, "helm subcommand produced by an expansion")
    if sub in name_set("list ls status get history show inspect search template lint version env verify help diff"):
        return Verdict(R, f"helm {sub} reads")
    if sub == "repo":
        action = rest[0].value if rest else ""
        return Verdict(R if action == "list" else D if action == "remove" else W, f"helm repo {action}")
    if sub in name_set("install upgrade package pull fetch dependency dep plugin push create"):
        if sub == "upgrade" and any(w.value == "--force" for w in rest):
            return Verdict(D, "helm upgrade --force replaces resources", frozenset({"replace"}))
        return Verdict(W, f"helm {sub} changes releases or files")
    if sub in ("uninstall", "delete", "del", "un", "rollback"):
        return Verdict(D, f"helm {sub} removes or reverts a release")
    return Verdict(U, f"helm {sub} not understood")


_CLOUD_DESTRUCTIVE = re.compile(
    r"^(delete|remove|reset|stop|destroy|purge|terminate|disable|detach|abandon|revoke|undelete|deprovision|suspend|restart|rm)(-|$)"
)
_CLOUD_READ = re.compile(
    r"^(list|describe|show|get|get-iam-policy|read|info|version|help|print-.*|browse|tail|logs|check-.*|exists|show-.*|list-.*|wait|search|export)$"
)
_CLOUD_WRITE = re.compile(
    r"^(create|update|add|set|start|deploy|enable|import|patch|attach|resize|scale|submit|tag|upload|copy|cp|mv|run|execute|login|apply|config|configure|invoke|publish|rollout|move|rename|sync|install|upgrade)(-|$)"
)


def judge_cloud(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    values = lit(args)
    if values is None:
        return Verdict(U, f"{prog} argument produced by an expansion")
    words = [v for v in values if not v.startswith("-")]
    # The verb is the first word that looks like one; resource groups come before it.
    for word in words:
        if _CLOUD_DESTRUCTIVE.match(word):
            return Verdict(D, f"{prog} {' '.join(words[: words.index(word) + 1])}")
        if _CLOUD_READ.match(word):
            return Verdict(R, f"{prog} {' '.join(words[: words.index(word) + 1])}")
        if _CLOUD_WRITE.match(word):
            if (prog == "gcloud" and word == "config") or word == "configure":
                continue
            return Verdict(W, f"{prog} {' '.join(words[: words.index(word) + 1])}")
    if any(f in ("--version", "--help", "-h") for f in values):
        return Verdict(R, f"{prog} help")
    return Verdict(U, f"{prog} {' '.join(words[:3])} not understood")


# --------------------------------------------------------------------------- system


def judge_docker(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    sub, rest = first_operand(args, "Hc", ["host", "context", "config", "log-level"])
    if sub is None:
        return Verdict(U, f"{prog} subcommand produced by an expansion")
    values = [w.value or "" for w in rest]
    if sub in name_set(
        """
        compose container image volume network system builder buildx context node service stack secret
        config
        """
    ):
        obj = sub
        sub2, rest2 = first_operand(rest, "fp", ["file", "project-name", "profile", "env-file"])
        if sub2 is None:
            return Verdict(U, f"{prog} {obj} subcommand produced by an expansion")
        if obj == "compose":
            if sub2 in ("ps", "logs", "config", "images", "ls", "top", "version", "port", "events", "ls"):
                return Verdict(R, f"{prog} compose {sub2}")
            if sub2 in ("down", "rm", "kill", "stop", "restart", "pause"):
                tags = (
                    frozenset({"mass"}) if any(w.value in ("-v", "--volumes", "--rmi") for w in rest2) else frozenset()
                )
                return Verdict(D, f"{prog} compose {sub2} stops or removes services", tags)
            if sub2 in ("up", "build", "pull", "push", "create", "start", "run", "exec", "cp", "unpause"):
                if sub2 in ("run", "exec"):
                    return Verdict(U, f"{prog} compose {sub2} runs a command inside a container")
                return Verdict(W, f"{prog} compose {sub2}")
            return Verdict(U, f"{prog} compose {sub2} not understood")
        if sub2 in name_set("ls list inspect df info history events logs top stats port diff ps"):
            return Verdict(R, f"{prog} {obj} {sub2}")
        if sub2 in ("rm", "remove", "prune", "kill", "stop", "restart", "leave"):
            tags = frozenset({"mass"}) if sub2 == "prune" else frozenset()
            return Verdict(
                D,
                f"{prog} {obj} {sub2} removes or stops",
                tags | {"irreversible"} if obj == "volume" else tags,
            )
        if sub2 in name_set("create build pull push tag load import save connect disconnect start update use rename"):
            return Verdict(W, f"{prog} {obj} {sub2}")
        if sub2 in ("run", "exec"):
            return Verdict(U, f"{prog} {obj} {sub2} runs a command inside a container")
        return Verdict(U, f"{prog} {obj} {sub2} not understood")
    if sub in (
        "ps",
        "images",
        "logs",
        "inspect",
        "version",
        "info",
        "stats",
        "top",
        "port",
        "diff",
        "history",
        "events",
        "search",
        "help",
        "",
    ):
        return Verdict(R, f"{prog} {sub} reads")
    if sub in ("rm", "rmi", "kill", "stop", "restart", "pause"):
        return Verdict(
            D,
            f"{prog} {sub} removes or stops containers",
            frozenset({"mass"}) if "-a" in values or "--all" in values else frozenset(),
        )
    if sub == "run":
        if any(v == "--privileged" or v.startswith("--pid=host") or re.match(r"^/:", v) for v in values) or any(
            v in ("-v", "--volume") and i + 1 < len(values) and values[i + 1].startswith("/:")
            for i, v in enumerate(values)
        ):
            return Verdict(D, f"{prog} run with host privileges", frozenset({"privilege"}))
        return Verdict(W, f"{prog} run starts a container")
    if sub in name_set(
        "build pull push tag create start login logout load import commit cp save unpause rename update"
    ):
        return Verdict(W, f"{prog} {sub}")
    if sub == "exec":
        return judge_container_exec(prog, rest, run)
    return Verdict(U, f"{prog} {sub} not understood")


def judge_container_exec(prog: str, args: list[Word], run: Runner) -> Verdict:
    """`docker exec [options] CONTAINER CMD…`: the command is judged as if it ran here."""
    takes = name_set("-u --user -w --workdir -e --env --env-file --detach-keys")
    i = 0
    while i < len(args) and (args[i].value or "").startswith("-"):
        i += 2 if args[i].value in takes else 1
    if i >= len(args) or args[i].value is None:
        return Verdict(U, f"{prog} exec: container not understood")
    inner = args[i + 1 :]
    if not inner:
        return Verdict(U, f"{prog} exec without a command")
    nested = run.argv(inner, TTY)
    return Verdict(nested.risk, f"{prog} exec {args[i].show}: {nested.reason}", nested.tags, nested.paths)


_SYSTEMCTL_READ = name_set(
    """
    status show cat list-units list-unit-files list-timers list-sockets list-dependencies list-jobs
    list-machines is-active is-enabled is-failed is-system-running get-default help show-environment
    """
)
_SYSTEMCTL_WRITE = name_set(
    """
    start enable reload daemon-reload daemon-reexec reenable preset link set-property edit revert unmask
    """
)


def judge_systemctl(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    sub, rest = first_operand(
        args, "HMpPtno", ["host", "machine", "property", "type", "state", "signal", "lines", "output"]
    )
    if sub is None:
        return Verdict(U, "systemctl subcommand produced by an expansion")
    if sub in _SYSTEMCTL_READ or sub == "":
        return Verdict(R, f"systemctl {sub or 'list-units'} reads")
    if sub in _SYSTEMCTL_WRITE:
        return Verdict(W, f"systemctl {sub} {' '.join(w.show for w in rest)}".rstrip())
    if sub in name_set(
        """
        stop restart try-restart reload-or-restart disable mask kill isolate reset-failed clean freeze
        default rescue emergency
        """
    ):
        return Verdict(D, f"systemctl {sub} {' '.join(w.show for w in rest)} interrupts a service".replace("  ", " "))
    if sub in ("poweroff", "reboot", "halt", "kexec", "suspend", "hibernate", "hybrid-sleep", "soft-reboot"):
        return Verdict(D, f"systemctl {sub} takes the host down", frozenset({"mass"}))
    return Verdict(U, f"systemctl {sub} not understood")


def judge_service(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    values = lit(args)
    if values is None:
        return Verdict(U, "service argument produced by an expansion")
    if not values or values[0] in ("--status-all", "--help", "--version"):
        return Verdict(R, "service lists services")
    action = values[1] if len(values) > 1 else ""
    if action in ("status", ""):
        return Verdict(R, f"service {values[0]} status")
    if action in ("start", "reload", "force-reload"):
        return Verdict(W, f"service {values[0]} {action}")
    if action in ("stop", "restart", "try-restart", "condrestart"):
        return Verdict(D, f"service {values[0]} {action} interrupts a service")
    return Verdict(U, f"service {values[0]} {action} not understood")


def judge_kill(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    values = [w.value for w in args]
    if prog == "kill" and (not values or values[0] in ("-l", "-L", "--list") or "-0" in values or "-s0" in values):
        return Verdict(R, "kill lists signals or checks a process exists")
    if prog in ("pgrep", "pidof"):
        return Verdict(R, f"{prog} finds processes")
    mass = prog in ("killall", "killall5") or "-1" in values or any(v in ("-u", "--user") for v in values)
    return Verdict(D, f"{prog} stops processes", frozenset({"mass"}) if mass else frozenset())


def judge_power(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    values = [w.value for w in args]
    if prog == "shutdown" and "-c" in values:
        return Verdict(W, "shutdown -c cancels a shutdown")
    if prog in ("init", "telinit") and values and values[0] not in ("0", "6", "1", "s", "S"):
        return Verdict(W, f"{prog} {values[0]} changes the runlevel")
    return Verdict(D, f"{prog} takes the host down", frozenset({"mass"}))


def judge_crontab(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    opts = parse_opts(args, "u")
    if "r" in opts.flags:
        return Verdict(D, "crontab -r deletes the crontab", frozenset({"irreversible"}))
    if "l" in opts.flags:
        return Verdict(R, "crontab -l lists jobs")
    if "e" in opts.flags:
        return Verdict(U, "crontab -e edits interactively")
    return Verdict(D, "crontab FILE replaces the whole crontab", frozenset({"replace"}))


def judge_firewall(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    values = [w.value or "" for w in args]
    if prog in ("iptables", "ip6tables", "iptables-legacy", "iptables-nft"):
        flags = set(values)
        if flags & {"-F", "--flush", "-X", "--delete-chain", "-Z", "--zero"}:
            return Verdict(D, f"{prog} flushes rules", frozenset({"mass"}))
        if flags & {"-D", "--delete"}:
            return Verdict(D, f"{prog} deletes a rule")
        if flags & {"-P", "--policy"}:
            return Verdict(D, f"{prog} changes a chain policy")
        if flags & {"-A", "--append", "-I", "--insert", "-N", "--new-chain", "-R", "--replace", "-E"}:
            return Verdict(W, f"{prog} adds a rule")
        if flags & {"-L", "--list", "-S", "--list-rules", "-C", "--check", "-h", "--help", "--version"}:
            return Verdict(R, f"{prog} lists rules")
        return Verdict(U, f"{prog} {' '.join(values)} not understood")
    if prog in ("iptables-save", "ip6tables-save"):
        return Verdict(R, f"{prog} prints rules")
    if prog in ("iptables-restore", "ip6tables-restore"):
        return Verdict(D, f"{prog} replaces the rules", frozenset({"replace", "mass"}))
    if prog == "nft":
        words = [v for v in values if not v.startswith("-")]
        verb = words[0] if words else ""
        if verb in ("list", "describe", "monitor") or "-c" in values or "--check" in values:
            return Verdict(R, f"nft {verb}")
        if verb in ("flush", "delete", "destroy", "reset"):
            return Verdict(D, f"nft {verb}", frozenset({"mass"}) if verb == "flush" else frozenset())
        if verb in ("add", "insert", "create", "replace", "rename"):
            return Verdict(W, f"nft {verb}")
        if "-f" in values:
            return Verdict(U, "nft runs a rules file")
        return Verdict(U, f"nft {verb} not understood")
    words = [v for v in values if not v.startswith("-")]
    verb = words[0] if words else ""
    if verb in ("status", "show", "version", "app", "help"):
        return Verdict(R, f"ufw {verb}")
    if verb in ("disable", "reset", "delete", "deny", "reject"):
        return Verdict(D, f"ufw {verb}", frozenset({"mass"}) if verb in ("reset", "disable") else frozenset())
    if verb in ("allow", "limit", "enable", "reload", "insert", "route", "default", "logging"):
        return Verdict(W, f"ufw {verb}")
    return Verdict(U, f"ufw {verb} not understood")


def judge_users(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    if prog in ("userdel", "deluser", "groupdel", "delgroup"):
        opts = parse_opts(args)
        tags = {"irreversible"} | ({"mass"} if opts.flags & {"r", "remove", "remove-home"} else set())
        return Verdict(D, f"{prog} deletes an account", frozenset(tags))
    if prog in ("passwd", "chpasswd", "usermod", "gpasswd", "visudo", "chage"):
        return Verdict(W, f"{prog} changes accounts or credentials", frozenset({"privilege"}))
    return Verdict(W, f"{prog} creates an account", frozenset({"privilege"}))


def judge_mount(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    if prog in ("umount", "swapoff"):
        return Verdict(D, f"{prog} detaches a filesystem")
    if not args or (
        all(w.value in ("-l", "-t", "--list") or (w.value or "").startswith("-t") for w in args)
        and len(args) <= 2
        and not any((w.value or "").startswith("/") for w in args)
    ):
        return Verdict(R, f"{prog} lists mounts")
    return Verdict(W, f"{prog} attaches a filesystem", frozenset({"privilege"}))


_PACKAGE_READ = name_set(
    """
    list show search info freeze check policy madison depends rdepends outdated view ls audit help
    version query files provides whatprovides history doctor config inspect download why
    """
)
_PACKAGE_DESTRUCTIVE = name_set(
    """
    remove purge uninstall autoremove erase prune unlink clean autoclean rm r un
    """
)


def judge_packages(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    values = lit(args)
    if values is None:
        return Verdict(U, f"{prog} argument produced by an expansion")
    if prog in ("dpkg", "rpm"):
        flags = {v for v in values if v.startswith("-")}
        if flags & name_set("-l -L -s -S --list --status --search -q -qa -ql -qi --get-selections --version"):
            return Verdict(R, f"{prog} queries packages")
        if flags & {"-r", "-P", "--remove", "--purge", "-e", "--erase"}:
            return Verdict(D, f"{prog} removes packages")
        return Verdict(W, f"{prog} installs packages", frozenset({"privilege"}))
    words = [v for v in values if not v.startswith("-")]
    if prog in ("npx", "pipx") and words[:1] != ["list"]:
        return Verdict(U, f"{prog} runs a downloaded package", frozenset({"network"}))
    verb = words[0] if words else ""
    if not verb:
        return Verdict(R if any(v in ("--version", "-v", "-V", "--help", "-h") for v in values) else U, f"{prog}")
    if verb in _PACKAGE_READ:
        return Verdict(R, f"{prog} {verb} reads")
    if verb in _PACKAGE_DESTRUCTIVE:
        return Verdict(D, f"{prog} {verb} removes packages")
    if verb in name_set(
        """
        install add i update upgrade full-upgrade dist-upgrade reinstall ci build wheel download
        makecache link publish sync lock init refresh
        """
    ):
        return Verdict(W, f"{prog} {verb} changes installed software", frozenset({"network"}))
    if verb in ("run", "exec", "x", "test", "start"):
        return Verdict(U, f"{prog} {verb} runs project scripts")
    return Verdict(U, f"{prog} {verb} not understood")


# --------------------------------------------------------------------------- network


def judge_curl(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    opts = parse_opts(
        args,
        "XdoHuAeEFTKbcrwmxyzYQt",
        name_set(
            """
            request data data-raw data-binary data-urlencode output header user form upload-file config
            cookie cookie-jar json url proxy write-out max-time connect-timeout retry output-dir cacert
            cert key form-string referer
            """
        ),
    )
    tags = {"network"}
    if "K" in opts.values or "config" in opts.values:
        return Verdict(U, "curl reads its options from a file", frozenset(tags))
    method = (opts.values.get("X") or opts.values.get("request") or "").upper()
    if ("X" in opts.values or "request" in opts.values) and not method:
        return Verdict(U, "curl method produced by an expansion", frozenset(tags))
    data_keys = name_set("d data data-raw data-binary data-urlencode F form json T upload-file form-string")
    sent = [opts.values[k] for k in data_keys if k in opts.values]
    if (
        any(v is not None and (v.startswith("@") or "=@" in v or "=<" in v) for v in sent)
        or "T" in opts.values
        or "upload-file" in opts.values
    ):
        tags.add("exfiltration")
    verdicts: list[Verdict] = []
    if method == "DELETE":
        verdicts.append(Verdict(D, "curl sends a DELETE request", frozenset(tags)))
    elif method in ("POST", "PUT", "PATCH") or sent:
        verdicts.append(Verdict(W, f"curl sends a {method or 'POST'} request", frozenset(tags)))
    elif method not in ("", "GET", "HEAD", "OPTIONS"):
        verdicts.append(Verdict(U, f"curl sends a {method} request", frozenset(tags)))
    out = opts.values.get("o") or opts.values.get("output")
    if "o" in opts.values or "output" in opts.values:
        verdicts.append(write_to(Word(out, out or "$?"), "curl saves to").with_tags(*tags))
    if opts.flags & {"O", "remote-name", "remote-name-all", "J"}:
        verdicts.append(Verdict(W, "curl saves the download in the current directory", frozenset(tags)))
    return worst(verdicts) if verdicts else Verdict(R, "curl fetches to standard output", frozenset(tags))


def judge_wget(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    opts = parse_opts(
        args,
        "OoPaAeTtUi",
        name_set(
            """
            output-document post-data post-file method directory-prefix body-data execute input-file
            header user-agent
            """
        ),
    )
    tags = frozenset({"network"})
    method = (opts.values.get("method") or "").upper()
    if method == "DELETE":
        return Verdict(D, "wget sends a DELETE request", tags)
    if opts.flags & {"post-data", "post-file", "body-data"} or method in ("POST", "PUT", "PATCH"):
        extra = {"exfiltration"} if "post-file" in opts.flags else set()
        return Verdict(W, "wget sends data", tags | extra)
    if opts.flags & {"spider"}:
        return Verdict(R, "wget checks a URL", tags)
    out = opts.values.get("O") or opts.values.get("output-document")
    if out == "-":
        return Verdict(R, "wget fetches to standard output", tags)
    if out is not None:
        return write_to(Word(out, out), "wget saves to").with_tags(*tags)
    if "O" in opts.values or "output-document" in opts.values:
        return Verdict(U, "wget output produced by an expansion", tags)
    return Verdict(W, "wget saves the download in the current directory", tags)


def judge_ssh(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    opts = parse_opts(args, "bcDEeFIiJLlmOopQRSWw")
    if prog in ("scp", "rsync", "sftp"):
        if prog == "rsync" and any(
            (w.value or "").startswith("--delete") or w.value == "--remove-source-files" for w in args
        ):
            return Verdict(D, "rsync --delete removes files at the destination", frozenset({"mass", "network"}))
        if prog == "sftp":
            return Verdict(U, "sftp runs an interactive session", frozenset({"network"}))
        dest = opts.operands[-1] if opts.operands else None
        if dest is not None and dest.value is not None and ":" not in dest.value:
            return write_to(dest, f"{prog} copies to").with_tags("network")
        return Verdict(W, f"{prog} copies files to {dest.show if dest else 'a host'}", frozenset({"network"}))
    if not opts.operands:
        return Verdict(U, "ssh without a host", frozenset({"network"}))
    remote = opts.operands[1:]
    if not remote:
        if stdin.text is not None:
            # The remote login shell runs the here-doc (or piped text) as commands.
            nested = run.shell(stdin.text)
            return Verdict(nested.risk, f"ssh {opts.operands[0].show}: {nested.reason}", nested.tags | {"network"})
        return Verdict(U, f"ssh opens an interactive session on {opts.operands[0].show}", frozenset({"network"}))
    values = lit(remote)
    if values is None:
        return Verdict(U, "ssh remote command produced by an expansion", frozenset({"network"}))
    nested = run.shell(" ".join(values))
    return Verdict(
        nested.risk,
        f"ssh {opts.operands[0].show}: {nested.reason}",
        nested.tags | {"network"},
        nested.paths,
        nested.nested,
    )


def judge_archive(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    values = [w.value or "" for w in args]
    if prog == "tar":
        first = values[0] if values else ""
        letters = set(first.lstrip("-")) if first and not first.startswith("--") else set()
        letters |= {c for v in values if v.startswith("-") and not v.startswith("--") for c in v[1:]}
        longs = {v for v in values if v.startswith("--")}
        if "t" in letters or "--list" in longs:
            return Verdict(R, "tar lists an archive")
        if "x" in letters or "--extract" in longs or "--get" in longs:
            if any(
                v in ("-C", "--directory") and i + 1 < len(values) and is_system_path(values[i + 1])
                for i, v in enumerate(values)
            ):
                return Verdict(D, "tar extracts over a system path")
            return Verdict(W, "tar extracts files")
        if "c" in letters or "r" in letters or "u" in letters or "--create" in longs:
            return Verdict(W, "tar writes an archive")
        return Verdict(U, "tar mode not understood")
    if prog in ("unzip",) and "-l" in values:
        return Verdict(R, "unzip lists an archive")
    if prog in ("zcat", "bzcat", "xzcat", "zless", "zgrep") or (
        prog in ("gzip", "gunzip", "xz", "bzip2", "zstd")
        and set(values) & {"-c", "-l", "--stdout", "-t", "--list", "--test"}
    ):
        return Verdict(R, f"{prog} prints")
    return Verdict(W, f"{prog} writes files")


def judge_xxd(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    opts = parse_opts(args, "cglosn", ["cols", "len", "seek", "name"])
    if len(opts.operands) >= 2:
        return write_to(opts.operands[1], f"{prog} writes to")
    return Verdict(R, f"{prog} prints a hex dump")


def judge_pager(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    """less/more `+cmd` and man `-P`/`--pager` run commands of the caller's choosing."""
    for word in args:
        value = word.value
        if value is None or value.startswith("+") or value in ("-P", "--pager", "-H", "--html"):
            return Verdict(U, f"{prog} {word.show} may run a command")
        if value.startswith(("--pager=", "--html=", "-P")):
            return Verdict(U, f"{prog} {word.show} may run a command")
    return Verdict(R, f"{prog} only reads")


def judge_logs(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    """journalctl and dmesg read logs, unless told to delete or clear them."""
    values = [w.value or "" for w in args]
    if prog == "journalctl":
        if any(v.startswith(("--vacuum", "--rotate", "--flush", "--relinquish-var", "--setup-keys")) for v in values):
            return Verdict(D, "journalctl deletes or rotates logs", frozenset({"irreversible"}))
        return Verdict(R, "journalctl reads logs")
    if any(v in ("-c", "-C", "--clear", "--read-clear", "-D", "-E", "--console-off", "--console-on") for v in values):
        return Verdict(W, "dmesg clears the kernel log or changes the console")
    return Verdict(R, "dmesg reads the kernel log")


_IP_READ = name_set("show list ls lst get help monitor")
_IP_WRITE = name_set("add append")
_IP_DESTRUCTIVE = name_set("del delete flush set change replace down")


def judge_ip(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    """`ip OBJECT [VERB …]`: showing is read; adding is write; deleting, flushing or setting
    (`ip link set eth0 down`) can cut the host off the network."""
    values = lit(args)
    if values is None:
        return Verdict(U, "ip argument produced by an expansion")
    words = [v for v in values if not v.startswith("-")]
    verb = words[1] if len(words) > 1 else ""
    if len(words) <= 1 or verb in _IP_READ:
        return Verdict(R, f"ip {' '.join(words[:2])} reads".replace("  ", " "))
    if verb in _IP_WRITE:
        return Verdict(W, f"ip {words[0]} {verb} changes the network", frozenset({"privilege"}))
    if verb in _IP_DESTRUCTIVE:
        return Verdict(D, f"ip {words[0]} {verb} changes or removes network settings")
    return Verdict(U, f"ip {' '.join(words[:2])} not understood")


def judge_date(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    values = [w.value for w in args]
    if prog == "date" and any(v is not None and (v.startswith("-s") or v.startswith("--set")) for v in values):
        return Verdict(W, "date sets the clock", frozenset({"privilege"}))
    if prog == "hostname" and any(v is not None and not v.startswith("-") for v in values):
        return Verdict(W, "hostname renames the host", frozenset({"privilege"}))
    return Verdict(R, f"{prog} prints")


def judge_builtin_text(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Verdict:
    """trap and watch and su take a command string and run it later or elsewhere."""
    if prog == "trap":
        values = [w.value for w in args]
        if not values or values[0] in ("-l", "-p") or values[0] in ("-", ""):
            return Verdict(R, "trap lists or resets handlers")
        if values[0] is None:
            return Verdict(U, "trap command produced by an expansion")
        nested = run.shell(values[0])
        return Verdict(nested.risk, f"trap: {nested.reason}", nested.tags, nested.paths, nested.nested)
    if prog == "alias":
        if any(w.value is None or "=" in (w.value or "") for w in args):
            return Verdict(U, "alias redefines a command")
        return Verdict(R, "alias lists aliases")
    if prog in ("source", "."):
        return Verdict(U, f"{prog} runs a script file")
    return Verdict(U, f"{prog} not understood")


# --------------------------------------------------------------------------- catalog

READ_ONLY = name_set(
    """
    ls ll la dir vdir cat tac head tail grep egrep fgrep zgrep rg ag ack wc du df ps pstree
    top htop which whereis type echo printf pwd whoami id groups uname cut tr jq yq diff cmp comm md5sum
    sha1sum sha224sum sha256sum sha384sum sha512sum b2sum cksum sum shasum tree realpath readlink
    dirname basename test [ true false sleep ping ping6 dig nslookup host traceroute tracepath getent
    nproc free uptime w who last lastlog lsblk lscpu lsmem lsof lsusb lspci lsattr findmnt vmstat iostat
    mpstat stat file yes history nl fold fmt column expand unexpand paste join rev seq od hexdump
    strings base64 base32 printenv locale tput tty arch getconf info help whatis apropos jobs cd
    pushd popd dirs set shopt unset export declare typeset local readonly read shift wait exit return
    break continue : umask ulimit times getopts ss netstat numfmt factor expr bc cal ncal zdump tokei cloc
    """
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


Judge = Callable[[str, list[Word], Stdin, Runner], Verdict]

JUDGES: dict[str, Judge] = {}


def _add(judge: Judge, *names: str) -> None:
    for name in names:
        JUDGES[name] = judge


_add(judge_rm, "rm", "unlink")
_add(judge_rmdir, "rmdir")
_add(judge_shred, "shred", "srm", "wipe")
_add(
    judge_disk,
    *name_set(
        """
    mkfs mke2fs mkswap wipefs fdisk sfdisk parted sgdisk gdisk blkdiscard cryptsetup lvremove vgremove
    pvremove zpool zfs mdadm badblocks
    """
    ),
)
_add(judge_truncate, "truncate", "fallocate")
_add(judge_dd, "dd")
_add(judge_find, "find")
_add(judge_mv, "mv")
_add(judge_cp, "cp", "install")
_add(judge_ln, "ln")
_add(judge_touch, "touch", "mkdir", "mkfifo", "mknod")
_add(judge_tee, "tee")
_add(judge_chmod, "chmod", "chown", "chgrp", "chattr", "setfacl")
_add(judge_sed, "sed", "gsed")
_add(judge_awk, "awk", "gawk", "mawk", "nawk")
_add(judge_sort, "sort", "uniq")
_add(judge_shell, *_SHELLS)
_add(judge_eval, "eval")
_add(judge_interpreter, *_INTERPRETER_FLAG)
_add(judge_xargs, "xargs", "parallel")
_add(judge_sql_client, *_SQL_DIALECT)
_add(judge_redis, "redis-cli", "valkey-cli")
_add(
    judge_pg_tools,
    *name_set("dropdb dropuser createdb createuser pg_dump pg_dumpall mysqldump pg_restore"),
)
_add(judge_git, "git")
_add(judge_delegate, "kubectl", "oc", "aws")
_add(judge_terraform, "terraform", "tofu", "terragrunt")
_add(judge_helm, "helm")
_add(judge_cloud, "gcloud", "az", "gsutil", "doctl")
_add(judge_docker, "docker", "podman", "nerdctl")
_add(judge_systemctl, "systemctl")
_add(judge_service, "service")
_add(judge_kill, "kill", "pkill", "killall", "killall5", "pgrep", "pidof", "skill")
_add(judge_power, "shutdown", "reboot", "halt", "poweroff", "init", "telinit")
_add(judge_crontab, "crontab")
_add(
    judge_firewall,
    *name_set(
        """
    iptables ip6tables iptables-legacy iptables-nft iptables-save ip6tables-save iptables-restore
    ip6tables-restore nft ufw
    """
    ),
)
_add(
    judge_users,
    *name_set(
        """
    userdel deluser groupdel delgroup useradd adduser groupadd addgroup passwd chpasswd usermod gpasswd
    visudo chage
    """
    ),
)
_add(judge_mount, "mount", "umount", "swapon", "swapoff")
_add(
    judge_packages,
    *name_set(
        """
    apt apt-get yum dnf zypper apk pacman pip pip3 npm pnpm yarn gem cargo go brew snap dpkg rpm npx
    pipx uv conda poetry bundle
    """
    ),
)
_add(judge_curl, "curl")
_add(judge_wget, "wget")
_add(judge_ssh, "ssh", "scp", "rsync", "sftp")
_add(
    judge_archive,
    *name_set("tar zip unzip gzip gunzip xz unxz bzip2 bunzip2 zstd 7z zcat bzcat xzcat zless zgrep"),
)
_add(judge_date, "date", "hostname")
_add(judge_pager, "less", "more", "most", "man")
_add(judge_logs, "journalctl", "dmesg")
_add(judge_ip, "ip")
_add(judge_xxd, "xxd")
_add(judge_builtin_text, "trap", "alias", "source", ".")


# --------------------------------------------------------------------------- wrappers


@dataclass(frozen=True)
class Unwrapped:
    """A wrapper's inner command, and what the wrapper adds (e.g. `privilege` for sudo)."""

    words: list[Word]
    tags: frozenset[str] = frozenset()
    wrapper: str = ""


WrapperResult = Unwrapped | Verdict


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
            return Verdict(R, f"{prog} lists privileges", priv)
        if seen & {"e", "edit"}:
            return Verdict(W, f"{prog} -e edits a file as root", priv)
        return Verdict(U, f"{prog} opens a root shell", priv)
    if seen & {"e", "edit"}:
        return worst([write_to(w, f"{prog} -e edits") for w in args[i:]]).with_tags("privilege")
    return Unwrapped(args[i:], priv, prog)


def wrap_su(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> WrapperResult:
    priv = frozenset({"privilege"})
    for j, w in enumerate(args):
        if w.value in ("-c", "--command") and j + 1 < len(args):
            text = args[j + 1].value
            if text is None:
                return Verdict(U, f"{prog} -c with a command produced by an expansion", priv)
            nested = run.shell(text)
            return Verdict(nested.risk, f"{prog} -c: {nested.reason}", nested.tags | priv, nested.paths, nested.nested)
    if prog == "runuser":
        i, _ = _skip_options(args, "ugG", ["user", "group"])
        if i < len(args):
            return Unwrapped(args[i:], priv, prog)
    return Verdict(U, f"{prog} opens a shell as another user", priv)


def wrap_env(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> WrapperResult:
    i = 0
    while i < len(args):
        w = args[i]
        v = w.value
        if v is None:
            return Verdict(U, f"env argument produced by an expansion ({w.text})")
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
                return Verdict(U, "env -S with text produced by an expansion")
            nested = run.shell(" ".join([text, *rest]))
            return Verdict(nested.risk, f"env -S: {nested.reason}", nested.tags, nested.paths, nested.nested)
        if v == "--":
            i += 1
            break
        if v.startswith("-"):
            i += 1
            continue
        if "=" in v and not v.startswith("="):
            name = v.partition("=")[0]
            if name in HIJACK_VARIABLES:
                return Verdict(U, f"env sets {name}, which changes what programs run")
            i += 1
            continue
        break
    if i >= len(args):
        return Verdict(R, "env prints the environment")
    return Unwrapped(args[i:], frozenset(), prog)


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
        return Verdict(R, "command -v looks up a program")
    if prog in ("ionice", "taskset", "prlimit", "strace", "ltrace") and seen & {"p", "pid"} and i >= len(args):
        return Verdict(W if prog != "strace" else R, f"{prog} changes or watches a running process")
    if prog == "flock" and (seen & {"c", "command"}):
        for j, w in enumerate(args):
            if w.value in ("-c", "--command") and j + 1 < len(args):
                text = args[j + 1].value
                if text is None:
                    return Verdict(U, "flock -c with a command produced by an expansion")
                nested = run.shell(text)
                return Verdict(nested.risk, f"flock -c: {nested.reason}", nested.tags, nested.paths, nested.nested)
    i += skip
    tags = frozenset({"privilege"}) if prog in ("chroot", "sg") else frozenset()
    if prog == "strace" and "o" in seen:
        tags = tags  # strace -o writes a trace file; the inner command dominates
    if i >= len(args):
        if prog == "chroot":
            return Verdict(U, "chroot opens a shell in another root", tags)
        if prog in ("nice", "time", "command", "builtin", "exec", "nohup"):
            return Verdict(R, f"{prog} without a command")
        return Verdict(U, f"{prog} without a command")
    return Unwrapped(args[i:], tags, prog)


def wrap_watch(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> WrapperResult:
    i, seen = _skip_options(args, "nq", ["interval", "equexit"])
    rest = args[i:]
    if not rest:
        return Verdict(U, "watch without a command")
    if seen & {"x", "exec"}:
        return Unwrapped(rest, frozenset(), prog)
    values = lit(rest)
    if values is None:
        return Verdict(U, "watch command produced by an expansion")
    nested = run.shell(" ".join(values))
    return Verdict(nested.risk, f"watch: {nested.reason}", nested.tags, nested.paths, nested.nested)


def wrap_busybox(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> WrapperResult:
    if not args:
        return Verdict(R, "busybox lists applets")
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

#: Directories whose programs are the system's own: `/usr/bin/rm` is rm, `./rm` or `/tmp/rm` is not.
TRUSTED_DIRS = frozenset(
    name_set(
        """
        /bin /sbin /usr/bin /usr/sbin /usr/local/bin /usr/local/sbin /opt/homebrew/bin /snap/bin
        /usr/lib/postgresql/bin
        """
    )
)
_VERSIONED = re.compile(r"^(python|pip|ruby|php|perl|node|psql|pg_dump)[0-9.]*$")


_PATTERN_CHARS = re.compile(r"[*?\[{]")


def program_name(word: Word) -> tuple[str | None, str]:
    """The program a command word names, or None and why we cannot tell."""
    value = word.value
    if value is None:
        return None, f"the program name is produced by an expansion ({word.text})"
    if not value:
        return None, "empty program name"
    if value != "[" and _PATTERN_CHARS.search(value):
        return None, f"the program name is a pattern ({value})"
    if "/" in value:
        folder, _, base = value.rpartition("/")
        if (folder or "/") not in TRUSTED_DIRS and re.sub(r"/+", "/", folder) not in TRUSTED_DIRS:
            return None, f"runs {value}, a program outside the system directories"
        value = base
    if value == "nodejs":
        return "node", ""
    if value.startswith("mkfs") or value.startswith("mke2fs"):
        return "mkfs", ""
    match = _VERSIONED.match(value)
    if match:
        return match.group(1) if match.group(1) not in ("pip",) else "pip", ""
    return value, ""


def looks_obfuscated(word: Word) -> bool:
    """A program name spelled with quotes or escapes hides what runs from a plain reading."""
    text = word.text
    return "$'" in text or "'" in text or '"' in text or "\\" in text[1:]


def judge_argv(words: list[Word], stdin: Stdin, run: Runner) -> tuple[str, Verdict]:
    """(program, verdict) for one simple command's words."""
    tags: set[str] = set()
    for _ in range(32):
        if not words:
            return "", Verdict(R, "no command", frozenset(tags))
        name, why = program_name(words[0])
        if name is None:
            return words[0].text, Verdict(U, why, frozenset(tags))
        if looks_obfuscated(words[0]):
            tags.add("obfuscated")
        wrapper = WRAPPERS.get(name)
        if wrapper is None:
            break
        result = wrapper(name, words[1:], stdin, run)
        if isinstance(result, Verdict):
            return name, result.with_tags(*tags) if tags else result
        tags |= result.tags
        words = result.words
    else:
        return "", Verdict(U, "too many nested wrappers", frozenset(tags))
    judge = JUDGES.get(name)
    if judge is not None:
        verdict = judge(name, words[1:], stdin, run)
    elif name in READ_ONLY:
        verdict = Verdict(R, f"{name} only reads")
    elif run.is_function(name):
        verdict = Verdict(R, f"calls the function {name} (its body is judged on its own)")
    else:
        verdict = Verdict(U, f"{name} is not a program we know")
    return name, verdict.with_tags(*tags) if tags else verdict
