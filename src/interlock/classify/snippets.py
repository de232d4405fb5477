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


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True)
class SnippetVerdict:
    risk: Risk
    reason: str


#: Names (calls, methods, modules) whose presence means the snippet can destroy or run anything.
_DANGER_NAMES = _names(
    """
    Function Popen __import__ abort assert call check_call check_output child_process compile
    create_function ctypes delete drop eval exec execFile execFileSync execSync execl execlp execv
    execve execvp fork import_module kill killpg loads_unsafe marshal passthru pcntl_exec pickle popen
    proc_open qx remove removedirs rm rmSync rm_r rm_rf rmdir rmdirSync rmtree run shell_exec spawn
    spawnSync spawnl spawnv startfile subprocess system terminate truncate truncateSync unlink
    unlinkSync vm
    """
)

#: Names a read-only Python snippet may use (calls, attributes, modules).
_PY_SAFE = _names(
    """
    __version__ abs abspath all any argv ascii_letters b64decode b64encode base64 basename bin bool
    calcsize chr cpu_count d data date datetime decode dict dirname dumps e encode end endswith
    ensure_ascii enumerate environ executable exists filter findall float format get getcwd getenv
    gethostname getpid getpreferredencoding getsize group hashlib hex hexdigest i indent int isdir
    isfile isinstance isoformat items join json k keys len line list listdir loads locale lower machine
    map match math max maxsize md5 min node now oct open ord os path pi platform print python_version
    range re read readlines realpath release replace repr reversed round s search sep set sha256 socket
    sort_keys sorted split splitlines sqrt startswith stdin stdout str strftime string strip struct sum
    sys system_info time timezone today tuple type uname upper utc utcnow uuid uuid4 v values version
    version_info x zip
    """
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
    writes = False
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
            writes = True
        if not isinstance(node, _PY_SAFE_NODES):
            understood = False
    danger = sorted(names & _DANGER_NAMES)
    if danger:
        return SnippetVerdict(Risk.destructive, f"python snippet uses {', '.join(danger)}")
    if writes:
        # Which file, and whether it matters, is not something we can see from here.
        return SnippetVerdict(Risk.unknown, "python snippet writes files")
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
    return not (isinstance(mode, ast.Constant) and isinstance(mode.value, str) and set(mode.value) <= set("rbt"))


_PROGRAM_MODULES = frozenset({"child_process", "subprocess"})
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", re.S)
_SINGLE_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'", re.S)
#: `s/a/b/g`, `tr/a-z/A-Z/`: text substitution; the `e` flag (evaluate) is deliberately not allowed.
_PERL_SUBSTITUTION = re.compile(r"\s*(?:s|y|tr)([^\w\s])(?:(?!\1).)*\1(?:(?!\1).)*\1[gimsxr]*\s*;?\s*")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Backticks and `%x(...)` run shell commands in perl, ruby and php; `#{…}` and `${…}` run code in strings.
_HIDDEN_EXEC = re.compile(r"`|%x[({\[]|#\{|\$\{|\bqx\b|\bopen\s*\(?[^;]*['\"][|>]")

_SAFE_WORDS = {
    "node": _names(
        """
        Date JSON Math arch argv ceil console const cwd env false floor i length let log max min new now
        null parse platform process round stringify toISOString toString true var version versions x
        """
    ),
    "perl": _names(
        """
        ARGV ENV _ i join lc length localtime map my n print printf q qw say scalar split sprintf strict
        time uc use warnings x
        """
    ),
    "ruby": _names(
        """
        ARGV ENV JSON RUBY_VERSION Time do each end generate i join json length map now p parse pp
        pretty_generate print puts require size to_i to_s x
        """
    ),
    "php": _names(
        """
        PHP_EOL PHP_VERSION date echo explode i implode json_decode json_encode phpversion print print_r
        strlen strtolower strtoupper time var_dump x
        """
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
