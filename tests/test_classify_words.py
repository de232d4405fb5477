"""`split_words` splits as `shlex.split` does (kubectl and aws command lines), taking `str.split` only
for lines where the two cannot differ."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.classify import classify
from interlock.classify.words import _SPECIAL, split_words
from interlock.model import Kind, Risk


def _shlex(text: str) -> list[str] | str:
    try:
        return shlex.split(text)
    except ValueError as exc:
        return f"ValueError: {exc}"


def _ours(text: str) -> list[str] | str:
    try:
        return split_words(text)
    except ValueError as exc:
        return f"ValueError: {exc}"


#: Line → whether it takes `str.split`, and the words. Characters that str.split and shlex read
#: differently (vertical tab, form feed, \x1c-\x1f, no-break and other Unicode spaces, quotes, escapes)
#: must send the line to shlex: `pods\x0b--all-namespaces` is one word to shlex and two to str.split.
SPLIT_CASES = [
    ("kubectl get pods -n prod --request-timeout=3s", True, ["kubectl", "get", "pods", "-n", "prod", "--request-timeout=3s"]),
    ("kubectl  get\tpods\r\n-A", True, ["kubectl", "get", "pods", "-A"]),
    ("kubectl get pods # a comment", True, ["kubectl", "get", "pods", "#", "a", "comment"]),
    ("kubectl get pods\x0b--all-namespaces", False, ["kubectl", "get", "pods\x0b--all-namespaces"]),
    ("kubectl get pods\x0cx", False, ["kubectl", "get", "pods\x0cx"]),
    ("kubectl get pods\x1fx", False, ["kubectl", "get", "pods\x1fx"]),
    ("kubectl delete pod\xa0x", False, ["kubectl", "delete", "pod\xa0x"]),
    ("kubectl delete pod\u2003x", False, ["kubectl", "delete", "pod\u2003x"]),
    ("kubectl delete 'pod x'", False, ["kubectl", "delete", "pod x"]),
    ('kubectl delete "pod" x', False, ["kubectl", "delete", "pod", "x"]),
    ("kubectl delete pod\\ x", False, ["kubectl", "delete", "pod x"]),
    ("", True, []),
]


@pytest.mark.parametrize(("line", "fast", "words"), SPLIT_CASES)
def test_which_lines_split_on_whitespace(line: str, fast: bool, words: list[str]) -> None:
    assert (_SPECIAL.search(line) is None) is fast
    assert split_words(line) == words == shlex.split(line)


def test_unbalanced_quotes_still_raise() -> None:
    with pytest.raises(ValueError):
        split_words("kubectl delete 'pod")


_ALPHABET = "ab -=/#$;|&\t\r\n\x0b\x0c\x1c\x1f\x85\xa0\u2003\u3000'\"\\é\x00\x7f"


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=24))
def test_split_words_is_shlex_split(text: str) -> None:
    assert _ours(text) == _shlex(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=24))
def test_split_words_is_shlex_split_on_any_text(text: str) -> None:
    assert _ours(text) == _shlex(text)


@pytest.mark.parametrize(
    ("kind", "command", "risk"),
    [
        (Kind.kubectl, "kubectl get pods\x0bdelete pods --all", Risk.read),
        (Kind.kubectl, "kubectl delete pods --all --request-timeout=3s", Risk.destructive),
        (Kind.kubectl, "kubectl 'delete' pods --all", Risk.destructive),
        (Kind.aws, "aws s3 rm s3://bucket --recursive", Risk.destructive),
        (Kind.aws, "aws s3 'rm' s3://bucket --recursive", Risk.destructive),
    ],
)
def test_split_lines_are_judged_by_their_words(kind: Kind, command: str, risk: Risk) -> None:
    assert classify(kind, {"command": command}).risk is risk
