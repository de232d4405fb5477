"""Judging interpreter snippets: `python -c CODE`, `node -e CODE`, `perl -e`, `ruby -e`, `php -r`.

A snippet is `destructive` when it shows a way to delete, kill or run other programs, `read`
only when every name it uses is on a short list of harmless ones, and `unknown` otherwise:
we never guess that code we do not understand is safe. Python is read with `ast` (f-strings
hide calls inside string literals); the other languages with a tokenizer that drops string
literals, since none of them runs code from a plain string without one of the names we look for.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from interlock.model import Risk


@dataclass(frozen=True)
class SnippetVerdict:
    risk: Risk
    reason: str


#: Names (calls, methods, modules) whose presence means the snippet can destroy or run anything.
_DANGER_NAMES = frozenset(
    {
        # deleting
        "remove",
        "unlink",
        "rmdir",
        "removedirs",
        "rmtree",
        "rm",
        "rm_rf",
        "rm_r",
        "rmSync",
        "rmdirSync",
        "unlinkSync",
        "delete",
        "truncate",
        "truncateSync",
        "drop",
        # running other programs
        "system",
        "popen",
        "Popen",
        "subprocess",
        "call",
        "check_call",
        "check_output",
        "run",
        "spawn",
        "spawnSync",
        "exec",
        "execSync",
        "execFile",
        "execFileSync",
        "execv",
        "execve",
        "execvp",
        "execl",
        "execlp",
        "child_process",
        "shell_exec",
        "passthru",
        "proc_open",
        "pcntl_exec",
        "qx",
        "fork",
        "spawnv",
        "spawnl",
        "startfile",
        # running other code
        "eval",
        "compile",
        "__import__",
        "Function",
        "import_module",
        "load",
        "loads_unsafe",
        "pickle",
        "marshal",
        "ctypes",
        "vm",
        "create_function",
        "assert",
        # killing
        "kill",
        "killpg",
        "terminate",
        "abort",
    }
)

#: Names a read-only Python snippet may use (calls, attributes, modules).
_PY_SAFE = frozenset(
    {
        "print",
        "len",
        "str",
        "int",
        "float",
        "repr",
        "sorted",
        "sum",
        "min",
        "max",
        "abs",
        "range",
        "list",
        "dict",
        "set",
        "tuple",
        "enumerate",
        "zip",
        "format",
        "round",
        "bool",
        "any",
        "all",
        "reversed",
        "hex",
        "oct",
        "bin",
        "ord",
        "chr",
        "type",
        "isinstance",
        "map",
        "filter",
        "json",
        "dumps",
        "loads",
        "sys",
        "version",
        "version_info",
        "platform",
        "executable",
        "argv",
        "path",
        "stdin",
        "read",
        "readlines",
        "stdout",
        "math",
        "sqrt",
        "pi",
        "datetime",
        "date",
        "now",
        "today",
        "utcnow",
        "isoformat",
        "strftime",
        "time",
        "os",
        "getcwd",
        "getpid",
        "environ",
        "get",
        "getenv",
        "listdir",
        "exists",
        "isfile",
        "isdir",
        "join",
        "basename",
        "dirname",
        "abspath",
        "realpath",
        "getsize",
        "socket",
        "gethostname",
        "python_version",
        "system_info",
        "machine",
        "node",
        "release",
        "uname",
        "cpu_count",
        "hashlib",
        "sha256",
        "md5",
        "hexdigest",
        "encode",
        "decode",
        "upper",
        "lower",
        "strip",
        "split",
        "splitlines",
        "replace",
        "startswith",
        "endswith",
        "items",
        "keys",
        "values",
        "x",
        "i",
        "k",
        "v",
        "line",
        "data",
        "d",
        "s",
        "e",
        "sep",
        "end",
        "indent",
        "sort_keys",
        "ensure_ascii",
        "__version__",
        "re",
        "match",
        "search",
        "findall",
        "group",
        "open",
        "uuid",
        "uuid4",
        "base64",
        "b64decode",
        "b64encode",
        "string",
        "ascii_letters",
        "locale",
        "getpreferredencoding",
        "struct",
        "calcsize",
        "maxsize",
        "timezone",
        "utc",
    }
)

_PY_SAFE_NODES = (
    ast.Module,
    ast.Expr,
    ast.Call,
    ast.Name,
    ast.Attribute,
    ast.Constant,
    ast.JoinedStr,
    ast.FormattedValue,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.Set,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.BoolOp,
    ast.Subscript,
    ast.Slice,
    ast.Import,
    ast.ImportFrom,
    ast.alias,
    ast.keyword,
    ast.Load,
    ast.Store,
    ast.operator,
    ast.unaryop,
    ast.cmpop,
    ast.boolop,
    ast.ListComp,
    ast.GeneratorExp,
    ast.comprehension,
    ast.IfExp,
    ast.Starred,
)


def judge_python(code: str) -> SnippetVerdict:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return _judge_by_words(code, "python", frozenset())
    names: set[str] = set()
    understood = True
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.update(node.name.split("."))
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.update(node.module.split("."))
        elif isinstance(node, ast.Call) and _opens_for_writing(node):
            return SnippetVerdict(Risk.write, "python snippet opens a file for writing")
        if not isinstance(node, _PY_SAFE_NODES):
            understood = False
    danger = sorted(names & _DANGER_NAMES)
    if danger:
        return SnippetVerdict(Risk.destructive, f"python snippet uses {', '.join(danger)}")
    if understood and names <= _PY_SAFE:
        return SnippetVerdict(Risk.read, "python snippet only prints and reads")
    return SnippetVerdict(Risk.unknown, "python snippet not understood")


def _opens_for_writing(call: ast.Call) -> bool:
    func = call.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if name in {"write_text", "write_bytes", "write", "writelines", "mkdir", "touch", "rename", "chmod"}:
        return True
    if name != "open":
        return False
    modes = [a for a in call.args[1:2]] + [k.value for k in call.keywords if k.arg == "mode"]
    if not modes:
        return False
    mode = modes[0]
    return not (
        isinstance(mode, ast.Constant) and isinstance(mode.value, str) and set(mode.value) <= set("rbt")
    )


_PROGRAM_MODULES = frozenset({"child_process", "subprocess"})
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", re.S)
_SINGLE_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'", re.S)
#: `s/a/b/g`, `tr/a-z/A-Z/`: text substitution; the `e` flag (evaluate) is deliberately not allowed.
_PERL_SUBSTITUTION = re.compile(r"\s*(?:s|y|tr)([^\w\s])(?:(?!\1).)*\1(?:(?!\1).)*\1[gimsxr]*\s*;?\s*")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Backticks and `%x(...)` run shell commands in perl, ruby and php; `#{…}` and `${…}` run code in strings.
_HIDDEN_EXEC = re.compile(r"`|%x[({\[]|#\{|\$\{|\bqx\b|\bopen\s*\(?[^;]*['\"][|>]")

_SAFE_WORDS = {
    "node": frozenset(
        {
            "console",
            "log",
            "JSON",
            "stringify",
            "parse",
            "Math",
            "max",
            "min",
            "floor",
            "ceil",
            "round",
            "process",
            "version",
            "versions",
            "platform",
            "arch",
            "argv",
            "env",
            "cwd",
            "length",
            "toString",
            "Date",
            "now",
            "new",
            "toISOString",
            "let",
            "const",
            "var",
            "true",
            "false",
            "null",
            "x",
            "i",
        }
    ),
    "perl": frozenset(
        {
            "print",
            "say",
            "join",
            "map",
            "length",
            "scalar",
            "uc",
            "lc",
            "sprintf",
            "printf",
            "localtime",
            "time",
            "ENV",
            "ARGV",
            "n",
            "split",
            "my",
            "use",
            "strict",
            "warnings",
            "_",
            "x",
            "i",
            "q",
            "qw",
        }
    ),
    "ruby": frozenset(
        {
            "puts",
            "print",
            "p",
            "pp",
            "to_s",
            "to_i",
            "length",
            "size",
            "join",
            "map",
            "each",
            "require",
            "json",
            "JSON",
            "generate",
            "pretty_generate",
            "parse",
            "RUBY_VERSION",
            "Time",
            "now",
            "ENV",
            "ARGV",
            "x",
            "i",
            "do",
            "end",
        }
    ),
    "php": frozenset(
        {
            "echo",
            "print",
            "phpversion",
            "PHP_VERSION",
            "json_encode",
            "json_decode",
            "var_dump",
            "print_r",
            "date",
            "time",
            "strlen",
            "implode",
            "explode",
            "strtoupper",
            "strtolower",
            "PHP_EOL",
            "x",
            "i",
        }
    ),
}


def judge_code(language: str, code: str) -> SnippetVerdict:
    """Judge a snippet for `language` in {python, node, perl, ruby, php}."""
    if language == "python":
        return judge_python(code)
    return _judge_by_words(code, language, _SAFE_WORDS.get(language, frozenset()))


def _judge_by_words(code: str, language: str, safe: frozenset[str]) -> SnippetVerdict:
    # Perl, Ruby and PHP run code inside double-quoted strings ("@{[ … ]}", "#{…}", "{$…}"), and
    # Python only gets here when `ast` could not parse it: only JavaScript strings are plain data.
    strings = _STRING if language == "node" else _SINGLE_QUOTED if language in ("perl", "ruby", "php") else None
    bare = strings.sub(" ", code) if strings is not None else code
    words = set(_WORD.findall(bare))
    # A module that runs programs counts even inside a string: `require("child_process")`.
    danger = sorted((words & _DANGER_NAMES) | (set(_WORD.findall(code)) & _PROGRAM_MODULES))
    if danger:
        return SnippetVerdict(Risk.destructive, f"{language} snippet uses {', '.join(danger)}")
    if _HIDDEN_EXEC.search(code):
        return SnippetVerdict(Risk.destructive, f"{language} snippet runs a shell command or hidden code")
    if language == "perl" and _PERL_SUBSTITUTION.fullmatch(code):
        return SnippetVerdict(Risk.read, "perl snippet only substitutes text")
    if safe and words <= safe and "$" not in bare.replace("$_", ""):
        return SnippetVerdict(Risk.read, f"{language} snippet only prints")
    return SnippetVerdict(Risk.unknown, f"{language} snippet not understood")
