"""Judges of shells and interpreters: text or code handed to `bash -c`, `eval`, `python -c`, `xargs` …

The code is judged by the shell classifier in turn, or by `snippets.py` for other languages.
"""

from __future__ import annotations

import re

from interlock.classify.programs.base import (
    TTY,
    D,
    Judgement,
    R,
    Runner,
    Stdin,
    U,
    W,
    Word,
    has_flag,
    judge,
    lit,
    worst,
)
from interlock.classify.programs.system import judge_packages
from interlock.classify.programs.targets import mentions_protected, write_to
from interlock.classify.programs.wrappers import environment_shown
from interlock.classify.snippets import judge_code

_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "ash", "fish", "busybox-sh", "mksh", "tcsh", "csh"})


def judge_piped_code(stdin: Stdin, what: str, run: Runner, language: str | None = None) -> Judgement:
    """An interpreter reading its program from standard input."""
    if stdin.text is not None:
        if language is None:
            nested = run.shell(stdin.text)
        else:
            snippet = judge_code(language, stdin.text)
            nested = Judgement(
                snippet.risk, snippet.reason, frozenset({"interpreter"}) if snippet.risk is D else frozenset()
            )
            nested = code_on_paths(nested, stdin.text, [])
        tags = stdin.tags | nested.tags
        risk = nested.risk
        if "obfuscated" in stdin.tags and risk is not U:
            risk = D
        return Judgement(risk, f"{what} runs {stdin.origin} input: {nested.reason}", tags, nested.paths, nested.nested)
    if "network" in stdin.tags:
        return Judgement(D, f"{what} runs code downloaded by {stdin.source}", stdin.tags | {"interpreter"})
    if "obfuscated" in stdin.tags:
        return Judgement(D, f"{what} runs decoded code from {stdin.source}", stdin.tags | {"interpreter"})
    if stdin.origin == "tty":
        return Judgement(U, f"{what} reads commands interactively")
    return Judgement(U, f"{what} runs code from {stdin.source or stdin.origin}", stdin.tags | {"interpreter"})


@judge(*_SHELLS)
def judge_shell(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    i = 0
    command: str | None = None
    has_command = False
    while i < len(args):
        v = args[i].value
        if v is None:
            return Judgement(U, f"{prog} argument produced by an expansion ({args[i].text})")
        if v in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            i += 2
            continue
        if (v.startswith("-") and len(v) > 1 and not v.startswith("--")) or v.startswith("+"):
            if "c" in v[1:]:
                has_command = True
                command = args[i + 1].value if i + 1 < len(args) else None
                if i + 1 < len(args) and args[i + 1].value is None:
                    return Judgement(U, f"{prog} -c with a command produced by an expansion")
                break
            if "i" in v[1:]:
                return Judgement(U, f"{prog} -i starts an interactive shell")
            i += 1
            continue
        if v.startswith("--"):
            i += 1
            continue
        return Judgement(U, f"{prog} runs the script {v}")
    if has_command:
        if command is None:
            return Judgement(U, f"{prog} -c without a command")
        nested = run.shell(command)
        return Judgement(nested.risk, f"{prog} -c: {nested.reason}", nested.tags, nested.paths, nested.nested)
    return judge_piped_code(stdin, prog, run)


@judge("eval")
def judge_eval(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    values = lit(args)
    if values is None:
        return Judgement(U, f"{prog} of text produced by an expansion")
    nested = run.shell(" ".join(values))
    return Judgement(nested.risk, f"eval: {nested.reason}", nested.tags, nested.paths, nested.nested)


_INTERPRETER_FLAG = {
    "python": ("-c", "python"),
    "node": ("-e", "node"),
    "perl": ("-e", "perl"),
    "ruby": ("-e", "ruby"),
    "php": ("-r", "php"),
}


@judge(*_INTERPRETER_FLAG)
def judge_interpreter(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    flag, language = _INTERPRETER_FLAG[prog]
    in_place = False
    i = 0
    while i < len(args):
        v = args[i].value
        if v is None:
            return Judgement(U, f"{prog} argument produced by an expansion")
        if v in ("--version", "-V", "-v", "--help", "-h") and len(args) == 1:
            return Judgement(R, f"{prog} prints its version")
        if language == "python" and v == "-m":
            module = args[i + 1].value if i + 1 < len(args) else None
            return judge_python_module(module, args[i + 2 :], stdin, run)
        if v == flag or (v in ("--eval", "-E", "-p", "--print") and language in ("node", "perl")):
            code = args[i + 1].value if i + 1 < len(args) else None
            if code is None:
                return Judgement(U, f"{prog} {v} with code produced by an expansion")
            snippet = judge_code(language, code)
            risk = snippet.risk
            if in_place and risk is R:
                risk = W
            tags = frozenset({"interpreter"}) if risk in (D, U) else frozenset()
            judgement = Judgement(risk, snippet.reason + (" (edits files in place)" if in_place else ""), tags)
            return code_on_paths(judgement, code, args[i + 2 :] if in_place else [])
        if v.startswith(flag) and len(v) > 2 and language != "perl":
            snippet = judge_code(language, v[2:])
            judgement = Judgement(
                snippet.risk, snippet.reason, frozenset({"interpreter"}) if snippet.risk is D else frozenset()
            )
            return code_on_paths(judgement, v[2:], [])
        if language == "perl" and v.startswith("-") and not v.startswith("--"):
            in_place = in_place or "i" in v[1:]
            if v.endswith("e"):
                code = args[i + 1].value if i + 1 < len(args) else None
                if code is None:
                    return Judgement(U, "perl -e with code produced by an expansion")
                snippet = judge_code("perl", code)
                risk = W if in_place and snippet.risk is R else snippet.risk
                judgement = Judgement(risk, snippet.reason, frozenset({"interpreter"}) if risk is D else frozenset())
                return code_on_paths(judgement, code, args[i + 2 :] if in_place else [])
            i += 1
            continue
        if v.startswith("-") and v != "-":
            i += 1
            continue
        if v == "-":
            break
        return Judgement(U, f"{prog} runs the script {v}", frozenset({"interpreter"}))
    return judge_piped_code(stdin, prog, run, language)


#: Any access to the environment from code: Python `os.environ`/`getenv`, Node `process.env`, Perl and
#: Ruby `ENV`/`%ENV`, PHP `getenv`/`$_ENV`/`$_SERVER`.
_ENV_ACCESS = re.compile(r"\benviron\b|\bgetenv\b|process\.env\b|\bENV\b|\$_ENV\b|\$_SERVER\b")
#: An access that names one variable: `environ["X"]`, `environ.get("X")`, `getenv("X")`, `process.env.X`,
#: `ENV["X"]`, `ENV.fetch("X")`, `$ENV{X}`.
_ENV_KEYED = re.compile(
    r"(?:\benviron|\bENV|\$_ENV|\$_SERVER|process\.env)\s*\[\s*['\"]([^'\"]+)['\"]"
    r"|(?:\benviron\.get|\bgetenv|\bENV\.fetch|\bENV\.get)\s*\(\s*['\"]([^'\"]+)['\"]"
    r"|process\.env\.([A-Za-z_]\w*)|\$ENV\{\s*['\"]?(\w+)"
)


def environment_in_code(code: str) -> str | None:
    """What of the environment code reads and may print: "the whole environment" when an access names
    no variable (`print(os.environ)`, `console.log(process.env)`, `p ENV`), a credential-named variable
    (`os.environ["AWS_SECRET_ACCESS_KEY"]`), or None (only ordinary ones: `getenv("HOME")`)."""
    accesses = len(_ENV_ACCESS.findall(code))
    if not accesses:
        return None
    keys = [next(k for k in match if k) for match in _ENV_KEYED.findall(code)]
    if accesses > len(keys):
        return "the whole environment"
    shown = environment_shown("code", keys)
    return f"{', '.join(keys)}, which holds a credential" if shown.risk is W else None


def code_on_paths(judgement: Judgement, code: str, edited: list[Word]) -> Judgement:
    """A snippet judged with the paths it touches: the files `perl -i` edits in place are written
    (a protected one makes it destructive), and code that changes anything while naming a
    protected path (`open('.claude/settings.json', 'w')`) is at least destructive."""
    files = [w for w in edited if w.value is None or not w.value.startswith("-")]
    if files:
        judgement = worst([judgement, *(write_to(w, "edits in place") for w in files)])
    shown = environment_in_code(code)
    if shown is not None:
        # Printing the environment from code is `printenv` by another name: a secret read.
        risk = W if judgement.risk is R else judgement.risk
        judgement = Judgement(risk, f"{judgement.reason}; it reads {shown}", judgement.tags | {"secrets"},
                              judgement.paths, judgement.nested)
    if judgement.risk is not R:
        why = mentions_protected(code)
        if why is not None:
            risk = U if judgement.risk is U else D
            return Judgement(risk, f"{judgement.reason}; the code names {why}", judgement.tags | {"protected-target"})
    return judgement


@judge("make", "gmake")
def judge_make(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    """make runs the recipes of a Makefile we cannot see, unless told only to print them."""
    if has_flag(args, "nq", ("dry-run", "just-print", "recon", "question"), takes="CfIjloW"):
        return Judgement(R, f"{prog} -n prints the recipes it would run")
    return Judgement(U, f"{prog} runs the recipes of a Makefile", frozenset({"interpreter"}))


def judge_python_module(module: str | None, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    if module in ("pip", "pip3"):
        return judge_packages("pip", args, stdin, run)
    if module in ("json.tool", "platform", "site", "this", "tabnanny", "py_compile", "pydoc", "timeit"):
        return Judgement(R, f"python -m {module}")
    if module in ("venv", "virtualenv", "ensurepip", "compileall", "zipfile", "tarfile"):
        return Judgement(W, f"python -m {module} writes files")
    return Judgement(U, f"python -m {module} runs a module we do not know", frozenset({"interpreter"}))


@judge("xargs", "parallel")
def judge_xargs(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    takes = "IdEnLPsaL"
    i = 0
    while i < len(args):
        v = args[i].value
        if v is None:
            return Judgement(U, "xargs option produced by an expansion")
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
        return Judgement(R, "xargs echoes its input")
    nested = run.argv([*inner, Word(None, "<input>")], TTY)
    return Judgement(
        nested.risk,
        f"xargs runs {inner[0].show} on its input: {nested.reason}",
        nested.tags,
        nested.paths,
        nested.nested,
    )


@judge("trap", "alias", "source", ".")
def judge_builtin_text(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    """trap and watch and su take a command string and run it later or elsewhere."""
    if prog == "trap":
        values = [w.value for w in args]
        if not values or values[0] in ("-l", "-p") or values[0] in ("-", ""):
            return Judgement(R, "trap lists or resets handlers")
        if values[0] is None:
            return Judgement(U, "trap command produced by an expansion")
        nested = run.shell(values[0])
        return Judgement(nested.risk, f"trap: {nested.reason}", nested.tags, nested.paths, nested.nested)
    if prog == "alias":
        if any(w.value is None or "=" in (w.value or "") for w in args):
            return Judgement(U, "alias redefines a command")
        return Judgement(R, "alias lists aliases")
    if prog in ("source", "."):
        return Judgement(U, f"{prog} runs a script file")
    return Judgement(U, f"{prog} not understood")
