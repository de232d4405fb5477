"""Fail when pytest skipped a test for any reason but a platform-impossible one.

A test skipped because something is not installed is a part of Interlock nobody checked; on CI
that is a failure. The only accepted skip is `pytest.mark.platform_impossible(reason=...)`, whose
reason the conftest turns into a skip message starting with "platform-impossible:".
"""

import sys
import xml.etree.ElementTree as ET


def main(path: str) -> int:
    bad = []
    for case in ET.parse(path).getroot().iter("testcase"):
        skipped = case.find("skipped")
        if skipped is not None and not (skipped.get("message") or "").startswith("platform-impossible:"):
            bad.append(f"{case.get('classname')}::{case.get('name')}: {skipped.get('message')}")
    for line in bad:
        print(f"skipped (not allowed): {line}", file=sys.stderr)
    if bad:
        print(f"{len(bad)} test(s) skipped: install what they need instead (scripts/bootstrap.sh)", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
