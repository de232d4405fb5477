"""`interlock demo NAME`: replay one incident of the gallery step by step; `--list` shows them all.

`--format json` prints the whole report (every step's decision, the facts before and after, the
audit check) as one JSON object. Exit 0 when the replay went as the scenario expects, 1 when it did
not, 2 when it could not run.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Annotated

import typer

from interlock import options
from interlock.console import err, out
from interlock.demo.replay import Report, StepReport, replay, utc
from interlock.demo.scenario import ScenarioError, gallery_dir, load, names
from interlock.demo.worlds import DEFAULT_PG, WorldError
from interlock.options import Format

_STYLE = {"allow": "green", "deny": "red", "approval_required": "yellow", "sandbox_required": "yellow"}
_OUTPUT_LINES = 4


def _line(label: str, text: str) -> None:
    out.print(f"  {label:<9} {text}", markup=False)


def show_start(report: Report) -> None:
    scenario = report.scenario
    out.print(f"\n[bold]{scenario.name}: {scenario.title}[/]")
    _line("incident", scenario.incident)
    _line("target", report.target)
    _line("agent", f"{scenario.agent}, with the policy {scenario.directory / 'policy.yaml'}")
    if scenario.at is not None:
        _line("time", f"{_when(scenario.at)} (the guards' clock; the replay happens then)")


def show_step(report: StepReport) -> None:
    out.print(f"\n[bold]{report.number}. {report.step.say}[/]")
    if report.step.at is not None:
        _line("time", _when(report.step.at))
    _line("tried", report.tried)
    if report.proposal is None:
        _line("refused", report.error)
        return
    decision = report.proposal.decision
    tags = f"  tags {', '.join(decision.tags)}" if decision.tags else ""
    out.print(f"  {'decided':<9} [bold {_STYLE[decision.value.value]}]{decision.value.value}[/]"
              f"  risk {decision.risk.value}{tags}")
    if decision.summary:
        _line("what", decision.summary)
    for reason in decision.reasons:
        _line("why", reason)
    _line("rules", ", ".join(decision.rules) or "-")
    for remedy in decision.remedy:
        _line("to run", remedy)
    for vote, result in report.votes:
        verb = "approves" if vote.verdict == "approve" else f"denies ({vote.reason})"
        _line("human", f"{vote.human} {verb} -> {result}")
    _line("state", report.proposal.state.value + _ran(report))
    if report.step.gap is not None and report.decision != report.step.gap.should.value:
        _line("GAP", f"Interlock should answer {report.step.gap.should.value}: {report.step.gap.note}")


def _when(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def _ran(report: StepReport) -> str:
    result = report.proposal.result if report.proposal else None
    if not result:
        return "  (nothing ran)"
    text = [line for line in (result.get("output") or result.get("error") or "").splitlines() if line.strip()]
    shown = "".join(f"\n            | {line[:150]}" for line in text[:_OUTPUT_LINES])
    more = f"\n            | … {len(text) - _OUTPUT_LINES} more lines" if len(text) > _OUTPUT_LINES else ""
    return f"  (ran: {result.get('status')}){shown}{more}"


def show_end(report: Report) -> None:
    out.print("\n[bold]what was protected[/]")
    for fact, before in report.before.items():
        after = report.after.get(fact, "gone")
        expected = report.scenario.protected.get(fact)
        if after == before:
            verdict = "[green]kept[/]"
        elif expected == after:
            verdict = "[cyan]changed, as the scenario expects[/]"
        else:
            verdict = "[red]LOST[/]" if after == "gone" else "[red]CHANGED[/]"
        out.print(f"  {fact:<36} {before} -> {after}  {verdict}")
    _line("audit", f"{report.audit_entries} entries, " + ("verified" if not report.audit_problems
                                                           else "PROBLEMS: " + "; ".join(report.audit_problems)))
    gaps = report.gaps_open()
    for gap in gaps:
        should = gap.step.gap.should.value if gap.step.gap else "?"
        out.print(f"  [yellow]known gap[/] at step {gap.number}: Interlock answered {gap.decision}, "
                  f"it should answer {should}")
    mismatches = report.mismatches()
    if mismatches:
        for problem in mismatches:
            out.print(f"  [red]unexpected:[/] {problem}")
    else:
        out.print("  [green]the replay went as the scenario expects[/]"
                  + (" (with its known gap)" if gaps else ""))


def _quiet(_: object) -> None:
    pass


@options.shared
def demo(
    name: Annotated[str | None, typer.Argument(help="the incident to replay (see --list)")] = None,
    list_: Annotated[bool, typer.Option("--list", help="list the incidents of the gallery")] = False,
    format: options.Fmt = Format.text,
) -> None:
    """Replay a public agent incident against a real target, step by step (examples/incidents/)."""
    if list_ or name is None:
        found = names()
        if not found:
            err.print(f"no incident gallery at {gallery_dir()}: run from the Interlock checkout", markup=False)
            raise typer.Exit(2)
        if format is Format.json:
            out.print_json(data=[{"name": each, "title": load(each).title} for each in found])
            return
        for each in found:
            scenario = load(each)
            out.print(f"{each:<12} {scenario.title}", markup=False)
        if not list_:
            out.print("\nreplay one: interlock demo NAME", markup=False)
        return
    try:
        scenario = load(name)
        text = format is Format.text
        report = replay(scenario, on_start=show_start if text else _quiet, on_step=show_step if text else _quiet,
                        postgres=os.environ.get("INTERLOCK_DEMO_PG", DEFAULT_PG))
    except (ScenarioError, WorldError) as exc:
        err.print(f"[red]error:[/red] {exc}", markup=True)
        raise typer.Exit(2) from None
    if text:
        show_end(report)
    else:
        out.print_json(data=report.to_json())
    raise typer.Exit(1 if report.mismatches() else 0)
