"""`settle_heap`: a serving process's startup objects leave the cyclic collector's generations (gc.freeze),
so a full collection no longer walks the whole app. Run in a child process: freezing this test process's
heap would keep every later test's garbage cycles among it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CHILD = """
import gc, json
from interlock.server import app
before = len(gc.get_objects())
if {settle}:
    app.settle_heap()
print(json.dumps({{"before": before, "tracked": len(gc.get_objects()), "frozen": gc.get_freeze_count(),
                  "app_tracked": any(o is app.create_app for o in gc.get_objects()),
                  "young": gc.get_threshold()[0] == app.GC_YOUNG_THRESHOLD}}))
"""


@pytest.mark.parametrize(("settle", "frozen", "app_tracked"), [
    (True, True, False),  # the modules and what they built are frozen, out of the generations' walks
    (False, False, True),  # without it (create_app alone, as tests use it) nothing is
])
def test_settle_heap_freezes_what_the_process_built(settle: bool, frozen: bool, app_tracked: bool) -> None:
    out = subprocess.run([sys.executable, "-c", CHILD.format(settle=settle)], capture_output=True, text=True,
                         check=True).stdout
    seen = json.loads(out)
    assert (seen["frozen"] > 0.9 * seen["before"], seen["app_tracked"]) == (frozen, app_tracked)
    assert (seen["tracked"] < 0.1 * seen["before"]) == frozen
    assert seen["young"] == frozen  # and the youngest generation is collected less often (settle_heap)
