"""Reading a secret's value is at least write + `secrets`, for every kind and front door
(docs/classifiers.md, "Secrets and credentials"). The per-case judgements live in the corpus
(`category: hostile: secret disclosure`); these tables pin the rule itself and its reach."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from interlock.classify import classify, payload_from_input
from interlock.classify.registry import DISCLOSES, at_least_write_when_disclosing
from interlock.model import Classification, Kind, Risk

CORPUS = Path(__file__).resolve().parent / "corpus"


@pytest.mark.parametrize(
    ("risk", "tags", "details", "expected_risk", "expected_tags", "summary_says"),
    [
        # a disclosure judged read is lifted, and says why
        (Risk.read, (), {DISCLOSES: "a token"}, Risk.write, ("secrets",), "discloses a token: at least write"),
        (Risk.read, ("secrets",), {DISCLOSES: "a token"}, Risk.write, ("secrets",), "discloses a token"),
        # already write or worse: only the tag is added, the summary is the classifier's
        (Risk.write, ("privilege",), {DISCLOSES: "credentials"}, Risk.write, ("privilege", "secrets"), ""),
        (Risk.destructive, (), {DISCLOSES: "a key"}, Risk.destructive, ("secrets",), ""),
        (Risk.unknown, (), {DISCLOSES: "a key"}, Risk.unknown, ("secrets",), ""),
        # no disclosure: nothing changes, a `secrets` tag alone (names of secrets) stays read
        (Risk.read, ("secrets",), {}, Risk.read, ("secrets",), ""),
        (Risk.read, (), {DISCLOSES: ""}, Risk.read, (), ""),
    ],
)
def test_the_rule(risk: Risk, tags: tuple[str, ...], details: dict[str, Any], expected_risk: Risk,
                  expected_tags: tuple[str, ...], summary_says: str) -> None:
    got = at_least_write_when_disclosing(Classification(risk=risk, tags=tags, summary="x", details=details))
    assert (got.risk, got.tags) == (expected_risk, expected_tags)
    assert summary_says in got.summary and got.summary.startswith("x")


#: One secret, every door: the same Kubernetes Secret's data asked for through each kind.
SAME_SECRET = [
    (Kind.kubectl, "kubectl get secret db -n prod -o yaml"),
    (Kind.kubectl, '{"args": ["get", "secret", "db", "-n", "prod", "-o", "json"]}'),
    (Kind.shell, "kubectl get secret db -n prod -o jsonpath='{.data.password}' | base64 -d"),
    (Kind.shell, "sudo -u ops kubectl get secret db -n prod -o yaml"),
    (Kind.shell, "curl -s localhost:8001/api/v1/namespaces/prod/secrets/db"),
    (Kind.shell, "bash -c 'kubectl get secret db -n prod -o yaml'"),
    (Kind.http, '{"method": "GET", "url": "https://k8s.internal:6443/api/v1/namespaces/prod/secrets/db"}'),
    (Kind.mcp, '{"server": "term", "tool": "run_command", "arguments": {"command": "kubectl get secret db -o yaml"}}'),
    (Kind.mcp, '{"server": "k8s", "tool": "kubectl_get", "arguments": {"resourceType": "secrets", "name": "db"}}'),
    (Kind.mcp, '{"server": "ssh", "tool": "run_command", "arguments": {"command": "kubectl exec app-0 -- cat '
               '/var/run/secrets/kubernetes.io/serviceaccount/token"}}'),
    (Kind.file, '{"operation": "read", "path": "/var/run/secrets/kubernetes.io/serviceaccount/token"}'),
]


@pytest.mark.parametrize(("kind", "text"), SAME_SECRET, ids=[f"{k.value}:{t[:50]}" for k, t in SAME_SECRET])
def test_every_door_gives_the_same_answer(kind: Kind, text: str) -> None:
    got = classify(kind, payload_from_input(kind, text))
    assert got.risk is Risk.write and "secrets" in got.tags, got.summary


def corpus_payloads() -> list[Any]:
    found = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            case = json.loads(line)
            if "input" in case:
                text = case["input"] if isinstance(case["input"], str) else json.dumps(case["input"])
                found.append(pytest.param(Kind(path.stem), text, id=f"{path.stem}:{number}"))
    return found


def test_no_classification_that_discloses_is_read() -> None:
    """Over the whole corpus: whatever a classifier recognises as a disclosure never comes out read."""
    for param in corpus_payloads():
        kind, text = param.values
        got = classify(kind, payload_from_input(kind, text))
        if got.details.get(DISCLOSES):
            assert got.risk is not Risk.read and "secrets" in got.tags, (param.id, got.summary)
