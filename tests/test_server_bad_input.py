"""Bad input of any kind gets a clear error in the one error shape, audited, never a 500.

The rows are inputs schemathesis found against a live `interlock serve` over /openapi.json (every operation,
with an agent's and a human's token), each a 500 or an answer in another shape before its fix; the server
here is a real one, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json

import httpx
import pytest

from interlock.testing import LiveServer
from tests.test_server_api import rejected_entries

BIG = str(2**64)  # past a signed 64-bit integer: what both stores' index columns hold

# (case, who, method, path, body, status, error code, allowed methods when 405)
CASES: list[tuple[str, str | None, str, str, bytes | None, int, str, str | None]] = [
    ("proof in a tree of 0 entries (was 500)", "alice", "GET", "/v1/audit/proof/0?tree_size=0", None,
     422, "invalid_field", None),
    ("proof in a tree larger than the log (was 500: 'tables were altered')", "alice", "GET",
     "/v1/audit/proof/0?tree_size=9223372036854775807", None, 404, "no_such_entry", None),
    ("proof of an entry past the log", "alice", "GET", "/v1/audit/proof/99999999999", None,
     404, "no_such_entry", None),
    ("proof of a negative entry", "alice", "GET", "/v1/audit/proof/-1", None, 422, "invalid_field", None),
    ("proof of an entry past 64 bits", "alice", "GET", f"/v1/audit/proof/{BIG}", None, 422, "invalid_field", None),
    ("tree size past 64 bits", "alice", "GET", f"/v1/audit/proof/0?tree_size={BIG}", None,
     422, "invalid_field", None),
    ("entries from past 64 bits", "alice", "GET", f"/v1/audit/entries?start={BIG}", None,
     422, "invalid_field", None),
    ("a body json.loads cannot decode (was FastAPI's bare `detail`)", "alice", "POST", "/v1/freezes",
     b"\x00\x00\x00{\x00", 400, "malformed_json", None),
    ("wrong method: Allow names every route's (was the first route's, bare `detail`)", "alice", "OPTIONS",
     "/v1/freezes", None, 405, "method_not_allowed", "GET, POST"),
    ("wrong method on a rollout", "kiro", "PUT", "/v1/rollouts", b"{}", 405, "method_not_allowed", "GET, POST"),
    ("no such endpoint (was a bare `detail`)", "kiro", "GET", "/v1/nothing", None, 404, "not_found", None),
]


@pytest.mark.parametrize(("case", "who", "method", "path", "body", "status", "code", "allow"), CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_audited_error(server: LiveServer, tokens: dict[str, str], case: str,
                                              who: str | None, method: str, path: str, body: bytes | None,
                                              status: int, code: str, allow: str | None) -> None:
    headers = {"authorization": f"Bearer {tokens[who]}"} if who else {}
    if body is not None:
        headers["content-type"] = "application/json"
    before = len(rejected_entries(server))
    answer = httpx.request(method, server.url + path, content=body, headers=headers, timeout=30)
    assert (answer.status_code, answer.headers["content-type"]) == (status, "application/json")
    error = answer.json()["error"]
    assert error["code"] == code and error["message"]
    assert answer.headers.get("allow") == allow
    audited = rejected_entries(server)
    assert len(audited) == before + 1 and (audited[-1]["status"], audited[-1]["code"]) == (status, code)


def test_openapi_describes_what_the_server_answers(server: LiveServer) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    action = spec["components"]["schemas"]["ActionRequest"]["properties"]
    assert action["payload"]["minProperties"] == 1  # an empty payload is refused: the schema says so
    assert action["environment"]["pattern"] == action["target"]["anyOf"][0]["pattern"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            ok = next(v for k, v in operation["responses"].items() if k.startswith("2"))
            content = ok.get("content", {})
            assert content.get("application/json", {}).get("schema") != {"type": "string"}, (method, path)
            if path.startswith("/v1/"):  # every error there is the one error shape, 422 included
                for status in ("401", "404", "422", "503"):
                    schema = operation["responses"][status]["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
    assert "text/plain" in spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert json.dumps(spec).count("HTTPValidationError") == 0  # FastAPI's 422 shape: never answered here
