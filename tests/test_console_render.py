"""The console's pure rendering helpers (server/ui/render.py): tables of input → expected."""

from __future__ import annotations

from typing import Any

import pytest

from interlock.server.ui.render import PlanRow, one_line, payload_blocks, plan_rows, time_left


def change(address: str, *actions: str, reason: str = "") -> dict[str, Any]:
    return {"address": address, "change": {"actions": list(actions)}, **({"action_reason": reason} if reason else {})}


PLANS = [
    ("deletes and replaces first, marked",
     [change("aws_s3_bucket.logs", "create"), change("aws_db_instance.main", "delete", "create", reason="replace_because_cannot_update"),
      change("aws_iam_role.ci", "update"), change("aws_instance.old", "delete")],
     [("aws_db_instance.main", "replace", True), ("aws_instance.old", "delete", True),
      ("aws_iam_role.ci", "update", False), ("aws_s3_bucket.logs", "create", False)]),
    ("create before destroy is a replace", [change("x.a", "create", "delete")], [("x.a", "replace", True)]),
    ("an unreadable change is shown, not dropped", [{"address": "x.b", "change": {"actions": "delete"}}],
     [("x.b", "unreadable", True)]),
    ("no-op", [change("x.c", "no-op")], [("x.c", "no-op", False)]),
]


@pytest.mark.parametrize(("name", "changes", "expected"), PLANS, ids=[p[0] for p in PLANS])
def test_plan_rows(name: str, changes: list[dict[str, Any]], expected: list[tuple[str, str, bool]]) -> None:
    rows = plan_rows({"plan": {"resource_changes": changes}})
    assert rows is not None
    assert [(r.address, r.action, r.marked) for r in rows] == expected


def test_no_plan_is_no_table() -> None:
    assert plan_rows({"plan": "not a plan"}) is None and plan_rows({}) is None
    assert PlanRow("a", "forget", "").marked


@pytest.mark.parametrize(("seconds", "shown"), [(0, "expired"), (-5, "expired"), (59, "59s"), (61, "1m 01s"),
                                                (3600, "1h 00m"), (7322, "2h 02m")])
def test_time_left(seconds: int, shown: str) -> None:
    assert time_left(seconds) == shown


HOSTILE = [
    ("shell", {"command": "echo '<script>alert(1)</script>'"}),
    ("sql", {"sql": "SELECT '\"><img src=x onerror=alert(1)>'"}),
    ("http", {"url": "https://x/<svg onload=alert(1)>", "method": "GET"}),
]


@pytest.mark.parametrize(("kind", "payload"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_highlighted_payloads_are_escaped(kind: str, payload: dict[str, Any]) -> None:
    html = "".join(str(b.html) for b in payload_blocks(kind, payload))
    assert "<script" not in html and "<img" not in html and "<svg" not in html
    assert "&lt;" in html


@pytest.mark.parametrize(("kind", "payload", "line"), [
    ("shell", {"command": "rm  -rf\n/tmp/x"}, "rm -rf /tmp/x"),
    ("sql", {"sql": "DELETE FROM t"}, "DELETE FROM t"),
    ("http", {"method": "GET", "url": "https://x"}, '{"method": "GET", "url": "https://x"}'),
    ("shell", {"command": "x" * 300}, "x" * 139 + "…"),
])
def test_one_line(kind: str, payload: dict[str, Any], line: str) -> None:
    assert one_line(kind, payload) == line
