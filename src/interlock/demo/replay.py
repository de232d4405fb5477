"""Replay a scenario: every agent action goes through the real Gateway (brokered: what is allowed
really runs against the real target), humans vote where the scenario says, and the target's facts
are compared before and after.

Each replay gets its own scratch directory, SQLite store and audit keys, so it never touches the
user's `.interlock/` and the audit log it writes is verified at the end.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from interlock.demo.scenario import Scenario, Step, Vote
from interlock.demo.worlds import DEFAULT_PG, World, build, fill
from interlock.gate.service import GateError
from interlock.gateway import GatewayError, Mode, Proposal
from interlock.identity import Principal
from interlock.model import Action, Rationale
from interlock.policy import load_policy_text
from interlock.runtime import Runtime

#: A protected fact written `unchanged` must be after the replay what it was before (ids, contents).
UNCHANGED = "unchanged"


@dataclass
class StepReport:
    number: int
    step: Step
    tried: str
    proposal: Proposal | None = None
    error: str = ""  # the gateway refused the input itself
    votes: list[tuple[Vote, str]] = field(default_factory=list)

    @property
    def decision(self) -> str:
        return self.proposal.decision.value.value if self.proposal else "deny"

    @property
    def state(self) -> str:
        return self.proposal.state.value if self.proposal else "denied"

    @property
    def rules(self) -> tuple[str, ...]:
        return self.proposal.decision.rules if self.proposal else ()

    def to_json(self) -> dict[str, Any]:
        proposal = self.proposal
        decision = proposal.decision if proposal else None
        return {
            "step": self.number, "say": self.step.say, "kind": self.step.kind.value, "tried": self.tried,
            "decision": self.decision, "state": self.state,
            "risk": decision.risk.value if decision else None, "tags": list(decision.tags) if decision else [],
            "rules": list(self.rules), "reasons": list(decision.reasons) if decision else [self.error],
            "remedy": list(decision.remedy) if decision else [],
            "votes": [{"human": v.human, "verdict": v.verdict, "result": r} for v, r in self.votes],
            "result": proposal.result if proposal else None,
            "gap": self.step.gap.model_dump(mode="json") if self.step.gap else None,
        }

    def mismatches(self) -> list[str]:
        """Where the replay differs from the scenario's expectation (a known gap is reported, not failed)."""
        expect, found = self.step.expect, []
        if self.step.gap is not None and self.decision == self.step.gap.should.value:
            return []  # the gap is closed: Interlock now answers what it should
        if self.decision != expect.decision.value:
            found.append(f"step {self.number}: decision {self.decision}, expected {expect.decision.value}")
        if expect.rule and expect.rule not in self.rules:
            rules = ", ".join(self.rules) or "-"
            found.append(f"step {self.number}: rule {expect.rule} did not decide (rules: {rules})")
        if expect.state and self.state != expect.state:
            found.append(f"step {self.number}: state {self.state}, expected {expect.state}")
        return found


@dataclass
class Report:
    scenario: Scenario
    target: str = ""
    steps: list[StepReport] = field(default_factory=list)
    before: dict[str, str] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)
    audit_entries: int = 0
    audit_problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.scenario.name, "title": self.scenario.title, "incident": self.scenario.incident,
            "target": self.target, "steps": [s.to_json() for s in self.steps],
            "before": self.before, "after": self.after,
            "audit": {"entries": self.audit_entries, "problems": self.audit_problems},
            "gaps_open": [s.number for s in self.gaps_open()], "mismatches": self.mismatches(),
        }

    def gaps_open(self) -> list[StepReport]:
        return [s for s in self.steps if s.step.gap is not None and s.decision != s.step.gap.should.value]

    def mismatches(self) -> list[str]:
        found = [m for s in self.steps for m in s.mismatches()]
        gap_open = bool(self.gaps_open())
        for fact, expected in self.scenario.protected.items():
            got = self.after.get(fact, "gone")
            if expected == UNCHANGED:
                expected = self.before.get(fact, "absent before the replay")
            if got != expected and not gap_open:
                found.append(f"after the replay, {fact} is {got}, expected {expected}")
        found += [f"audit log: {p}" for p in self.audit_problems]
        return found


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """The credential references of the scenario's policy read these; restored afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def utc(moment: datetime) -> datetime:
    """A scenario's time in UTC; one written without a zone (YAML's bare timestamps) is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class ReplayClock:
    """The guards' clock: the scenario's moment (or now), moved on by real time, set again by a step
    with its own `at`. Approvals and grants keep the system clock (they only compare with each other)."""

    def __init__(self, at: datetime | None) -> None:
        self.set(at)

    def set(self, at: datetime | None) -> None:
        self.base = utc(at) if at is not None else None
        self.started = time.monotonic()

    def __call__(self) -> datetime:
        if self.base is None:
            return datetime.now(UTC)
        return self.base + timedelta(seconds=time.monotonic() - self.started)


def _human(name: str) -> Principal:
    return Principal(kind="human", name=name, token_id=f"demo-{name}")


def _vote(runtime: Runtime, report: StepReport, vote: Vote) -> None:
    assert report.proposal is not None
    approval = report.proposal.approval
    if approval is None or "id" not in approval:
        report.votes.append((vote, "nothing to vote on: no approval request"))
        return
    try:
        if vote.verdict == "approve":
            runtime.gate.approve(approval["id"], _human(vote.human))
        else:
            runtime.gate.deny(approval["id"], _human(vote.human), vote.reason)
    except GateError as exc:
        report.votes.append((vote, f"refused: {exc}"))
        return
    report.proposal = runtime.gateway.advance(report.proposal.id)
    report.votes.append((vote, "counted"))


def _step(runtime: Runtime, world: World, scenario: Scenario, number: int, step: Step) -> StepReport:
    payload, tried = world.payload(step, number)
    report = StepReport(number=number, step=step, tried=tried)
    try:
        action = Action(kind=step.kind, environment=step.environment, target=step.target, payload=payload,
                        rationale=Rationale(intent=step.say))
        report.proposal = runtime.gateway.propose(scenario.agent, action, mode=Mode.brokered)
    except (GatewayError, ValueError) as exc:
        report.error = str(exc)
        return report
    for vote in step.votes:
        _vote(runtime, report, vote)
    return report


def replay(scenario: Scenario, *, on_start: Callable[[Report], None] = lambda r: None,
           on_step: Callable[[StepReport], None] = lambda s: None, postgres: str = DEFAULT_PG) -> Report:
    report = Report(scenario=scenario)
    with tempfile.TemporaryDirectory(prefix=f"interlock-demo-{scenario.name}-") as tmp:
        scratch = Path(tmp)
        world = build(scenario, scratch, postgres=postgres)
        try:
            report.target = world.describe()
            policy_file = scenario.directory / "policy.yaml"
            values = {"DEMO_DIR": str(scratch), **world.placeholders()}
            policy = load_policy_text(fill(policy_file.read_text(), values), file=str(policy_file))
            clock = ReplayClock(scenario.at)
            with _environment(world.env()), \
                    Runtime(policy, db=f"sqlite:///{scratch / 'interlock.db'}", key_dir=scratch / "keys",
                            clock=clock) as runtime:
                report.before = world.facts()
                on_start(report)
                for number, step in enumerate(scenario.steps, start=1):
                    if step.at is not None:
                        clock.set(step.at)
                    report.steps.append(_step(runtime, world, scenario, number, step))
                    on_step(report.steps[-1])
                report.after = world.facts()
                verified = runtime.audit.verify()
                report.audit_entries = verified.entries
                report.audit_problems = [str(p) for p in verified.problems]
        finally:
            world.close()
    return report
