"""Classification alone over the hot path's unique mix (issue 18.5), per kind, before/after in one run.

    python -m bench.bench_classify_unique [--src TREE/src ...] [--rounds 3] [--compare]

The unique mix (`bench_hotpath.varied_mix(unique=40)`: 12,000 distinct shell, kubectl, sql and http bodies)
never hits a memo keyed on the body, so what each body costs here is what classifying an unseen proposal
costs on the gateway's event loop. The mix is built once, then each tree given with `--src` (default: the
`src` next to this bench) classifies every body in its own process, the trees taking turns round after
round so both see the same load. Per kind: µs of CPU per body (process_time over the whole kind / bodies)
and the p50/p99 of each body's own time (perf_counter); per-input caches are cleared before each round.

`--compare`: instead of timing, every tree writes the full `Classification` (model_dump) of every corpus
input (with its context), of numbered variants of each (the ways the unique mix makes bodies distinct), and
of every unique-mix body; the trees' answers must be identical, and the count of identical ones is printed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = (0, 7, 39)


def _mix_file(directory: Path) -> Path:
    from bench.bench_classify import load_corpus
    from bench.bench_hotpath import UNIQUE_VARIANTS, numbered, varied_mix

    mix = [{"kind": b["kind"], "payload": b["payload"]} for b in varied_mix(unique=UNIQUE_VARIANTS)]
    corpus = []
    for kind, cases in load_corpus().items():
        for payload, case in cases:
            context = case.get("context")
            corpus.append({"kind": kind.value, "payload": payload, "context": context})
            for k in VARIANTS:
                variant = numbered({"kind": kind.value, "payload": payload}, k)
                if variant["payload"] is not payload:
                    corpus.append({"kind": kind.value, "payload": variant["payload"], "context": context})
    path = directory / "bodies.json"
    path.write_text(json.dumps({"mix": mix, "corpus": corpus}))
    return path


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _worker_time(bodies: Path) -> dict[str, Any]:
    from bench.bench_classify import per_input_caches
    from bench.bench_hotpath import POLICY
    from interlock.classify import classify
    from interlock.model import Kind
    from interlock.policy.load import load_policy
    from interlock.policy.testing import context_for

    mix = json.loads(bodies.read_text())["mix"]
    context = context_for(load_policy(POLICY), None)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for body in mix:
        by_kind.setdefault(body["kind"], []).append(body["payload"])
    for body in mix[:600]:  # imports and setup caches (the IAM catalog) outside the timings
        classify(Kind(body["kind"]), body["payload"], context)
    for clear in per_input_caches():
        clear()
    out: dict[str, Any] = {}
    gc.collect()
    gc.disable()
    try:
        for kind, payloads in by_kind.items():
            k = Kind(kind)
            samples = []
            cpu = time.process_time()
            for payload in payloads:
                start = time.perf_counter()
                classify(k, payload, context)
                samples.append(time.perf_counter() - start)
            cpu = time.process_time() - cpu
            out[kind] = {"bodies": len(payloads), "cpu_us": cpu / len(payloads) * 1e6,
                         "p50_us": _percentile(samples, 0.5) * 1e6, "p99_us": _percentile(samples, 0.99) * 1e6}
    finally:
        gc.enable()
    return out


def _worker_dump(bodies: Path, into: Path) -> None:
    from bench.bench_hotpath import POLICY
    from interlock.classify import ClassifyContext, classify
    from interlock.model import Kind
    from interlock.policy.load import load_policy
    from interlock.policy.testing import context_for

    loaded = json.loads(bodies.read_text())
    policy_context = context_for(load_policy(POLICY), None)
    with into.open("w") as out:
        for body in loaded["corpus"]:
            context = ClassifyContext.model_validate(body["context"]) if body["context"] else None
            found = classify(Kind(body["kind"]), body["payload"], context)
            out.write(json.dumps(found.model_dump(mode="json"), sort_keys=True) + "\n")
        for body in loaded["mix"]:
            found = classify(Kind(body["kind"]), body["payload"], policy_context)
            out.write(json.dumps(found.model_dump(mode="json"), sort_keys=True) + "\n")


def _run(src: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, "-m", "bench.bench_classify_unique", *args], env=env, cwd=ROOT,
                          check=True, capture_output=True, text=True)
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    """`argv`: this bench's own arguments (none when `bench.run` calls it: this tree alone, 3 rounds)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", action="append", help="a tree's src directory (repeat to compare)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv or [])
    if args.worker:
        if args.worker[0] == "time":
            print(json.dumps(_worker_time(Path(args.worker[1]))))
        else:
            _worker_dump(Path(args.worker[1]), Path(args.worker[2]))
        return 0
    trees = args.src or [str(ROOT / "src")]
    with tempfile.TemporaryDirectory() as directory:
        bodies = _mix_file(Path(directory))
        if args.compare:
            dumps = []
            for i, src in enumerate(trees):
                into = Path(directory, f"dump{i}.jsonl")
                _run(src, "--worker", "dump", str(bodies), str(into))
                dumps.append(into.read_text().splitlines())
            first = dumps[0]
            for src, other in zip(trees[1:], dumps[1:], strict=True):
                same = sum(a == b for a, b in zip(first, other, strict=True))
                print(f"{src}: {same}/{len(first)} classifications identical to {trees[0]}")
                for a, b in [(a, b) for a, b in zip(first, other, strict=True) if a != b][:5]:
                    print(f"  before {a}\n  after  {b}")
            return 0 if all(d == first for d in dumps) else 1
        results: dict[str, list[dict[str, Any]]] = {src: [] for src in trees}
        for _ in range(args.rounds):
            for src in trees:
                results[src].append(json.loads(_run(src, "--worker", "time", str(bodies))))
    print(f"{'tree':<28} {'kind':<8} {'bodies':>6} {'cpu µs/body':>12} {'p50 µs':>8} {'p99 µs':>8}  (best round)")
    for src, rounds in results.items():
        for kind in rounds[0]:
            best = min(rounds, key=lambda r: r[kind]["cpu_us"])[kind]
            print(f"{src[-28:]:<28} {kind:<8} {best['bodies']:>6} {best['cpu_us']:>12.1f} "
                  f"{best['p50_us']:>8.1f} {best['p99_us']:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
