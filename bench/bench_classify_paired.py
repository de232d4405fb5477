"""Classifier speed per kind, for comparing two checkouts under load (docs/benchmarks.md).

    PYTHONPATH=OLD/src .venv/bin/python -m bench.bench_classify_paired & \
    PYTHONPATH=NEW/src .venv/bin/python -m bench.bench_classify_paired; wait

Per kind: the median over this checkout's corpus inputs of the best of 15 `classify()` timings, caches
that memoise per input cleared before each. Start the two runs at the same time, one per core, so both
see the same load, and alternate which starts first; compare ratios, not absolute values.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from pathlib import Path

from bench.bench_classify import per_input_caches
from interlock.classify import ClassifyContext, classify, payload_from_input
from interlock.model import Kind

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus"
REPEATS = 15


def median_best(kind: Kind) -> float:
    cases = []
    for line in (CORPUS / f"{kind.value}.jsonl").read_text().splitlines():
        case = json.loads(line)
        if "input" not in case:
            continue
        text = case["input"] if isinstance(case["input"], str) else json.dumps(case["input"])
        context = ClassifyContext.model_validate(case["context"]) if "context" in case else None
        cases.append((payload_from_input(kind, text), context))
    classify(kind, cases[0][0])  # imports and setup caches (the IAM catalog) outside the timings
    clears = per_input_caches()
    gc.disable()
    try:
        best = []
        for payload, context in cases:
            fastest = float("inf")
            for _ in range(REPEATS):
                for clear in clears:
                    clear()
                start = time.perf_counter()
                classify(kind, payload, context)
                fastest = min(fastest, time.perf_counter() - start)
            best.append(fastest)
    finally:
        gc.enable()
    return statistics.median(best) * 1e6


def main(argv: list[str]) -> int:
    kinds = [Kind(name) for name in argv or ("aws", "http", "kubectl", "mcp", "shell", "sql", "file")]
    print(json.dumps({kind.value: round(median_best(kind), 1) for kind in kinds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
