"""Secrets are redacted before anything is written: formats, configured patterns, and proof that
a planted secret never reaches either store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.audit import AuditLog, Redactor, summarize_output
from interlock.audit.redact import _BUILTIN, redact
from interlock.store import Store

# (text containing a secret, the secret that must disappear, a part that must stay readable)
SECRETS_IN_TEXT = [
    ("psql postgresql://admin:Sup3rS3cret@db.internal:5432/billing", "Sup3rS3cret", "db.internal"),
    ("mysql://root:p%40ss@10.0.0.1/app", "p%40ss", "10.0.0.1"),
    ("host=db user=app password=hunter2 dbname=x", "hunter2", "dbname=x"),
    ("PGPASSWORD=hunter2 psql -h db", "hunter2", "psql -h db"),
    ('{"password": "hunter2", "user": "bob"}', "hunter2", "bob"),
    (
        "curl -H 'Authorization: Bearer eyAbc123.def456ghi789' https://api",
        "eyAbc123.def456ghi789",
        "https://api",
    ),
    ("Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l", "YWxhZGRpbjpvcGVuc2VzYW1l", "Authorization"),
    ("export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE", "export"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key",
    ),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nabc\n-----END RSA PRIVATE KEY-----",
        "MIIEpAIBAAKCAQEA7",
        "[REDACTED]",
    ),
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n",
        "b3BlbnNzaC1rZXktdjEAAAA",
        "[REDACTED]",
    ),
    (
        "git clone https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/x",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "github.com",
    ),
    ("token: xoxb-123456789012-abcdefghijkl", "xoxb-123456789012-abcdefghijkl", "token"),
    ("OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwx", "sk-proj-abcdefghijklmnopqrstuvwx", "OPENAI_API_KEY"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N", "dozjgNryP4J3jVmNHl0w5N", "jwt"),
    ("mysql -u root --password=hunter2 db", "hunter2", "mysql -u root"),
]


@pytest.mark.parametrize(("text", "secret", "kept"), SECRETS_IN_TEXT)
def test_credential_formats_are_redacted(text: str, secret: str, kept: str) -> None:
    out = redact(text)
    assert secret not in out
    assert kept in out
    assert "[REDACTED]" in out


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"password": "x", "user": "bob"}, {"password": "[REDACTED]", "user": "bob"}),
        (
            {"db": {"DB_PASSWORD": "x", "api_key": "y", "Authorization": "z"}},
            {"db": {"DB_PASSWORD": "[REDACTED]", "api_key": "[REDACTED]", "Authorization": "[REDACTED]"}},
        ),
        (
            {"token_id": "t1", "tokens": 5, "max_tokens": 10},
            {"token_id": "t1", "tokens": 5, "max_tokens": 10},
        ),
        ({"password": None, "secret": ""}, {"password": None, "secret": ""}),
        ([1, "plain", {"k": "v"}], [1, "plain", {"k": "v"}]),
        ("kubectl get pods -n billing", "kubectl get pods -n billing"),
        ("SELECT * FROM users WHERE id = 1", "SELECT * FROM users WHERE id = 1"),
        (42, 42),
    ],
)
def test_structures(value: object, expected: object) -> None:
    assert redact(value) == expected


def test_configured_patterns() -> None:
    redactor = Redactor([r"ilk_[a-z0-9]{16}", r"(?i)internal-\d{6}"])
    assert redactor("use ilk_0123456789abcdef and INTERNAL-123456 now") == "use [REDACTED] and [REDACTED] now"


def test_invalid_configured_pattern_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a valid regular expression"):
        Redactor(["(unclosed"])


def test_output_summary_is_bounded_digested_and_redacted() -> None:
    output = b"password=hunter2\n" + b"x" * 10_000
    assert summarize_output(output) == {"bytes": len(output), "sha256": hashlib.sha256(output).hexdigest()}
    summary = summarize_output(output, limit=100, excerpt=True)  # a target's `audit_output: excerpt`
    assert summary["bytes"] == len(output) and summary["truncated"] is True
    assert len(summary["sha256"]) == 64 and len(summary["excerpt"]) <= 100
    assert "hunter2" not in summary["excerpt"]


PLANTED = "Pl4ntedS3cretValue"


def test_a_planted_secret_never_reaches_the_store(store: Store, tmp_path: Path) -> None:
    log = AuditLog(store, key_dir=tmp_path / "keys", redact_patterns=[r"Pl4nted\w+"])
    with log:
        log.append(
            "action.proposed",
            {
                "agent": "kiro",
                "action": {
                    "kind": "shell",
                    "environment": "prod",
                    "payload": {"command": f"PGPASSWORD={PLANTED} psql -h db"},
                },
            },
        )
        log.append("execution.finished", {"output": summarize_output(f"dsn=postgresql://u:{PLANTED}@h/d")})
        log.append("webhook.failed", {"message": f"login failed for {PLANTED}"})  # only the configured pattern knows
        log.append("token.created", {"name": "ci", "token": PLANTED})
        log.checkpoint()
        export = tmp_path / "export.jsonl"
        with export.open("w") as out:
            log.export(out)
    with store.transaction() as tx:
        for table in ("audit_entries", "audit_tree", "audit_checkpoints"):
            for row in tx.fetchall(f"SELECT * FROM {table}"):
                assert PLANTED not in repr(row)
    assert PLANTED not in export.read_text()
    if store.dialect == "sqlite":
        for path in tmp_path.glob("interlock.db*"):  # the database file, its WAL and shared memory
            assert PLANTED.encode() not in path.read_bytes()


# The assignment pattern before its lookbehind (starting a name only where its run of name characters
# starts): the reference the anchored one must agree with on every string.
_UNANCHORED_ASSIGNMENT = (
    r"(?i)((?:[A-Za-z0-9_.-]*?)(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|access[_-]?key|"
    r"secret[_-]?access[_-]?key|client[_-]?secret|private[_-]?key|auth[_-]?token)[\"']?"
    r"(?:\s*[=:]\s*|\s+(?=[\"']))[\"']?)([^\s\"'&;,]+)"
)
_PIECES = ["password", "PASSWD", "token", "secret", "api_key", "Api-Key", "access_key", "client_secret", "pwd",
           "auth_token", "secret_access_key", "a", "B", "1", "_", ".", "-", "=", ":", " ", '"', "'", "&", ";", ","]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=14).map("".join))
def test_the_anchored_assignment_pattern_masks_what_the_unanchored_one_did(text: str) -> None:
    (_, anchored, replacement), = [b for b in _BUILTIN if b[1].startswith("(?i)((?<!")]
    assert regex.sub(anchored, replacement, text) == regex.sub(_UNANCHORED_ASSIGNMENT, replacement, text)


def test_the_memory_of_clean_strings_is_bounded_and_keeps_those_in_use() -> None:
    redactor = Redactor()
    for n in range(3 * 4096):  # one-off strings (action ids) beside a string every entry repeats
        assert redactor.safe_text(f"act_{n:020x}") == f"act_{n:020x}"
        assert redactor.safe_text("role deployer may take read actions alone in production").startswith("role")
        assert redactor.safe_text("password=hunter2") == "password=[REDACTED]"
    held = redactor.remembered | redactor._older
    assert len(redactor.remembered) <= 4096 and len(held) <= 2 * 4096
    assert "role deployer may take read actions alone in production" in redactor.remembered
    assert f"act_{0:020x}" not in held and f"act_{3 * 4096 - 1:020x}" in held
    assert not any("hunter2" in s for s in held)
