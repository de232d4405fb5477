"""The classifier corpus: every line of tests/corpus/<kind>.jsonl is one judgement.

A line is `{"input", "risk", "tags", "why", "category"?}`. `input` is the text a human would give
`interlock classify --kind <kind>` (a command line, SQL, or the JSON of an http/mcp/file call;
for readability those may be written as a JSON object, which is the same thing). Terraform lines
may instead say `{"input_file": "tests/corpus/plans/x.json"}`: a real `terraform show -json`
plan kept next to the corpus. A line may carry `"context"`: what the policy says about the target
(`{"sql_dialect": "mysql"}`, `{"read_only_functions": ["report_totals"]}`), as `ClassifyContext`
fields. The risk must match exactly (`unknown` where `destructive` is
expected is a failure, and vice versa) and every listed tag must be present.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from interlock.classify import ClassifyContext, classify, payload_from_input
from interlock.model import Kind

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"


def input_text(case: dict[str, Any]) -> str:
    if "input_file" in case:
        return (ROOT / case["input_file"]).read_text()
    value = case["input"]
    return value if isinstance(value, str) else json.dumps(value)


def context_of(case: dict[str, Any]) -> ClassifyContext | None:
    return ClassifyContext.model_validate(case["context"]) if "context" in case else None


def load_cases() -> list[Any]:
    params = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            case = json.loads(line)
            shown = case.get("input_file") or case["input"]
            shown = shown if isinstance(shown, str) else json.dumps(shown)
            case_id = f"{path.stem}:{number}:{' '.join(shown.split())[:60]}"
            params.append(pytest.param(path.stem, case, id=case_id))
    return params


CASES = load_cases()


@pytest.mark.parametrize(("kind", "case"), CASES)
def test_corpus(kind: str, case: dict[str, Any]) -> None:
    got = classify(Kind(kind), payload_from_input(Kind(kind), input_text(case)), context_of(case))
    expected_tags = set(case.get("tags", []))
    assert got.risk.value == case["risk"], (
        f"expected {case['risk']} ({case.get('why', '')}), got {got.risk.value}: {got.summary}"
    )
    assert expected_tags <= set(got.tags), f"missing tags {sorted(expected_tags - set(got.tags))}: {got.summary}"


def test_corpus_is_big_enough() -> None:
    counts: dict[str, int] = {}
    for param in CASES:
        counts[param.values[0]] = counts.get(param.values[0], 0) + 1
    mine = sum(n for kind, n in counts.items() if kind != "shell")
    assert mine >= 300, counts
    assert counts.get("sql", 0) >= 100 and counts.get("kubectl", 0) >= 60 and counts.get("aws", 0) >= 50, counts


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.jsonl")), ids=lambda p: p.name)
def test_corpus_lines_are_well_formed(path: Path) -> None:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        case = json.loads(line)
        assert ("input" in case) != ("input_file" in case), f"{path.name}:{number}: give input or input_file"
        assert case["risk"] in ("read", "write", "destructive", "unknown"), f"{path.name}:{number}"
        assert isinstance(case.get("tags", []), list), f"{path.name}:{number}"
        assert case.get("why"), f"{path.name}:{number}: say why"
