#!/bin/sh
# Full `log.verify()` of ONE 200,000-entry SQLite log by several versions of the code, interleaved, so
# a change to verify is measured on the same file under the same load (docs/benchmarks.md).
#   bench/audit_verify_versions.sh ROUNDS BUILD_COMMIT COMMIT...   e.g. 5 7da177c 8c729e6 7da177c
# Run from a worktree with its .venv; each commit is checked out detached under a temporary folder.
set -eu
ROUNDS=$1; BUILD=$2; shift 2
PY=$(pwd)/.venv/bin/python
T=$(mktemp -d /tmp/audit-verify-versions.XXXXXX)
for c in "$BUILD" "$@"; do [ -d "$T/$c" ] || git worktree add -q --detach "$T/$c" "$c"; done
(cd "$T/$BUILD" && PYTHONPATH="$T/$BUILD/src:$T/$BUILD" "$PY" -c "
from pathlib import Path
from interlock.store import open_store
from interlock.audit import AuditLog
from bench.bench_audit import _build
s = open_store('sqlite:///$T/large.db'); s.migrate()
with AuditLog(s, key_dir=Path('$T/keys'), checkpoint_every=10**12, checkpoint_interval_s=10**6) as log:
    _build(log, 200000)
s.close()")
r=1
while [ "$r" -le "$ROUNDS" ]; do
  for c in "$@"; do
    (cd "$T/$c" && PYTHONPATH="$T/$c/src:$T/$c" "$PY" -c "
import os, time
from pathlib import Path
from interlock.store import open_store
from interlock.audit import AuditLog
s = open_store('sqlite:///$T/large.db')
with AuditLog(s, key_dir=Path('$T/keys'), checkpoint_every=10**12, checkpoint_interval_s=10**6) as log:
    t = time.perf_counter(); report = log.verify(); dt = time.perf_counter() - t
assert report.ok and report.entries == 200000, report.describe()
print(f'round $r $c verify {dt:.2f} s  load {os.getloadavg()[0]:.1f}', flush=True)")
  done
  r=$((r + 1))
done
for c in "$BUILD" "$@"; do git worktree remove --force "$T/$c" 2>/dev/null || true; done
rm -rf "$T"
