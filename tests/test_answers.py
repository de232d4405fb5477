"""interlock.answers: the states, the one wait loop, the words and the error-status table every front
door shares. Pure: a fake monotonic clock stands in for time, so nothing sleeps."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import pytest

from interlock import answers
from interlock.gateway import TERMINAL, State

SETTLED = [
    # (proposal, settled, may run, ran)
    ({"state": "allowed"}, True, True, False),
    ({"state": "approved"}, True, True, False),
    ({"state": "pending_approval"}, False, False, False),
    ({"state": "executing"}, False, False, False),
    ({"state": "executing", "result": {"status": "succeeded"}}, True, False, True),
    ({"state": "succeeded"}, True, False, True),
    ({"state": "failed"}, True, False, True),
    ({"state": "denied"}, True, False, False),
    ({"state": "sandbox_required"}, True, False, False),
    ({"state": "rejected"}, True, False, False),
    ({"state": "expired"}, True, False, False),
    ({"state": "invalidated"}, True, False, False),
    ({}, False, False, False),
]


@pytest.mark.parametrize(("body", "settled", "may_run", "ran"), SETTLED)
def test_states(body: dict[str, Any], settled: bool, may_run: bool, ran: bool) -> None:
    assert (answers.settled(body), answers.may_run(body), answers.ran(body)) == (settled, may_run, ran)


def test_the_gateway_and_the_answers_agree_on_terminal_states() -> None:
    assert {s.value for s in TERMINAL} == answers.TERMINAL_STATES
    assert set(answers.TERMINAL_STATES) <= {s.value for s in State}


class FakeTime:
    def __init__(self) -> None:
        self.t = 100.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


WAITS = [
    # (states the step answers in turn, timeout, pause, step cost in seconds, expected last state, steps made)
    (["allowed"], 10.0, 0.0, 0.0, "allowed", 1),
    (["pending_approval", "approved"], 10.0, 0.0, 1.0, "approved", 2),
    (["pending_approval"] * 5, 2.5, 0.0, 1.0, "pending_approval", 3),  # long polls until the deadline
    (["pending_approval"] * 100, 1.0, 0.25, 0.0, "pending_approval", 5),  # looks every pause
    (["pending_approval"], 0.0, 0.25, 0.0, "pending_approval", 1),  # always one step, even at timeout 0
    (["executing", {"state": "executing", "result": {"exit_code": 0}}], 10.0, 0.1, 0.0, "executing", 2),
]


@pytest.mark.parametrize(("states", "timeout", "pause", "cost", "last", "steps"), WAITS)
def test_wait_stops_when_settled_or_at_the_deadline(states: list[Any], timeout: float, pause: float, cost: float,
                                                    last: str, steps: int) -> None:
    clock = FakeTime()
    asked: list[float] = []

    def step(seconds: float) -> dict[str, Any]:
        asked.append(seconds)
        clock.t += min(cost, seconds) if cost else 0.0
        state = states[len(asked) - 1]
        return state if isinstance(state, dict) else {"state": state}

    body = answers.wait(step, timeout, pause=pause, now=clock.now, sleep=clock.sleep)
    assert body["state"] == last and len(asked) == steps
    assert all(0 <= s <= answers.MAX_POLL_SECONDS for s in asked)

    async_clock, async_asked = FakeTime(), []

    async def astep(seconds: float) -> dict[str, Any]:
        async_asked.append(seconds)
        async_clock.t += min(cost, seconds) if cost else 0.0
        state = states[len(async_asked) - 1]
        return state if isinstance(state, dict) else {"state": state}

    async def asleep(seconds: float) -> None:
        async_clock.sleep(seconds)

    body = asyncio.run(answers.wait_async(astep, timeout, pause=pause, now=async_clock.now, sleep=asleep))
    assert body["state"] == last and async_asked == asked


def test_one_long_poll_is_capped() -> None:
    asked: list[float] = []
    answers.wait(lambda s: asked.append(s) or {"state": "allowed"}, 3600.0)
    assert asked == [answers.MAX_POLL_SECONDS]


PENDING = {"id": "act_2", "state": "pending_approval", "summary": "write: /srv/x", "reasons": ["writes need approval"],
           "approval": {"id": "apr_9", "still_needs": "still needs 1 more from sre", "eligible": ["bob", "carol"]}}

EXPLAIN = [
    # (proposal, keyword arguments, words the explanation contains)
    ({"id": "act_0", "state": "allowed", "summary": "read: ls"}, {}, ["allowed", "'read: ls'", "act_0"]),
    ({"id": "act_1", "state": "denied", "reasons": ["agents do not move files"], "rules": ["no-moves"],
      "remedy": ["ask a human"]}, {}, ["act_1", "denied", "agents do not move files", "[rules: no-moves]",
                                      "What to do: ask a human"]),
    ({"id": "act_1", "state": "denied"}, {}, ["no rule allows it (default deny)"]),
    (PENDING, {"waited": 5}, ["act_2", "apr_9", "still needs 1 more from sre", "needs approval", "bob, carol",
                              "not approved within 5s", "still waiting for approval",
                              "interlock approvals approve apr_9", "retry exactly the same call"]),
    (PENDING, {"name": "write_file", "again": "call write_file again"}, ["'write_file'", "call write_file again"]),
    ({"id": "act_3", "state": "rejected", "approval": {"id": "apr_8", "reason": "not today"}}, {},
     ["act_3", "a human denied approval request apr_8", "not today", "do not retry"]),
    ({"id": "act_4", "state": "expired", "approval": {"id": "apr_7", "reason": "timed out"}},
     {"again": "run the same command again"}, ["apr_7", "expired", "timed out", "Run the same command again"]),
    ({"id": "act_5", "state": "sandbox_required", "reasons": ["staging first"], "remedy": ["run in staging"]}, {},
     ["sandbox run first", "staging first", "run in staging"]),
    ({"id": "act_6", "state": "succeeded", "summary": "write: touch x"}, {}, ["ran", "succeeded"]),
    # a promotion names the evidence it used (docs/sandbox.md)
    ({**PENDING, "evidence": {"id": "act_r", "summary": "DELETE 25 rows (rolled back)"}}, {},
     ["promoted with the evidence of rehearsal act_r: DELETE 25 rows (rolled back)", "apr_9"]),
    ({"id": "act_7", "state": "succeeded", "evidence": {"id": "act_r", "summary": "deleted 2"}}, {},
     ["ran", "promoted with the evidence of rehearsal act_r"]),
    ({}, {}, ["unknown", "no reason given", "action ?"]),
]


@pytest.mark.parametrize(("body", "kwargs", "words"), EXPLAIN)
def test_explain(body: dict[str, Any], kwargs: dict[str, Any], words: list[str]) -> None:
    text = answers.explain(body, **kwargs)
    for word in words:
        assert word in text, (word, text)


STATUS = [
    # (code, default, status)
    ("payload_too_large", 422, 413),  # the SDK's in-process client once said 422 here; the server says 413
    ("body_too_large", 422, 413),
    ("unknown_action", 422, 404),
    ("unknown_request", 409, 404),
    ("not_eligible", 409, 403),
    ("agent_token", 409, 403),
    ("reason_required", 409, 422),
    ("token_revoked", 422, 401),
    ("unauthenticated", 422, 401),
    ("already_voted", 409, 409),
    ("not_allowed", 422, 422),
    ("something_new", 422, 422),
]


@pytest.mark.parametrize(("code", "default", "status"), STATUS)
def test_status_of(code: str, default: int, status: int) -> None:
    assert answers.status_of(code, default) == status


def test_answers_is_standard_library_only() -> None:
    import subprocess
    import sys

    probe = ("import sys; import interlock.answers; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('pydantic', 'httpx', 'typing', 'dataclasses', 'asyncio')))")
    out = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(__import__("pathlib").Path(answers.__file__).parents[1])}).stdout
    assert out.strip() == "[]"


# --- every raise site answers its code's status from the one table ---------------------------------

_SRC = Path(answers.__file__).parent
#: Error types whose status comes from `status_of` (the caller's default for codes the table leaves out).
_BY_TABLE = {"GatewayError": 422, "GateError": 409, "FreezeError": None, "RolloutError": 422, "CommandError": 409}
#: Errors built with a literal status: (type, index of the status argument, index of the code argument).
_LITERAL = {"ApiError": (0, 1)}


def _literal(node: ast.expr | None) -> Any:
    return node.value if isinstance(node, ast.Constant) else None


def _raise_sites() -> list[tuple[str, str, int | None, int | None]]:
    """(where, code, status written at the site or None, the status its error type answers with)."""
    sites = []
    for path in sorted(_SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            where = f"{path.relative_to(_SRC)}:{node.lineno}"
            keywords = {k.arg: _literal(k.value) for k in node.keywords}
            if name in _BY_TABLE and node.args and isinstance(code := _literal(node.args[0]), str):
                default = _BY_TABLE[name]
                sites.append((where, code, None, answers.status_of(code, default) if default else None))
            elif name in _LITERAL and len(node.args) > 1:
                at_status, at_code = _LITERAL[name]
                code, status = _literal(node.args[at_code]), _literal(node.args[at_status])
                if isinstance(code, str) and isinstance(status, int):
                    sites.append((where, code, status, None))
            elif isinstance(keywords.get("code"), str) and isinstance(keywords.get("status"), int):
                sites.append((where, keywords["code"], keywords["status"], None))
    return sites


RAISE_SITES = _raise_sites()


def test_the_scan_finds_the_raise_sites() -> None:
    found = {(where.split(":")[0], code) for where, code, _, _ in RAISE_SITES}
    assert {("guard/freezes.py", "overlapping_freeze"), ("client.py", "unknown_agent"),
            ("server/deps.py", "agent_token"), ("gateway.py", "payload_too_large"),
            ("rollout/service.py", "policy_denied"), ("rollout/service.py", "unknown_rollout")} <= found, sorted(found)


@pytest.mark.parametrize(("where", "code", "written", "answered"), RAISE_SITES, ids=[s[0] for s in RAISE_SITES])
def test_every_error_code_has_the_tables_status(where: str, code: str, written: int | None,
                                                answered: int | None) -> None:
    if written is not None:  # a status spelled at the site must be the table's, and the code listed
        assert code in answers.ERROR_STATUS or code.startswith("token_"), f"{where}: {code} is not in the table"
        assert written == answers.status_of(code), f"{where}: {code} answers {written}, the table another"
    elif answered is None:  # FreezeError: no default, its status is the table's
        assert code in answers.ERROR_STATUS, f"{where}: {code} is not in the table"


FREEZE_CODES = [("unknown_agent", 403), ("unknown_environment", 422), ("unknown_target", 422),
                ("target_environment", 422), ("reason_required", 422), ("reason_too_long", 422),
                ("overlapping_freeze", 409), ("not_eligible", 403), ("unknown_freeze", 404), ("already_thawed", 409)]


@pytest.mark.parametrize(("code", "status"), FREEZE_CODES)
def test_a_freeze_error_answers_the_tables_status(code: str, status: int) -> None:
    from interlock.guard.freezes import FreezeError

    assert FreezeError(code, "refused").status == status == answers.status_of(code)
