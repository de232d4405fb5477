"""The file classifier: what would writing, editing, deleting or reading this path do?

Used by agent hooks (Claude Code Write/Edit). `read` is read, `write`/`edit`/`create`/`append`
are write, `delete` is destructive. The path is normalised first (`a/../.git/config` is
`.git/config`, `\\` is `/`, case is ignored) and then judged by the shared judge of
protected paths and secret files (paths.py; the policy's `paths:` section adds to its lists):
changing one is destructive + `protected-target`, because each is a way to take over the agent's
own controls, the repository's history or the machine. Reading a credential file is write +
`secrets` (+ `protected-target`): what it reveals lets the agent act outside Interlock.
"""

from __future__ import annotations

from typing import Any

from interlock.classify import paths
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

@register(Kind.file)
def classify_file(payload: dict[str, Any], context: ClassifyContext) -> Classification:
    operation = payload.get("operation")
    path = payload.get("path")
    if not isinstance(operation, str) or operation.lower() not in OPERATIONS:
        return unknown(f"file action with an unknown operation (expected one of {', '.join(OPERATIONS)})")
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        return unknown("file action without a usable `path`")
    operation = operation.lower()
    normal = paths.normalise(path)
    risk = OPERATIONS[operation]
    tags: set[str] = set()
    why = ""
    protected = paths.protected(path, context.paths)
    credential = paths.secret(path, context.paths)
    if credential:
        tags.add("secrets")
    if risk is not Risk.read and paths.grants_power(path):
        tags.add("privilege")
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
