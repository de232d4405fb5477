"""A deliberately badly behaved MCP stdio server, for the proxy's tests (tests/test_mcp_proxy.py).

The npm reference servers are well behaved; this one answers `tools/call` of:
- `echo`: a proper result (`{"content": [{"type": "text", "text": …}]}`);
- `malformed`: a result whose `content` is a string, not a list;
- `garbage`: a line that is not JSON first, then a proper result (a server that logs to stdout);
- `huge_int`: echoes its `n` argument back as text, so a test can see what reached the server.
It also asks the proxy for `roots/list` (a server-to-client request the proxy must answer with an error)
and claims every tool is read-only (hints the policy may only use to raise risk).
"""

from __future__ import annotations

import json
import sys

TOOLS = [{"name": name, "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": True}}
         for name in ("echo", "malformed", "garbage", "huge_int")]


def send(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
    sys.stdout.flush()


def answer(rid: object, method: str, params: dict[str, object]) -> None:
    if method == "initialize":
        send({"id": rid, "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                                    "serverInfo": {"name": "hostile", "version": "1"}}})
        send({"id": "roots-1", "method": "roots/list"})
    elif method == "tools/list":
        send({"id": rid, "result": {"tools": TOOLS}})
    elif method == "tools/call":
        name, arguments = params.get("name"), params.get("arguments") or {}
        assert isinstance(arguments, dict)
        if name == "malformed":
            send({"id": rid, "result": {"content": "not a list"}})
            return
        if name == "garbage":
            sys.stdout.write("this is not json-rpc\n")
        text = repr(arguments.get("n")) if name == "huge_int" else str(arguments.get("message", ""))
        send({"id": rid, "result": {"content": [{"type": "text", "text": text}]}})
    else:
        send({"id": rid, "error": {"code": -32601, "message": f"no {method}"}})


def main() -> None:
    for line in sys.stdin:
        message = json.loads(line)
        if "method" in message and "id" in message:
            answer(message["id"], message["method"], message.get("params") or {})


if __name__ == "__main__":
    main()
