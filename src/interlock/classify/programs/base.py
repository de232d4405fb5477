"""What every program judge is made of: words, judgements, option parsing, and the judge registry.

A judge is one function per program family, registered with `@judge("rm", "unlink")` beside it.
Programs whose risk is decided by a verb alone describe it as data: a `Verbs(read=, write=,
destructive=)` table (sqlglot's dispatch tables are the model); escalations that need code
(`git push --force`, `rsync --delete`) stay code in the judge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from interlock.model import Kind, Risk

R, W, D, U = Risk.read, Risk.write, Risk.destructive, Risk.unknown


def name_set(text: str) -> frozenset[str]:
    """A set of names from whitespace-separated text: long name lists stay readable."""
    return frozenset(text.split())


class Word(NamedTuple):
    """One shell word: `value` after quote removal, or None when an expansion produces it.

    Words, stdins and judgements are named tuples: a classification makes dozens of them, and a
    tuple is built several times faster than a frozen dataclass."""

    value: str | None
    text: str

    @property
    def show(self) -> str:
        return self.value if self.value is not None else self.text


class Stdin(NamedTuple):
    """What a command reads on standard input, as far as we can tell."""

    origin: str = "tty"  # tty | heredoc | herestring | file | pipe
    text: str | None = None  # the content, when it is literal text we can judge
    tags: frozenset[str] = frozenset()  # what the producer says about it (network, obfuscated)
    source: str = ""  # the producer, for summaries: "curl https://x", "file.sql"


TTY = Stdin()


class Judgement(NamedTuple):
    """What one judge found one command would do (a shell text's whole is a `ShellJudgement`)."""

    risk: Risk
    reason: str
    tags: frozenset[str] = frozenset()
    paths: tuple[str, ...] = ()
    nested: tuple[dict[str, Any], ...] = ()

    def with_tags(self, *tags: str) -> Judgement:
        return Judgement(self.risk, self.reason, self.tags | frozenset(tags), self.paths, self.nested)


SECRETS = frozenset({"secrets"})


def discloses(reason: str, tags: frozenset[str] = frozenset()) -> Judgement:
    """A command that prints or hands over a credential or a secret's value: at least write + `secrets`,
    the registry's rule for every kind (docs/classifiers.md, "Secrets and credentials")."""
    return Judgement(W, f"{reason}: discloses a secret's value", SECRETS | tags)


class Runner(Protocol):
    """What judges may ask of the classifier: judge nested shell text, argvs and other kinds."""

    def shell(self, text: str, stdin: Stdin = TTY) -> Judgement: ...

    def argv(self, words: list[Word], stdin: Stdin) -> Judgement: ...

    def delegate(self, kind: Kind, payload: dict[str, Any], dialect: str | None = None) -> Judgement: ...

    def is_function(self, name: str) -> bool: ...


def worst(judgements: Iterable[Judgement], reason: str | None = None) -> Judgement:
    """The most dangerous judgement; tags and paths are the union of all of them."""
    items = list(judgements)
    if not items:
        return Judgement(R, reason or "nothing to run")
    if len(items) == 1 and reason is None:
        return items[0]
    top = max(items, key=lambda v: (v.risk.rank, v.risk is U))
    tags = frozenset().union(*(v.tags for v in items))
    paths = tuple(dict.fromkeys(p for v in items for p in v.paths))
    nested = tuple(n for v in items for n in v.nested)
    return Judgement(top.risk, reason or top.reason, tags, paths, nested)


def lit(words: list[Word]) -> list[str] | None:
    """All values, or None when any word comes from an expansion."""
    values = [w.value for w in words]
    return None if any(v is None for v in values) else [v for v in values if v is not None]


class Opts(NamedTuple):
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


def has_flag(args: list[Word], short: str = "", long: Iterable[str] = (), takes: str = "") -> bool:
    """True when one of `args` (before `--`) is the option: `-n`, a bundle holding it (`-avn`; a
    letter in `takes` takes a value and ends the bundle), `--dry-run` or `--dry-run=VALUE`."""
    longs = set(long)
    for word in args:
        v = word.value
        if v is None or not v.startswith("-") or v == "-":
            continue
        if v == "--":
            break
        if v.startswith("--"):
            if v[2:].partition("=")[0] in longs:
                return True
            continue
        for letter in v[1:]:
            if letter in short:
                return True
            if letter in takes:
                break
    return False


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


Judge = Callable[[str, list[Word], Stdin, Runner], Judgement]

#: program name → its judge; filled by `@judge` as the family modules are imported.
JUDGES: dict[str, Judge] = {}


def judge(*names: str) -> Callable[[Judge], Judge]:
    """Register the decorated function as the judge of `names` (each program has one judge)."""

    def register(func: Judge) -> Judge:
        for name in names:
            if name in JUDGES:
                raise ValueError(f"{name} already has a judge: {JUDGES[name].__name__}")
            JUDGES[name] = func
        return func

    return register


@dataclass(frozen=True)
class Verbs:
    """A program's verbs (subcommands) by the risk they carry; a verb in none of them is not understood."""

    read: frozenset[str] = frozenset()
    write: frozenset[str] = frozenset()
    destructive: frozenset[str] = frozenset()

    def risk(self, verb: str) -> Risk | None:
        if verb in self.read:
            return Risk.read
        if verb in self.write:
            return Risk.write
        if verb in self.destructive:
            return Risk.destructive
        return None
