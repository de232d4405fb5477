"""Quorum arithmetic as tables: requirements + humans + approvals so far → satisfied? what is missing?"""

from __future__ import annotations

import pytest

from interlock.gate.quorum import eligible_humans, evaluate, ineligible_reason, possible
from interlock.model import ApprovalRequirement as Req

HUMANS = {
    "alice": ("sre",),
    "bob": ("sre", "dba"),
    "carol": ("dba",),
    "dave": ("sre",),
    "erin": ("finance",),
    "frank": ("dba",),
}
AGENT, OWNER = "kiro", "alice"
TWO_WITH_DBA = Req(count=2, from_groups=("dba", "sre"), at_least=(("dba", 1),), source="prod-sql-dba")
ONE_ANYONE = Req(count=1, source="role:deployer@production")
TWO_SRE = Req(count=2, from_groups=("sre",), source="r2")


@pytest.mark.parametrize(
    ("reqs", "approvers", "satisfied", "missing"),
    [
        ((ONE_ANYONE,), [], False, ["1 more from any eligible human (role:deployer@production)"]),
        ((ONE_ANYONE,), ["dave"], True, []),
        (
            (ONE_ANYONE,),
            ["alice"],
            False,
            ["1 more from any eligible human (role:deployer@production)"],
        ),  # owner
        (
            (ONE_ANYONE,),
            ["kiro"],
            False,
            ["1 more from any eligible human (role:deployer@production)"],
        ),  # agent
        ((ONE_ANYONE,), ["mallory"], False, ["1 more from any eligible human (role:deployer@production)"]),
        (
            (TWO_WITH_DBA,),
            ["dave"],
            False,
            ["1 more from dba or sre (prod-sql-dba)", "1 more from dba (prod-sql-dba)"],
        ),
        (
            (TWO_WITH_DBA,),
            ["dave", "dave"],
            False,
            ["1 more from dba or sre (prod-sql-dba)", "1 more from dba (prod-sql-dba)"],
        ),  # twice counts once
        (
            (TWO_WITH_DBA,),
            ["dave", "alice"],
            False,
            ["1 more from dba or sre (prod-sql-dba)", "1 more from dba (prod-sql-dba)"],
        ),  # owner never counts
        (
            (TWO_WITH_DBA,),
            ["dave", "erin"],
            False,
            ["1 more from dba or sre (prod-sql-dba)", "1 more from dba (prod-sql-dba)"],
        ),  # wrong group
        ((TWO_WITH_DBA,), ["bob", "dave"], True, []),
        ((TWO_WITH_DBA,), ["carol", "frank"], True, []),
        ((TWO_WITH_DBA,), ["bob"], False, ["1 more from dba or sre (prod-sql-dba)"]),
        ((TWO_WITH_DBA, TWO_SRE), ["bob", "carol"], False, ["1 more from sre (r2)"]),  # all requirements hold
        ((TWO_WITH_DBA, TWO_SRE), ["bob", "carol", "dave"], True, []),
        ((TWO_SRE,), ["bob", "alice"], False, ["1 more from sre (r2)"]),
    ],
)
def test_evaluate(reqs: tuple[Req, ...], approvers: list[str], satisfied: bool, missing: list[str]) -> None:
    quorum = evaluate(reqs, HUMANS, AGENT, OWNER, approvers)
    assert quorum.satisfied is satisfied
    assert list(quorum.missing) == missing
    assert quorum.describe() == ("satisfied" if satisfied else "still needs " + "; ".join(missing))


@pytest.mark.parametrize(
    ("human", "reqs", "reason"),
    [
        ("bob", (TWO_WITH_DBA,), None),
        ("carol", (TWO_SRE, TWO_WITH_DBA), None),  # counts toward one requirement: eligible
        (
            "alice",
            (ONE_ANYONE,),
            "alice owns agent kiro and never counts as its approver (separation of duties)",
        ),
        ("kiro", (ONE_ANYONE,), "kiro is the agent that proposed this action and can never approve it"),
        ("mallory", (ONE_ANYONE,), "mallory is not a human in the current policy"),
        ("erin", (TWO_WITH_DBA,), "erin (groups: finance) is not in an eligible group (dba, sre)"),
        ("carol", (TWO_SRE,), "carol (groups: dba) is not in an eligible group (sre)"),
    ],
)
def test_ineligible_reason(human: str, reqs: tuple[Req, ...], reason: str | None) -> None:
    assert ineligible_reason(human, reqs, HUMANS, AGENT, OWNER) == reason


@pytest.mark.parametrize(
    ("reqs", "eligible", "can_pass"),
    [
        ((TWO_WITH_DBA,), ("bob", "carol", "dave", "frank"), True),
        ((TWO_SRE,), ("bob", "dave"), True),
        ((Req(count=3, from_groups=("sre",), source="r3"),), ("bob", "dave"), False),  # alice is the owner
        (
            (Req(count=1, from_groups=("finance",), at_least=(("dba", 1),), source="r4"),),
            ("bob", "carol", "erin", "frank"),
            True,
        ),
    ],
)
def test_eligible_and_possible(reqs: tuple[Req, ...], eligible: tuple[str, ...], can_pass: bool) -> None:
    assert eligible_humans(reqs, HUMANS, AGENT, OWNER) == eligible
    assert possible(reqs, HUMANS, AGENT, OWNER).satisfied is can_pass
