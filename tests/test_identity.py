"""Tokens on SQLite and PostgreSQL: shown once, stored hashed, specific refusals that never echo the
secret, agent tokens refused at human endpoints, names checked against the policy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interlock.audit import AuditLog
from interlock.identity import (
    AuthError,
    authenticate,
    create_token,
    list_tokens,
    require_human,
    revoke,
    secret_hash,
)
from interlock.identity_cli import app
from interlock.store import Store
from tests import gate_fixtures as support
from tests.gate_fixtures import ManualClock, Recorded, policy_from

audit, clock = support.audit, support.clock


@pytest.mark.parametrize(("kind", "prefix"), [("agent", "ilk_a_"), ("human", "ilk_h_")])
def test_create_and_authenticate(store: Store, audit: Recorded, kind: str, prefix: str) -> None:
    token_id, secret = create_token(store, kind, "bob", None, audit)  # type: ignore[arg-type]
    assert re.fullmatch(re.escape(prefix) + r"[A-Za-z0-9_-]{43}", secret)
    principal = authenticate(store, secret, log=audit)
    assert (principal.kind, principal.name, principal.token_id) == (kind, "bob", token_id)
    with store.transaction() as tx:
        row = tx.fetchone("SELECT * FROM tokens WHERE id = ?", (token_id,))
    assert row is not None and secret not in json.dumps(row)  # only the hash is stored
    assert audit.last("token.created") == {
        "token_id": token_id,
        "kind": kind,
        "name": "bob",
        "expires_at": None,
        "lookup_hash": secret_hash(secret),  # the hash the tokens table keeps, so the row is bound to its entry
    }
    assert secret not in json.dumps(audit.events)


def _bad(store: Store, audit: Recorded, clock: ManualClock, case: str) -> str:
    if case == "malformed":
        return "Bearer abc"
    if case == "wrong-prefix":
        _, secret = create_token(store, "agent", "kiro", None, audit)
        return "ilk_h_" + secret.removeprefix("ilk_a_")  # an agent's secret dressed as a human's
    if case == "unknown":
        return "ilk_h_" + "A" * 43
    if case == "revoked":
        token_id, secret = create_token(store, "human", "bob", None, audit)
        revoke(store, token_id, audit)
        return secret
    if case == "expired":
        _, secret = create_token(store, "human", "bob", 60, audit, clock=clock)
        clock.advance(60)
        return secret
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "reason", "message"),
    [
        ("malformed", "malformed", "malformed token"),
        ("wrong-prefix", "unknown", "unknown token"),
        ("unknown", "unknown", "unknown token"),
        ("revoked", "revoked", "was revoked at"),
        ("expired", "expired", "expired at"),
    ],
)
def test_refused_tokens(
    store: Store, audit: Recorded, clock: ManualClock, case: str, reason: str, message: str
) -> None:
    secret = _bad(store, audit, clock, case)
    with pytest.raises(AuthError) as info:
        authenticate(store, secret, log=audit, audit=audit, clock=clock)
    assert info.value.reason == reason
    assert message in str(info.value)
    assert secret not in str(info.value) and secret[6:] not in str(info.value)  # never echoed
    assert audit.last("token.refused")["reason"] == reason
    assert secret not in json.dumps(audit.events)


def test_agent_token_refused_at_human_endpoint(store: Store, audit: Recorded) -> None:
    _, secret = create_token(store, "agent", "kiro", None, audit)
    with pytest.raises(AuthError) as info:
        require_human(authenticate(store, secret, log=audit))
    assert info.value.reason == "agent_token"
    _, human = create_token(store, "human", "bob", None, audit)
    assert require_human(authenticate(store, human, log=audit)).name == "bob"


@pytest.mark.parametrize(
    ("kind", "name", "ok"),
    [
        ("agent", "kiro", True),
        ("human", "bob", True),
        ("agent", "bob", False),
        ("human", "kiro", False),
        ("human", "mallory", False),
    ],
)
def test_names_must_exist_in_the_policy(
    store: Store, audit: Recorded, kind: str, name: str, ok: bool
) -> None:
    if ok:
        create_token(store, kind, name, None, audit, policy=policy_from())  # type: ignore[arg-type]
        return
    with pytest.raises(AuthError, match="is not in policy"):
        create_token(store, kind, name, None, audit, policy=policy_from())  # type: ignore[arg-type]


def test_revoke_list(store: Store, audit: Recorded) -> None:
    first, _ = create_token(store, "human", "bob", None, audit)
    second, _ = create_token(store, "agent", "kiro", 3600, audit)
    revoke(store, first, audit)
    with pytest.raises(AuthError, match="already revoked"):
        revoke(store, first, audit)
    with pytest.raises(AuthError, match="no token"):
        revoke(store, "tok_nope", audit)
    rows = {t.id: t for t in list_tokens(store)}
    assert rows[first].revoked_at is not None and rows[second].expires_at is not None
    assert audit.names().count("token.revoked") == 1


def test_cli_create_list_revoke(store: Store, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    runner = CliRunner()
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(support.POLICY)
    db = ["--db", store.url, "--keys", str(tmp_path / "keys")]
    created = runner.invoke(
        app, ["create", "--human", "bob", "--expires", "30d", "--policy", str(policy_file), "--json", *db]
    )
    assert created.exit_code == 0, created.output
    token = json.loads(created.stdout)
    log = AuditLog(store, key_dir=tmp_path / "keys")
    request.addfinalizer(log.close)
    assert authenticate(store, token["secret"], log=log).name == "bob"
    unknown = runner.invoke(app, ["create", "--agent", "mallory", "--policy", str(policy_file), *db])
    assert unknown.exit_code == 1 and "is not in policy" in unknown.output
    both = runner.invoke(app, ["create", "--agent", "kiro", "--human", "bob", *db])
    assert both.exit_code == 2
    listed = runner.invoke(app, ["list", "--json", *db])
    assert [t["state"] for t in json.loads(listed.stdout)] == ["active"]
    assert token["secret"] not in listed.stdout
    revoked = runner.invoke(app, ["revoke", token["id"], *db])
    assert revoked.exit_code == 0, revoked.output
    with pytest.raises(AuthError, match="revoked"):
        authenticate(store, token["secret"], log=log)
