"""Agent hooks: coding agents ask Interlock before every tool call.

Claude Code and Codex (PreToolUse) are spoken here; Gemini CLI, GitHub Copilot CLI and Cursor are
thin dialects over this module (`hook_gemini.py`, `hook_copilot.py`, `hook_cursor.py`): each turns
its agent's stdin into `ProposedAction`s and a `HookAnswer` into its agent's answer; proposing, waiting,
the client choice and the failure rule are this module's, the words `answers.py`'s.

The agent runs the hook as a process per tool call, feeding the PreToolUse JSON on stdin
(`session_id`, `cwd`, `hook_event_name`, `tool_name`, `tool_input`, `tool_use_id`, …). The hook
turns the call into one or more advisory actions, proposes them, waits (bounded) for approvals,
and answers on stdout:

- Claude Code: `{"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision":
  "allow"|"deny", "permissionDecisionReason": …}}`, exit 0.
- Codex: a deny is the same JSON (exit 0); an allow is an empty stdout, because Codex refuses
  `permissionDecision: "allow"` without `updatedInput` as unsupported output (its own approval
  flow then continues, which is what "allowed by Interlock" should mean there).

Every internal error (gateway down, bad stdin, timeout, anything) exits 2 with the reason on
stderr: both agents block the tool on exit 2, while Claude Code RUNS the tool on other non-zero
codes, so no other code is ever used for a failure.

`ask` (Claude Code lets the person at the keyboard decide) is used only with
`--owner-may-decide`: the person at the keyboard is usually the agent's owner, who never counts
as an approver of the agent's actions (DESIGN.md §3.4), so handing them the decision is an
explicit opt-in, never a default. Codex treats `ask` as unsupported output and runs the tool, so
the flag is refused there.

This module is the lean start-up path (`interlock-hook`): it imports only the standard library
at load time and speaks HTTP/1.1 to the gateway itself, so a hook call costs a process start and
one loopback round trip, not an httpx/pydantic import.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

from interlock import answers
from interlock.vocabulary import (
    DEFAULT_DB,
    ENV_AGENT,
    ENV_DB,
    ENV_ENV,
    ENV_KEY_DIR,
    ENV_POLICY,
    ENV_TOKEN,
    ENV_URL,
    Given,
    Remote,
    UsageError,
    choose_client,
)

# `typing` and `dataclasses` cost more start-up than the rest of the hook: type-checking only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    class Proposer(Protocol):
        def propose(self, kind: str, environment: str, payload: dict[str, Any], *, target: str | None = None,
                    rationale: Any = None, mode: str = "brokered") -> dict[str, Any]: ...

        def wait(self, action_id: str, timeout: float) -> dict[str, Any]: ...

    class Dialect(Protocol):
        """One agent's hook language (a module or an object with these names)."""

        NO_ASK: str

        def actions(self, text: str) -> list[ProposedAction]: ...

        def render(self, answer: HookAnswer) -> str: ...

        def blocked(self, reason: str) -> str: ...

#: The agents a hook speaks for. Claude Code and Codex are spoken here; the others by their dialect
#: module, imported only when that agent's hook runs.
DIALECTS = {"gemini": "interlock.integrations.hook_gemini", "copilot": "interlock.integrations.hook_copilot",
            "cursor": "interlock.integrations.hook_cursor"}
FLAVORS = ("claude-code", "codex", *DIALECTS)
DEFAULT_WAIT = 120.0
#: The gateway's long poll answers within its timeout; this margin covers the round trip.
HTTP_MARGIN = 10.0
#: Answers are a few kB; anything this large is not the gateway speaking.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
SHELL_TOOLS = frozenset({"Bash", "shell", "local_shell", "shell_command", "exec_command", "container.exec"})
WRITE_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
READ_TOOLS = frozenset({"Read", "Glob", "Grep", "LS", "NotebookRead"})
PATCH_TOOLS = frozenset({"apply_patch"})
#: What `install` registers the hook for, per agent (regex matchers, as both agents read them).
MATCHERS = {
    "claude-code": "Bash|Write|Edit|MultiEdit|NotebookEdit|Read|Glob|Grep|LS|WebFetch|mcp__.*",
    "codex": "Bash|apply_patch|Write|Edit|mcp__.*",
}


class HookError(Exception):
    """Anything that keeps the hook from a clear answer: the hook exits 2 (the tool is blocked)."""


# --- the tool call → actions (pure) ------------------------------------------------------------


class ProposedAction:
    __slots__ = ("kind", "payload", "rationale")

    def __init__(self, kind: str, payload: dict[str, Any], rationale: dict[str, str] | None = None) -> None:
        self.kind, self.payload, self.rationale = kind, payload, rationale

    def __repr__(self) -> str:
        return f"ProposedAction({self.kind!r}, {self.payload!r}, {self.rationale!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProposedAction) and \
            (self.kind, self.payload, self.rationale) == (other.kind, other.payload, other.rationale)

    __hash__ = None  # type: ignore[assignment]


def json_object(text: str, event: str) -> dict[str, Any]:
    """The hook input on stdin as a JSON object (`event` names the agent's hook event in errors)."""
    if not text.strip():
        raise HookError(f"no {event} JSON on stdin: run this hook from the agent's {event} hook settings")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise HookError(f"stdin is not JSON ({exc}): expected the agent's {event} hook input") from exc
    if not isinstance(value, dict):
        raise HookError(f"stdin JSON is not an object: expected the agent's {event} hook input")
    return value


def arguments(value: Any, tool: str, field: str) -> dict[str, Any]:
    """A tool's arguments: an object, or a JSON string holding one (Copilot's `toolArgs`, Cursor's MCP
    `tool_input`); absent is no arguments."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError as exc:
            raise HookError(f"`{field}` of {tool} is a string but not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise HookError(f"`{field}` of {tool} is not an object")
    return value


def parse_event(text: str) -> dict[str, Any]:
    """The PreToolUse JSON from stdin, checked for the fields the hook relies on."""
    event = json_object(text, "PreToolUse")
    name = event.get("hook_event_name", "PreToolUse")
    if name != "PreToolUse":
        raise HookError(f"hook_event_name is {name!r}: this hook handles PreToolUse only; "
                        "register it under PreToolUse in the agent's settings")
    if not isinstance(event.get("tool_name"), str) or not event["tool_name"]:
        raise HookError("PreToolUse input without a `tool_name` string")
    tool_input = event.get("tool_input", {})
    if not isinstance(tool_input, dict):
        raise HookError(f"`tool_input` of {event['tool_name']} is not an object")
    event["tool_input"] = tool_input
    return event


def text_field(tool: str, tool_input: dict[str, Any], *keys: str) -> str:
    """The first of `keys` that holds text (or an argv, joined); none is an error (fail closed)."""
    for key in keys:
        value = tool_input.get(key)
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            import shlex

            return shlex.join(value)  # an argv, as some Codex shell tools send it
    raise HookError(f"{tool} input has no usable {' or '.join(repr(k) for k in keys)}")


def file_action(operation: str, path: str, **extra: Any) -> ProposedAction:
    return ProposedAction("file", {"operation": operation, "path": path, **extra})


# The building blocks every agent's adapter (this module's Claude Code and Codex, hook_gemini,
# hook_copilot, hook_cursor) maps its tool calls with, so one action kind is proposed one way.


def cwd_of(event: dict[str, Any]) -> str | None:
    """The agent's working directory, when the event says it."""
    cwd = event.get("cwd")
    return cwd if isinstance(cwd, str) else None


def shell_action(command: str, why: Any = None) -> ProposedAction:
    """A shell command; the agent's own description of it, when it gave one, is the rationale."""
    return ProposedAction("shell", {"command": command},
                          {"intent": why[:4000]} if isinstance(why, str) and why.strip() else None)


def read_action(tool: str, path: Any, args: dict[str, Any], *patterns: str) -> ProposedAction:
    """A read of `path` (a search without a path reads below cwd: the adapter passes cwd then), with
    the search's pattern arguments named in `patterns`. Reads are judged too: a credential file is
    not harmless, and the file classifier says so."""
    if not isinstance(path, str) or not path:
        raise HookError(f"{tool} input has no path and the event has no cwd")
    return file_action("read", path, **{k: args[k] for k in patterns if isinstance(args.get(k), str)})


def mcp_action(server: str, tool: str, args: dict[str, Any]) -> ProposedAction:
    return ProposedAction("mcp", {"server": server, "tool": tool, "arguments": args, "annotations": {}})


def mcp_name(tool: str, server: str | None = None) -> tuple[str, str]:
    """(server, tool) of an `mcp__<server>__<tool>` name (Claude Code's, Codex's and Gemini's spelling);
    `server`, when the agent names it apart, wins over the one in the name."""
    named, _, name = tool[len("mcp__"):].partition("__")
    server = server or named
    if not server or not name:
        raise HookError(f"MCP tool name {tool!r} is not mcp__<server>__<tool>")
    return server, name


def http_get(url: str) -> ProposedAction:
    return ProposedAction("http", {"method": "GET", "url": url, "headers": {}, "body": None})


def picked(args: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The arguments among `keys` that the call has (an edit's old and new text, and so on)."""
    return {k: args[k] for k in keys if k in args}


def absolute(path: str, cwd: str | None) -> str:
    """`path` as the agent meant it: relative paths are below its working directory."""
    return os.path.join(cwd, path) if cwd and not os.path.isabs(path) else path


def settings_path(user: bool, project_dir: str, folder: str, name: str) -> str:
    """Where `hook install` writes: `~/<folder>/<name>` with --user, else below the project."""
    return os.path.join(os.path.expanduser("~") if user else project_dir, folder, name)


def actions_for(event: dict[str, Any]) -> list[ProposedAction]:
    """The actions a tool call amounts to. A tool with no mapping is an error (fail closed)."""
    tool: str = event["tool_name"]
    args: dict[str, Any] = event["tool_input"]
    cwd = cwd_of(event)
    if tool in SHELL_TOOLS:
        why = args.get("description") or args.get("justification")
        return [shell_action(text_field(tool, args, "command", "cmd"), why)]
    if tool == "Write":
        return [file_action("write", text_field(tool, args, "file_path", "path"), content=str(args.get("content", "")))]
    if tool == "Edit":
        edit = picked(args, "old_string", "new_string", "replace_all")
        return [file_action("edit", text_field(tool, args, "file_path", "path"), edits=[edit])]
    if tool == "MultiEdit":
        edits = args.get("edits")
        if not isinstance(edits, list):
            raise HookError("MultiEdit input has no `edits` list")
        return [file_action("edit", text_field(tool, args, "file_path", "path"), edits=edits)]
    if tool == "NotebookEdit":
        change = picked(args, "cell_id", "cell_type", "edit_mode", "new_source")
        return [file_action("edit", text_field(tool, args, "notebook_path", "file_path"), edits=[change])]
    if tool in READ_TOOLS:
        # Glob/Grep without a path read below the working directory.
        path = args.get("file_path") or args.get("notebook_path") or args.get("path") or cwd
        return [read_action(tool, path, args, "pattern", "glob")]
    if tool == "WebFetch":
        return [http_get(text_field(tool, args, "url"))]
    if tool.startswith("mcp__"):
        return [mcp_action(*mcp_name(tool), args)]
    if tool in PATCH_TOOLS:
        return patch_actions(text_field(tool, args, "command", "patch", "input"))
    raise HookError(f"Interlock has no mapping for tool {tool!r}, so it cannot judge it: remove it from the hook's "
                    "matcher if it touches nothing outside the agent, or ask for a mapping")


PATCH_HEADERS = (("*** Add File: ", "write"), ("*** Update File: ", "edit"), ("*** Delete File: ", "delete"),
                 ("*** Move to: ", "write"))


def patch_actions(patch: str) -> list[ProposedAction]:
    """Codex `apply_patch`: one file action per file the patch adds, updates, deletes or moves to,
    each carrying its own section of the patch (so an approval binds to those exact lines)."""
    actions: list[ProposedAction] = []
    current: tuple[str, str] | None = None
    lines: list[str] = []

    def flush() -> None:
        if current is not None:
            actions.append(file_action(current[1], current[0], content="\n".join(lines)))

    for line in patch.splitlines():
        header = next(((line[len(p):].strip(), op) for p, op in PATCH_HEADERS if line.startswith(p)), None)
        if header is not None and header[1] == "write" and line.startswith("*** Move to: "):
            actions.append(file_action("write", header[0], content=f"moved from {current[0] if current else '?'}"))
            continue
        if header is not None:
            flush()
            current, lines = header, []
            continue
        if current is not None and line != "*** End Patch":
            lines.append(line)
    flush()
    if not actions or any(not a.payload["path"] for a in actions):
        raise HookError("apply_patch input names no file (expected `*** Add/Update/Delete File: <path>` lines)")
    return actions


# --- the answer (pure) -------------------------------------------------------------------------


class HookAnswer:
    __slots__ = ("action_ids", "decision", "reason")

    def __init__(self, decision: str, reason: str, action_ids: list[str] | None = None) -> None:
        self.decision = decision  # allow | deny | ask
        self.reason = reason
        self.action_ids = action_ids or []

    def __repr__(self) -> str:
        return f"HookAnswer({self.decision!r}, {self.reason!r}, {self.action_ids!r})"


def render(flavor: str, answer: HookAnswer) -> str:
    """What the hook prints on stdout (exit 0) for an answer."""
    if flavor == "codex" and answer.decision == "allow":
        return ""
    return json.dumps({"hookSpecificOutput": {"hookEventName": "PreToolUse",
                                              "permissionDecision": answer.decision,
                                              "permissionDecisionReason": answer.reason}})


class PreToolUse:
    """The Claude Code / Codex dialect (one input, two ways to say allow; see the module docstring)."""

    def __init__(self, flavor: str) -> None:
        self.flavor = flavor
        #: Why `--owner-may-decide` is refused for this agent ("" : it is not).
        self.NO_ASK = "for Codex: Codex runs the tool on an `ask` answer" if flavor == "codex" else ""

    def actions(self, text: str) -> list[ProposedAction]:
        return actions_for(parse_event(text))

    def render(self, answer: HookAnswer) -> str:
        return render(self.flavor, answer)

    def blocked(self, reason: str) -> str:
        return ""  # exit 2 with the reason on stderr is the blocking answer both agents document


def dialect_for(flavor: str) -> Dialect:
    """The dialect a hook speaks for `flavor`: `actions(stdin)`, `render(answer)`, `blocked(reason)`
    (stdout beside exit 2) and `NO_ASK`. Other agents' modules are imported only for their hook."""
    if flavor in ("claude-code", "codex"):
        return PreToolUse(flavor)
    if flavor not in DIALECTS:
        raise HookError(f"unknown agent {flavor!r}: use one of {', '.join(FLAVORS)}")
    import importlib

    return importlib.import_module(DIALECTS[flavor])  # a module is the dialect


def explain(body: dict[str, Any], wait: float) -> HookAnswer | None:
    """None when the settled proposal may run; else the deny answer with `answers.explain`'s words."""
    if answers.may_run(body):
        return None
    return HookAnswer("deny", answers.explain(body, waited=wait), [str(body.get("id", ""))])


# --- talking to the gateway ----------------------------------------------------------------------


def split_url(url: str) -> tuple[str, str, int | None, str]:
    """(scheme, host, port, path) of an http(s) URL (urllib.parse costs start-up time; this is all we need)."""
    bad = HookError(f"--gateway {url!r} is not an http(s) URL like http://127.0.0.1:8700")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or any(c in url for c in " \r\n\t@?#"):
        raise bad
    authority, slash, path = rest.partition("/")
    if authority.startswith("["):  # IPv6 literal
        host, close, after = authority[1:].partition("]")
        if not close or (after and not after.startswith(":")):
            raise bad
        port_text = after[1:]
    else:
        host, _, port_text = authority.partition(":")
    if not host or (port_text and (not port_text.isdigit() or not 0 < int(port_text) < 65536)):
        raise bad
    return scheme.lower(), host, int(port_text) if port_text else None, slash + path


class GatewayClient:
    """The two agent endpoints the hook needs, over a raw HTTP/1.1 connection per request (http://;
    https:// goes through http.client and ssl). Any failure is a HookError: the hook blocks the tool."""

    def __init__(self, url: str, token: str, *, timeout: float = 10.0) -> None:
        scheme, host, port, path = split_url(url)
        if not token or any(c in token for c in "\r\n\0 "):
            raise HookError("the Interlock token is empty or malformed: set INTERLOCK_TOKEN (or --token) to the "
                            "agent's token from `interlock token create`")
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout
        self.tls = scheme == "https"
        self.host, self.port, self.base = host, port or (443 if self.tls else 80), path.rstrip("/")

    def propose(self, kind: str, environment: str, payload: dict[str, Any], *, target: str | None = None,
                rationale: Any = None, mode: str = "brokered") -> dict[str, Any]:
        body: dict[str, Any] = {"kind": kind, "environment": environment, "payload": payload, "mode": mode}
        if target is not None:
            body["target"] = target
        if rationale is not None:
            body["rationale"] = rationale
        return self._call("POST", "/v1/actions", body, self.timeout)

    def wait(self, action_id: str, timeout: float) -> dict[str, Any]:
        def poll(seconds: float) -> dict[str, Any]:
            return self._call("POST", f"/v1/actions/{action_id}/wait?timeout={seconds:.3f}", None,
                              seconds + HTTP_MARGIN)

        return dict(answers.wait(poll, timeout))

    def _call(self, method: str, path: str, body: Any, timeout: float) -> dict[str, Any]:
        data = b"" if body is None else json.dumps(body).encode()
        try:
            status, raw = (self._https if self.tls else self._http)(method, self.base + path, data, timeout)
        except (OSError, ValueError) as exc:
            raise HookError(f"cannot reach the Interlock gateway at {self.url}: {type(exc).__name__}: {exc}; "
                            "the tool call is blocked (fail closed)") from exc
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = None
        if 200 <= status < 300 and isinstance(answer, dict):
            return answer
        error = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(error, dict):
            detail = f"{error.get('code')}: {error.get('message')}"
        elif isinstance(answer, dict) and answer.get("reasons"):
            detail = answers.listing(answer["reasons"])
        else:
            detail = raw[:200].decode("utf-8", "replace")
        raise HookError(f"the Interlock gateway answered {status} to {method} {path.split('?')[0]}: {detail}; "
                        "the tool call is blocked (fail closed)")

    def _http(self, method: str, path: str, data: bytes, timeout: float) -> tuple[int, bytes]:
        deadline = time.monotonic() + timeout
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal keeps its brackets
        head = (f"{method} {path} HTTP/1.1\r\nHost: {host}:{self.port}\r\n"
                f"Authorization: Bearer {self.token}\r\nUser-Agent: interlock-hook\r\nAccept: application/json\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n")
        chunks: list[bytes] = []
        received = 0
        with socket.create_connection((self.host, self.port), timeout=timeout) as conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sendall(head.encode("latin-1") + data)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no complete answer within {timeout:g} s")
                conn.settimeout(remaining)
                chunk = conn.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                received += len(chunk)
                if received > MAX_ANSWER_BYTES:
                    raise ValueError(f"the gateway's answer is over {MAX_ANSWER_BYTES} bytes")
        return parse_response(b"".join(chunks))

    def _https(self, method: str, path: str, data: bytes, timeout: float) -> tuple[int, bytes]:
        import http.client

        conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers={
                "Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                "User-Agent": "interlock-hook"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


def parse_response(raw: bytes) -> tuple[int, bytes]:
    """(status, body) of a complete HTTP/1.1 response read until the server closed the connection."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("the gateway closed the connection before a complete HTTP answer")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP status line: {lines[0][:80]!r}")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = _dechunk(body)
    elif (length := headers.get(b"content-length")) is not None:
        if len(body) < int(length):
            raise ValueError("the gateway's answer was cut short")
        body = body[: int(length)]
    return int(parts[1]), body


def _dechunk(body: bytes) -> bytes:
    out: list[bytes] = []
    while True:
        size_line, sep, rest = body.partition(b"\r\n")
        if not sep:
            raise ValueError("a chunked answer was cut short")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(rest[:size])
        body = rest[size + 2:]


# --- one hook call -----------------------------------------------------------------------------


class HookSettings:
    """How one hook call runs: which agent dialect, environment, gateway (or in-process policy)."""

    def __init__(self, flavor: str, *, env: str | None = None, target: str | None = None,
                 gateway: str | None = None, token: str | None = None, policy: str | None = None,
                 agent: str | None = None, db: str = DEFAULT_DB, key_dir: str | None = None,
                 wait: float = DEFAULT_WAIT, owner_may_decide: bool = False, http_timeout: float = 10.0) -> None:
        self.flavor, self.env, self.target = flavor, env, target
        self.gateway, self.token, self.policy, self.agent = gateway, token, policy, agent
        self.db, self.key_dir, self.wait = db, key_dir, wait
        self.owner_may_decide, self.http_timeout = owner_may_decide, http_timeout
        #: Options typed on the command line (they beat INTERLOCK_* variables in the client choice).
        self.typed = {name for name in ("gateway", "policy") if getattr(self, name)}

    @staticmethod
    def from_env(flavor: str, **given: Any) -> HookSettings:
        """Options given on the command line win over INTERLOCK_* variables."""
        settings = HookSettings(flavor=flavor, **{k: v for k, v in given.items() if v is not None})
        settings.env = settings.env or os.environ.get(ENV_ENV)
        settings.gateway = settings.gateway or os.environ.get(ENV_URL)
        settings.token = settings.token or os.environ.get(ENV_TOKEN)
        settings.policy = settings.policy or os.environ.get(ENV_POLICY)
        settings.agent = settings.agent or os.environ.get(ENV_AGENT)
        if given.get("db") is None:
            settings.db = os.environ.get(ENV_DB, DEFAULT_DB)
        settings.key_dir = settings.key_dir or os.environ.get(ENV_KEY_DIR)
        return settings


def client_for(settings: HookSettings) -> Proposer:
    try:
        chosen = choose_client(gateway=Given(settings.gateway, "gateway" in settings.typed),
                               policy=Given(settings.policy, "policy" in settings.typed), token=settings.token,
                               agent=settings.agent, db=settings.db, key_dir=settings.key_dir)
    except UsageError as exc:
        raise HookError(str(exc)) from None
    if isinstance(chosen, Remote):
        return GatewayClient(chosen.url, chosen.token, timeout=settings.http_timeout)
    from interlock.client import LocalClient

    return LocalClient.chosen(chosen)


def decide(client: Proposer, settings: HookSettings, actions: list[ProposedAction]) -> HookAnswer:
    """Propose every action of the tool call (advisory); the call runs only if all may run."""
    assert settings.env is not None
    deadline = time.monotonic() + settings.wait
    ids: list[str] = []
    summaries: list[str] = []
    for action in actions:
        body = client.propose(action.kind, settings.env, action.payload, target=settings.target,
                              rationale=action.rationale, mode="advisory")
        if body.get("state") == "pending_approval":
            if settings.owner_may_decide:
                return HookAnswer("ask", f"Interlock: {answers.approval_needed(body)}; the hook's --owner-may-decide "
                                      "hands the decision to you.", [str(body["id"])])
            body = client.wait(str(body["id"]), max(deadline - time.monotonic(), 0.0))
        refusal = explain(body, settings.wait)
        if refusal is not None:
            refusal.action_ids = [*ids, *refusal.action_ids]
            return refusal
        ids.append(str(body.get("id", "")))
        summaries.append(f"{body.get('summary') or action.kind} ({body.get('state')})")
    return HookAnswer("allow", "Interlock: " + "; ".join(summaries), ids)


def run(settings: HookSettings, stdin_text: str,
        make_client: Callable[[HookSettings], Proposer] = client_for) -> tuple[str, str, int]:
    """(stdout, stderr, exit code) of one hook call. Never raises: every failure is exit 2 (every
    agent here blocks the tool on it), with the dialect's blocking answer on stdout where it has one."""
    dialect: Dialect | None = None
    try:
        dialect = dialect_for(settings.flavor)
        if not settings.env:
            raise HookError("no environment: pass --env ENV or set INTERLOCK_ENV")
        if settings.owner_may_decide and dialect.NO_ASK:
            raise HookError(f"--owner-may-decide is refused {dialect.NO_ASK}")
        if settings.wait < 0:
            raise HookError("--wait must be 0 or more seconds")
        actions = dialect.actions(stdin_text)
        client = make_client(settings)
        try:
            answer = decide(client, settings, actions)
        finally:
            close = getattr(client, "close", None)
            if callable(close):
                close()
        return dialect.render(answer), "", 0
    except HookError as exc:
        reason = f"interlock hook: {exc}"
    except Exception as exc:  # fail closed on anything: exit 2 blocks the tool in every agent here
        reason = f"interlock hook: internal error, the tool call is blocked: {type(exc).__name__}: {exc}"
    try:
        out = dialect.blocked(reason) if dialect is not None else ""
    except Exception:  # a dialect that cannot word its refusal still blocks: exit 2
        out = ""
    return out, reason + "\n", 2


def read_stdin(limit: int = 8 * 1024 * 1024) -> str:
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise HookError(f"PreToolUse input over {limit} bytes")
    return data.decode("utf-8")


def execute(settings: HookSettings) -> int:
    """Read stdin, answer on stdout/stderr, return the exit code (for both CLIs)."""
    try:
        text = read_stdin()
    except (HookError, OSError, UnicodeDecodeError) as exc:
        sys.stderr.write(f"interlock hook: cannot read the PreToolUse input: {exc}\n")
        return 2
    out, err, code = run(settings, text)
    if out:
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
    if err:
        sys.stderr.write(err)
    return code


# --- `interlock-hook`: the lean console script -----------------------------------------------------


USAGE = """usage: interlock-hook claude-code|codex|gemini|copilot|cursor
                     [--env ENV] [--target T] [--gateway URL] [--token TOKEN]
                     [--policy FILE --agent NAME [--db URL] [--key-dir DIR]] [--wait SECONDS]
                     [--owner-may-decide]

The Interlock hook (PreToolUse, BeforeTool, preToolUse, beforeShellExecution, …): reads the agent's tool
call on stdin, answers on stdout in that agent's words; every failure exits 2, which blocks the tool.
Options may also come from INTERLOCK_ENV, INTERLOCK_URL, INTERLOCK_TOKEN, INTERLOCK_POLICY, INTERLOCK_AGENT,
INTERLOCK_DB and INTERLOCK_KEY_DIR (an option on the command line wins; docs/cli.md).
"""
_OPTIONS = {"--env": "env", "--target": "target", "--gateway": "gateway", "--token": "token", "--policy": "policy",
            "--agent": "agent", "--db": "db", "--key-dir": "key_dir", "--wait": "wait"}


def parse_args(argv: list[str]) -> HookSettings:
    """The lean script's arguments (argparse alone costs a tenth of the hook's start-up)."""
    if not argv or argv[0] not in FLAVORS:
        raise HookError(f"the first argument must be one of {', '.join(FLAVORS)}\n{USAGE}")
    given: dict[str, Any] = {}
    rest = iter(argv[1:])
    for arg in rest:
        name, eq, inline = arg.partition("=")
        if arg == "--owner-may-decide":
            given["owner_may_decide"] = True
        elif name in _OPTIONS:
            value = inline if eq else next(rest, None)
            if value is None:
                raise HookError(f"{name} needs a value\n{USAGE}")
            given[_OPTIONS[name]] = value
        else:
            raise HookError(f"unknown argument {arg!r}\n{USAGE}")
    if "wait" in given:
        try:
            given["wait"] = float(given["wait"])
        except ValueError:
            raise HookError(f"--wait {given['wait']!r} is not a number of seconds") from None
    return HookSettings.from_env(argv[0], **given)


def main(argv: list[str] | None = None) -> None:
    """`interlock-hook AGENT [options]`: the same as `interlock hook …`, without the
    full CLI's imports. `install` lives in the full CLI only."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        raise SystemExit(0)
    try:
        settings = parse_args(args)
    except HookError as exc:
        sys.stderr.write(f"interlock-hook: {exc}\n")
        raise SystemExit(2) from None
    raise SystemExit(execute(settings))


if __name__ == "__main__":
    main()
