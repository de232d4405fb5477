"""`interlock approvals list|show|approve|deny` on both stores: the approver's view, agent tokens
refused, every refusal a non-zero exit with the specific error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interlock.gate.cli import app
from interlock.gate.service import Gate
from interlock.identity import create_token
from interlock.policy import Policy
from interlock.store import Store
from interlock.testing import live_server
from tests import gate_fixtures as support
from tests.conftest import PgAdmin
from tests.gate_fixtures import Recorded, propose, sql

EXAMPLE = Path(__file__).parent.parent / "examples" / "policy.yaml"
audit, policy = support.audit, support.policy


@pytest.fixture
def gate(store: Store, policy: Policy, audit: Recorded) -> Gate:
    return Gate(store, policy, audit)  # the system clock: the CLI runs on real time


@pytest.fixture
def cli(store: Store, tmp_path: Path, audit: Recorded):  # type: ignore[no-untyped-def]
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(support.POLICY)
    runner = CliRunner()

    def run(name: str, *args: str, kind: str = "human") -> tuple[int, str, str]:
        _, secret = create_token(store, kind, name, None, audit)  # type: ignore[arg-type]
        env = {
            "INTERLOCK_TOKEN": secret,
            "INTERLOCK_POLICY": str(policy_file),
            "INTERLOCK_DB": store.url,
            "INTERLOCK_KEYS": str(tmp_path / "keys"),
        }
        result = runner.invoke(app, list(args), env=env)
        return result.exit_code, result.stdout, result.stderr

    return run


def test_show_gives_the_approver_everything(gate: Gate, cli) -> None:  # type: ignore[no-untyped-def]
    request = propose(gate, sql())
    code, out, _ = cli("bob", "show", request.id)
    assert code == 0
    for expected in (
        request.id,
        "state: pending",
        "owner alice",
        "sql in production/billing-db",
        '"sql": "DELETE FROM invoices WHERE id = 42"',
        "intent:    remove a duplicate invoice",
        "rollback:  re-insert from backup",
        "so far:    no votes yet",
        "still needs 2 more from dba or sre",
        "time left:",
    ):
        assert expected in out, expected


def test_approve_deny_list_json(gate: Gate, cli) -> None:  # type: ignore[no-untyped-def]
    first = propose(gate, sql())
    second = propose(gate, sql("DELETE FROM invoices WHERE id = 43"))
    code, out, _ = cli("carol", "list", "--format", "json")
    assert code == 0 and {s["id"] for s in json.loads(out)} == {first.id, second.id}
    assert cli("bob", "approve", first.id)[0] == 0
    code, out, _ = cli("dave", "approve", first.id, "--format", "json")
    status = json.loads(out)
    assert code == 0 and status["state"] == "approved" and status["approved_by"] == ["bob", "dave"]
    code, _, err = cli("carol", "deny", second.id)
    assert code == 1 and "reason_required" in err
    code, out, _ = cli("carol", "deny", second.id, "--reason", "wrong invoice")
    assert code == 0 and "state: denied" in out
    code, out, _ = cli("carol", "list")
    assert code == 0 and "no pending approval requests" in out


def test_approve_with_a_comment(gate: Gate, cli, store: Store) -> None:  # type: ignore[no-untyped-def]
    request = propose(gate, sql())
    assert cli("bob", "approve", request.id, "--comment", "checked with billing")[0] == 0
    code, out, _ = cli("bob", "show", request.id)
    assert code == 0 and "bob approved (checked with billing)" in out
    with store.transaction(readonly=True) as tx:
        rows = tx.fetchall("SELECT entry FROM audit_entries WHERE event = ?", ("approval.approved",))
    assert [json.loads(r["entry"])["data"].get("comment") for r in rows] == ["checked with billing"]


@pytest.mark.parametrize(
    ("name", "kind", "args", "code", "message"),
    [
        ("kiro", "agent", ["list"], 1, "only a human's own token"),
        ("kiro", "agent", ["approve", "{id}"], 1, "only a human's own token"),
        ("alice", "human", ["approve", "{id}"], 1, "[not_eligible] alice owns agent kiro"),
        ("erin", "human", ["approve", "{id}"], 1, "[not_eligible] erin (groups: finance)"),
        ("bob", "human", ["approve", "apr_unknown"], 1, "[unknown_request]"),
    ],
)
def test_refusals(
    gate: Gate,
    cli,
    audit: Recorded,
    name: str,
    kind: str,
    args: list[str],
    code: int,  # type: ignore[no-untyped-def]
    message: str,
) -> None:
    request = propose(gate, sql())
    exit_code, _, err = cli(name, *[a.format(id=request.id) for a in args], kind=kind)
    assert exit_code == code
    assert message in err


def test_bad_token_and_missing_policy(gate: Gate, store: Store, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["list", "--token", "ilk_h_forged", "--policy", str(tmp_path / "none.yaml"), "--db", store.url]
    )
    assert result.exit_code == 2 and "does not load" in result.stderr
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(support.POLICY)
    result = CliRunner().invoke(
        app,
        [
            "list",
            "--token",
            "ilk_h_forged",
            "--policy",
            str(policy_file),
            "--db",
            store.url,
            "--keys",
            str(tmp_path / "keys"),
        ],
    )
    assert result.exit_code == 1 and "malformed token" in result.stderr and "forged" not in result.stderr


def test_cli_outcomes_reach_the_webhook(
    store: Store, tmp_path: Path, audit: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.gate_fixtures import SECRET, Receiver

    receiver = Receiver()
    try:
        monkeypatch.setenv("IL_HOOK_SECRET", SECRET)
        text = support.POLICY + f"notify:\n  - {{url: '{receiver.url}', secret: env:IL_HOOK_SECRET}}\n"
        policy_file = tmp_path / "notify.yaml"
        policy_file.write_text(text)
        request = propose(Gate(store, support.policy_from(text), audit), sql())  # no notifier here
        for name in ("bob", "carol"):
            _, secret = create_token(store, "human", name, None, audit)
            result = CliRunner().invoke(
                app,
                [
                    "approve",
                    request.id,
                    "--token",
                    secret,
                    "--policy",
                    str(policy_file),
                    "--db",
                    store.url,
                    "--keys",
                    str(tmp_path / "keys"),
                ],
            )
            assert result.exit_code == 0, result.output
        assert receiver.events() == ["approval.approved"]
        assert receiver.received[0]["valid"]
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_through_the_server(tmp_path: Path, pg_admin: PgAdmin, dialect: str) -> None:
    """With --server the CLI uses the HTTP API: same view, same refusals, identity from the token."""
    dbname = pg_admin.create_database("interlock_cli") if dialect == "postgresql" else None
    url = pg_admin.url(dbname) if dbname else f"sqlite:///{tmp_path / 'interlock.db'}"
    try:
        with live_server(EXAMPLE, url, tmp_path) as server:
            kiro, alice, bob, dave = (
                server.token(k, n)
                for k, n in [("agent", "kiro"), ("human", "alice"), ("human", "bob"), ("human", "dave")]
            )
            with server.client(kiro) as agent:
                pending = agent.post(
                    "/v1/actions",
                    json={
                        "kind": "shell",
                        "environment": "production",
                        "payload": {"command": "rm -rf /srv/cache"},
                        "mode": "advisory",
                    },
                ).json()
            request_id = pending["approval"]["id"]

            def run(token: str, *args: str) -> tuple[int, str, str]:
                result = CliRunner().invoke(app, [*args, "--server", server.url, "--token", token])
                return result.exit_code, result.stdout, result.stderr

            code, out, _ = run(bob, "show", request_id)
            assert code == 0 and '"command": "rm -rf /srv/cache"' in out and "owner alice" in out
            assert run(kiro, "approve", request_id)[0] == 1  # agent token refused by the server
            code, _, err = run(alice, "approve", request_id)
            assert code == 1 and "not_eligible" in err
            assert run(bob, "approve", request_id)[0] == 0
            code, out, _ = run(dave, "approve", request_id, "--format", "json")
            assert code == 0 and sorted(json.loads(out)["approved_by"]) == ["bob", "dave"]
            code, out, _ = run(bob, "list")
            assert code == 0 and "no pending approval requests" in out
    finally:
        if dbname:
            pg_admin.drop_later(dbname)


def test_list_by_state_and_watch(gate: Gate, cli, store: Store, audit: Recorded,  # type: ignore[no-untyped-def]
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`list --state S` (pending by default, `all`, or a decided state); `--watch` redraws every
    --interval seconds on the injected clock until Ctrl-C, each redraw seeing the store anew."""
    from datetime import UTC, datetime

    from interlock.gate import cli as gate_cli

    first = propose(gate, sql())
    second = propose(gate, sql("DELETE FROM invoices WHERE id = 43"))
    assert cli("carol", "deny", second.id, "--reason", "wrong invoice")[0] == 0
    for state, expected in (("pending", [first.id]), ("denied", [second.id]), ("all", [first.id, second.id])):
        code, out, _ = cli("carol", "list", "--state", state, "--format", "json")
        assert code == 0 and sorted(v["id"] for v in json.loads(out)) == sorted(expected), state
    code, _, err = cli("carol", "list", "--state", "maybe")
    assert code == 2 and "maybe" in err

    ticks: list[float] = []

    def sleep(seconds: float) -> None:  # the injected clock: no real waiting
        ticks.append(seconds)
        if len(ticks) == 1 and gate.status(first.id).request.state == "pending":  # a human decides meanwhile
            gate.deny(first.id, support.login(store, audit, "bob"), "not today")
        if len(ticks) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(gate_cli, "SLEEP", sleep)
    monkeypatch.setattr(gate_cli, "CLOCK", lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    code, out, _ = cli("carol", "list", "--watch", "--interval", "5", "--format", "json")
    assert code == 0 and ticks == [5.0, 5.0, 5.0]
    assert [[v["id"] for v in json.loads(line)] for line in out.splitlines()] == [[first.id], [], []]
    ticks.clear()
    code, out, _ = cli("carol", "list", "--watch", "--state", "denied", "--interval", "5")
    assert code == 0 and "approval requests (denied) at 2026-01-02T03:04:05Z, every 5 s" in out
    assert first.id in out and second.id in out
    assert out.count("approval requests (denied)") == 1  # redrawn in place (rich Live), not appended
