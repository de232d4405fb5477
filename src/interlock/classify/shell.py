"""The shell classifier: what would running this command line do?

The line is parsed with tree-sitter-bash and every command in it is judged: pipelines, lists,
subshells, `$(…)`, backticks, `<(…)`, loops, functions, here-docs. Text handed to another shell
(`bash -c`, `eval`, `xargs`, `find -exec`, `ssh host CMD`, `watch`) is parsed in turn, up to
`MAX_DEPTH` levels. The overall risk is the highest risk of any command; tags are the union.

Each command's words are resolved the way bash would before running it (quotes removed,
`\\rm`, `"r"m`, `$'\\x72m'` all become `rm`); a word produced by an expansion (`$X`, `$(…)`) has
no value, and a program name without a value is `unknown`. Per-program judges live in
`programs/` (one module per family), interpreter snippets in `snippets.py`.

A line tree-sitter cannot parse is `unknown`, unless a command we did understand in it is
already `destructive` (the judgement can only get worse).
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from typing import Any

import tree_sitter
import tree_sitter_bash

from interlock.classify import budget
from interlock.classify.paths import line_may_name, spelled, stable_variables
from interlock.classify.programs import (
    LINE,
    TTY,
    WORKING_DIR,
    Judgement,
    LineFacts,
    Stdin,
    Word,
    change_dir,
    controls_changed,
    hijacks,
    in_scratch_word,
    judge_argv,
    names_secret,
    program_name,
    sets_controls,
    worst,
    write_to,
)
from interlock.classify.programs.wrappers import environment_shown
from interlock.classify.registry import (
    DEFAULT_CONTEXT,
    ClassifyContext,
    built_classification,
    classify,
    found_kinds,
    register,
)
from interlock.model import Classification, Kind, Risk

#: How many times text may be handed to another shell (`bash -c "eval '…'"`) before we give up.
MAX_DEPTH = 6
#: Longer input is not something an agent should send as one shell command; we do not judge it.
MAX_CHARS = 100_000
#: Commands judged per classification, nested ones included (bounds the work on hostile input).
MAX_COMMANDS = 2_000
#: CPU-time budget of one classification, nested shells included; past it the answer is unknown
#: (`budget.spent`: not the wall clock, so a busy machine does not change the answer).
MAX_SECONDS = 0.5
#: Inputs up to this many bytes parse in well under a millisecond whatever they hold.
_SHORT_INPUT = 2_048

_LANGUAGE = tree_sitter.Language(tree_sitter_bash.language())
_PARSERS = threading.local()


def parse(source: bytes, deadline: float = float("inf")) -> tree_sitter.Tree:
    """Parse with this thread's parser: a tree-sitter parser must not be shared between threads
    (the HTTP server classifies in a thread pool).

    tree-sitter-bash's error recovery is quadratic on some input (`a=(` repeated: 60 KB takes
    17 s), so a long input is parsed with a progress callback that gives up at `deadline`
    (`budget.spent()`), and the classification ends in `unknown`.
    """
    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = tree_sitter.Parser(_LANGUAGE)
    if len(source) <= _SHORT_INPUT:
        return parser.parse(source)
    try:
        return parser.parse(
            lambda offset, _point: source[offset : offset + 65_536],
            progress_callback=lambda *_: budget.spent() > deadline,
        )
    except ValueError as exc:  # the callback halted the parse
        parser.reset()
        raise TooMuch(f"parsing took longer than {MAX_SECONDS} s") from exc


Node = tree_sitter.Node

_DYNAMIC = frozenset(
    {
        "simple_expansion",
        "expansion",
        "command_substitution",
        "process_substitution",
        "arithmetic_expansion",
        "brace_expression",
    }
)
_SUBSTITUTIONS = frozenset({"command_substitution", "process_substitution"})
_REDIRECTS = frozenset({"file_redirect", "heredoc_redirect", "herestring_redirect"})
#: Statements whose standard input is the enclosing one (`echo x | (read a; rm $a)`).
_PASS_STDIN = frozenset({"subshell", "compound_statement", "list", "negated_command", "do_group"})


_NO_REDIRECT = Judgement(Risk.read, "no redirection")
#: Leaves whose text bash may still expand (a backtick in one means tree-sitter missed a substitution).
_TEXT_LEAVES = frozenset({"word", "string_content", "extglob_pattern", "regex", "special_character"})
_ESCAPED = re.compile(r"\\.", re.S)
_DOLLAR_PAREN = re.compile(r"\$\(")


_MASS = frozenset({"mass"})


def forks_itself(definition: Node, name: str) -> bool:
    """True when a function calls itself in a pipeline or in the background (`:(){ :|:& };:`):
    every call starts more copies than it ends, until the machine runs out of processes."""
    stack = [definition]
    while stack:
        node = stack.pop()
        if (node.type == "pipeline" or any(child.type == "&" for child in node.children)) and _calls(node, name):
            return True
        stack.extend(node.children)
    return False


def _calls(node: Node, name: str) -> bool:
    if node.type == "command":
        called = node.child_by_field_name("name")
        if called is not None and _text(called) == name:
            return True
    return any(_calls(child, name) for child in node.children)


#: Whether lines of plain words skip the parser (`simple_words`); tests turn it off to compare.
FAST_PATH = True
#: One command of plain words: no escapes, expansions, globs, redirections, operators, comments or
#: assignments, so bash runs the words as written and tree-sitter would parse exactly these words
#: (tests/test_shell_classifier.py compares the two on the corpus and on random lines). An argument
#: may be quoted whole: `'…'` without a quote inside, `"…"` without `$`, backtick, backslash or `!`.
_PLAIN_ARGUMENT = r"""(?:[A-Za-z0-9_./:,+-][A-Za-z0-9_./:,+=-]*|'[^'\n]*'|"[^"$`\\!\n]*")"""
_SIMPLE_LINE = re.compile(rf"[A-Za-z0-9_./][A-Za-z0-9_./-]*(?:[ ]+{_PLAIN_ARGUMENT})*")
_SIMPLE_WORD = re.compile(_PLAIN_ARGUMENT)
#: First words tree-sitter parses as something else than a command (keywords, declarations).
_RESERVED = frozenset(
    {
        *("if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until", "do", "done"),
        *("in", "function", "time", "coproc", "export", "declare", "typeset", "local", "readonly", "unset"),
    }
)


def simple_words(text: str) -> list[Word] | None:
    """The words of a line that is one command of plain words (`git status`, `grep 'a b' x`), else None."""
    if len(text) > 200 or not _SIMPLE_LINE.fullmatch(text):
        return None
    if "'" not in text and '"' not in text:
        parts = text.split(" ")
        return None if parts[0] in _RESERVED else [Word(part, part) for part in parts if part]
    tokens = _SIMPLE_WORD.findall(text, len(text.split(" ", 1)[0]))
    first = text.split(" ", 1)[0]
    if first in _RESERVED:
        return None
    words = [Word(first, first)]
    for token in tokens:
        quoted = token[:1] in ("'", '"')
        words.append(Word(token[1:-1] if quoted else token, token))
    return words


#: The same, then a comment (`git status  # why`): bash skips a word that starts with `#` and the rest of the
#: line, and tree-sitter parses it as a `comment` beside the command, which the walk skips. Only printable
#: ASCII in the comment: a carriage return or another line break would be read as the end of it by one and
#: not the other (tests/test_shell_classifier.py compares both ways, hostile comments included).
_COMMENTED_LINE = re.compile(rf"({_SIMPLE_LINE.pattern})[ ]+#[\x20-\x7e]*")


def plain_command(text: str) -> tuple[str, list[Word]] | None:
    """The command's own text and words of a line that is one command of plain words, with or without a
    comment after them (`ls -l  # why`), else None: what the walk would judge, without a parse."""
    # No line is both: a plain line holds no `#` outside quotes, and a comment starts with one. So the
    # commented form is tried first when there is a `#` (the unique mix's every line), sparing a match.
    if "#" in text and (commented := _COMMENTED_LINE.fullmatch(text)):
        command = commented.group(1)
        words = simple_words(command)
        return None if words is None else (command, words)
    words = simple_words(text)
    return None if words is None else (text, words)


class TooMuch(Exception):
    """The input asks for more work than we do for one classification."""


# --------------------------------------------------------------------------- words

_ANSI_C = re.compile(r"\\(x[0-9A-Fa-f]{1,2}|u[0-9A-Fa-f]{1,4}|U[0-9A-Fa-f]{1,8}|[0-7]{1,3}|c.|.)", re.S)
_ANSI_SIMPLE = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}


def decode_ansi_c(body: str) -> str:
    """The value of `$'…'` (bash ANSI-C quoting)."""

    def one(match: re.Match[str]) -> str:
        esc = match.group(1)
        if esc[0] in "xuU":
            return chr(min(int(esc[1:], 16), 0x10FFFF))
        if esc[0] in "01234567":
            return chr(int(esc, 8) & 0xFF)
        if esc[0] == "c" and len(esc) == 2:
            return chr(ord(esc[1]) & 0x1F)
        return _ANSI_SIMPLE.get(esc, "\\" + esc)

    return _ANSI_C.sub(one, body)


#: tree-sitter-bash 0.25 crashes the process (SIGSEGV) on `{` followed by some characters outside
#: the Basic Multilingual Plane (tree-sitter/tree-sitter-bash#337). No judge looks at such
#: characters, so they (and lone surrogates) are parsed as U+FFFD, an ordinary word character.
_PARSER_UNSAFE = re.compile("[\U00010000-\U0010ffff\ud800-\udfff]")


def parser_bytes(text: str) -> bytes:
    """The UTF-8 bytes tree-sitter parses: `text` with characters that crash it replaced."""
    if not text.isascii():
        text = _PARSER_UNSAFE.sub("\ufffd", text)
    return text.encode("utf-8")


def join_continuations(text: str) -> str:
    """Remove backslash-newline outside single quotes, as bash does before splitting words.

    tree-sitter treats `r\\<newline>m` as two words; bash runs `rm`.
    """
    if "\\\n" not in text:
        return text
    out: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "'" and not quoted and (i == 0 or text[i - 1] != "\\"):
            quoted = True
        elif ch == "'" and quoted:
            quoted = False
        elif ch == "\\" and not quoted and i + 1 < len(text):
            if text[i + 1] == "\n":
                i += 2
                continue
            out.append(text[i : i + 2])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


_BACKSLASH_ANY = re.compile(r"\\(.)", re.S)
_BACKSLASH_DOUBLE = re.compile(r"\\([$`\"\\])")


def _unescape_word(text: str) -> str:
    if "\\" not in text:
        return text
    return _BACKSLASH_ANY.sub(r"\1", text.replace("\\\n", ""))


def _unescape_double(text: str) -> str:
    if "\\" not in text:
        return text
    return _BACKSLASH_DOUBLE.sub(r"\1", text.replace("\\\n", ""))


#: The bytes of the tree being walked in this thread. `Node.text` of a tree parsed through a read
#: callback (long inputs, see `parse`) re-reads the whole input on every call.
_SOURCE = threading.local()


def _bytes(node: Node) -> bytes:
    source: bytes | None = getattr(_SOURCE, "bytes", None)
    if source is None:
        return node.text or b""
    return source[node.start_byte : node.end_byte]


def _text(node: Node) -> str:
    return _bytes(node).decode("utf-8", errors="replace")


def _is_dynamic(node: Node) -> bool:
    if node.type in _DYNAMIC:
        return True
    return any(_is_dynamic(child) for child in node.children)


_PLAIN_WORDS = frozenset({"word", "number", "variable_name", "extglob_pattern", "test_operator"})


def value_of(node: Node, text: str | None = None) -> str | None:
    """The word's value after quote removal, or None when an expansion produces (part of) it.
    `text` is the node's text when the caller already has it."""
    kind = node.type
    if kind in _PLAIN_WORDS:
        if node.child_count and _is_dynamic(node):
            return None
        return _unescape_word(text if text is not None else _text(node))
    if kind == "raw_string":
        return (text if text is not None else _text(node))[1:-1]
    if kind in ("string", "translated_string"):
        if _is_dynamic(node):
            return None
        text = text if text is not None else _text(node)
        return _unescape_double(text[2:-1] if kind == "translated_string" else text[1:-1])
    if kind == "ansi_c_string":
        return decode_ansi_c((text if text is not None else _text(node))[2:-1])
    if kind == "concatenation":
        parts = [value_of(child) for child in node.children]
        return None if any(p is None for p in parts) else "".join(p for p in parts if p is not None)
    if kind == "command_name":
        return value_of(node.children[0]) if node.child_count == 1 else None
    return None


def word_of(node: Node) -> Word:
    text = _text(node)
    value = value_of(node, text)
    if value is None:
        # `$HOME/.claude/settings.json` is `~/.claude/settings.json` to every judge (paths.spelled).
        value = spelled(text, LINE.get().stable)
    return Word(value, text)


# --------------------------------------------------------------------------- judging


@dataclass
class ShellJudgement:
    """The judgement of one whole shell text (every command in it), before it becomes a
    `Classification`; each command's own is a `programs.Judgement`."""

    risk: Risk
    tags: frozenset[str]
    summary: str
    commands: list[dict[str, Any]]
    paths: tuple[str, ...]
    parse_error: bool


def _one_line(text: str, limit: int = 120) -> str:
    if len(text) <= limit and "  " not in text and text.isprintable() and text.strip() == text:
        return text  # already one line: most commands
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class Judging:
    """One classification's walk over a parse tree; implements `programs.base.Runner`.

    A plain class with slots: one is made per classification (and per nested shell), and a
    dataclass with default factories costs more to build than a short command takes to judge."""

    __slots__ = ("anomalous", "budget", "commands", "context", "deadline", "depth", "functions", "judgements", "text")

    def __init__(
        self,
        context: ClassifyContext,
        depth: int = 0,
        functions: set[str] | None = None,
        budget: list[int] | None = None,
        deadline: float = float("inf"),
    ) -> None:
        self.context = context
        self.depth = depth
        self.functions: set[str] = set() if functions is None else functions
        self.budget: list[int] = [MAX_COMMANDS] if budget is None else budget
        self.commands: list[dict[str, Any]] = []
        self.judgements: list[Judgement] = []
        self.text = ""
        self.anomalous = False
        self.deadline = deadline

    # --- Runner

    def shell(self, text: str, stdin: Stdin = TTY) -> Judgement:
        if self.depth + 1 > MAX_DEPTH:
            return Judgement(Risk.unknown, f"commands nested more than {MAX_DEPTH} levels deep")
        inner = Judging(self.context, self.depth + 1, self.functions, self.budget, deadline=self.deadline)
        judged = inner.run(text, stdin)
        return Judgement(judged.risk, judged.summary, judged.tags, judged.paths, tuple(judged.commands))

    def argv(self, words: list[Word], stdin: Stdin) -> Judgement:
        self._spend()
        return judge_argv(words, stdin, self)[1]

    def delegate(self, kind: Kind, payload: dict[str, Any], dialect: str | None = None) -> Judgement:
        context = self.context if dialect is None else self.context.model_copy(update={"sql_dialect": dialect})
        result = classify(kind, payload, context)
        paths = result.details.get("paths", ())
        return Judgement(
            result.risk,
            result.summary,
            frozenset(result.tags),
            tuple(str(p) for p in paths) if isinstance(paths, list | tuple) else (),
        )

    def is_function(self, name: str) -> bool:
        return name in self.functions

    # --- the walk

    def run(self, text: str, stdin: Stdin = TTY) -> ShellJudgement:
        self.text = text
        plain = plain_command(text) if FAST_PATH else None
        if plain is not None:
            self.simple(*plain, stdin)
            return self.whole(False)
        joined = join_continuations(text)
        source = parser_bytes(joined)
        root = parse(source, self.deadline).root_node
        parse_error = root.has_error
        if joined != text:
            # Both readings must parse: we judge bash's, but never call "read" what tree-sitter rejects.
            parse_error = parse_error or parse(parser_bytes(text), self.deadline).root_node.has_error
        outer = getattr(_SOURCE, "bytes", None)
        _SOURCE.bytes = source
        try:
            self.walk(root, stdin)
        finally:
            _SOURCE.bytes = outer
        return self.whole(parse_error or self.anomalous)

    def simple(self, command: str, words: list[Word], stdin: Stdin) -> None:
        """A line that is one command of plain words (`command`, the line less any comment after it):
        judged as `command` judges it, without a parse."""
        program, judgement = judge_argv(words, stdin, self)
        if program in ("cd", "pushd"):
            operands = [w for w in words[1:] if w.value is None or not w.value.startswith("-") or w.value == "-"]
            change_dir(operands[0].value if operands else "~")
        self.record(command, program, judgement)

    def whole(self, parse_error: bool) -> ShellJudgement:
        overall = worst(self.judgements)
        risk = overall.risk
        summary = self._summary()
        if parse_error and risk is not Risk.destructive:
            risk = Risk.unknown
            summary = f"could not parse the command line: {_one_line(self.text, 100)}"
        return ShellJudgement(risk, overall.tags, summary, self.commands, overall.paths, parse_error)

    def _summary(self) -> str:
        if not self.commands:
            return "no command to run"
        if len(self.commands) == 1:
            top = self.commands[0]
        else:
            ranked = max(
                range(len(self.commands)),
                key=lambda i: (Risk(self.commands[i]["risk"]).rank, self.commands[i]["risk"] == "unknown", -i),
            )
            top = self.commands[ranked]
        line = _one_line(self.text)
        if len(line) <= 100 and "\n" not in self.text.strip():
            return f"{line} ({top['reason']})"
        more = len(self.commands) - 1
        suffix = f" + {more} more command{'s' if more != 1 else ''}" if more else ""
        return f"{_one_line(top['command'], 100)} ({top['reason']}){suffix}"

    def _spend(self) -> None:
        self.budget[0] -= 1
        if self.budget[0] < 0:
            raise TooMuch(f"more than {MAX_COMMANDS} commands")
        self.in_time()

    def in_time(self) -> None:
        if budget.spent() > self.deadline:
            raise TooMuch(f"took longer than {MAX_SECONDS} s")

    def record(self, display: str, program: str, judgement: Judgement) -> None:
        self._spend()
        entry: dict[str, Any] = {
            "command": _one_line(display),
            "program": program,
            "risk": judgement.risk.value,
            "tags": sorted(judgement.tags),
            "reason": judgement.reason,
        }
        if judgement.paths:
            entry["paths"] = list(judgement.paths)
        if judgement.nested:
            entry["nested"] = list(judgement.nested)
        self.commands.append(entry)
        self.judgements.append(judgement)

    def walk(self, node: Node, stdin: Stdin = TTY) -> None:
        kind = node.type
        if kind == "command":
            self.command(node, node, [], stdin)
        elif kind == "command_substitution" and self.backticks(node):
            return
        elif kind == "redirected_statement":
            self.redirected(node, stdin)
        elif kind == "pipeline":
            self.pipeline(node.named_children, stdin)
        elif kind == "function_definition":
            name = node.child_by_field_name("name")
            if name is not None:
                self.functions.add(_text(name))
                if forks_itself(node, _text(name)):
                    self.record(
                        _text(node),
                        _text(name),
                        Judgement(Risk.destructive, "a function that starts copies of itself (a fork bomb)", _MASS),
                    )
            for child in node.named_children:
                self.walk(child)
        elif kind == "variable_assignment":
            self.assignment(node)
        elif kind in ("declaration_command", "unset_command"):
            before = len(self.commands)
            for child in node.children:
                self.walk(child)
                if kind == "unset_command" and sets_controls(_text(child)):
                    self.record(_text(node), "unset", controls_changed(_text(child), "unsets"))
            if len(self.commands) == before:
                self.record(_text(node), _text(node.children[0]), declaration(node))
        elif kind == "comment" or kind == "heredoc_start" or kind == "heredoc_end":
            return
        elif not node.child_count:
            if kind in _TEXT_LEAVES:
                self.leaf(node)
        else:
            passed = stdin if kind in _PASS_STDIN or kind == "program" else TTY
            for child in node.children:
                self.walk(child, passed)

    def assignment(self, node: Node) -> None:
        name = node.child_by_field_name("name")
        variable = _text(name) if name is not None else ""
        if sets_controls(variable):
            self.record(_text(node), "", controls_changed(variable))
        if hijacks(variable):
            self.record(_text(node), "", Judgement(Risk.unknown, f"sets {variable}, which changes what programs run"))
        for child in node.children:
            self.walk(child)

    def pipeline(self, stages: list[Node], stdin: Stdin, first_feed: Node | None = None) -> None:
        previous = first_feed
        for stage in stages:
            if stage.type == "comment":
                continue
            feed = stdin if previous is None else feed_from(previous)
            self.walk(stage, feed)
            previous = stage

    def redirected(self, node: Node, stdin: Stdin) -> None:
        body = node.child_by_field_name("body")
        redirects: list[Node] = []
        later: list[Node] = []
        continuation: list[Node] = []
        extra_args: list[Node] = []
        for child in node.named_children:
            if child.type in _REDIRECTS and child is not body:
                redirects.append(child)
                if child.type == "file_redirect" and child.named_child_count > 1:
                    # tree-sitter hangs the words after `< in` on the redirection (`tee < in F`,
                    # `cat 2>/dev/null .env`); bash gives them to the command as arguments.
                    extra_args += child.children_by_field_name("destination")[1:]
                if child.type == "heredoc_redirect":
                    # tree-sitter hangs what follows `<<EOF` on the same line under the here-doc.
                    heredoc = heredoc_of(child)
                    extra_args += heredoc.args
                    self.anomalous = self.anomalous or heredoc.anomalous
                    for part in child.named_children:
                        if part.type == "file_redirect":
                            redirects.append(part)
                        elif part.type == "pipeline":
                            continuation.append(part)
                        elif part.type in _HEREDOC_FOLLOWERS:
                            later.append(part)
        if body is None:
            self.record(_text(node), "", truncation(self.redirect_judgement(redirects), redirects, []))
            return
        own_stdin = stdin_from(redirects, stdin)
        if body.type == "command":
            self.command(body, node, redirects, own_stdin, extra_args)
        else:
            if extra_args:
                self.anomalous = True
            self.walk(body, own_stdin)
            judgement = self.redirect_judgement(redirects)
            self.record(_text(node).split("\n", 1)[0], "", judgement)
        for part in continuation:
            self.pipeline(part.named_children, TTY, first_feed=node)
        for part in later:
            self.walk(part)

    def redirect_judgement(self, redirects: list[Node]) -> Judgement:
        if not redirects:
            return _NO_REDIRECT
        judgements = [Judgement(Risk.read, "redirects")]
        for redirect in redirects:
            for child in redirect.children:
                if child.type in _SUBSTITUTIONS or _is_dynamic(child):
                    self.walk(child)
            if redirect.type == "heredoc_redirect":
                self.heredoc_substitutions(redirect)
            if redirect.type != "file_redirect":
                continue
            judgements.append(file_redirect_judgement(redirect))
        return worst(judgements)

    def heredoc_substitutions(self, redirect: Node) -> None:
        """Commands bash runs while expanding a here-doc whose delimiter is not quoted."""
        heredoc = heredoc_of(redirect)
        if heredoc.quoted or ("$(" not in heredoc.body and "`" not in heredoc.body):
            return
        # Judge the body as the double-quoted string bash expands it like; tree-sitter-bash leaves
        # backticks in here-doc bodies unparsed.
        judgement = self.shell(f'echo "{_as_double_quoted(heredoc.body)}"')
        if judgement.risk is not Risk.read:
            expanded = Judgement(judgement.risk, f"here-doc expansion: {judgement.reason}", judgement.tags)
            self.record(heredoc.body, "", expanded)

    def command(
        self, node: Node, display: Node, redirects: list[Node], stdin: Stdin, extra_args: list[Node] | None = None
    ) -> None:
        words: list[Word] = []
        hijack: str | None = None
        inline: list[Node] = []
        for child in node.named_children:
            kind = child.type
            if kind == "variable_assignment":
                name = child.child_by_field_name("name")
                if name is not None and sets_controls(_text(name)):
                    self.record(_text(child), "", controls_changed(_text(name)))
                if name is not None and hijacks(_text(name)):
                    hijack = _text(name)
                for part in child.children:
                    self.walk(part)
            elif kind in _REDIRECTS:
                inline.append(child)
            elif kind == "comment":
                continue
            else:
                word = word_of(child)
                words.append(word)
                if len(words) % 512 == 0:  # one command of many thousand words: keep to the budget inside it
                    self.in_time()
                if child.child_count or "`" in word.text or "$(" in word.text:
                    self.scan(child)
        for extra in extra_args or ():
            words.append(word_of(extra))
            self.scan(extra)
        all_redirects = redirects + inline
        stdin = stdin_from(inline, stdin) if inline else stdin
        redirect = truncation(self.redirect_judgement(all_redirects), all_redirects, words)
        if hijack is not None:
            program, judgement = (
                (words[0].show if words else ""),
                Judgement(Risk.unknown, f"sets {hijack}, which changes what programs run"),
            )
        elif words:
            program, judgement = judge_argv(words, stdin, self)
            if program in ("cd", "pushd"):
                operands = [w for w in words[1:] if w.value is None or not w.value.startswith("-") or w.value == "-"]
                change_dir(operands[0].value if operands else "~")
        else:
            program, judgement = "", Judgement(Risk.read, "sets variables")
        if redirect is not _NO_REDIRECT:
            riskier = redirect.risk.rank > judgement.risk.rank or (
                redirect.risk is Risk.unknown and judgement.risk is not Risk.unknown
            )
            if riskier or redirect.tags or redirect.paths:
                # The riskier side names the risk and the reason; tags and paths add up.
                worse = redirect if riskier else judgement
                judgement = Judgement(worse.risk, worse.reason, judgement.tags | redirect.tags,
                                      judgement.paths + redirect.paths, judgement.nested)
        text = _text(display)
        if display.type == "redirected_statement" and "<<" in text:
            text = text.split("\n", 1)[0]
        self.record(text, program, judgement)

    def scan(self, node: Node) -> None:
        """Judge the commands a word runs when bash expands it."""
        if node.type in _SUBSTITUTIONS:
            self.walk(node)
        elif node.child_count:
            for child in node.children:
                self.scan(child)
        elif node.type in _TEXT_LEAVES:
            self.leaf(node)

    def leaf(self, node: Node) -> None:
        """tree-sitter-bash leaves some substitutions as plain text (backticks inside `${…}`);
        bash runs them. Judge what we can find and treat the line as unparsable."""
        text = _text(node)
        if "`" not in text and "$(" not in text:
            return
        bare = _ESCAPED.sub("", text)
        if "`" not in bare and "$(" not in bare:
            return
        self.anomalous = True
        for inner in backtick_commands(text):
            self.record(inner, "", self.shell(inner))
        for start in (m.end() for m in _DOLLAR_PAREN.finditer(bare)):
            inner = bare[start : bare.rfind(")")] if ")" in bare[start:] else bare[start:]
            self.record(inner, "", self.shell(inner))

    def backticks(self, node: Node) -> bool:
        """A backtick substitution with escapes inside: bash removes `\\`` `\\\\` `\\$` and parses
        the result again, which tree-sitter does not. Judge it the way bash runs it."""
        text = _text(node)
        if not (text.startswith("`") and text.endswith("`") and "\\" in text):
            return False
        inner = _BACKTICK_ESCAPE.sub(r"\1", text[1:-1])
        self.record(inner, "", self.shell(inner))
        return True


_BACKTICK_ESCAPE = re.compile(r"\\([\\`$])")


def backtick_commands(text: str) -> list[str]:
    """The commands in `…` spans of `text`, unescaped as bash does before running them."""
    found: list[str] = []
    current: list[str] | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            if current is not None:
                current.append(text[i : i + 2])
            i += 2
            continue
        if ch == "`":
            if current is None:
                current = []
            else:
                found.append(_BACKTICK_ESCAPE.sub(r"\1", "".join(current)))
                current = None
        elif current is not None:
            current.append(ch)
        i += 1
    if current is not None:
        found.append(_BACKTICK_ESCAPE.sub(r"\1", "".join(current)))
    return found


# --------------------------------------------------------------------------- redirections and feeds

#: Commands that print nothing: `: > F`, `true > F`, `cat /dev/null > F` only empty F.
_PRINTS_NOTHING = frozenset({(), (":",), ("true",), ("false",), ("cat", "/dev/null"), ("echo", "-n"), ("printf", "")})


def truncation(judgement: Judgement, redirects: list[Node], words: list[Word]) -> Judgement:
    """`> F` after a command that prints nothing empties F: as destructive as `truncate -s 0 F`."""
    if judgement.risk is not Risk.write or len(words) > 2 or tuple(w.value for w in words) not in _PRINTS_NOTHING:
        return judgement
    emptied: list[str] = []
    for redirect in redirects:
        if redirect.type != "file_redirect":
            continue
        operator = next((c.type for c in redirect.children if not c.is_named), "")
        target = next((c for c in redirect.named_children if c.type != "file_descriptor"), None)
        if operator in (">", ">|", "&>") and target is not None:
            word = word_of(target)
            if word.value is not None and not in_scratch_word(word):
                emptied.append(word.value)
    if not emptied:
        return judgement
    tags = judgement.tags | {"irreversible"}
    return Judgement(Risk.destructive, f"empties {', '.join(emptied)}", tags, judgement.paths, judgement.nested)


_DUP_TARGET = re.compile(r"^([0-9]+|-)$")


def file_redirect_judgement(redirect: Node) -> Judgement:
    operator = ""
    target: Node | None = None
    for child in redirect.children:
        if child.type == "file_descriptor":
            continue
        if not child.is_named:
            operator = child.type
        elif target is None:
            target = child
    if target is None:
        if operator in (">&-", "<&-"):
            return Judgement(Risk.read, "closes a file descriptor")
        return Judgement(Risk.unknown, f"redirection {operator} without a target")
    word = word_of(target)
    if operator in ("<", "<<-"):
        found = names_secret([word])
        if found is not None:
            return Judgement(Risk.write, f"reads {found}, a secret file", frozenset({"secrets"}))
        return Judgement(Risk.read, f"reads {word.show}")
    if operator in (">&", "<&", ">&-", "<&-") and word.value is not None and _DUP_TARGET.match(word.value):
        return Judgement(Risk.read, "duplicates a file descriptor")
    action = "appends to" if operator in (">>", "&>>") else "overwrites"
    return write_to(word, action)


@dataclass(frozen=True)
class HereDoc:
    """A here-doc as bash reads it (tree-sitter-bash mis-parses bodies that start with `\\`)."""

    body: str
    quoted: bool  # `<<'EOF'`: the body is data, no expansion
    args: list[Node]  # words after `<<EOF` on the same line are the command's arguments
    anomalous: bool  # tree-sitter put body text into the tree: treat the line as unparsable

    @property
    def content(self) -> str | None:
        """What the command reads: the body after bash's here-doc expansion, or None when an
        expansion (`$X`, `$(…)`, backticks) makes it something we cannot know."""
        if self.quoted:
            return self.body
        if _HEREDOC_EXPANSION.search(self.body):
            return None
        return _HEREDOC_UNESCAPE.sub(lambda m: "" if m.group(1) == "\n" else m.group(1), self.body)


#: An unescaped `$name`, `${`, `$(`, `$1`… or backtick in an unquoted here-doc body.
_HEREDOC_EXPANSION = re.compile(r"(?<!\\)(?:\\\\)*(?:\$[A-Za-z_{(0-9@*#?$!-]|`)")
_HEREDOC_UNESCAPE = re.compile(r"\\([\\$`\n])")


_HEREDOC_PARTS = frozenset({"heredoc_start", "heredoc_body", "heredoc_end"})
_HEREDOC_FOLLOWERS = frozenset({"file_redirect", "pipeline", "list", "command", "redirected_statement"})


_HEREDOC_ESCAPES = re.compile(r'\\.|"', re.S)


def _as_double_quoted(body: str) -> str:
    """A here-doc body rewritten to mean the same inside double quotes (where `"` must be escaped)."""

    def one(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == '"':
            return '\\"'
        if text == '\\"':  # a literal backslash and quote in a here-doc
            return '\\\\\\"'
        return text

    return _HEREDOC_ESCAPES.sub(one, body)


def heredoc_of(redirect: Node) -> HereDoc:
    raw = _bytes(redirect)
    base = redirect.start_byte
    start = next((c for c in redirect.named_children if c.type == "heredoc_start"), None)
    end = next((c for c in redirect.named_children if c.type == "heredoc_end"), None)
    head_end = (start.end_byte - base) if start is not None else 0
    line_end = raw.find(b"\n", head_end)
    body_end = (end.start_byte - base) if end is not None else len(raw)
    body = raw[line_end + 1 : body_end] if line_end >= 0 and body_end > line_end else b""
    text = body.decode("utf-8", errors="replace")
    if any(not c.is_named and c.type == "<<-" for c in redirect.children):
        text = re.sub(r"(?m)^\t+", "", text)
    quoted = start is not None and any(q in _text(start) for q in "'\"\\")
    args: list[Node] = []
    anomalous = False
    for part in redirect.named_children:
        if part.type in _HEREDOC_PARTS or part.type in _HEREDOC_FOLLOWERS:
            continue
        if line_end < 0 or part.start_byte - base < line_end:
            args.append(part)
        else:
            anomalous = True
    return HereDoc(text, quoted, args, anomalous)


def stdin_from(redirects: list[Node], default: Stdin) -> Stdin:
    """What a command reads: its here-doc, here-string or `<` file, else what it inherits."""
    result = default
    for redirect in redirects:
        if redirect.type == "heredoc_redirect":
            result = Stdin("heredoc", heredoc_of(redirect).content, source="here-doc")
        elif redirect.type == "herestring_redirect":
            target = next((c for c in redirect.named_children), None)
            value = value_of(target) if target is not None else None
            result = Stdin("herestring", value, source="here-string")
        elif redirect.type == "file_redirect":
            operator = next((c.type for c in redirect.children if not c.is_named), "")
            target = next((c for c in redirect.named_children if c.type != "file_descriptor"), None)
            has_fd = any(c.type == "file_descriptor" and _text(c) != "0" for c in redirect.children)
            if operator == "<" and not has_fd and target is not None:
                result = Stdin("file", None, source=_text(target))
    return result


_DECODERS = {
    "base64",
    "base32",
    "basenc",
    "xxd",
    "openssl",
    "gpg",
    "gunzip",
    "zcat",
    "xz",
    "unxz",
    "bzip2",
    "bunzip2",
    "zstd",
    "rev",
    "tr",
    "uudecode",
    "od",
    "perl",
    "python",
    "python3",
    "iconv",
}
_DOWNLOADERS = {
    "curl",
    "wget",
    "fetch",
    "nc",
    "ncat",
    "netcat",
    "socat",
    "aria2c",
    "http",
    "lynx",
    "ftp",
    "tftp",
}


def feed_from(node: Node) -> Stdin:
    """What a pipeline stage sends to the next one: known text, or who produced it."""
    statement = node
    inner = node
    if node.type == "redirected_statement":
        body = node.child_by_field_name("body")
        inner = body if body is not None else node
    source = _one_line(_text(inner).split("\n", 1)[0], 80)
    if inner.type != "command":
        return Stdin("pipe", None, source=source)
    words = [
        word_of(c)
        for c in inner.named_children
        if c.type not in _REDIRECTS and c.type not in ("variable_assignment", "comment")
    ]
    while words and words[0].value in (
        "sudo",
        "env",
        "nice",
        "nohup",
        "command",
        "stdbuf",
        "time",
        "exec",
        "doas",
    ):
        words = words[1:]
        while words and (words[0].value or "").startswith("-"):
            words = words[1:]
    if not words:
        return Stdin("pipe", None, source=source)
    name, _ = program_name(words[0])
    args = words[1:]
    if name in ("echo", "printf"):
        values = [w.value for w in args]
        if any(v is None for v in values):
            return Stdin("pipe", None, source=source)
        literal = [v for v in values if v is not None]
        if name == "echo":
            while literal and re.fullmatch(r"-[neE]+", literal[0]):
                literal = literal[1:]
            return Stdin("pipe", " ".join(literal), source=source)
        if len(literal) == 1:
            return Stdin("pipe", decode_ansi_c(literal[0].replace("%%", "%")), source=source)
        return Stdin("pipe", None, source=source)
    if name == "cat" and not args and statement.type == "redirected_statement":
        redirects = [c for c in statement.named_children if c.type in _REDIRECTS]
        fed = stdin_from(redirects, TTY)
        if fed.text is not None:
            return Stdin("pipe", fed.text, source=source)
    if name in _DOWNLOADERS:
        return Stdin("pipe", None, frozenset({"network"}), source)
    if name in _DECODERS:
        return Stdin("pipe", None, frozenset({"obfuscated"}), source)
    return Stdin("pipe", None, source=source)


# --------------------------------------------------------------------------- the classifier


def judge_text(command: str, context: ClassifyContext) -> ShellJudgement:
    """Judge a whole command line; never raises."""
    if len(command) > MAX_CHARS:
        return ShellJudgement(
            Risk.unknown,
            frozenset(),
            f"command longer than {MAX_CHARS} characters is not judged",
            [],
            (),
            False,
        )
    judging = Judging(context, deadline=budget.spent() + MAX_SECONDS)
    token = WORKING_DIR.set("")
    may_protect, may_secret = line_may_name(command, context.paths)
    stable = stable_variables(command) if "$" in command or "`" in command else frozenset()
    line = LINE.set(LineFacts(context.paths, may_protect, may_secret, set(), set(), stable))
    try:
        return judging.run(command)
    except TooMuch as exc:
        return ShellJudgement(Risk.unknown, frozenset(), f"too much to judge: {exc}", judging.commands[:50], (), False)
    except RecursionError:
        return ShellJudgement(Risk.unknown, frozenset(), "command nested too deeply to judge", [], (), False)
    except Exception as exc:  # a bug here must end in unknown, never in a crash or in "read"
        failed = f"shell classifier failed: {type(exc).__name__}"
        return ShellJudgement(Risk.unknown, frozenset(), failed, [], (), False)
    finally:
        WORKING_DIR.reset(token)
        LINE.reset(line)


def _classification(judged: ShellJudgement, command: str) -> Classification:
    details: dict[str, Any] = {"commands": judged.commands}
    if judged.paths:
        details["paths"] = list(judged.paths)
    if "mass" in judged.tags:
        details["blast_radius"] = "mass"
    if judged.parse_error:
        details["parse_error"] = True
    # `kinds` is taken here, inside the cached function, so a cache hit still knows what the line contains.
    return built_classification(
        judged.risk, tuple(sorted(judged.tags)), _one_line(judged.summary, 200), details, found_kinds(Kind.shell)
    )


_DEFAULT_CONTEXT = ClassifyContext()


# Classifications are cached per command text (the same agent retries the same line). Callers
# must not mutate `details`: the cached object is shared.
@functools.lru_cache(maxsize=4096)
def _classify_default(command: str) -> Classification:
    return _classification(judge_text(command, _DEFAULT_CONTEXT), command)


@register(Kind.shell)
def classify_shell(payload: dict[str, Any], context: ClassifyContext) -> Classification:
    """Payload `{"command": "<shell text>"}`; anything else is `unknown`."""
    command = payload.get("command") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or len(payload) != 1 or not isinstance(command, str):
        return Classification(
            risk=Risk.unknown,
            summary='shell payload must be exactly {"command": "<text>"}',
            details={"commands": []},
        )
    if (
        context is DEFAULT_CONTEXT
        or context is _DEFAULT_CONTEXT
        or (type(context) is ClassifyContext and context.__dict__ == _DEFAULT_CONTEXT.__dict__)
    ):
        return _classify_default(command)
    return _classification(judge_text(command, context), command)


def declaration(node: Node) -> Judgement:
    """`export`, `declare`, `typeset`, `readonly`, `local` with no variable print every variable with its
    value (`export -p`, `declare -x`): the session's tokens, like `env`. `declare -p NAME` prints NAME."""
    program = _text(node.children[0])
    names = [_text(c) for c in node.children[1:] if c.type == "variable_name"]
    flags = [_text(c) for c in node.children[1:] if c.type == "word" and _text(c).startswith(("-", "+"))]
    if not any(c.type in ("variable_name", "variable_assignment") for c in node.children[1:]):
        return environment_shown(program)
    if names and any("p" in flag for flag in flags if flag.startswith("-")):
        return environment_shown(program, names)
    return Judgement(Risk.read, "sets shell variables")
