"""A rollback past a freeze (issue 16.6): under a freeze a rollback runs only on a human's explicit command.

`interlock rollout abort ID --under-freeze --reason …` by a human who may thaw the freeze writes one
`rollout.abort_under_freeze` entry naming the human, the freezes and change-freeze windows in force, and
the exact rollback fingerprints. The rollout's runner then proposes each rollback with a `Pass` (the
rollout id and that entry's index); the Gateway lets the action past exactly those freezes when:

- the entry at that index is a `rollout.abort_under_freeze` of this rollout and agent, and checks out
  (a pass written into the database, or a rollout row pointing at another entry, counts for nothing);
- the action's fingerprint is one the entry names;
- every freeze and window covering it now is one the entry names (a freeze made after the abort holds);
- no `rollout.freeze_passed` entry records this (entry, fingerprint) yet: each passes once.

Only the freeze is passed: the action is decided as always and needs the rollout's grant where the
policy asks for approval. Agents never hold a pass: only the in-process runner proposes with one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from interlock.audit.events import AuditEvent
from interlock.gate.bindings import named_in_log
from interlock.gate.events import GateAudit

GRANTED = AuditEvent.ROLLOUT_ABORT_UNDER_FREEZE.value
PASSED = AuditEvent.ROLLOUT_FREEZE_PASSED.value


@dataclass(frozen=True)
class Pass:
    rollout_id: str
    entry: int  # the index of the rollout.abort_under_freeze entry


def refusal(found: tuple[str, dict[str, Any]] | None, ticket: Pass, agent: str, fingerprint: str,
            freezes: list[str], windows: list[str]) -> str | None:
    """Why the entry does not let this rollback past these freezes and windows (None: it does). Pure."""
    if found is None or found[0] != GRANTED:
        return f"audit entry {ticket.entry} is not a `rollout abort --under-freeze` (or does not check out)"
    data = found[1]
    if data.get("rollout_id") != ticket.rollout_id or data.get("agent") != agent:
        return f"audit entry {ticket.entry} is the abort of another rollout"
    if fingerprint not in (data.get("fingerprints") or []):
        return f"the abort under freeze (entry {ticket.entry}) does not name this exact rollback"
    later = [f for f in freezes if f not in (data.get("freezes") or [])] + \
        [f"window {w}" for w in windows if w not in (data.get("windows") or [])]
    if later:
        return f"{', '.join(later)} came after the abort under freeze (entry {ticket.entry}): a human aborts again"
    return None


def use(log: GateAudit, tx: Any, ticket: Pass, agent: str, fingerprint: str, freezes: list[str],
        windows: list[str]) -> str | None:
    """Check the pass against its entry and record its one use in `tx` (None), or say why not."""
    why = refusal(log.entry_at(tx, ticket.entry), ticket, agent, fingerprint, freezes, windows)
    if why is not None:
        return why
    key = f"{ticket.entry}_{fingerprint}"
    tx.lock("rollout_freeze_pass")
    used = named_in_log(log, tx, PASSED, "use", key)
    if used is not None:
        return f"the abort under freeze (entry {ticket.entry}) let this rollback pass once already (entry {used})"
    log.append_in(tx, PASSED, {"use": key, "rollout_id": ticket.rollout_id, "agent": agent,
                               "fingerprint": fingerprint, "freezes": freezes, "windows": windows})
    return None
