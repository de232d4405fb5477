"""Misconfiguration is loud (issue 11.2) and TLS works (11.5), on a real `interlock serve`.

Missing credential references stop the server at start, or (with --allow-missing-secrets) are reported
in /readyz and deny their target's actions before any human is asked; webhook failures reach stderr
with a readable reason; /metrics counts pending approvals and failed webhooks.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from interlock.cli import app
from interlock.testing import eventually, live_server

POLICY = """\
version: 1
humans:
  alice: {groups: [sre]}
  bob: {groups: [sre]}
agents:
  kiro: {owner: alice, roles: [dev]}
environments:
  lab: {}
targets:
  shop: {environment: lab, kind: sql, dsn: env:OPS_TEST_UNSET_SHOP_DSN}
  books: {environment: lab, kind: sql, dsn: env:OPS_TEST_BOOKS_DSN}
roles:
  dev:
    lab: {autonomous: read, approve: {write: 1, destructive: 1}}
notify:
  - {url: "http://127.0.0.1:PORT/hook", secret: env:OPS_TEST_UNSET_HOOK_SECRET}
"""

#: No credentials at all: for the TLS tests.
PLAIN_POLICY = POLICY.split("targets:")[0] + "roles:\n  dev:\n    lab: {autonomous: read}\n"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.replace("PORT", str(closed_port())))
    return path


@pytest.mark.parametrize("workers", ["1", "2"])  # one process checks in create_app, several before forking
def test_serve_refuses_to_start_naming_each_missing_reference(policy: Path, tmp_path: Path, workers: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPS_TEST_BOOKS_DSN", "postgresql://app:s3cr3t-value@db/books")
    result = CliRunner().invoke(app, ["serve", "--policy", str(policy), "--db", f"sqlite:///{tmp_path / 'i.db'}",
                                      "--workers", workers])
    assert result.exit_code == 2
    assert "targets.shop.dsn: environment variable OPS_TEST_UNSET_SHOP_DSN" in result.output
    assert "notify[0].secret: environment variable OPS_TEST_UNSET_HOOK_SECRET" in result.output
    assert "targets.books" not in result.output and "s3cr3t-value" not in result.output
    assert "--allow-missing-secrets" in result.output


def test_missing_secrets_reported_denied_early_and_counted(policy: Path, tmp_path: Path) -> None:
    env = {"OPS_TEST_BOOKS_DSN": "postgresql://app@127.0.0.1:1/books"}  # resolves; never connected to here
    with live_server(policy, f"sqlite:///{tmp_path / 'i.db'}", tmp_path, env=env) as server:
        assert "warning: targets.shop.dsn: environment variable OPS_TEST_UNSET_SHOP_DSN" in server.logs()
        with server.client() as anon:
            ready = anon.get("/readyz").json()
        assert ready["status"] == "ready" and "OPS_TEST_UNSET_SHOP_DSN" in ready["detail"]
        assert [m["where"] for m in ready["missing_secrets"]] == ["targets.shop.dsn", "notify[0].secret"]

        with server.client(server.token("agent", "kiro")) as agent:
            denied = agent.post("/v1/actions", json={"kind": "sql", "environment": "lab", "target": "shop",
                                                     "payload": {"sql": "DELETE FROM orders WHERE id = 1"}}).json()
            assert denied["decision"] == "deny" and denied["rules"] == ["credentials-unresolved"]
            assert "OPS_TEST_UNSET_SHOP_DSN" in denied["reasons"][0] and "approval" not in denied
            pending = agent.post("/v1/actions", json={"kind": "sql", "environment": "lab", "target": "books",
                                                      "payload": {"sql": "DELETE FROM orders WHERE id = 1"}}).json()
            assert pending["decision"] == "approval_required" and pending["state"] == "pending_approval"
        with server.client(server.token("human", "bob")) as human:
            assert len(human.get("/v1/approvals").json()["approvals"]) == 1  # only the runnable one

        def metrics() -> str:
            with server.client() as anon:
                return anon.get("/metrics").text

        assert "interlock_pending_approvals 1.0" in metrics()
        # The new request's webhook cannot be signed (its secret is missing): given up at once, said on
        # stderr with the reason readable, and counted.
        eventually(lambda: "interlock_webhook_failures_total 1.0" in metrics())
        assert "interlock_webhook_outbox_pending 0.0" in metrics()  # given up: gone from the outbox
        logs = server.logs()
        assert '"event":"webhook_failed"' in logs
        assert "cannot sign the delivery: environment variable OPS_TEST_UNSET_HOOK_SECRET" in logs


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_serve_over_tls(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(PLAIN_POLICY)
    cert, key = self_signed(tmp_path)
    with live_server(policy, f"sqlite:///{tmp_path / 'i.db'}", tmp_path, tls=(cert, key)) as server:
        assert server.url.startswith("https://")
        with server.client(server.token("agent", "kiro")) as agent:
            answer = agent.post("/v1/actions", json={"kind": "shell", "environment": "lab",
                                                     "payload": {"command": "ls /tmp"}, "mode": "advisory"})
            assert answer.status_code == 200 and answer.json()["decision"] == "allow"
            page = agent.get("/docs")  # the API reference, offline: no script, no external asset
            assert page.status_code == 200 and "<code>/v1/actions</code>" in page.text
            assert "<script" not in page.text and "cdn" not in page.text.lower()
        with pytest.raises(ssl.SSLError), socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) \
                as raw, ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1"):
            pass  # an untrusting client refuses the self-signed certificate: it is really TLS


@pytest.mark.parametrize("args, message", [
    (["--tls-cert", "CERT"], "--tls-cert and --tls-key go together"),
    (["--tls-cert", "CERT", "--tls-key", "MISSING"], "no such file"),
    (["--tls-cert", "KEY", "--tls-key", "KEY"], "do not load together"),
])
def test_bad_tls_options_are_clear_errors(tmp_path: Path, args: list[str], message: str) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(PLAIN_POLICY)
    cert, key = self_signed(tmp_path)
    paths = {"CERT": str(cert), "KEY": str(key), "MISSING": str(tmp_path / "missing.pem")}
    argv = ["serve", "--policy", str(policy), "--db", f"sqlite:///{tmp_path / 'i.db'}",
            *[paths.get(a, a) for a in args]]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2 and message in result.output, result.output


def test_worker_settings_carry_the_public_url_and_the_missing_secrets_choice(monkeypatch: pytest.MonkeyPatch,
                                                                             tmp_path: Path) -> None:
    from interlock.server.state import Settings

    monkeypatch.setenv("INTERLOCK_POLICY", str(tmp_path / "p.yaml"))
    monkeypatch.setenv("INTERLOCK_PUBLIC_URL", "https://interlock.example")
    monkeypatch.setenv("INTERLOCK_ALLOW_MISSING_SECRETS", "1")
    settings = Settings.from_env()
    assert (settings.public_url, settings.allow_missing_secrets) == ("https://interlock.example", True)
