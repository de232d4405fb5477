"""One list of audit events (issue 12.6): the enum, what append accepts and docs/audit.md agree."""

from __future__ import annotations

import re
from pathlib import Path

from interlock.audit import EVENTS, AuditEvent

DOC = Path(__file__).resolve().parents[1] / "docs" / "audit.md"


def _documented() -> list[str]:
    text = DOC.read_text()
    table = text[text.index("<!-- events:start -->"):text.index("<!-- events:end -->")]
    return re.findall(r"^\| `([a-z_.]+)` \|", table, flags=re.MULTILINE)


def test_the_doc_lists_every_event_the_code_writes_and_no_other() -> None:
    documented = _documented()
    assert len(documented) == len(set(documented)), "an event is documented twice"
    assert sorted(documented) == sorted(e.value for e in AuditEvent)
    assert set(EVENTS) == set(AuditEvent)


def test_every_event_name_written_in_the_source_is_in_the_enum() -> None:
    source = Path(__file__).resolve().parents[1] / "src" / "interlock"
    written = set()
    for path in source.rglob("*.py"):
        text = path.read_text()
        written |= set(re.findall(r"(?:\.append|_record)\(\s*\"([a-z_]+\.[a-z_.]+)\"", text))
    assert written, "the scan found no literal event names: the pattern needs updating"
    assert written <= {e.value for e in AuditEvent}, written - {e.value for e in AuditEvent}
