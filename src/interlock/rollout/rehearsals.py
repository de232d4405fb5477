"""A rollout's members that the policy sends to the sandbox first (`sandbox_required`): their forward and
rollback actions are rehearsed on each member's twin before the rollout's approval request opens.

Each rehearsal is an ordinary one (`Gateway.propose` with `rehearsal`: decided in the twin's environment,
run by the rehearsal executor, audited, its evidence recorded), so when the runner later proposes the member's
action the Gateway promotes it with that evidence exactly as it promotes a single action (docs/sandbox.md).
On each twin the forward action runs first, then the rollback, so the rollback is proven too and the twin
ends where it began. A failed rehearsal refuses the rollout: nothing ran on any member, nobody was asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from interlock.gateway import Gateway, Mode, State
from interlock.model import Action
from interlock.policy.schema import PolicyDocument
from interlock.rollout.model import RolloutError
from interlock.sandbox import evidence as evidence_store
from interlock.sandbox import twins


@dataclass(frozen=True)
class Needed:
    """One member action the policy wants rehearsed in `environment` first."""

    target: str
    direction: str  # forward | rollback
    action: Action
    environment: str | None


def _field(direction: str) -> str:
    return "payload" if direction == "forward" else "rollback.payload"


def twin_for(doc: PolicyDocument, need: Needed) -> str:
    """The member's twin in the environment the sandbox rule names, or a RolloutError saying what to add."""
    env = need.environment
    twin = twins.twin_in(doc, need.target, env) if env else None
    if twin is None:
        kind = need.action.kind.value
        raise RolloutError("no_twin", f"the {need.direction} action on {need.target} must be rehearsed on its twin "
                           f"in {env or 'an earlier environment'} first, and {need.target} has none there: add "
                           f"`twin: NAME` to targets.{need.target} in the policy (a {kind} target in {env}); "
                           "nothing ran", "group")
    found = doc.targets.get(twin)
    if found is None or found.kind is not need.action.kind:
        what = "missing from the policy" if found is None else f"a {found.kind.value} target"
        raise RolloutError("bad_twin", f"twin {twin} of {need.target} is {what}: fix targets.{need.target}.twin",
                           "group")
    return twin


def rehearse(gateway: Gateway, agent: str, rollout_id: str, needs: list[Needed],
             templated: dict[str, bool]) -> dict[tuple[str, str], dict[str, Any]]:
    """Rehearse every needed action on its member's twin (one rehearsal per twin and payload); the evidence
    of each (target, direction). Raises RolloutError on the first rehearsal that did not succeed."""
    doc = gateway.policy.doc
    found: dict[tuple[str, str], dict[str, Any]] = {}
    done: dict[tuple[str, str], dict[str, Any]] = {}
    for need in needs:
        if templated.get(need.direction):
            raise RolloutError("templated_payload", f"the {need.direction} payload names `{{target.url}}`, which "
                               f"differs on {need.target}'s twin: a rehearsal runs the very same payload on the "
                               "twin, so give a path under the target's url (`url: /deploy`)",
                               _field(need.direction))
        twin = twin_for(doc, need)
        body_fp = evidence_store.body_fingerprint(agent, need.action)
        seen = done.get((twin, body_fp))
        if seen is None:
            seen = done[(twin, body_fp)] = _one(gateway, agent, rollout_id, need, twin, body_fp)
        found[(need.target, need.direction)] = seen
    return found


def _one(gateway: Gateway, agent: str, rollout_id: str, need: Needed, twin: str, body_fp: str) -> dict[str, Any]:
    target = gateway.policy.doc.targets[twin]
    on_twin = need.action.model_copy(update={"environment": target.environment, "target": twin})
    rehearsal = {"of": f"{rollout_id}/{need.target}/{need.direction}", "twin": twin, "body_fingerprint": body_fp,
                 "rollout_id": rollout_id}
    proposal = gateway.propose(agent, on_twin, mode=Mode.brokered, rehearsal=rehearsal)
    evidence = proposal.evidence
    where = f"the {need.direction} action of {need.target} on its twin {twin} ({target.environment})"
    if proposal.state not in (State.succeeded, State.failed):
        reasons = "; ".join(proposal.decision.reasons) or proposal.state.value
        raise RolloutError("rehearsal_refused", f"{where} could not be rehearsed: {proposal.state.value} ({reasons}); "
                           f"the policy must let {agent} run it on the twin alone. Nothing ran on {need.target} and "
                           "nobody was asked", _field(need.direction))
    if proposal.state is not State.succeeded or evidence is None or evidence.get("status") != "succeeded":
        said = (evidence or {}).get("summary") or (proposal.result or {}).get("error") or proposal.state.value
        raise RolloutError("rehearsal_failed", f"{where} failed its rehearsal ({said}): the rollout is refused "
                           f"before anything ran on any member (rehearsal {proposal.id}); fix the action and submit "
                           "it again", _field(need.direction))
    return evidence
