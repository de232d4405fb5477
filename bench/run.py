"""Run every benchmark: `.venv/bin/python -m bench.run [NAME ...]` (e.g. `policy classify`).

Each `bench/bench_<name>.py` has a `main()` that prints its own table. Results go to stdout;
record them with date and machine in docs/benchmarks.md. Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def main(argv: list[str]) -> int:
    names = sorted(p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py"))
    chosen = argv or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    print(f"Interlock benchmarks — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {machine()}")
    failed = []
    for name in chosen:
        start = time.perf_counter()
        print(f"\n=== {name} ===", flush=True)
        try:
            importlib.import_module(f"bench.bench_{name}").main()
        except (Exception, SystemExit) as exc:
            failed.append(name)
            print(f"!!! {name} failed: {exc}", flush=True)
        print(f"({name}: {time.perf_counter() - start:.1f} s)", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
