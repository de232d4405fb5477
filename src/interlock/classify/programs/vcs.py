"""Judges of version control: git."""

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
    Verbs,
    W,
    Word,
    judge,
    name_set,
    worst,
)
from interlock.classify.programs.targets import names_protected, write_to

#: git subcommands whose risk is the verb alone; the others are judged in `judge_git` by their options.
GIT = Verbs(
    read=name_set(
        """
        status log diff show blame grep ls-files ls-tree rev-parse describe shortlog cat-file ls-remote
        whatchanged help version rev-list show-ref show-branch name-rev count-objects fsck verify-commit
        verify-tag for-each-ref merge-base diff-tree diff-files diff-index check-ignore check-attr var
        range-diff cherry annotate
        """
    ),
    write=name_set(
        """
        add commit merge rebase cherry-pick pull fetch init clone mv revert am apply notes bisect switch
        format-patch archive bundle submodule sparse-checkout maintenance
        """
    ),
)


#: git settings that name a program git runs: setting one makes `git` an arbitrary command.
_GIT_EXEC_SETTING = re.compile(
    r"(alias\.|core\.(pager|sshcommand|editor|fsmonitor|hookspath|gitproxy)|.*\.(command|cmd|helper|textconv"
    r"|program|tool)\b|diff\.external|sequence\.editor|credential|include\.path|includeif)"
)


#: Setting what git runs (`core.hooksPath`, an alias, `core.sshCommand`) rewrites the repository's
#: hooks by another route than `.git/hooks`: the same protected target.
_CONTROLS = frozenset({"protected-target"})


@judge("git")
def judge_git(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    i = 0
    while i < len(args):
        v = args[i].value
        if v is None:
            return Judgement(U, "git argument produced by an expansion")
        if v == "-c" and i + 1 < len(args):
            setting = (args[i + 1].value or "").lower()
            # Settings that name a program git will run turn `git` into an arbitrary command.
            if args[i + 1].value is None or _GIT_EXEC_SETTING.match(setting):
                return Judgement(U, f"git -c {setting} makes git run another program", _CONTROLS)
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
        return Judgement(R, "git prints usage")
    sub = args[i].value or ""
    rest = args[i + 1 :]
    judgement = _judge_sub(sub, rest, run)
    if sub in _RUNS_BY_VERB or any(w.value is None or w.value.startswith(_PROGRAM_PREFIXES) for w in rest):
        runs = _runs_program(sub, rest, run)
        if runs is not None:
            judgement = worst([judgement, runs])
    if sub in _OUTPUT_OPTIONS or sub == "format-patch":
        written = _writes_output(sub, rest)
        if written is not None:
            judgement = worst([judgement, written])
    if sub in _TOUCHES_PATHS and judgement.risk is not R and not (sub == "rm" and "--cached" in _values(rest)):
        why = names_protected(rest)
        if why is not None:
            judgement = Judgement(D, f"git {sub} changes {why}", judgement.tags | {"protected-target"}, judgement.paths)
    return judgement


#: Subcommands whose operands are working-tree paths they overwrite, move or delete.
_TOUCHES_PATHS = frozenset({"checkout", "restore", "mv", "rm", "worktree", "clone"})
#: Options whose value is a program git runs on the caller's behalf, per subcommand ("*": any).
_PROGRAM_OPTIONS = {
    "*": ("--upload-pack", "--receive-pack", "--exec"),
    "clone": ("-u",),
    "grep": ("-O", "--open-files-in-pager"),
}
#: Subcommands that run a command they are given; and what options naming a program start with.
_RUNS_BY_VERB = frozenset({"rebase", "bisect", "submodule"})
_PROGRAM_PREFIXES = tuple(name for names in _PROGRAM_OPTIONS.values() for name in names)
#: Options that name a file the output is written to, per subcommand.
_OUTPUT_OPTIONS = {
    "log": ("--output",),
    "diff": ("--output",),
    "show": ("--output",),
    "format-patch": ("--output",),
    "archive": ("-o", "--output"),
}


def _values(words: list[Word]) -> list[str | None]:
    return [w.value for w in words]


def _option_value(words: list[Word], names: tuple[str, ...]) -> tuple[bool, str | None]:
    """Whether one of the options `names` is given, and its value (`--opt=V`, `--opt V`, `-oV`)."""
    for j, word in enumerate(words):
        v = word.value
        if v is None or v == "--":
            if v == "--":
                break
            continue
        for name in names:
            if v == name:
                return True, words[j + 1].value if j + 1 < len(words) else None
            if v.startswith(name + "=") or (len(name) == 2 and v.startswith(name) and len(v) > 2):
                return True, v[len(name) + 1 :] if v.startswith(name + "=") else v[len(name) :]
    return False, None


def _runs_program(sub: str, rest: list[Word], run: Runner) -> Judgement | None:
    """A program git runs because an option or the subcommand names it: `rebase --exec CMD` and
    `submodule foreach CMD` run shell text, `bisect run CMD …` a command; `--upload-pack`,
    `grep -O` and the like a program of the caller's choosing (unknown)."""
    values = _values(rest)
    if sub == "rebase":
        given, text = _option_value(rest, ("--exec", "-x"))
        if given:
            if text is None:
                return Judgement(U, "git rebase --exec with a command produced by an expansion")
            nested = run.shell(text)
            return Judgement(nested.risk, f"git rebase --exec runs {text}: {nested.reason}", nested.tags)
        return None
    if sub == "bisect" and values[:1] == ["run"]:
        if len(rest) < 2:
            return Judgement(U, "git bisect run without a command")
        nested = run.argv(rest[1:], TTY)
        return Judgement(nested.risk, f"git bisect run: {nested.reason}", nested.tags)
    if sub == "submodule" and "foreach" in values:
        command = rest[values.index("foreach") + 1 :]
        while command and (command[0].value or "").startswith("--"):
            command = command[1:]
        texts = [w.value for w in command]
        if not command or any(t is None for t in texts):
            return Judgement(U, "git submodule foreach with a command we cannot read")
        nested = run.shell(" ".join(t for t in texts if t is not None))
        return Judgement(nested.risk, f"git submodule foreach: {nested.reason}", nested.tags | {"mass"})
    for name in (*_PROGRAM_OPTIONS["*"], *_PROGRAM_OPTIONS.get(sub, ())):
        given, _ = _option_value(rest, (name,))
        if given:
            return Judgement(U, f"git {sub} {name} names a program to run", frozenset({"interpreter"}))
    return None


def _writes_output(sub: str, rest: list[Word]) -> Judgement | None:
    """`git log --output=F`, `git archive -o F`: the output goes to a file, not to the terminal."""
    names = _OUTPUT_OPTIONS.get(sub)
    given, value = _option_value(rest, names) if names else (False, None)
    if not given:
        if sub == "format-patch":
            given, folder = _option_value(rest, ("-o", "--output-directory"))
            if given:
                patch = Word(folder and folder.rstrip("/") + "/0001.patch", folder or "$?")
                return write_to(patch, "git format-patch writes into")
        return None
    return write_to(Word(value, value or "$?"), f"git {sub} writes to")


def _judge_sub(sub: str, rest: list[Word], run: Runner) -> Judgement:
    values = [w.value for w in rest]
    flags = {x for x in values if x is not None and x.startswith("-")}

    def has(*names: str) -> bool:
        return any(x in flags or any(f.startswith(x + "=") for f in flags) for x in names) or any(
            f[1:2] != "-" and f.startswith("-") and any(len(n) == 2 and n[1] in f[1:] for n in names) for f in flags
        )

    if sub in ("push", "add", "rm", "mv") and has("--dry-run", "-n"):
        return Judgement(R, f"git {sub} --dry-run only lists")
    if sub in ("commit", "fetch") and has("--dry-run"):
        return Judgement(R, f"git {sub} --dry-run only lists")
    if sub == "push":
        if has("--force", "-f", "--force-with-lease", "--force-if-includes", "--mirror", "--prune") or any(
            v is not None and v.startswith("+") for v in values
        ):
            return Judgement(D, "git push --force rewrites remote history", frozenset({"irreversible", "replace"}))
        if has("--delete", "-d") or any(v is not None and v.startswith(":") and len(v) > 1 for v in values):
            return Judgement(D, "git push --delete deletes a remote branch", frozenset({"irreversible"}))
        return Judgement(W, "git push publishes commits")
    if sub == "reset":
        if has("--hard", "--merge", "--keep"):
            return Judgement(D, "git reset --hard discards changes", frozenset({"irreversible"}))
        return Judgement(W, "git reset moves the branch")
    if sub == "clean":
        if has("-n", "--dry-run"):
            return Judgement(R, "git clean --dry-run lists files")
        return Judgement(D, "git clean deletes untracked files", frozenset({"irreversible", "mass"}))
    if sub == "branch":
        if has("-D") or (has("-d", "--delete") and has("-f", "--force")):
            return Judgement(D, "git branch -D deletes a branch", frozenset({"irreversible"}))
        if has("-d", "--delete", "-m", "-M", "--move", "-c", "-C", "--set-upstream-to", "-u", "--unset-upstream"):
            return Judgement(W, "git branch changes branches")
        operands = [v for v in values if v is not None and not v.startswith("-")]
        listing = name_set("--list -l -a -r -v -vv --all --remotes --show-current --contains --merged")
        if operands and not (flags & listing):
            return Judgement(W, "git branch creates a branch")
        return Judgement(R, "git branch lists branches")
    if sub == "tag":
        if has("-d", "--delete"):
            return Judgement(D, "git tag -d deletes a tag")
        operands = [v for v in values if v is not None and not v.startswith("-")]
        return Judgement(W if operands and not has("-l", "--list") else R, "git tag")
    if sub in ("checkout", "restore"):
        if sub == "restore" and has("--staged", "-S") and not has("--worktree", "-W"):
            return Judgement(W, "git restore --staged unstages")
        if has("-f", "--force") or "--" in values or "." in values or sub == "restore":
            return Judgement(D, f"git {sub} discards working-tree changes", frozenset({"irreversible"}))
        return Judgement(W, f"git {sub} switches branches")
    if sub == "stash":
        action = values[0] if values else "push"
        if action in ("drop", "clear"):
            return Judgement(D, f"git stash {action} deletes stashed changes", frozenset({"irreversible"}))
        if action in ("list", "show"):
            return Judgement(R, f"git stash {action}")
        return Judgement(W, f"git stash {action}")
    if sub in ("filter-branch", "filter-repo", "replace"):
        return Judgement(D, f"git {sub} rewrites history", frozenset({"irreversible", "mass"}))
    if sub == "rm":
        if has("--cached"):
            return Judgement(W, "git rm --cached untracks files")
        return Judgement(D, "git rm deletes files", frozenset({"mass"}) if has("-r") else frozenset())
    if sub == "reflog":
        if values and values[0] in ("expire", "delete"):
            return Judgement(D, f"git reflog {values[0]} drops history", frozenset({"irreversible"}))
        return Judgement(R, "git reflog")
    if sub in ("gc", "prune"):
        return Judgement(D if has("--prune", "--aggressive") or sub == "prune" else W, f"git {sub}")
    if sub == "update-ref":
        return Judgement(D if has("-d") else W, "git update-ref")
    if sub == "worktree":
        action = values[0] if values else ""
        return Judgement(R if action == "list" else D if action in ("remove", "prune") else W, f"git worktree {action}")
    if sub == "remote":
        action = values[0] if values else ""
        if action in ("", "-v", "show", "get-url", "--verbose"):
            return Judgement(R, "git remote lists remotes")
        return Judgement(D if action in ("remove", "rm", "prune") else W, f"git remote {action}")
    if sub == "config":
        if has("--unset", "--unset-all", "--remove-section", "--rename-section", "--edit", "-e"):
            return Judgement(W, "git config changes a setting")
        if (
            has("--get", "--list", "-l", "--get-all", "--get-regexp", "--show-origin")
            or len([v for v in values if v is not None and not v.startswith("-")]) == 1
        ):
            return Judgement(R, "git config reads a setting")
        if any(v is None or _GIT_EXEC_SETTING.match(v.lower()) for v in values):
            return Judgement(U, "git config sets a program git will run", _CONTROLS)
        return Judgement(W, "git config changes a setting")
    risk = GIT.risk(sub)
    if risk is not None:
        return Judgement(risk, f"git {sub} {'reads' if risk is R else 'changes'} the repository")
    return Judgement(U, f"git {sub} not understood (an alias or extension?)")
