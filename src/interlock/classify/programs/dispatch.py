"""From one command's words to a judgement: look through wrappers, then ask the program's judge.

A program with no judge and not in `READ_ONLY` is `unknown`: we never assume a program we do not
know is harmless.
"""

from __future__ import annotations

import re
from contextvars import Token

from interlock.classify.hunting import HUNTED

# Importing the family modules registers their judges.
from interlock.classify.programs import (  # noqa: F401
    data,
    files,
    infra,
    interpreters,
    network,
    services,
    system,
    vaults,
    vcs,
)
from interlock.classify.programs.base import (
    JUDGES,
    Judgement,
    R,
    Runner,
    Stdin,
    U,
    W,
    Word,
    name_set,
)
from interlock.classify.programs.targets import WORKING_DIR, change_dir, names_protected, names_secret
from interlock.classify.programs.wrappers import WRAPPERS

READ_ONLY = name_set(
    """
    ls ll la dir vdir cat tac head tail grep egrep fgrep zgrep ag ack wc du df ps pstree
    top htop which whereis type echo printf pwd whoami id groups uname cut tr jq diff cmp comm md5sum
    sha1sum sha224sum sha256sum sha384sum sha512sum b2sum cksum sum shasum realpath readlink
    dirname basename test [ true false sleep ping ping6 dig nslookup host traceroute tracepath getent
    nproc free uptime w who last lastlog lsblk lscpu lsmem lsof lsusb lspci lsattr findmnt vmstat iostat
    mpstat stat file yes history nl fold fmt column expand unexpand paste join rev seq od hexdump
    strings base64 base32 locale tput tty arch getconf info help whatis apropos jobs cd
    pushd popd dirs set shopt unset export declare typeset local readonly read shift wait exit return
    break continue : umask ulimit times getopts ss netstat numfmt factor expr bc cal ncal zdump tokei cloc
    """
)


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


def judge_argv(words: list[Word], stdin: Stdin, run: Runner) -> tuple[str, Judgement]:
    """(program, judgement) for one simple command's words."""
    tags: set[str] = set()
    moved: list[Token[str | None]] = []  # a wrapper's `-C DIR` holds for its inner command only
    try:
        for _ in range(32):
            if not words:
                return "", Judgement(R, "no command", frozenset(tags))
            name, why = program_name(words[0])
            if name is None:
                return words[0].text, Judgement(U, why, frozenset(tags))
            if looks_obfuscated(words[0]):
                tags.add("obfuscated")
            wrapper = WRAPPERS.get(name)
            if wrapper is None:
                break
            result = wrapper(name, words[1:], stdin, run)
            if isinstance(result, Judgement):
                return name, result.with_tags(*tags) if tags else result
            tags |= result.tags
            words = result.words
            if result.chdir != "":
                moved.append(WORKING_DIR.set(WORKING_DIR.get()))
                change_dir(result.chdir)
        else:
            return "", Judgement(U, "too many nested wrappers", frozenset(tags))
        return name, _judge_program(name, words[1:], stdin, run, tags)
    finally:
        for token in reversed(moved):
            WORKING_DIR.reset(token)


def _judge_program(name: str, args: list[Word], stdin: Stdin, run: Runner, tags: set[str]) -> Judgement:
    judge = JUDGES.get(name)
    if judge is not None:
        judgement = asks_for_help(name, args) or judge(name, args, stdin, run)
    elif name in READ_ONLY:
        judgement = Judgement(R, f"{name} only reads")
    elif run.is_function(name):
        judgement = Judgement(R, f"calls the function {name} (its body is judged on its own)")
    else:
        judgement = Judgement(U, f"{name} is not a program we know")
        # What it does with a protected path it names is unknown; that it names one is a fact a
        # policy's rule on `protected-target` must see (`vim .claude/settings.json`, `patch .git/config`).
        why = names_protected(args)
        if why is not None:
            judgement = Judgement(U, f"{name} is not a program we know, on {why}", frozenset({"protected-target"}))
        elif prints_token(args):
            # Unknown, so never autonomous; that it prints a credential is a fact a rule on `secrets` must see.
            judgement = Judgement(U, f"{name} is not a program we know, and looks like it prints a token",
                                  frozenset({"secrets"}))
    if args and name not in NAMES_ONLY:
        judgement = reading_secrets(judgement, args)
    if name in SEARCHERS or (name == "git" and git_searches(args)):
        judgement = hunting_secrets(judgement, name, args)
    return judgement.with_tags(*tags) if tags else judgement


#: Programs that print what a pattern, script or path expression selects (`git grep` and `git log -S` are
#: recognised by `git_searches`).
SEARCHERS = name_set(
    """
    grep egrep fgrep zgrep zegrep zfgrep bzgrep xzgrep rg ag ack ack-grep pt ugrep
    awk gawk mawk nawk sed gsed jq gojq jaq yq xq dasel
    """
)


def git_searches(args: list[Word]) -> bool:
    """`git grep PATTERN`, or history searched for a string (`git log -p -S password`, `git show -G key`):
    a key committed once and removed later is still printed."""
    sub = next((v for w in args[:3] if (v := w.value) and not v.startswith("-")), "")
    return sub == "grep" or (sub in ("log", "show", "whatchanged") and any(
        (w.value or "").startswith(("-S", "-G", "--pickaxe-regex")) for w in args))

def hunting_secrets(judgement: Judgement, name: str, args: list[Word]) -> Judgement:
    """A search whose pattern names credentials prints them wherever they are written down (MITRE ATT&CK
    T1552.001, credentials in files): at least `write`, tag `secrets`, like reading a secret file. Every word
    is looked at, not only the pattern: which word is the pattern depends on each program's options, and a
    path named `secrets/` searched is the same disclosure."""
    found = next((w.show for w in args if HUNTED.search(w.value if w.value is not None else w.text)), None)
    if found is None:
        return judgement
    if judgement.risk is R:
        why = f"{name} searches for {found}: prints any credential it finds"
        return Judgement(W, why, judgement.tags | {"secrets"}, judgement.paths, judgement.nested)
    return judgement.with_tags("secrets")


#: Words of everyday CLIs that print a credential: `fly auth token`, `x auth print-access-token`,
#: `heroku auth:token`, `get-password`, `show-credentials`.
_TOKEN_WORDS = re.compile(
    r"^(?:auth:)?token$|^(?:print|get|show|generate|create)-[\w-]*(?:token|credentials?|password|secret)s?$"
)


def prints_token(args: list[Word]) -> bool:
    values = [w.value for w in args if w.value and not w.value.startswith("-")]
    return any(_TOKEN_WORDS.match(v) and (v != "token" or values[i - 1 : i] == ["auth"]) for i, v in enumerate(values))


#: Programs whose `-h` alone prints help (elsewhere `-h` may mean a host, or halt: `shutdown -h`).
HELP_SHORT = name_set(
    """
    git kubectl helm terraform tofu docker podman gh glab vault consul etcdctl mongosh rsync curl wget
    systemctl journalctl apt apt-get pip pip3 npm make gcloud az
    """
)


def asks_for_help(name: str, args: list[Word]) -> Judgement | None:
    """`PROGRAM --help`, `--version` (or `-h` where it means help) alone only prints."""
    if len(args) != 1:
        return None
    flag = args[0].value
    if flag in ("--help", "--version") or (flag == "-h" and name in HELP_SHORT):
        return Judgement(R, f"{name} {flag} prints {'its version' if flag == '--version' else 'help'}")
    return None


#: Programs that show a file's name or metadata, never its contents (`ls -l .env`, `test -f .env`).
NAMES_ONLY = name_set(
    "echo printf test [ ls ll la dir stat dirname basename realpath readlink which type lsattr cd pushd du"
)


def reading_secrets(judgement: Judgement, args: list[Word]) -> Judgement:
    """A command that names a secret file (`cat ~/.aws/credentials`, `base64 id_ed25519`, `grep K .env`)
    reveals credentials: at least `write`, tag `secrets`, so it is never autonomous where reads are."""
    found = names_secret(args)
    if found is None:
        return judgement
    if judgement.risk is R:
        tags = judgement.tags | {"secrets"}
        return Judgement(W, f"reads {found}, a secret file", tags, judgement.paths, judgement.nested)
    return judgement.with_tags("secrets")
