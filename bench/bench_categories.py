"""How many hostile cases of each category the classifiers get wrong (docs/judgement.md).

    .venv/bin/python -m bench.bench_categories [CORPUS_DIR]

The corpus lines whose `category` starts with `hostile:` are cases written for a category before
fixing it (issue 13's lesson: judge categories, not cases). A case is wrong when the risk differs
from the line's or a listed tag is missing, as tests/test_corpus.py checks. Run it with another
checkout's `src` first on PYTHONPATH to count what that version gets wrong on the same cases.
`too low` counts the wrong answers that were less risky than the line's (`unknown` ranks with
`destructive`): the ones that let an action through where it should have stopped.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from interlock.classify import ClassifyContext, classify, payload_from_input
from interlock.model import Kind, Risk

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    corpus = Path(argv[0]) if argv else ROOT / "tests" / "corpus"
    cases: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    too_low: Counter[str] = Counter()
    for path in sorted(corpus.glob("*.jsonl")):
        kind = Kind(path.stem)
        for line in path.read_text().splitlines():
            case = json.loads(line) if line.strip() else {}
            category = str(case.get("category", ""))
            if not category.startswith("hostile:"):
                continue
            text = case["input"] if isinstance(case["input"], str) else json.dumps(case["input"])
            # A line may say what the policy says about its target (`{"sql_dialect": "mysql"}`), as the test does.
            context = ClassifyContext.model_validate(case["context"]) if "context" in case else None
            got = classify(kind, payload_from_input(kind, text), context)
            cases[category] += 1
            if got.risk.value != case["risk"] or not set(case.get("tags", [])) <= set(got.tags):
                wrong[category] += 1
                too_low[category] += got.risk.rank < Risk(case["risk"]).rank
    print(f"{'category':44} cases  wrong  too low")
    for category in sorted(cases):
        print(f"{category:44} {cases[category]:5}  {wrong[category]:5}  {too_low[category]:7}")
    print(f"{'total':44} {sum(cases.values()):5}  {sum(wrong.values()):5}  {sum(too_low.values()):7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
