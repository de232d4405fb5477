"""Issue 10.10 and 10.11 (both stores): an action's timeline holds the whole story (who approved,
the grant issued and consumed), listed without cutting fields; execution output stays out of the
permanent log unless the target opts in to an excerpt."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from typer.testing import CliRunner

from interlock.audit.cli import summary
from interlock.cli import app
from interlock.gateway import Mode
from interlock.identity import Principal
from interlock.model import Action
from interlock.runtime import Runtime

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "policy.yaml"
runner = CliRunner()


def _policy(tmp_path: Path, audit_output: str | None) -> Path:
    text = EXAMPLE.read_text()
    extra = f", audit_output: {audit_output}" if audit_output else ""
    text = text.replace("targets:\n", f"targets:\n  scratch: {{environment: sandbox, kind: shell, workdir: {tmp_path}{extra}}}\n", 1)
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def _entries(runtime: Runtime, action_id: str, event: str) -> list[dict[str, object]]:
    return [data for _, name, data in runtime.audit.action_entries(action_id) if name == event]


def test_votes_and_grants_carry_the_action_and_show_tells_who_approved(store_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    action = Action.model_validate({"kind": "shell", "environment": "production",
                                    "payload": {"command": "touch /srv/flag"}})
    with Runtime(EXAMPLE, store_url, keys) as runtime:
        first = runtime.gateway.propose("kiro", action, mode=Mode.advisory)
        again = runtime.gateway.propose("kiro", action, mode=Mode.advisory)
        assert first.approval and again.approval and first.approval["id"] == again.approval["id"]
        runtime.gate.approve(first.approval["id"], Principal("human", "bob", "tok_bob"))
        done = runtime.gateway.advance(again.id)
        assert done.state.value == "approved"
        votes = _entries(runtime, first.id, "approval.approved")
        assert [v["principal"] for v in votes] == ["bob"]
        assert _entries(runtime, first.id, "grant.issued")[0]["approved_by"] == ["bob"]
        assert _entries(runtime, again.id, "grant.consumed")[0]["action_id"] == again.id
    for action_id in (first.id, again.id):  # the second proposal joined the first one's request
        result = runner.invoke(app, ["audit", "show", "--db", store_url, "--key-dir", str(keys), "--action", action_id])
        assert result.exit_code == 0, result.output
        assert "approval.approved" in result.output and "bob" in result.output, result.output
        assert "grant.issued" in result.output


def test_the_text_listing_shortens_a_field_visibly_and_never_cuts_the_others() -> None:
    line = summary("approval.denied", {"principal": "carol", "reason": "x" * 500, "request_id": "apr_1",
                                       "action_id": "act_1"})
    assert line.startswith("carol ") and "request_id=\"apr_1\"" in line and line.endswith("(action act_1)")
    assert "…(+" in line and "x" * 100 not in line
    unknown = summary("webhook.failed", {"webhook": "https://hooks/x", "attempts": 3, "delivery": "d" * 300})
    assert unknown.startswith("attempts=3 delivery=") and "webhook=" in unknown


def test_execution_output_is_a_digest_unless_the_target_opts_in(store_url: str, tmp_path: Path) -> None:
    secret_row = "4111-1111-1111-1111 alice@example.com"
    for opt_in in (None, "excerpt"):
        action = Action.model_validate({"kind": "shell", "environment": "sandbox", "target": "scratch",
                                        "payload": {"command": f"echo '{secret_row}'"}})
        with Runtime(_policy(tmp_path, opt_in), store_url, tmp_path / "keys") as runtime:
            ran = runtime.gateway.propose("kiro", action)
            assert ran.state.value == "succeeded" and secret_row in str(ran.result)  # the caller gets it
            [finished] = _entries(runtime, ran.id, "execution.finished")
        result = finished["result"]
        assert isinstance(result, dict)
        output = (secret_row + "\n").encode()
        assert (result["output_bytes"], result["output_sha256"]) == (len(output), hashlib.sha256(output).hexdigest())
        assert ("excerpt" in result) is (opt_in == "excerpt")
        assert (secret_row in json.dumps(finished)) is (opt_in == "excerpt")
