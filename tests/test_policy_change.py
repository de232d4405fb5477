"""Issue 10.7 (both stores): no action is left pending forever. A restart with an edited policy
re-decides every pending request (re-pinned when the new policy asks for exactly the same approvals,
else invalidated with the reason, and the agent's wait returns); a re-proposal that uses the grant an
earlier pending action waited for ends that action as superseded, naming the one that ran."""

from __future__ import annotations

from pathlib import Path

from interlock.gateway import TERMINAL, Mode, State
from interlock.identity import Principal
from interlock.model import Action
from interlock.runtime import Runtime
from interlock.server.state import Server, Settings

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "policy.yaml"
WRITE = Action.model_validate({"kind": "shell", "environment": "production", "payload": {"command": "touch /srv/x"}})
DELETE = Action.model_validate({"kind": "sql", "environment": "production", "target": "billing-db",
                                "payload": {"sql": "DELETE FROM invoices WHERE id = 42"}})


def _serve(policy: Path, store_url: str, keys: Path) -> Server:
    """One server start, in process (the same path as `interlock serve`)."""
    return Server(Settings(policy=policy, db=store_url, key_dir=keys, allow_missing_secrets=True))


def test_a_restart_with_an_edited_policy_re_decides_every_pending_request(store_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    first = _serve(EXAMPLE, store_url, keys)
    try:
        write = first.gateway.propose("kiro", WRITE, mode=Mode.advisory)
        delete = first.gateway.propose("kiro", DELETE, mode=Mode.advisory)
        assert write.state is delete.state is State.pending_approval
        assert write.approval is not None and delete.approval is not None
    finally:
        first.close()
    edited = tmp_path / "policy.yaml"  # the DBA rule now wants both approvers from dba; the rest is unchanged
    edited.write_text(EXAMPLE.read_text().replace("at_least: {dba: 1}", "at_least: {dba: 2}"))
    second = _serve(edited, store_url, keys)
    try:
        assert second.redecided[write.approval["id"]] == "repinned"
        assert second.redecided[delete.approval["id"]] == (
            "invalidated: the new policy requires different approvals (2 approvals from dba or sre, at least 2 from dba)")
        gone = second.gateway.advance(delete.id)  # what the agent's wait does: it returns, terminal
        assert gone.state is State.invalidated and gone.state in TERMINAL
        assert "different approvals" in (gone.approval or {})["reason"]
        # The re-pinned request takes votes under the new policy (no stale_policy) and its grant runs.
        second.gate.approve(write.approval["id"], Principal("human", "bob", "tok_bob"))
        assert second.gateway.advance(write.id).state is State.approved
        again = _serve(edited, store_url, keys)  # a second start with the same policy changes nothing
        try:
            assert again.redecided == {}
        finally:
            again.close()
    finally:
        second.close()


def test_a_re_proposal_that_uses_the_grant_supersedes_the_earlier_action(store_url: str, tmp_path: Path) -> None:
    with Runtime(EXAMPLE, store_url, tmp_path / "keys") as runtime:
        waiting = runtime.gateway.propose("kiro", WRITE, mode=Mode.advisory)
        assert waiting.approval is not None
        runtime.gate.approve(waiting.approval["id"], Principal("human", "bob", "tok_bob"))
        ran = runtime.gateway.propose("kiro", WRITE, mode=Mode.advisory)  # the agent asked again first
        assert ran.state is State.approved
        ended = runtime.gateway.advance(waiting.id)
        assert ended.state is State.superseded and ended.state in TERMINAL
        assert ended.approval is not None and ended.approval["superseded_by"] == ran.id
        assert runtime.gateway.status(waiting.id).to_json()["state"] == "superseded"
