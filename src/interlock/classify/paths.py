"""Protected paths, secret files and scratch space: one judge, whichever door an action comes through.

The `file` kind, every shell command that writes, deletes, moves, copies onto or reads a path, and
MCP path arguments all ask this module, so `echo {} > .claude/settings.json`, a Write of that file
and `write_file {"path": ".claude/settings.json"}` get the same answer (DESIGN.md §9: judges are
shared, not per door). The lists come from the policy's `paths:` section (docs/policy.md) on top of
the defaults below.

- **protected**: changing one takes over the agent's own controls (its hook settings, the policy,
  Interlock's keys), the repository's history or the machine. Writing, deleting or moving one is
  `destructive` with the tag `protected-target`.
- **secret**: its contents are credentials. Reading one is at least `write` with the tag `secrets`,
  so it is never autonomous where only reads are.
- **scratch**: throw-away space (`/tmp`, `/var/tmp`, `$TMPDIR`). Removing something strictly below
  a scratch root is `write`, unless the path escapes it (`/tmp/../etc`, any `..`, a glob or an
  expansion that could name the root itself or something outside it).

Patterns are globs over the normalised, lower-case path: `*` matches any characters, `/` included;
a leading `**/` matches at the start of a relative path (`.git/config`) or below any directory
(`~/repo/.git/config`, `/srv/x/.git`).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

from interlock.model import Strict
from interlock.tries import trie_pattern

#: (glob, why it is protected). Defaults of the policy's `paths.protected`.
DEFAULT_PROTECTED: tuple[tuple[str, str], ...] = (
    ("**/.git", "the repository's history"),
    ("**/.git/*", "git internals (hooks run code, config can point anywhere)"),
    ("**/.github/workflows/*", "CI workflows run with the repository's secrets"),
    ("**/.github/hooks/*", "the coding agent's hooks (GitHub Copilot)"),
    ("**/.claude/settings*.json", "the agent's own permission settings"),
    ("**/.claude/hooks/*", "the agent's own hooks"),
    ("**/.codex/*", "the agent's own configuration"),
    ("**/.gemini/*", "the agent's own configuration (Gemini CLI hooks)"),
    ("**/.cursor/*", "the agent's own configuration (Cursor hooks)"),
    ("**/.copilot/*", "the agent's own configuration (GitHub Copilot CLI user hooks)"),
    ("**/.github/copilot/*", "the agent's repository settings (GitHub Copilot CLI inline hooks)"),
    ("**/.interlock/*", "Interlock's keys and state"),
    ("**/.mcp.json", "the agent's MCP servers (each one a command its client starts)"),
    ("**/*policy*.yaml", "an Interlock policy"),
    ("**/*policy*.yml", "an Interlock policy"),
    ("**/.ssh/*", "ssh keys and authorized_keys"),
    ("**/.aws/*", "AWS credentials"),
    ("**/.kube/*", "cluster credentials"),
    ("**/.docker/config.json", "registry credentials"),
    ("**/.netrc", "stored passwords"),
    ("**/.pgpass", "database passwords"),
    ("**/.bashrc", "runs at every shell start"),
    ("**/.bash_profile", "runs at every login"),
    ("**/.profile", "runs at every login"),
    ("**/.zshrc", "runs at every shell start"),
    ("/etc/*", "system configuration"),
    ("/usr/*", "system programs"),
    ("/bin/*", "system programs"),
    ("/sbin/*", "system programs"),
    ("/lib/*", "system libraries"),
    ("/boot/*", "the boot loader and kernel"),
    ("/var/lib/*", "system state"),
    ("/proc/*", "the kernel's view of processes"),
    ("/sys/*", "the kernel's settings"),
    ("/dev/*", "devices"),
)
#: Defaults of the policy's `paths.secret`: files whose contents are credentials.
DEFAULT_SECRET: tuple[str, ...] = (
    "**/.ssh/id_*",
    "**/.ssh/*_key",
    "**/.aws/credentials",
    "**/.aws/config",
    "**/.kube/config",
    "**/.docker/config.json",
    "**/.netrc",
    "**/.pgpass",
    "**/.git-credentials",
    "**/.env",
    "**/.env.*",
    "**/.interlock/keys/*",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "**/*.pem",
    "**/*.key",
    # Where CLIs keep their login tokens: reading one is the same as `gcloud auth print-access-token`.
    "**/.vault-token",
    "**/gcloud/application_default_credentials.json",
    "**/gcloud/credentials.db",
    "**/gcloud/access_tokens.db",
    "**/gcloud/legacy_credentials/*",
    "**/.azure/msal_token_cache.*",
    "**/.azure/accesstokens.json",
    "**/gh/hosts.yml",
    "**/.npmrc",
    "**/.pypirc",
    "**/.terraform.d/credentials.tfrc.json",
    "**/.my.cnf",
    "**/.s3cfg",
    "**/.boto",
    "**/rclone/rclone.conf",
    "**/.cargo/credentials",
    "**/.cargo/credentials.toml",
    "**/.gem/credentials",
    "**/.htpasswd",
    # Key stores and private keys in other containers than *.pem / *.key.
    "**/*.p12",
    "**/*.pfx",
    "**/*.jks",
    "**/*.keystore",
    "**/.gnupg/private-keys-v1.d/*",
    # Mounted secrets: a pod's service account token, Docker and Compose secrets.
    "/var/run/secrets/*",
    "/run/secrets/*",
    # Terraform state holds every attribute in plain text, passwords and keys included.
    "**/*.tfstate",
    "**/*.tfstate.backup",
    # A process's environment holds the tokens it was started with; memory devices hold everything.
    "/proc/*/environ",
    "/dev/mem",
    "/dev/kmem",
    # Shell and client histories: passwords typed on command lines (`mysql -pS3cret`, `ALTER USER … PASSWORD`,
    # `redis-cli AUTH`, `export TOKEN=…`).
    "**/.bash_history",
    "**/.zsh_history",
    "**/.zhistory",
    "**/.sh_history",
    "**/.history",
    "**/fish_history",
    "**/.psql_history",
    "**/.mysql_history",
    "**/.python_history",
    "**/.rediscli_history",
    "**/.sqlite_history",
    "**/.node_repl_history",
    "**/mongosh_repl_history",
    "**/.dbshell",
    # Private keys by their usual names wherever they lie (a repository's deploy key, a copied key).
    "**/id_rsa",
    "**/id_dsa",
    "**/id_ecdsa",
    "**/id_ed25519",
    "**/id_ecdsa_sk",
    "**/id_ed25519_sk",
)
#: Defaults of the policy's `paths.scratch`: roots of throw-away space. `$TMPDIR` stands for the
#: variable's guarded expansions `${TMPDIR:?}` and `${TMPDIR:-/tmp}`; a bare `$TMPDIR` may be unset,
#: and `rm -rf "$TMPDIR/build"` would then remove `/build`.
DEFAULT_SCRATCH: tuple[str, ...] = ("/tmp", "/var/tmp", "$TMPDIR")

#: Paths that are never protected: writing to them changes nothing.
HARMLESS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/stdin", "/dev/tty", "/dev/zero", "/dev/full"})

_REASONS = dict(DEFAULT_PROTECTED)


class PathRules(Strict):
    """The protected, secret and scratch lists in force (the policy's `paths:` with the defaults)."""

    protected: tuple[str, ...] = tuple(glob for glob, _ in DEFAULT_PROTECTED)
    secret: tuple[str, ...] = DEFAULT_SECRET
    scratch: tuple[str, ...] = DEFAULT_SCRATCH


DEFAULT_RULES = PathRules()


#: `/proc/self/root/etc/shadow` is `/etc/shadow` and `/proc/self/cwd/.env` is `./.env`: the kernel's
#: links to a process's root and working directory are other spellings of the same files.
_PROC_LINK = re.compile(r"^/+proc/+(?:self|thread-self|[0-9]+)(?:/+task/+[0-9]+)?/+(root|cwd)(?=/|$)")


def _unlinked(text: str) -> str:
    found = _PROC_LINK.match(text)
    if found is None:
        return text
    rest = text[found.end() :]
    return (rest or "/") if found.group(1) == "root" else "." + rest


def normalise(path: str) -> str:
    """`./a/../.git//config` → `.git/config`; `\\` is `/`; `~` stays as the home marker;
    `/proc/self/root/x` → `/x`, `/proc/self/cwd/x` → `x`."""
    text = _unlinked(path.replace("\\", "/").strip())
    if not text:
        return text
    normal = posixpath.normpath(text)
    if text.startswith("//"):
        normal = "/" + normal.lstrip("/")  # POSIX keeps a leading //; it is the root all the same
    return normal


#: What normalising would change: `//`, `.` and `..` components, a trailing `/`, backslashes, names
#: ending in a dot or a space, surrounding white space, a `/proc/…/root|cwd` link.
_NOT_NORMAL = re.compile(r"//|(?:^|/)\.\.?(?:/|$)|[. ](?:/|$)|/$|\\|^\s|^/proc/")


def folded(path: str) -> str:
    """The normalised path as case-insensitive file systems see it: lower case, and Windows drops
    trailing dots and spaces from names (`.git./config` is `.git/config`)."""
    lower = path.lower()
    if _NOT_NORMAL.search(lower) is None:
        return lower
    return "/".join(part.rstrip(". ") or part for part in normalise(path).lower().split("/"))


def _glob_regex(glob: str) -> str:
    glob = glob.lower()
    if glob.startswith("**/"):
        return r"(?:.*/)?" + fnmatch.translate(glob[3:])[4:-3]
    return fnmatch.translate(glob)[4:-3]


def _union(globs: Iterable[str]) -> re.Pattern[str] | None:
    globs = tuple(globs)
    return re.compile("|".join(f"(?:{_glob_regex(g)})" for g in globs), re.S) if globs else None


def _named_union(globs: tuple[str, ...], below: bool) -> re.Pattern[str] | None:
    """One expression for the `**/` globs (`below`, sharing one `(?:.*/)?` prefix: each is tried
    at every `/` once, not once per glob) or for the anchored ones, a named group per glob
    (`g<index in globs>`) so `lastgroup` says which matched."""
    if below:
        tails = [f"(?P<g{i}>{_glob_regex(g)[len('(?:.*/)?'):]})" for i, g in enumerate(globs) if g.startswith("**/")]
        return re.compile(f"(?:.*/)?(?:{'|'.join(tails)})", re.S) if tails else None
    anchored = [f"(?P<g{i}>{_glob_regex(g)})" for i, g in enumerate(globs) if not g.startswith("**/")]
    return re.compile("|".join(anchored), re.S) if anchored else None


def _needle(glob: str) -> str:
    """The literal a path matching `glob` must hold, as distinctive as the glob allows: `/etc` for
    `/etc/*` (an absolute glob's first component, with its slash), `.claude` for
    `**/.claude/settings*.json` (a whole dot-named component), else the longest literal piece
    (`policy` for `**/*policy*.yaml`). Common words (`config`, `bin`) would let most lines through."""
    glob = glob.lower()
    components = [c for c in glob.split("/") if c and c != "**"]
    if glob.startswith("/") and components and not re.search(r"[*?\[\]]", components[0]):
        return "/" + components[0]
    dotted = [c for c in components if c.startswith(".") and not re.search(r"[*?\[\]]", c)]
    if dotted:
        return max(dotted, key=len)
    pieces = [piece for c in components for piece in re.split(r"[*?\[\]]", c)]
    return max(pieces, key=len, default="").rstrip(". ")


def _needles(globs: Iterable[str]) -> re.Pattern[str] | None:
    """A cheap first test: a literal each glob's paths must hold (`_needle`), searched in the
    lower-case raw path. Normalising a path only removes components and separators, never makes a
    new one, so a path a glob matches holds its needle. A glob with no literal part makes every path
    pass."""
    found: list[str] = []
    for glob in globs:
        needle = _needle(glob)
        if not needle:
            return re.compile("")
        found.append(needle)
    return re.compile(trie_pattern(found)) if found else None  # a trie: one branch per character (tries.py)


def _secret_directories(globs: Iterable[str]) -> list[str]:
    """The directories secret files live in, below any directory (`**/.ssh` for `**/.ssh/id_*`):
    archiving, copying or grepping one (`tar czf k.tgz ~/.ssh`) reads its secrets too. Absolute
    parents are left out: `/etc` holds `/etc/shadow` and much else that is no secret."""
    return [parent for parent in _parent_globs(globs) if parent.startswith("**/")]


def _parent_globs(globs: Iterable[str]) -> list[str]:
    """The directories protected paths live in (`**/.claude` for `**/.claude/settings*.json`):
    deleting or moving one of them takes the protected files with it."""
    parents: list[str] = []
    for glob in globs:
        head = glob
        while "/" in head.rstrip("/"):
            head = head.rstrip("/").rpartition("/")[0]
            if head in ("", "**") or not head.strip("*/"):
                break
            parents.append(head)
    return list(dict.fromkeys(parents))


@dataclass(frozen=True)
class _Compiled:
    """The rules' globs as regular expressions, built once per `PathRules`."""

    protected_anchored: re.Pattern[str] | None  # one named group per glob: `lastgroup` says which
    protected_below: re.Pattern[str] | None
    protected_needles: re.Pattern[str] | None
    parents: re.Pattern[str] | None
    parent_needles: re.Pattern[str] | None
    secret: re.Pattern[str] | None
    secret_needles: re.Pattern[str] | None
    any_needles: re.Pattern[str] | None  # every needle above, for one first search over a whole line
    scratch_roots: tuple[str, ...]


_BUILT: dict[int, tuple[PathRules, _Compiled]] = {}


def compiled(rules: PathRules) -> _Compiled:
    hit = _BUILT.get(id(rules))
    if hit is not None and hit[0] is rules:
        return hit[1]
    parents = _parent_globs(rules.protected)
    built = _Compiled(
        protected_anchored=_named_union(rules.protected, below=False),
        protected_below=_named_union(rules.protected, below=True),
        protected_needles=_needles(rules.protected),
        parents=_union(parents),
        parent_needles=_needles(parents),
        secret=_union((*rules.secret, *_secret_directories(rules.secret))),
        secret_needles=_needles(rules.secret),
        any_needles=_needles((*rules.protected, *parents, *rules.secret)),
        scratch_roots=_scratch_roots(rules.scratch),
    )
    if len(_BUILT) > 256:
        _BUILT.clear()
    _BUILT[id(rules)] = (rules, built)  # the rules are kept alive, so their id is not reused
    return built


def _may_hold(needles: re.Pattern[str] | None, path: str) -> bool:
    return needles is not None and needles.search(path.lower().replace("\\", "/")) is not None


def line_may_name(text: str, rules: PathRules = DEFAULT_RULES) -> tuple[bool, bool]:
    """Whether any word of a whole command line may name (protected path, secret file): a first test
    that lets the shell classifier skip every per-word check on most lines. Quotes and backslashes
    are dropped first (`cred''entials`, `cred\\entials` are words' values with them removed); a line
    with ANSI-C quoting (`$'\\x63…'`) may spell anything."""
    if "$'" in text:
        return True, True
    bare = text.replace("'", "").replace('"', "").replace("\\", "")
    built = compiled(rules)
    if not _may_hold(built.any_needles, bare):
        return False, False
    return (
        _may_hold(built.protected_needles, bare) or _may_hold(built.parent_needles, bare),
        _may_hold(built.secret_needles, bare),
    )


def protected(path: str, rules: PathRules = DEFAULT_RULES) -> str | None:
    """Why changing `path` is protected, or None."""
    built = compiled(rules)
    if not _may_hold(built.protected_needles, path):
        return None
    lower = folded(path)
    if lower in HARMLESS or lower.startswith("/dev/fd/"):
        return None
    match = None
    for pattern in (built.protected_anchored, built.protected_below):
        match = pattern.fullmatch(lower) if pattern is not None else None
        if match is not None:
            break
    if match is None or match.lastgroup is None:
        return None
    glob = rules.protected[int(match.lastgroup[1:])]
    return _REASONS.get(glob, f"the policy's paths.protected lists {glob}")


#: A word the shell expands into file names: `*`, `?`, `[…]` or a `{a,b}` brace list.
_PATTERN = re.compile(r"[*?\[]|\{[^{}]*,[^{}]*\}")
_BRACES = re.compile(r"\{([^{}]*,[^{}]*)\}")


def is_pattern(path: str) -> bool:
    return _PATTERN.search(path) is not None


def _shell_glob(pattern: str) -> re.Pattern[str]:
    """The file names a bash glob matches: `*` and `?` stay within one component and, as without
    `dotglob`, never match the leading dot of one."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        start = i == 0 or pattern[i - 1] == "/"
        if ch in "*?":
            out.append(("(?!\\.)" if start else "") + ("[^/]*" if ch == "*" else "[^/]"))
        elif ch == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body[:1] in "!^" else body) + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.S)


def _alternatives(pattern: str, limit: int = 16) -> list[str]:
    """`{.claude,x}/settings.json` → `.claude/settings.json`, `x/settings.json` (at most `limit`)."""
    found = [pattern]
    while any(_BRACES.search(p) for p in found) and len(found) <= limit:
        expanded: list[str] = []
        for item in found:
            match = _BRACES.search(item)
            if match is None:
                expanded.append(item)
                continue
            expanded += [item[: match.start()] + part + item[match.end() :] for part in match.group(1).split(",")]
        found = expanded
    return found[:limit]


def pattern_protected(pattern: str, rules: PathRules = DEFAULT_RULES) -> str | None:
    """Why a file name pattern (`*.yaml`, `.c*/settings.json`, `{.claude,x}/settings.json`) may name
    a protected file, or None. Tried both ways: each protected glob's simplest names (below the
    pattern's own folder for `**/` globs) against the pattern, and the pattern with its wildcards
    filled in against the protected globs."""
    for alternative in _alternatives(pattern.lower()):
        glob = _shell_glob(alternative)
        folder = _PATTERN.split(alternative, 1)[0].rpartition("/")[0]
        below = folder + "/" if folder else ""
        # What follows the first patterned folder: `/e*/passwd` may be `/etc/` + `passwd`.
        parts = alternative.split("/")
        first = next((i for i, part in enumerate(parts) if _PATTERN.search(part)), len(parts))
        after = re.sub(r"\[[^\]]*\]|[*?]", "x", "/".join(parts[first + 1 :]))
        for protected_glob in rules.protected:
            tail = protected_glob.lower()
            tails = {tail[3:], below + tail[3:]} if tail.startswith("**/") else {tail}
            fillers = ("", "x", after) if after else ("", "x")
            for name in dict.fromkeys(t.replace("*", filler) for t in sorted(tails) for filler in fillers):
                if glob.fullmatch(name) and protected(name, rules) is not None:
                    return f"{protected(name, rules)}: {pattern} may match {name}"
        filled = re.sub(r"\[[^\]]*\]|[*?]", "x", alternative)
        why = protected(filled, rules) if not is_pattern(filled) else None
        if why is not None:
            return why
    return None


def holds_protected(path: str, rules: PathRules = DEFAULT_RULES) -> str | None:
    """Why deleting or moving `path` (a file or a whole directory) touches protected paths, or None."""
    found = protected(path, rules)
    if found is not None:
        return found
    built = compiled(rules)
    if built.parents is not None and _may_hold(built.parent_needles, path) and built.parents.fullmatch(folded(path)):
        return "a directory holding protected files"
    return None


def secret(path: str, rules: PathRules = DEFAULT_RULES) -> bool:
    """True when `path` names a file whose contents are credentials (or a directory of such files,
    `~/.ssh`, `~/.aws`)."""
    built = compiled(rules)
    if built.secret is None or not _may_hold(built.secret_needles, path):
        return False
    lower = folded(path)
    return built.secret.fullmatch(lower) is not None and _TEMPLATE.search(lower) is None


#: Files named as templates of secret files hold placeholders, not credentials: `.env.example`,
#: `.env.sample`, `id_rsa.pub` (a public key). Reading them is what every new checkout does.
_TEMPLATE = re.compile(r"(\.(example|sample|template|dist|defaults?|pub)|\.example\.\w+)$")


#: Expansions a path may start with whose value we know: `$HOME` is the directory `~` names, and
#: `$PWD` or `$(pwd)` the working directory (resolved against a `cd` in the line like any relative path).
_HOME_START = re.compile(r"^\$(?:HOME(?![A-Za-z0-9_])|\{HOME\})(?=/|$)")
_CWD_START = re.compile(
    r"^(?:\$(?:PWD(?![A-Za-z0-9_])|\{PWD\})|\$\(\s*pwd(?:\s+-[LP])?\s*\)|`\s*pwd(?:\s+-[LP])?\s*`)(?=/|$)"
)
_HOME_MENTION = re.compile(r"\$(?:HOME(?![A-Za-z0-9_])|\{HOME\})")
_CWD_MENTION = re.compile(r"\$(?:PWD(?![A-Za-z0-9_])|\{PWD\})")


def stable_variables(line: str) -> frozenset[str]:
    """Which of HOME and PWD keep their value through `line`: it names them only to expand them (a
    line that could assign one, `HOME=/etc`, `export PWD=/`, `read HOME`, leaves it out)."""
    stable = []
    if "HOME" not in _HOME_MENTION.sub("", line):
        stable.append("HOME")
    if "PWD" not in _CWD_MENTION.sub("", line):
        stable.append("PWD")
    return frozenset(stable)


def spelled(text: str, stable: frozenset[str]) -> str | None:
    """The path a shell word's text names when its only expansion is a leading `$HOME`, `${HOME}`,
    `$PWD`, `${PWD}` or `$(pwd)` (double quotes allowed): `"$HOME/.claude/settings.json"` →
    `~/.claude/settings.json`, `$(pwd)/.env` → `./.env`. None when anything else is expanded, quoted
    otherwise or escaped, or when `stable` (`stable_variables`) does not vouch for the variable."""
    if "$" not in text and "`" not in text:
        return None
    bare = text.replace('"', "")
    if "'" in bare or "\\" in bare:
        return None
    if "HOME" in stable:
        bare = _HOME_START.sub("~", bare, count=1)
    if "PWD" in stable:
        bare = _CWD_START.sub(".", bare, count=1)
    if "$" in bare or "`" in bare:
        return None
    return bare


#: Characters that make a path component a pattern or an expansion.
_UNSURE = re.compile(r"[*?\[\]{}$`]")


def _scratch_roots(scratch: tuple[str, ...]) -> tuple[str, ...]:
    roots: list[str] = []
    for root in scratch:
        if root.startswith("$"):
            name = root.strip("${}")
            roots += [f"${{{name}:?}}", f"${{{name}:-/tmp}}", f"${{{name}:-/var/tmp}}"]
        else:
            roots.append(normalise(root).rstrip("/") or "/")
    return tuple(roots)


def in_scratch(path: str, rules: PathRules = DEFAULT_RULES) -> bool:
    """True when `path` is strictly below a scratch root and cannot escape it.

    `path` is the value of a shell word, or its text when an expansion makes it (`"${TMPDIR:?}/b"`).
    Refused: the root itself (`/tmp`, `/tmp/`, `/tmp/*`, `/tmp/.*`), any `..` (`/tmp/../etc`,
    `/tmp/x/..`: a symlink-looking step may lead anywhere), and a first component that an
    expansion makes (`/tmp/$X` is `/tmp/` when X is empty).
    """
    text = path.replace("\\", "/").replace('"', "")
    parts = text.split("/")
    if ".." in parts or "\x00" in text:
        return False
    for root in compiled(rules).scratch_roots:
        if not text.startswith(root + "/"):
            continue
        rest = [part for part in text[len(root) + 1 :].split("/") if part and part != "."]
        if not rest:
            return False
        first = rest[0].strip("'")
        return bool(first.strip("*?[]{}.")) and not first.startswith(("$", "`", "{"))
    return False


@dataclass(frozen=True)
class PathFacts:
    """What the shared judge knows about one path."""

    protected: str | None = None  # why it is protected
    secret: bool = False


def facts(path: str, rules: PathRules = DEFAULT_RULES) -> PathFacts:
    return PathFacts(protected(path, rules), secret(path, rules))


#: What separates a path from the text around it in an option (`--file=X`, `@X`) or in code
#: (`open('X')`, `cat X;`).
_AROUND = re.compile(r"[\s'\"`()=,;:<>|&@{}]+")


def may_name_secret(text: str, rules: PathRules = DEFAULT_RULES) -> bool:
    """A cheap first test: False means no word of `text` names a secret file."""
    return _may_hold(compiled(rules).secret_needles, text)


def word_names_secret(word: str, rules: PathRules = DEFAULT_RULES) -> str | None:
    """The secret file a command word names or holds, or None: the word itself, the value of
    `--opt=VALUE`, a file given as `@FILE` (curl -d @file), a path quoted in code (`open('.env')`)."""
    if not _may_hold(compiled(rules).secret_needles, word):
        return None
    found = next((part for part in _AROUND.split(word) if part and secret(part, rules)), None)
    return found if found is not None or not secret(word, rules) else word


def text_names_protected(text: str, rules: PathRules = DEFAULT_RULES) -> str | None:
    """A protected path named in `text` (code, an option's value), as `PATH (why)`, or None."""
    for part in _AROUND.split(text):
        if "/" in part or part.startswith("."):
            why = protected(part, rules)
            if why is not None:
                return f"{part} ({why})"
    return None


#: Files whose change grants power: sudoers, accounts and groups, PAM, ssh logins.
_GRANTS_POWER = re.compile(
    r"(^|/)(authorized_keys2?$|sudoers(\.d)?(/|$)|doas\.conf$)|^/etc/(passwd|shadow|group|gshadow|pam\.d/|security/)"
)


def grants_power(path: str) -> bool:
    """True when changing `path` changes who may log in or act as root (tag `privilege`)."""
    return _GRANTS_POWER.search(folded(path)) is not None
