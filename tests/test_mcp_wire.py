"""The MCP proxy's JSON-RPC reading (mcp_wire): each line → the message it is, or the error it earns."""

from __future__ import annotations

from typing import Any

import pytest

from interlock.integrations import mcp_wire as wire

PARSED = [
    # (line, what it parses to)
    (b'{"jsonrpc":"2.0","id":1,"method":"ping"}', wire.Request(1, "ping", {})),
    (b'{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x"}}',
     wire.Request("a", "tools/call", {"name": "x"})),
    (b'{"jsonrpc":"2.0","method":"notifications/initialized"}', wire.Notification("notifications/initialized", {})),
    (b'{"jsonrpc":"2.0","id":3,"result":{"content":[]}}', wire.Response(3, {"content": []}, None)),
    (b'{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"no"}}',
     wire.Response(3, None, {"code": -1, "message": "no"})),
    (b'{"jsonrpc":"2.0","id":12345678901234567890123,"method":"ping"}',  # beyond 64 bits: still JSON
     wire.Request(12345678901234567890123, "ping", {})),
    # what is not a message this proxy accepts: the error to answer, with the id when it could be read
    (b"not json", wire.Invalid(None, wire.PARSE_ERROR, "Parse error: the line is not JSON")),
    (b'{"jsonrpc":"2.0","id":1,"method":"ping"', wire.Invalid(None, wire.PARSE_ERROR,
                                                               "Parse error: the line is not JSON")),
    (b"\xff\xfe", wire.Invalid(None, wire.PARSE_ERROR, "Parse error: the line is not JSON")),
    (b"[1,2]", wire.Invalid(None, wire.INVALID_REQUEST, "Invalid request: a message is a JSON object (batches "
                                                         "are not part of MCP)")),
    (b'{"id":1,"method":"ping"}', wire.Invalid(1, wire.INVALID_REQUEST, 'Invalid request: "jsonrpc" must be "2.0"')),
    (b'{"jsonrpc":"2.0","id":true,"method":"ping"}',
     wire.Invalid(None, wire.INVALID_REQUEST, 'Invalid request: "id" must be a string or an integer')),
    (b'{"jsonrpc":"2.0","id":null,"method":"ping"}',
     wire.Invalid(None, wire.INVALID_REQUEST, 'Invalid request: "id" must be a string or an integer')),
    (b'{"jsonrpc":"2.0","id":2,"method":7}',
     wire.Invalid(2, wire.INVALID_REQUEST, 'Invalid request: "method" must be a non-empty string')),
    (b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":[1]}',
     wire.Invalid(2, wire.INVALID_PARAMS, 'Invalid params: "params" must be an object')),
    (b'{"jsonrpc":"2.0","id":4,"result":[]}',
     wire.Invalid(4, wire.INVALID_REQUEST, 'Invalid response: "result" must be an object')),
    (b'{"jsonrpc":"2.0","id":4,"result":{},"error":{"code":1,"message":"x"}}',
     wire.Invalid(4, wire.INVALID_REQUEST, 'Invalid response: exactly one of "result" and "error"')),
    (b'{"jsonrpc":"2.0","id":4,"error":{"message":"x"}}',
     wire.Invalid(4, wire.INVALID_REQUEST, 'Invalid response: "error" needs an integer code and a message')),
    (b'{"jsonrpc":"2.0","result":{}}', wire.Invalid(None, wire.INVALID_REQUEST,
                                                    "Invalid request: no method, and no valid id")),
]


@pytest.mark.parametrize(("line", "expected"), PARSED)
def test_each_line_is_a_message_or_an_error(line: bytes, expected: wire.Message) -> None:
    assert wire.parse(line) == expected


TOOL_CALLS = [
    # (params, name and arguments, or the error's words)
    ({"name": "read", "arguments": {"path": "/x"}}, ("read", {"path": "/x"})),
    ({"name": "read"}, ("read", {})),
    ({"name": "read", "arguments": None, "_meta": {"progressToken": 1}}, ("read", {})),
    ({"name": "", "arguments": {}}, '"name" must be a non-empty string'),
    ({"arguments": {}}, '"name" must be a non-empty string'),
    ({"name": ["read"]}, '"name" must be a non-empty string'),
    ({"name": "read", "arguments": ["/x"]}, '"arguments" must be an object'),
    ({"name": "read", "arguments": "/x"}, '"arguments" must be an object'),
]


@pytest.mark.parametrize(("params", "expected"), TOOL_CALLS)
def test_what_the_gate_reads_of_a_tool_call(params: dict[str, Any], expected: Any) -> None:
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            wire.tool_call(params)
    else:
        assert wire.tool_call(params) == expected


TOOL_RESULTS = [
    # (an upstream's tools/call result, None if relayed, else the error's words)
    ({"content": [{"type": "text", "text": "hi"}]}, None),
    ({"content": [], "isError": True, "structuredContent": {"a": 1}, "_meta": {"x": 1}}, None),
    ({"content": [{"type": "image", "data": "AA==", "mimeType": "image/png"}]}, None),
    ({}, '"content" must be a list'),
    ({"content": "hi"}, '"content" must be a list'),
    ({"content": ["hi"]}, 'each block of "content" must be an object with a "type"'),
    ({"content": [{"text": "hi"}]}, 'each block of "content" must be an object with a "type"'),
    ({"content": [], "isError": "yes"}, '"isError" must be a boolean'),
]


@pytest.mark.parametrize(("result", "error"), TOOL_RESULTS)
def test_what_the_proxy_checks_of_a_result(result: dict[str, Any], error: str | None) -> None:
    if error is None:
        wire.check_tool_result(result)
    else:
        with pytest.raises(ValueError, match=error):
            wire.check_tool_result(result)


ENCODED = [
    # (message, the line on the wire)
    (wire.result(1, {"content": []}), b'{"jsonrpc":"2.0","id":1,"result":{"content":[]}}\n'),
    (wire.error(None, wire.PARSE_ERROR, "bad"), b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}}\n'),
    (wire.notification("notifications/cancelled", {"requestId": 3}),
     b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}\n'),
    (wire.result(2, {"n": 2**70}), b'{"jsonrpc":"2.0","id":2,"result":{"n":1180591620717411303424}}\n'),
    (wire.result(3, {"t": "\ud800"}), b'{"jsonrpc":"2.0","id":3,"result":{"t":"\\ud800"}}\n'),  # a lone surrogate
]


@pytest.mark.parametrize(("encoded", "expected"), ENCODED)
def test_messages_are_one_line_each(encoded: bytes, expected: bytes) -> None:
    assert encoded == expected
