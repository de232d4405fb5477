"""The file classifier: what would writing, editing, deleting or reading this path do?

Used by agent hooks (Claude Code Write/Edit). `read` is read, `write`/`edit`/`create`/`append`
are write, `delete` is destructive. The path is normalised first (`a/../.git/config` is
`.git/config`, `\\` is `/`, case is ignored) and then matched against the protected paths below:
changing one is destructive + `protected-target`, because each is a way to take over the agent's
own controls, the repository's history or the machine. Reading a credential file is write +
`secrets` (+ `protected-target`): what it reveals lets the agent act outside Interlock.
"""

from __future__ import annotations

import fnmatch
import posixpath
from typing import Any

from interlock.classify.registry import ClassifyContext, register, unknown
from interlock.model import Classification, Kind, Risk

OPERATIONS = {
    "read": Risk.read,
    "write": Risk.write,
    "edit": Risk.write,
    "create": Risk.write,
    "append": Risk.write,
    "delete": Risk.destructive,
}

#: (glob over the normalised lower-case path, why it is protected). `**/` matches any depth.
PROTECTED_PATHS: tuple[tuple[str, str], ...] = (
    ("**/.git", "the repository's history"),
    ("**/.git/*", "git internals (hooks run code, config can point anywhere)"),
    ("**/.github/workflows/*", "CI workflows run with the repository's secrets"),
    ("**/.claude/settings*.json", "the agent's own permission settings"),
    ("**/.claude/hooks/*", "the agent's own hooks"),
    ("**/.codex/*", "the agent's own configuration"),
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
    ("**/*policy*.yaml", "an Interlock policy"),
    ("**/*policy*.yml", "an Interlock policy"),
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
#: Files whose contents are credentials: reading them is not harmless.
CREDENTIAL_PATHS = (
    "**/.ssh/id_*",
    "**/.ssh/*_key",
    "**/.aws/credentials",
    "**/.kube/config",
    "**/.docker/config.json",
    "**/.netrc",
    "**/.pgpass",
    "**/.env",
    "**/.env.*",
    "/etc/shadow",
    "/etc/gshadow",
    "**/*.pem",
    "**/*.key",
)


def normalise(path: str) -> str:
    """`./a/../.git//config` → `.git/config`; `~` stays as the home marker."""
    text = path.replace("\\", "/").strip()
    normal = posixpath.normpath(text)
    if text.startswith("//"):
        normal = "/" + normal.lstrip("/")  # POSIX keeps a leading //; it is the root all the same
    return normal


def matches(path: str, pattern: str) -> bool:
    if pattern.startswith("**/"):
        rest = pattern[3:]
        # Match at the start (relative path or ~/…) or below any directory.
        candidates = [path, *(path[i + 1 :] for i, c in enumerate(path) if c == "/")]
        return any(fnmatch.fnmatchcase(c, rest) for c in candidates)
    return fnmatch.fnmatchcase(path, pattern)


@register(Kind.file)
def classify_file(payload: dict[str, Any], context: ClassifyContext) -> Classification:
    operation = payload.get("operation")
    path = payload.get("path")
    if not isinstance(operation, str) or operation.lower() not in OPERATIONS:
        return unknown(f"file action with an unknown operation (expected one of {', '.join(OPERATIONS)})")
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        return unknown("file action without a usable `path`")
    operation = operation.lower()
    normal = normalise(path)
    # Case-insensitive file systems (macOS, Windows) make .GIT the same as .git, and Windows drops
    # trailing dots and spaces from names (`.git./config`).
    lower = "/".join(part.rstrip(". ") or part for part in normal.lower().split("/"))
    risk = OPERATIONS[operation]
    tags: set[str] = set()
    why = ""
    protected = next((reason for pattern, reason in PROTECTED_PATHS if matches(lower, pattern)), None)
    credential = any(matches(lower, pattern) for pattern in CREDENTIAL_PATHS)
    if credential:
        tags.add("secrets")
    if protected is not None:
        tags.add("protected-target")
        why = f": protected ({protected})"
        if risk is not Risk.read:
            risk = Risk.destructive
    if credential and risk is Risk.read:
        risk = Risk.write
        why = why or ": a credential file"
    details: dict[str, Any] = {"operation": operation, "path": normal, "protected": protected}
    if normal.startswith("../") or normal == "..":
        details["outside_workspace"] = True
    shown = normal if len(normal) <= 150 else "…" + normal[-149:]
    return Classification(risk=risk, tags=tuple(tags), summary=f"{operation} {shown}{why}", details=details)
