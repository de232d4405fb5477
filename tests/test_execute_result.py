"""The pieces every executor builds its result with: redaction, bounded capture, never raising."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.execute import ExecutionResult, Status, execute
from interlock.execute.result import CredentialRedactor, OutputCapture
from interlock.model import Action, Kind
from interlock.policy.schema import Target


@pytest.mark.parametrize(
    ("secrets", "text", "expected"),
    [
        (["hunter2-xyz"], "pw is hunter2-xyz.", "pw is [REDACTED]."),
        (["a b/c+d"], "url: a%20b%2Fc%2Bd", "url: [REDACTED]"),  # URL-encoded echo
        (['q"uote'], '{"v": "q\\"uote"}', '{"v": "[REDACTED]"}'),  # JSON-escaped echo
        (["abc-secret", "abc-secret-longer"], "abc-secret-longer", "[REDACTED]"),  # longest first
        (["  padded-secret \n"], "padded-secret", "[REDACTED]"),
        ([""], "nothing to hide", "nothing to hide"),
    ],
)
def test_redactor_replaces_every_form_of_a_secret(secrets: list[str], text: str, expected: str) -> None:
    redactor = CredentialRedactor()
    for secret in secrets:
        redactor.add(secret)
    assert redactor.redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("output ends with tok3", "output ends with "),
        ("output ends with to", "output ends with to"),  # two letters say nothing; kept
        ("output ends normally", "output ends normally"),
        ("tok3n-full", "tok3n-full"),  # whole secrets are redact()'s job, not this one's
    ],
)
def test_a_cut_secret_prefix_is_trimmed(text: str, expected: str) -> None:
    redactor = CredentialRedactor()
    redactor.add("tok3n-full")
    assert redactor.trim_partial(text) == expected


@pytest.mark.parametrize(
    ("chunks", "limit", "kept", "truncated"),
    [
        ([b"abc", b"def"], 10, "abcdef", False),
        ([b"abc", b"def"], 4, "abcd", True),
        ([b"abcdef"], 6, "abcdef", False),
        ([], 4, "", False),
    ],
)
def test_capture_digests_everything_and_keeps_the_limit(
    chunks: list[bytes], limit: int, kept: str, truncated: bool
) -> None:
    capture = OutputCapture(limit)
    for chunk in chunks:
        capture.feed(chunk)
    assert capture.text(CredentialRedactor()) == kept and capture.truncated is truncated
    assert capture.sha256 == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert capture.total == sum(map(len, chunks))


TARGETS = {
    Kind.sql: Target(environment="production", kind=Kind.sql, dsn="env:INTERLOCK_TEST_UNSET_DSN"),
    Kind.http: Target(environment="production", kind=Kind.http, url="http://127.0.0.1:1/api", timeout=1),
    Kind.kubectl: Target(environment="production", kind=Kind.kubectl, kubeconfig="file:/nonexistent/kubeconfig"),
    Kind.aws: Target(environment="production", kind=Kind.aws),
    Kind.terraform: Target(environment="production", kind=Kind.terraform, workdir="/nonexistent/stack"),
}
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    ["sql", "command", "args", "url", "method", "headers", "body", "operation", "params", "plan_file", "plan_sha256"]
)


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(sorted(TARGETS)), payload=st.dictionaries(FIELDS, JSON, min_size=1, max_size=4))
def test_execute_never_raises_and_never_succeeds_on_garbage(kind: Kind, payload: dict[str, Any]) -> None:
    result = execute(Action(kind=kind, environment="production", target="t", payload=payload), TARGETS[kind])
    assert isinstance(result, ExecutionResult)
    assert result.status in (Status.error, Status.failed, Status.timeout)
    assert result.error
