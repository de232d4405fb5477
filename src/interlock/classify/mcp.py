"""The MCP classifier: what would this tool call do?

A risk the policy declares for the tool (`ClassifyContext.mcp_tools`) is trusted as the tool's
risk; only the paths it is given may raise it (below). Otherwise the call is as risky as the
riskiest of these signals:

- the tool name's verb: read_/get_/list_/search_/describe_ … read; write_/create_/update_ …
  write; delete_/remove_/drop_ … destructive (anywhere in the name); any other name unknown;
- its arguments: `sql`/`query` text is judged by the SQL classifier, `command`/`cmd`/`script`
  by the shell classifier;
- the server's annotations, which come from the (untrusted) server and so may only raise the
  risk: `destructiveHint: true` → destructive, `readOnlyHint: false` → at least write. A
  `readOnlyHint: true` lowers nothing;
- its path arguments (`path`, `paths`, `source`, `destination`, `file`, …), judged by the shared
  judge of paths.py: a tool that changes anything given a protected path is destructive +
  `protected-target`; any tool given a secret file (`.env`, `~/.aws/credentials`) is at least
  write + `secrets`, the same answers as the file kind and the shell classifier give;
- a name that returns a secret's value (`get_secret`, `read_password`, `getApiKey`, `decrypt`, a
  kubectl tool getting `secrets`) discloses it: the registry makes it at least write + `secrets`;
  one that lists or describes secrets (`list_secrets`) stays read, tagged `secrets`.
"""

from __future__ import annotations

import functools
import itertools
import re
import shlex
from typing import Any

from interlock.classify import paths, registry
from interlock.classify.hunting import hunted
from interlock.classify.registry import DISCLOSES, ClassifyContext, register, unaccepted, unknown
from interlock.model import Classification, Kind, Risk

READ_VERBS = frozenset(
    {
        "read",
        "get",
        "list",
        "search",
        "describe",
        "fetch",
        "find",
        "view",
        "show",
        "lookup",
        "query",
        "count",
        "inspect",
        "browse",
        "stat",
        "tree",
        "head",
        "tail",
        "diff",
        "explain",
        "download",
        "check",
        "validate",
        "ping",
        "whoami",
        "preview",
        "peek",
        "print",
        "ls",
        "cat",
        "grep",
        "blame",
        "verify",
        "poll",
        "watch",
        "monitor",
        "trace",
        "compare",
        "summarize",
        "estimate",
        "resolve",
        "retrieve",
        "recall",
        "scan",
        # They always disclose (REVEALING_VERBS below), so a name holding one is never less than write.
        "reveal",
        "decrypt",
        "unwrap",
    }
)
#: Nouns a tool is named after when it shows them (`git_status`, `pod_logs`, `db_stats`, `info`): read,
#: when last and after nothing but names of things (`log_work`, `clear_logs` say something else).
SHOWN_NOUNS = frozenset(
    {"status", "log", "logs", "info", "stats", "schema", "details", "metrics", "usage", "version", "health",
     "overview", "summary", "history", "snapshot", "screenshot", "me"}
)
#: Names of things that may precede a shown noun (`git_status`, `kubectl_logs`, `collection_schema`).
THING_WORDS = frozenset(
    {"git", "github", "gitlab", "repo", "repository", "branch", "commit", "pr", "pull", "request", "issue", "k8s",
     "kube", "kubernetes", "kubectl", "pod", "pods", "node", "nodes", "cluster", "namespace", "deployment",
     "container", "docker", "helm", "release", "service", "server", "system", "app", "db", "database", "mongo",
     "mongodb", "redis", "postgres", "pg", "mysql", "sqlite", "collection", "table", "index", "job", "jobs",
     "workflow", "pipeline", "build", "queue", "topic", "stream", "cache", "disk", "memory", "cpu", "network",
     "api", "account", "user", "project", "browser", "page", "tab", "current", "my", "aws", "s3", "bucket",
     "instance", "function", "lambda", "connection", "session", "storage"}
)
WRITE_VERBS = frozenset(
    {
        "write",
        "create",
        "update",
        "edit",
        "move",
        "set",
        "add",
        "insert",
        "put",
        "post",
        "send",
        "upload",
        "rename",
        "append",
        "patch",
        "push",
        "commit",
        "merge",
        "comment",
        "label",
        "assign",
        "open",
        "close",
        "start",
        "restart",
        "deploy",
        "publish",
        "copy",
        "mkdir",
        "make",
        "save",
        "upsert",
        "enable",
        "tag",
        "apply",
        "install",
        "upgrade",
    }
)
DESTRUCTIVE_VERBS = frozenset(
    {
        "delete",
        "remove",
        "drop",
        "destroy",
        "kill",
        "purge",
        "truncate",
        "wipe",
        "erase",
        "terminate",
        "uninstall",
        "reset",
        "revoke",
        "unlink",
        "rm",
        "del",
        "rmdir",
        "force",
        "overwrite",
        "disable",
        "stop",
    }
)
INTERPRETER_VERBS = frozenset({"run", "exec", "execute", "eval", "shell", "bash", "python", "invoke", "call"})
SQL_ARGUMENTS = frozenset({"sql", "query", "statement"})
#: How deep into nested argument objects and lists to look for sql/command fields.
MAX_DEPTH = 6
SHELL_ARGUMENTS = frozenset({"command", "cmd", "script"})
SQL_STARTS = re.compile(
    r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(?i:select|with|insert|update|delete|drop|truncate|alter|create|grant|"
    r"revoke|copy|merge|call|do|execute|explain|vacuum|set|begin|commit|replace|upsert|show|table|values)\b",
    re.DOTALL,
)


@register(Kind.mcp)
def classify_mcp(payload: dict[str, Any], context: ClassifyContext) -> Classification:
    tool = payload.get("tool")
    server = payload.get("server", "")
    arguments = payload.get("arguments", {})
    annotations = payload.get("annotations", {})
    if not isinstance(tool, str) or not tool or not isinstance(server, str):
        return unaccepted(Kind.mcp, "mcp action needs a `tool` name (and `server` as text)")
    if not isinstance(arguments, dict) or not isinstance(annotations, dict):
        return unknown(f"mcp call {tool[:60]} whose arguments or annotations are not objects")
    where = f"{server[:60]}/{tool[:60]}" if server else tool[:60]
    declared = context.mcp_tools.get(tool)
    if declared is not None:
        given = path_signal(arguments, declared, context)
        risk, why = declared, f"{declared.value} as the policy declares"
        if given is not None and given[0].rank > declared.rank:
            risk, why = given[0], given[1]
        return Classification(
            risk=risk,
            tags=tuple(sorted(given[2])) if given is not None else (),
            summary=shorten(f"mcp {where}: {why}", 200),
            details={"tool": tool},
        )
    ran = code_it_runs(tool, arguments, context)
    signals: list[tuple[Risk, str]] = [name_risk(tool) if ran is None else (ran.risk, ran.summary)]
    tags: set[str] = set() if ran is None else set(ran.tags)
    for key, value in nested_fields(arguments) if ran is None else []:
        inner = argument_classification(key, value, context) or manifest_classification(key, value)
        if inner is not None:
            signals.append((inner.risk, f"{key}: {inner.summary}"))
            tags.update(inner.tags)
    # Hints only raise, so a truthy-looking value ("true", 1) counts as true here.
    if annotations.get("destructiveHint") in (True, "true", 1):
        signals.append((Risk.destructive, "the server marks it destructive"))
    if annotations.get("readOnlyHint") in (False, "false", 0):
        signals.append((Risk.write, "the server says it is not read-only"))
    if annotations.get("openWorldHint") in (True, "true", 1):
        tags.add("network")
    found = path_signal(arguments, Risk.highest([risk for risk, _ in signals]), context)
    if found is not None:
        signals.append((found[0], found[1]))
        tags.update(found[2])
    risk = Risk.highest([risk for risk, _ in signals])
    why = next(reason for r, reason in signals if r is risk)
    details: dict[str, Any] = {"server": server, "tool": tool,
                               "argument_names": sorted(str(k) for k in arguments)[:50]}
    words = name_words(tool)
    nouns = secret_nouns(words)
    disclosed = name_disclosure(tool, words, nouns, arguments) if ran is None else None
    if disclosed is not None:
        details[DISCLOSES] = disclosed
    if disclosed is not None or nouns or "secrets" in resource_kinds(arguments):
        tags.add("secrets")
    return Classification(risk=risk, tags=tuple(tags), summary=shorten(f"mcp {where}: {why}", 200), details=details)


#: Arguments that name a file or directory (the filesystem server's and most others' spellings).
PATH_ARGUMENTS = frozenset(
    {"path", "paths", "source", "sources", "destination", "dest", "src", "file", "files", "filename", "file_path",
     "filepath", "file_paths", "directory", "dir", "old_path", "new_path", "from", "to", "target", "target_path",
     "uri", "absolute_path", "relative_path", "notebook_path", "repo_path"}
)


def path_signal(arguments: dict[str, Any], risk: Risk, context: ClassifyContext) -> tuple[Risk, str, set[str]] | None:
    """What the call's path arguments add: a change (any risk above read) given a protected path is
    destructive + `protected-target`; a secret file given to any tool is at least write + `secrets`."""
    worst: tuple[Risk, str, set[str]] | None = None
    for key, value in nested_fields(arguments):
        if key.lower() not in PATH_ARGUMENTS:
            continue
        for path in value if isinstance(value, list) else [value]:
            if not isinstance(path, str) or not path.strip() or len(path) > 4096:
                continue
            path = path.removeprefix("file://")
            if risk is not Risk.read:
                why = paths.holds_protected(path, context.paths)
                if why is not None:
                    return Risk.destructive, f"{key} {shorten(path, 80)} is protected ({why})", {"protected-target"}
            if worst is None and paths.secret(path, context.paths):
                worst = (Risk.write, f"{key} {shorten(path, 80)} is a secret file", {"secrets"})
    return worst


def nested_fields(value: Any, depth: int = 0) -> list[tuple[str, Any]]:
    """Every (key, value) in nested objects and lists: `{"params": {"sql": …}}` is found too."""
    found: list[tuple[str, Any]] = []
    if depth > MAX_DEPTH:
        return found
    if isinstance(value, dict):
        for key, inner in value.items():
            found.append((str(key), inner))
            found.extend(nested_fields(inner, depth + 1))
    elif isinstance(value, list):
        for inner in value:
            found.extend(nested_fields(inner, depth + 1))
    return found


@functools.lru_cache(maxsize=1024)
def name_words(tool: str) -> tuple[str, ...]:
    """`delete_file`, `deleteFile`, `files.delete`, `github-delete-repo` → lower-case words. Cached: one call
    asks for them up to three times (the code it runs, the verb, the secrets it names)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", tool)
    return tuple(w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w)


def name_risk(tool: str) -> tuple[Risk, str]:
    words = name_words(tool)
    if any(w in DESTRUCTIVE_VERBS for w in words):
        return Risk.destructive, f"the tool name says it destroys ({tool[:60]})"
    if any(w in INTERPRETER_VERBS for w in words):
        return Risk.unknown, f"the tool runs code ({tool[:60]})"
    # The verb is usually first (read_file) but may follow a namespace (github_create_issue).
    for word in words:
        if word in WRITE_VERBS:
            return Risk.write, f"the tool name says it writes ({tool[:60]})"
        if word in READ_VERBS:
            return Risk.read, f"the tool name says it reads ({tool[:60]})"
    if words and words[-1] in SHOWN_NOUNS and all(word in THING_WORDS for word in words[:-1]):
        return Risk.read, f"the tool is named after what it shows ({tool[:60]})"
    return Risk.unknown, f"a tool whose name says nothing we know ({tool[:60]})"


#: Words naming a credential in a tool name (`get_secret`, `read_password`, `getApiKey` = get api key).
SECRET_NOUNS = frozenset(
    {"secret", "secrets", "password", "passwords", "passwd", "token", "tokens", "credential", "credentials",
     "creds", "apikey", "kubeconfig", "passphrase", "otp", "totp", "vault", "keyvault"}
)
#: Two-word credential names: the second word after the first (`api_key`, `private-key`, `access key`).
SECRET_PAIRS = frozenset({("api", "key"), ("api", "keys"), ("private", "key"), ("access", "key"),
                          ("access", "keys"), ("secret", "key"), ("ssh", "key"), ("connection", "string")})
#: Verbs that return only names or metadata of what they are given: `list_secrets`, `describe_secret`.
METADATA_VERBS = frozenset(
    {"list", "search", "describe", "count", "find", "ls", "check", "validate", "verify", "ping", "stat", "tree",
     "browse", "poll", "watch", "monitor", "scan", "explain", "estimate", "compare", "whoami", "delete", "remove",
     "revoke"}
)
#: Verbs that disclose whatever they are given: the answer is the plaintext.
REVEALING_VERBS = frozenset({"reveal", "decrypt", "unwrap"})
#: Verbs of Kubernetes tools that return whole objects (`kubectl_get`, `resources_get`, `resources_list`:
#: the API's list of Secrets carries their data too); `describe` shows key names and sizes.
OBJECT_VERBS = frozenset({"get", "list", "read", "fetch", "show", "view"})
#: Arguments naming a Kubernetes resource type (mcp-server-kubernetes' `kubectl_get {"resourceType"}`).
RESOURCE_ARGUMENTS = frozenset({"resourcetype", "resource_type", "resource", "kind", "type"})


#: Last words that make a credential word metadata: `get_token_usage` (an LLM's tokens),
#: `get_password_policy`, `get_secret_metadata`.
METADATA_TAILS = frozenset(
    {"usage", "count", "counts", "balance", "limit", "limits", "metadata", "status", "info", "policy", "policies",
     "expiry", "expiration", "names", "ids", "stats", "history", "rotation", "strength", "length", "price"}
)


#: Words without which a name names no credential (a quick test: most names hold none of them).
SECRET_HINTS = SECRET_NOUNS | {b for _, b in SECRET_PAIRS}


def secret_nouns(words: tuple[str, ...]) -> list[str]:
    """The credentials a tool name names (none when the name is about their metadata)."""
    if SECRET_HINTS.isdisjoint(words) or words[-1] in METADATA_TAILS:
        return []
    pairs = [f"{a} {b}" for a, b in itertools.pairwise(words) if (a, b) in SECRET_PAIRS]
    return [w for w in words if w in SECRET_NOUNS] + pairs


def resource_kinds(arguments: dict[str, Any]) -> set[str]:
    """The Kubernetes resource types a call's arguments name (`{"kind": "Secret"}` → `secrets`)."""
    kinds = {str(v).lower() for k, v in arguments.items() if k.lower() in RESOURCE_ARGUMENTS}
    return {kind if kind.endswith("s") else f"{kind}s" for kind in kinds}


def name_disclosure(tool: str, words: tuple[str, ...], nouns: list[str], arguments: dict[str, Any]) -> str | None:
    """What a call returns of a secret, judged by the tool's name (for `registry.DISCLOSES`), or None.
    The verb decides: the first known one (`get`, `read`, `create` …); listing and describing return
    names and metadata. A Kubernetes tool getting or listing `secrets` returns their data unless its output
    is names."""
    if not REVEALING_VERBS.isdisjoint(words):
        return f"what {tool[:60]} decrypts or reveals"
    if searches_content(words):
        looked_for = hunted(str(v) for k, v in arguments.items() if k.lower() in PATTERN_ARGUMENTS)
        if looked_for is not None:
            return f"the lines {tool[:60]} finds for {looked_for[:60]!r}"
    verb = next((w for w in words if w in READ_VERBS or w in WRITE_VERBS or w in DESTRUCTIVE_VERBS), "")
    if nouns and verb not in METADATA_VERBS:
        return f"the {nouns[0]} {tool[:60]} returns"
    if verb not in OBJECT_VERBS:
        return None
    output = str(arguments.get("output", "json")).lower()
    if "secrets" in resource_kinds(arguments) and output not in ("name", "wide"):
        return f"Secrets' data ({tool[:60]} prints objects as {output})"
    return None


#: A tool that prints the lines of files or code matching a pattern (`grep`, `ripgrep`, `search_code`,
#: `search_content`); `search_files` matches names (the filesystem server's), not contents.
GREP_WORDS = frozenset({"grep", "ripgrep", "rg", "ag", "ack", "egrep", "fgrep"})
CONTENT_WORDS = frozenset({"content", "contents", "code", "text", "lines"})
#: Arguments that hold what a search looks for.
PATTERN_ARGUMENTS = frozenset({"pattern", "patterns", "query", "q", "regex", "regexp", "search", "term", "terms",
                               "keyword", "keywords", "text", "expression"})


def searches_content(words: tuple[str, ...]) -> bool:
    return not GREP_WORDS.isdisjoint(words) or (
        ("search" in words or "find" in words) and not CONTENT_WORDS.isdisjoint(words))


#: Words a tool name may hold besides "runs code" and still say nothing else (`run_shell_command`,
#: `postgres_execute_sql`); any other word (`exec_in_pod`, `run_workflow`) says where or what else.
CODE_WORDS = frozenset(
    {"command", "commands", "cmd", "shell", "bash", "sh", "terminal", "script", "sql", "query", "queries",
     "statement", "in", "a", "postgres", "postgresql", "pg", "mysql", "sqlite", "db", "database"}
)
#: Code arguments and the kind that judges them.
CODE_ARGUMENTS = {"command": Kind.shell, "cmd": Kind.shell, "script": Kind.shell, "sql": Kind.sql,
                  "query": Kind.sql, "statement": Kind.sql}
#: Arguments that change nothing about what the code does (bind parameters are values, never code).
INERT_ARGUMENTS = frozenset(
    {"timeout", "timeout_ms", "timeout_seconds", "description", "reason", "explanation", "params", "parameters"}
)


def code_it_runs(tool: str, arguments: dict[str, Any], context: ClassifyContext) -> Classification | None:
    """A tool whose only signal is "it runs code" (`run_command`, `execute_sql`, `exec`) is as risky as
    the code in its arguments, judged by that code's classifier. None when the name says anything else
    or an argument is one no classifier understands (a `cwd`, an `env`): the call then stays `unknown`.

    This loosens "riskiest signal wins" for that one case only; the server's hints may still raise.
    """
    words = name_words(tool)
    if not any(w in INTERPRETER_VERBS for w in words) or not all(w in INTERPRETER_VERBS | CODE_WORDS for w in words):
        return None
    code = {key: value for key, value in arguments.items() if key.lower() in CODE_ARGUMENTS}
    if not code or any(key.lower() not in INERT_ARGUMENTS for key in arguments if key not in code):
        return None
    judged: list[Classification] = []
    for key, value in code.items():
        kind = CODE_ARGUMENTS[key.lower()]
        if kind is Kind.shell and isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = shlex.join(value)
        if not isinstance(value, str):
            return None
        found = registry.classify(kind, {TEXT_FIELDS[kind]: value}, context)
        judged.append(found.model_copy(update={"summary": f"runs {kind.value} {key}: {found.summary}"}))
    worst = max(judged, key=lambda c: (c.risk.rank, c.risk is Risk.unknown))
    tags = {tag for c in judged for tag in c.tags}
    return worst.model_copy(update={"tags": tuple(sorted(tags))})


TEXT_FIELDS = {Kind.shell: "command", Kind.sql: "sql"}
#: Arguments that carry Kubernetes manifests (mcp-server-kubernetes' `kubectl_apply {"manifest": …}`).
MANIFEST_ARGUMENTS = frozenset({"manifest", "manifests", "yaml"})


def manifest_classification(key: str, value: Any) -> Classification | None:
    """RBAC in a manifest argument: the same judge as kubectl's (cluster-admin bindings, `*` rules)."""
    if key.lower() not in MANIFEST_ARGUMENTS or not isinstance(value, str):
        return None
    from interlock.classify.kubectl import manifest_privilege  # imported here: few calls carry manifests

    found = manifest_privilege(value)
    if found is None:
        return None
    return Classification(risk=found[0], tags=("privilege",), summary=f"the manifest {found[1]}")


def argument_classification(key: str, value: Any, context: ClassifyContext) -> Classification | None:
    name = key.lower()
    if name in SQL_ARGUMENTS and isinstance(value, str):
        # A `query` argument is also what search tools take; judge it as SQL only when it reads as SQL.
        if name == "sql" or SQL_STARTS.match(value):
            return registry.classify(Kind.sql, {"sql": value}, context)
        return None
    if name in SHELL_ARGUMENTS:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = shlex.join(value)
        if isinstance(value, str):
            return registry.classify(Kind.shell, {"command": value}, context)
        return Classification(risk=Risk.unknown, summary=f"a {key} argument that is not text")
    return None


def shorten(text: str, limit: int) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
