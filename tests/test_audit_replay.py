"""Policy replay (shadow mode): past proposals re-decided under a new policy, on both stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rfc8785
import typer
from typer.testing import CliRunner

from interlock.audit import AuditLog
from interlock.audit.cli import replay_command
from interlock.audit.log import entry_json
from interlock.audit.replay import replay
from interlock.classify import classify
from interlock.fingerprint import canonical_json
from interlock.model import Action, Kind
from interlock.policy import context_for, decide, load_policy, load_policy_text
from interlock.store import Store
from interlock.wire import decision_json

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "policy.yaml"
FREEZE = """
  - id: staging-freeze
    when: {environment: staging}
    effect: deny
    reason: staging is frozen for the release
"""

# (action id, agent, environment, kind, payload)
PAST = [
    ("a1", "kiro", "staging", Kind.shell, {"command": "touch /srv/app/flag"}),
    ("a2", "kiro", "production", Kind.shell, {"command": "ls /srv"}),
    ("a3", "kiro", "staging", Kind.shell, {"command": "ls"}),
    ("a4", "reporter", "production", Kind.shell, {"command": "cat /var/log/app.log"}),
]


def _new_policy(tmp_path: Path) -> Path:
    text = EXAMPLE.read_text()
    marker = "rules:\n"
    path = tmp_path / "new.yaml"
    path.write_text(text.replace(marker, marker + FREEZE.lstrip("\n"), 1))
    load_policy(path)  # the new policy must load (hard floor, references)
    return path


def _record(log: AuditLog) -> dict[str, str]:
    """Proposals as the gateway writes them: the decision of the policy in force at the time."""
    old = load_policy(EXAMPLE)
    outcomes = {}
    for action_id, agent, env, kind, payload in PAST:
        action = Action(kind=kind, environment=env, payload=payload)
        found = classify(kind, payload, context_for(old, None))
        decision = decide(old, agent, action, found)
        log.append(
            "action.proposed",
            {
                "action_id": action_id,
                "agent": agent,
                "action": action.model_dump(mode="json"),
                "classification": found.model_dump(mode="json"),
                "decision": decision_json(decision),
            },
        )
        outcomes[action_id] = decision.value.value
    log.append(
        "action.proposed",
        {"action_id": "broken", "agent": "kiro", "action": {"kind": "telnet"}, "decision": {"decision": "deny"}},
    )
    return outcomes


def test_replay_lists_exactly_the_decisions_that_change(store: Store, tmp_path: Path) -> None:
    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        before = _record(log)
        result = replay(log, load_policy(_new_policy(tmp_path)))
    assert result.proposals == 5 and len(result.unreadable) == 1
    assert before["a1"] != "deny" and before["a3"] == "allow"
    assert [(c.action_id, c.before, c.after) for c in result.changes] == [
        ("a1", before["a1"], "deny"),
        ("a3", "allow", "deny"),
    ]
    assert all(c.rules == ("staging-freeze",) for c in result.changes)
    assert result.unchanged == 2


def test_replay_under_the_same_policy_changes_nothing(store: Store, tmp_path: Path) -> None:
    with AuditLog(store, key_dir=tmp_path / "keys") as log:
        _record(log)
        result = replay(log, load_policy(EXAMPLE))
    assert result.changes == [] and result.unchanged == 4


def test_replay_command(store_url: str, tmp_path: Path) -> None:
    from interlock.store import open_store

    keys = tmp_path / "keys"
    with open_store(store_url) as store, AuditLog(store, key_dir=keys) as log:
        _record(log)
    app = typer.Typer()
    app.command()(replay_command)
    args = ["--policy", str(_new_policy(tmp_path)), "--db", store_url, "--key-dir", str(keys)]
    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert [c["action_id"] for c in json.loads(result.output)["changes"]] == ["a1", "a3"]
    assert CliRunner().invoke(app, [*args, "--fail-on-change"]).exit_code == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nenvironments: {production: {protected: true}}\nnope: 1\n")
    refused = CliRunner().invoke(app, ["--policy", str(bad), "--db", store_url, "--key-dir", str(keys)])
    assert refused.exit_code == 2


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": [True, None, "x"]},
        {"é": "ü", "\u2028": "line\nsep\t\u0001", "z": -(2**53) + 1},
        {"emoji": "😀", "nested": {"k": [{"q": "\"'\\"}]}},
    ],
)
def test_fast_canonical_json_is_rfc8785(value: dict[str, object]) -> None:
    assert entry_json(value) == rfc8785.dumps(value)


@pytest.mark.parametrize("value", [{"f": 1.5}, {"big": 2**60}, {"😀key": 1}])
def test_values_outside_the_fast_path_still_canonical(value: dict[str, object]) -> None:
    try:
        expected = canonical_json(value)
    except ValueError:
        with pytest.raises(ValueError):
            entry_json(value)
        return
    assert entry_json(value) == expected


def test_policy_text_loader_is_available() -> None:
    assert load_policy_text(EXAMPLE.read_text(), str(EXAMPLE)).version
