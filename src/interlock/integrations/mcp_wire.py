"""The JSON-RPC messages the MCP proxy relays, read and written without the MCP SDK's models.

The proxy forwards most of what it sees (an upstream's tool results, above all) and inspects only what
the gate needs: the method, a request's id, and a `tools/call`'s tool name and arguments. Validating
every forwarded message into pydantic models and serialising it again was most of the proxy's own
cost per call (docs/benchmarks.md, issue 18.6), so here each line is parsed once (orjson) and checked
against a small strict schema; a result passes through as the upstream wrote it. Anything that does
not parse, or is not the shape asked for, is an `Invalid` message: the caller answers it with a
JSON-RPC error and never forwards it (fail closed).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

#: A JSON-RPC id as MCP allows it: a string or an integer (never null, never a boolean).
RequestId = str | int


@dataclass(frozen=True)
class Request:
    id: RequestId
    method: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Notification:
    method: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Response:
    """An answer to a request: `result` (an object), or `error` (`code` and `message`)."""

    id: RequestId
    result: dict[str, Any] | None
    error: dict[str, Any] | None


@dataclass(frozen=True)
class Invalid:
    """A line that is not a message this proxy accepts; `id` is the request's when it could be read."""

    id: RequestId | None
    code: int
    message: str


Message = Request | Notification | Response | Invalid


#: A run of this many digits may be an integer beyond 64 bits, which orjson would read as a float.
_LONG_DIGITS = re.compile(r"[0-9]{19}")
_LONG_DIGITS_BYTES = re.compile(rb"[0-9]{19}")


def loads(data: str | bytes) -> Any:
    """JSON → Python, exactly as the standard library reads it. orjson (fast) unless the text may hold an
    integer beyond 64 bits (orjson makes it a float: an argument would change on its way upstream), and
    the standard library for what orjson refuses but JSON allows (lone surrogate escapes)."""
    if (_LONG_DIGITS_BYTES.search(data) if isinstance(data, bytes) else _LONG_DIGITS.search(data)):
        return json.loads(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps(body: Any) -> bytes:
    """Python → one line of JSON (newline included), as MCP's stdio transport frames messages."""
    try:
        return orjson.dumps(body) + b"\n"
    except TypeError:  # integers beyond 64 bits, lone surrogates: the slow, always-valid way
        return json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def _valid_id(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def parse(line: str | bytes) -> Message:
    """One line of the wire as a message, or `Invalid` saying why not (with the JSON-RPC code to answer)."""
    try:
        body = loads(line)
    except ValueError:
        return Invalid(None, PARSE_ERROR, "Parse error: the line is not JSON")
    if not isinstance(body, dict):
        return Invalid(None, INVALID_REQUEST, "Invalid request: a message is a JSON object (batches are not "
                                              "part of MCP)")
    raw_id = body.get("id")
    rid = raw_id if _valid_id(raw_id) else None
    if body.get("jsonrpc") != "2.0":
        return Invalid(rid, INVALID_REQUEST, 'Invalid request: "jsonrpc" must be "2.0"')
    method = body.get("method")
    if method is not None:
        return _request(body, method, rid)
    if rid is None:
        return Invalid(None, INVALID_REQUEST, "Invalid request: no method, and no valid id")
    return _response(body, rid)


def _request(body: dict[str, Any], method: Any, rid: RequestId | None) -> Message:
    if not isinstance(method, str) or not method:
        return Invalid(rid, INVALID_REQUEST, 'Invalid request: "method" must be a non-empty string')
    params = body.get("params")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        return Invalid(rid, INVALID_PARAMS, 'Invalid params: "params" must be an object')
    if "id" not in body:
        return Notification(method, params)
    if rid is None:
        return Invalid(None, INVALID_REQUEST, 'Invalid request: "id" must be a string or an integer')
    return Request(rid, method, params)


def _response(body: dict[str, Any], rid: RequestId) -> Message:
    result, error = body.get("result"), body.get("error")
    if ("result" in body) == ("error" in body):
        return Invalid(rid, INVALID_REQUEST, 'Invalid response: exactly one of "result" and "error"')
    if "result" in body and not isinstance(result, dict):
        return Invalid(rid, INVALID_REQUEST, 'Invalid response: "result" must be an object')
    if "error" in body and not (isinstance(error, dict) and isinstance(error.get("code"), int)
                                and isinstance(error.get("message"), str)):
        return Invalid(rid, INVALID_REQUEST, 'Invalid response: "error" needs an integer code and a message')
    return Response(rid, result, error)


def tool_call(params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A `tools/call`'s tool name and arguments; ValueError (say why) for anything else. Other params
    (`_meta`, `task`) are not forwarded: the proxy calls the upstream with these two alone."""
    name = params.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError('tools/call: "name" must be a non-empty string')
    arguments = params.get("arguments")
    if arguments is None:
        return name, {}
    if not isinstance(arguments, dict):
        raise ValueError('tools/call: "arguments" must be an object')
    return name, arguments


def check_tool_result(result: dict[str, Any]) -> None:
    """What the proxy relies on in an upstream's `tools/call` result (its excerpt for the audit log, and
    the agent's client parsing it): `content` a list of blocks with a `type`, `isError` a boolean if
    present. ValueError says what is wrong; the rest is the upstream's to get right."""
    content = result.get("content")
    if not isinstance(content, list):
        raise ValueError('"content" must be a list')
    for block in content:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise ValueError('each block of "content" must be an object with a "type"')
    if not isinstance(result.get("isError", False), bool):
        raise ValueError('"isError" must be a boolean')


def request(rid: RequestId, method: str, params: dict[str, Any]) -> bytes:
    return dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})


def notification(method: str, params: dict[str, Any]) -> bytes:
    return dumps({"jsonrpc": "2.0", "method": method, "params": params})


def result(rid: RequestId, body: dict[str, Any]) -> bytes:
    return dumps({"jsonrpc": "2.0", "id": rid, "result": body})


def error(rid: RequestId | None, code: int, message: str) -> bytes:
    return dumps({"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}})
