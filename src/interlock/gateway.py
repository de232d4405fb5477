"""The Gateway: the one sequence guard → classify → decide → gate → execute → audit (DESIGN.md §1).

Every front door (HTTP API, MCP proxy, hooks, SDK, CLI) calls `Gateway.propose`; none re-implements
a step. Ordering is what keeps the invariants:

- the proposal, its classification and its decision are durably in the audit log **before** anything
  else happens; if that write fails, the answer is a denial (`GatewayUnavailable`), never a run;
- `execution.started` is durable before an executor runs, so a crash mid-way leaves a record of a
  started action with no outcome, never an unrecorded execution;
- an action that needed approval runs only by atomically consuming the single-use grant for its
  fingerprint (exactly once across processes and replicas).

An action's state is folded from its own audit entries (indexed by `action_id`), so the log is the
single source of truth and nothing is written twice on the hot path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from typing import Any, Protocol

import orjson

from interlock import ids
from interlock.answers import TERMINAL_STATES
from interlock.credentials import Missing, missing_for_target
from interlock.fingerprint import PayloadError, canonical_json, fingerprint_with, plain
from interlock.gate import repo as gate_repo
from interlock.gate.requests import RequestState, RequestStatus
from interlock.gate.service import Gate, GateError
from interlock.guard.detectors import blast_of
from interlock.guard.rollback_pass import Pass
from interlock.guard.service import Guard, GuardUnavailable
from interlock.model import Action, Classification, Decision, DecisionValue, Kind, Risk
from interlock.policy import Policy, decide
from interlock.policy.classifying import classify_action
from interlock.sandbox import evidence as evidence_store
from interlock.sandbox import twins
from interlock.store import Store, StoreError
from interlock.store.events import Channel, publish
from interlock.wire import decision_json

#: Entries a caller above the Gateway adds to the durable batch of an entry the Gateway records for it:
#: called with each (event, data) before it is appended, in the caller's thread; what it returns is appended
#: with that entry, in order, in one `append_many`. A rollout's runner rides its target states this way
#: (rollout/service.py): they commit with the proposal's own entries, not in a commit of their own.
Riders = Callable[[str, Mapping[str, Any]], list[tuple[str, dict[str, Any]]]]
_RIDERS: ContextVar[Riders | None] = ContextVar("interlock_gateway_riders", default=None)


@contextlib.contextmanager
def riding(riders: Riders) -> Iterator[None]:
    """`riders` rides every entry the Gateway records for calls made inside this block, in this thread."""
    token = _RIDERS.set(riders)
    try:
        yield
    finally:
        _RIDERS.reset(token)


class Mode(StrEnum):
    brokered = "brokered"  # Interlock runs the action with the target's credentials
    advisory = "advisory"  # the client runs it itself (agent hooks) and may report the outcome


class State(StrEnum):
    denied = "denied"
    sandbox_required = "sandbox_required"
    pending_approval = "pending_approval"
    approved = "approved"  # advisory: allowed after approval, the client may run it now
    allowed = "allowed"  # advisory: allowed alone
    executing = "executing"
    succeeded = "succeeded"
    failed = "failed"
    rejected = "rejected"  # a human denied the approval request
    expired = "expired"
    invalidated = "invalidated"
    cancelled = "cancelled"  # a freeze stopped it while it ran
    superseded = "superseded"  # a later proposal of the same action used the grant it waited for
    #: its replica died while it ran (execution.started, no outcome): never re-run (interlock.recovery)
    outcome_unknown = "outcome_unknown"


#: Waiting longer changes nothing (the one definition is `interlock.answers.TERMINAL_STATES`).
TERMINAL = frozenset(State(s) for s in TERMINAL_STATES)


class GatewayError(Exception):
    """Bad input from a client: nothing was run. `field` names what was wrong."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class GatewayUnavailable(Exception):
    """The store or audit log failed: the action is denied (fail closed), nothing ran."""


class AuditSink(Protocol):
    def append(self, event: str, data: dict[str, Any], *, timeout: float | None = None) -> Any: ...

    async def append_async(self, event: str, data: dict[str, Any], *, timeout: float | None = None) -> Any: ...

    def append_many(self, items: list[tuple[str, dict[str, Any]]], *, timeout: float | None = None) -> Any: ...

    async def append_many_async(self, items: list[tuple[str, dict[str, Any]]], *,
                                timeout: float | None = None) -> Any: ...

    def action_entries(self, action_id: str) -> list[tuple[int, str, dict[str, Any]]]: ...

    def search(self, *, event: str | None = None, text: str | None = None,
               limit: int = 100) -> list[dict[str, Any]]: ...


class Executor(Protocol):
    def __call__(self, action: Action, target: Any, *, timeout: float | None = None) -> Any: ...


class Rehearser(Protocol):
    """Runs an action on a twin (sandbox.rehearse.rehearse): returns a `Rehearsal`."""

    def __call__(self, action: Action, twin: Any, *, timeout: float | None = None) -> Any: ...


@dataclass
class Proposal:
    """What the agent gets back, and what `GET /v1/actions/{id}` shows."""

    id: str
    agent: str
    mode: Mode
    action: Action
    fingerprint: str
    decision: Decision
    state: State
    approval: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    reported: dict[str, Any] | None = None
    events: list[str] = field(default_factory=list)
    #: For a rehearsal: {"of": action id, "twin", "body_fingerprint"}.
    rehearsal: dict[str, Any] | None = None
    #: The evidence this proposal was promoted with, or (a rehearsal) the evidence it produced.
    evidence: dict[str, Any] | None = None
    #: When sandbox_required: how to rehearse it ({"twin", "environment", "endpoint", "cli"}).
    rehearse: dict[str, Any] | None = None
    #: the classifier's details (not part of the answer): what the blast-radius detector counts
    details: dict[str, Any] = field(default_factory=dict, repr=False)
    #: the freezes a rollout's rollback passed on a human's abort under freeze (guard.rollback_pass)
    passed: frozenset[str] = field(default_factory=frozenset, repr=False)
    def to_json(self) -> dict[str, Any]:
        body = {"id": self.id, "state": self.state.value, "mode": self.mode.value,
                **decision_json(self.decision, self.fingerprint)}
        body["autonomous"] = self.decision.value is DecisionValue.allow
        if self.approval is not None:
            body["approval"] = self.approval
        if self.result is not None:
            body["result"] = self.result
        if self.reported is not None:
            body["reported"] = self.reported
        for key in ("rehearsal", "evidence", "rehearse"):
            if getattr(self, key) is not None:
                body[key] = getattr(self, key)
        return body


#: How many action bodies a policy remembers what it made of (`_Judged`), and the largest payload it
#: remembers (its JSON is part of the key): at most ~2,048 × 2 KiB of keys and their judgements.
JUDGED_MOST = 2048
JUDGED_PAYLOAD_BYTES = 2048


@dataclass(frozen=True, slots=True)
class _Judged:
    """What a policy makes of one action body, whatever its rationale, mode or time: the payload's size, its
    classification, the decision before evidence, credentials and guards (all three are applied to every
    proposal afterwards), the fingerprint, and the JSON of the classification and decision.

    Remembered per policy (`Policy._compiled`: a reloaded policy starts empty) and keyed on the agent, kind,
    environment, target and the payload's exact JSON (`_body_key`): exactly what `classify_action` and
    `decide` read, both pure functions of it (a terraform plan file is read from disk: never remembered).
    So a hostile agent can only ever get the judgement its own body gets; and agents repeat themselves (a
    retry, the same `kubectl get` every few seconds). Nothing here is mutated: the entries and answers that
    use the JSON copy it when they write it (the audit log's `cleaned`, the response's encoder)."""

    size: int
    classification: Classification
    decision: Decision
    fingerprint: str
    classification_json: dict[str, Any]
    wire: dict[str, Any]  # decision_json(decision)
    plain: bool  # the payload is plain JSON (fingerprint.plain): the entry may hold it as it is


def _body_key(agent: str, action: Action) -> tuple[Any, ...] | None:
    """The memo's key for the action's body, or None when it is not remembered: a payload that is not plain
    JSON (its JSON would not tell it apart), over JUDGED_PAYLOAD_BYTES, or a terraform plan (read from a file)."""
    if action.kind is Kind.terraform or not plain(action.payload):
        return None
    try:
        text = orjson.dumps(action.payload)
    except orjson.JSONEncodeError:  # a lone surrogate, an integer over 64 bits, nested too deep
        return None
    if len(text) > JUDGED_PAYLOAD_BYTES:
        return None
    return (agent, action.kind, action.environment, action.target, text)


def _action_json(action: Action, plain_payload: bool) -> dict[str, Any]:
    """`action.model_dump(mode="json")`, without pydantic's walk when the payload is plain JSON already
    (tests/test_model.py checks the two agree)."""
    if not plain_payload:
        return action.model_dump(mode="json")
    rationale = action.rationale
    return {"kind": action.kind.value, "environment": action.environment, "target": action.target,
            "payload": action.payload, "rationale": None if rationale is None else dict(rationale.__dict__)}


@dataclass(frozen=True)
class Proposed:
    """A decided proposal before its `action.proposed` entry is durable (`Gateway.decided`)."""

    proposal: Proposal
    classification: Classification
    #: the data of its `action.proposed` entry
    entry: dict[str, Any]

    @property
    def answered(self) -> bool:
        """Nothing follows the durable entry but the answer: no gate to open, nothing to run."""
        value = self.proposal.decision.value
        return value is DecisionValue.deny or value is DecisionValue.sandbox_required or (
            value is DecisionValue.allow and self.proposal.mode is Mode.advisory)


def _now() -> datetime:
    return datetime.now(UTC)


def _unrunnable(decision: Decision, missing: list[Missing], target: str | None) -> Decision:
    """A brokered action whose target's credentials cannot be resolved could never run: deny it now,
    before any human spends an approval on it (the answer says which reference and what to do)."""
    if not missing:
        return decision
    return decision.model_copy(update={
        "value": DecisionValue.deny, "rules": ("credentials-unresolved",), "approvals": (), "sandbox": None,
        "reasons": (f"target {target}'s credentials cannot be resolved where Interlock runs: "
                    + "; ".join(str(m) for m in missing),),
        "remedy": ("an operator provides them to the gateway (see docs/deploy.md) and the agent proposes again; "
                   "nobody was asked to approve an action that could not run",),
    })


class Gateway:
    def __init__(self, store: Store, policy: Policy, audit: AuditSink, gate: Gate,
                 *, executor: Executor | None = None, rehearser: Rehearser | None = None,
                 check_credentials: bool = True,
                 guard: Guard | None = None) -> None:
        self.guard = guard
        self.store = store
        #: Deny brokered actions whose target's credentials do not resolve (tests with a stand-in
        #: executor that never reads them turn it off).
        self.check_credentials = check_credentials
        self.policy = policy
        self.audit = audit
        self.gate = gate
        if executor is None:
            from interlock.execute import execute

            executor = execute
        self.executor = executor
        if rehearser is None:
            from interlock.sandbox.rehearse import rehearse

            rehearser = rehearse
        self.rehearser = rehearser
        #: The lease job that says this process is alive (`replica:<holder>`, interlock.recovery), written
        #: into `execution.started`: if that lease expires with no outcome recorded, the recovery sweep
        #: marks the action outcome_unknown. None (local modes): no sweep judges this process's runs.
        self.replica: str | None = None

    # --- the sequence -------------------------------------------------------------------------

    def classify(self, action: Action) -> Classification:
        """What the action would do under this gateway's policy (`classify_action`: the one path,
        plan files included, that `check`, `policy replay`, the gate and the MCP proxy share)."""
        return classify_action(self.policy, action)

    def propose(self, agent: str, action: Action, *, mode: Mode = Mode.brokered,
                rehearsal: dict[str, Any] | None = None, rollback: Pass | None = None,
                started: str | None = None) -> Proposal:
        """Decide, record, gate and (brokered, allowed) run one action. `rehearsal` marks a run on a
        twin (see `rehearse`): it is decided like any action there, and run by a rehearsal executor.
        `rollback`: a rollout's rollback on a human's abort under freeze (only the in-process runner
        passes one; no route takes it from a request). `started`: an advisory caller that runs an
        allowed action at once (the in-process MCP proxy) names its heartbeat lease, and the action's
        `execution.started` is written in the same batch as its proposal (one durable write, not two),
        so the recovery sweep finds it if that caller dies before reporting (interlock.recovery)."""
        proposed = self.decided(agent, action, mode=mode, rehearsal=rehearsal, rollback=rollback)
        proposal = proposed.proposal
        if started is not None and mode is Mode.advisory and proposal.decision.value is DecisionValue.allow:
            self._record_many([("action.proposed", proposed.entry),
                               ("execution.started", _advisory_start(proposal, started))])
        else:
            self._record("action.proposed", proposed.entry)
        return self.settle(proposed)

    async def propose_async(self, agent: str, action: Action, *, mode: Mode,
                            offload: Callable[[Callable[[], Proposal]], Awaitable[Proposal]]) -> Proposal:
        """`propose` for a caller on an event loop (the HTTP hot route): the same steps, entries and
        answers, in the same order. Deciding is CPU work done here (a guard reads the store only when its
        cached state changed); the `action.proposed` entry is awaited without parking a thread; only what
        follows it with more store work or an execution (the gate, a brokered run) goes to `offload` (a
        worker thread). The common proposal thus costs no thread hop and no GIL hand-off of its own."""
        proposed = self.decided(agent, action, mode=mode)
        limit = self.guard.decision_timeout if self.guard is not None else None
        # Joining a pending request is a read, so it is known before the first entry: the proposal's
        # `action.pending` then goes in `action.proposed`'s batch, in order (one durable commit awaited,
        # not two). The status is the request as read a moment before both entries, as any read of it is.
        status = None if proposed.answered else self._joining(proposed)
        proposal = proposed.proposal
        try:
            if status is None:
                await self.audit.append_async("action.proposed", proposed.entry, timeout=limit)
            else:
                await self.audit.append_many_async([("action.proposed", proposed.entry),
                                                    ("action.pending", _pending_entry(proposal, status.request.id))],
                                                   timeout=limit)
        except Exception as exc:
            raise _unrecorded("action.proposed", exc) from exc
        if proposed.answered:
            return self.settle(proposed)
        if status is None:
            return await offload(partial(self.settle, proposed))
        proposal.state = State.pending_approval
        proposal.approval = _approval_json(status)
        return proposal

    def _joining(self, proposed: Proposed) -> RequestStatus | None:
        """The pending request an approval-required proposal simply joins (`Gate.joined_status`: no grant to
        use, nothing to open or refuse), read here on the loop: on SQLite a read is a local call of tens of
        µs, cheaper than the worker thread's hop it saves. None: `settle` on a worker thread (PostgreSQL's
        reads are round trips; a caller riding entries on ours; anything but a plain join)."""
        proposal = proposed.proposal
        if (proposal.decision.value is not DecisionValue.approval_required or self.store.dialect != "sqlite"
                or proposal.rehearsal is not None or _RIDERS.get() is not None):
            return None
        # The fingerprint was computed under the policy that made the decision (`_judged`): its version.
        return self.gate.joined_status(proposal.agent, proposal.action, proposal.decision, proposed.classification,
                                       evidence=proposal.evidence,
                                       known=(proposal.decision.policy_version, proposal.fingerprint))

    def decided(self, agent: str, action: Action, *, mode: Mode = Mode.brokered,
                rehearsal: dict[str, Any] | None = None, rollback: Pass | None = None) -> Proposed:
        """Everything `propose` does before its first durable entry: check, classify, decide (promote with
        evidence, credentials, guards), fingerprint; and that entry's data."""
        policy = self.policy
        judged = self._judged(agent, action)
        classification = judged.classification
        action_id = "act_" + ids.ordered_hex(10)  # ordered: the audit index on action ids grows at its end
        decision = judged.decision
        evidence: dict[str, Any] | None = None
        hint: dict[str, Any] | None = None
        if decision.value is DecisionValue.sandbox_required:
            decision, evidence, hint = self._promote(agent, action, classification, decision, action_id)
        if mode is Mode.brokered and self.check_credentials and decision.value is not DecisionValue.deny:
            decision = _unrunnable(decision, missing_for_target(policy.doc, action.target), action.target)
        findings: list[dict[str, Any]] = []
        if self.guard is not None:
            try:
                decision, findings = self.guard.review(agent, action, classification, decision, rollback)
            except GuardUnavailable as exc:
                raise GatewayUnavailable(str(exc)) from exc
        fp = judged.fingerprint
        # The decision's JSON: the judged one's, unless evidence, credentials or a guard changed it (they
        # make a new Decision; the judged one is immutable, and its JSON is never mutated: the log copies it).
        wire = judged.wire if decision is judged.decision else decision_json(decision)
        proposal = Proposal(id=action_id, agent=agent, mode=mode, action=action,
                            fingerprint=fp, decision=decision, state=State.denied, rehearsal=rehearsal,
                            evidence=evidence, rehearse=hint, details=classification.details,
                            passed=frozenset(i for f in findings if f.get("guard") == "freeze_pass"
                                             for i in f["freezes"]) if findings else frozenset())
        entry: dict[str, Any] = {
            "action_id": proposal.id, "agent": agent, "mode": mode.value, "fingerprint": fp,
            "action": _action_json(action, judged.plain),
            "classification": judged.classification_json,
            "decision": wire,
            "policy_version": policy.version,
        }
        for key, value in (("rehearsal", rehearsal), ("evidence", evidence), ("rehearse", hint), ("guards", findings)):
            if value:
                entry[key] = value
        return Proposed(proposal, classification, entry)

    def _judged(self, agent: str, action: Action) -> _Judged:
        """What this policy makes of the action's body (checked, classified, decided, fingerprinted), from
        the policy's memo when the same agent proposed the same body before (`_Judged`)."""
        policy = self.policy
        key = _body_key(agent, action)
        memo: dict[tuple[Any, ...], _Judged] | None = None
        if key is not None:
            memo = policy._compiled.get("judged")
            if memo is None:
                memo = policy._compiled.setdefault("judged", {})
            found = memo.get(key)
            if found is not None:
                self._check_size(found.size)  # a policy's limit is fixed: this holds; kept as the check
                return found
        payload = self._check_input(action)
        classification = self.classify(action)
        decision = decide(policy, agent, action, classification)
        judged = _Judged(
            size=len(payload), classification=classification, decision=decision,
            fingerprint=fingerprint_with(agent, action, policy.version, payload),
            classification_json=classification.model_dump(mode="json"), wire=decision_json(decision),
            plain=key is not None)
        if memo is not None and key is not None:
            if len(memo) >= JUDGED_MOST:
                memo.clear()  # bounded: a flood of distinct bodies costs re-judging, never memory
            memo[key] = judged
        return judged

    def settle(self, proposed: Proposed) -> Proposal:
        """What follows the durable `action.proposed` entry: the answer, the gate, or the run."""
        proposal, classification = proposed.proposal, proposed.classification
        decision = proposal.decision
        if decision.value is DecisionValue.deny:
            proposal.state = State.denied
            return proposal
        if decision.value is DecisionValue.sandbox_required:
            proposal.state = State.sandbox_required
            return proposal
        if decision.value is DecisionValue.approval_required:
            return self._gate(proposal, classification)
        return self._go(proposal, grant_id=None)

    def _check_input(self, action: Action) -> bytes:
        """The payload's canonical JSON, once it is one and within the policy's size limit."""
        try:
            payload = canonical_json(action.payload)
        except PayloadError as exc:
            raise GatewayError("invalid_payload", str(exc), "payload") from exc
        self._check_size(len(payload))
        return payload

    def _check_size(self, size: int) -> None:
        limit = self.policy.doc.defaults.max_payload_bytes
        if size > limit:
            raise GatewayError("payload_too_large",
                               f"payload is {size} bytes, over the policy's max_payload_bytes of {limit}", "payload")

    def _gate(self, proposal: Proposal, classification: Classification) -> Proposal:
        """Approval required: use an approved grant for this exact fingerprint, else open (or join)
        the request for it."""
        ready, looked = self._grant_ready(proposal.agent, proposal.fingerprint)
        if ready:
            try:
                grant = self.gate.consume_grant(proposal.agent, proposal.action, consumer=proposal.id)
            except GateError:
                pass  # another caller won the grant this instant: fall through to a new request
            else:
                self._record("action.approved", {"action_id": proposal.id, "agent": proposal.agent,
                                                 "target": _seen_key(proposal.action),
                                                 "grant_id": grant.id, "request_id": grant.request_id})
                return self._go(proposal, grant_id=grant.id)
        def pending(request_id: str) -> list[tuple[str, dict[str, Any]]]:
            return [("action.pending", _pending_entry(proposal, request_id))]

        # A new request records this proposal's `action.pending` in the transaction that stores it (one
        # commit, not two; the same entries in the same order); unless a caller rides its entries on ours.
        riders = _RIDERS.get()
        try:
            status, recorded = self.gate.open_request_status(
                proposal.agent, proposal.action, proposal.decision, classification,
                evidence=proposal.evidence if proposal.rehearsal is None else None, action_id=proposal.id,
                with_new=pending if riders is None else None,
                known=(proposal.decision.policy_version, proposal.fingerprint), looked=looked)
        except GateError as exc:
            proposal.state = State.denied
            proposal.approval = {"error": exc.code, "message": str(exc)}
            return proposal
        if not recorded:
            self._record(*pending(status.request.id)[0])
        proposal.state = State.pending_approval
        # The status read with the request (a joined one: in the same read): what the answer shows is the
        # request as it was a moment before this proposal's pending entry, as any read of it may be.
        proposal.approval = _approval_json(status)
        return proposal

    def _grant_ready(self, agent: str, fp: str) -> tuple[bool, bool]:
        """Whether an unused, unexpired grant for the fingerprint is there to use; and, when not, whether
        no pending request for it was either (the gate then opens one without reading that again), in the
        one read."""
        now = _now()
        with self.store.transaction(readonly=True) as tx:
            grants = gate_repo.grants_for(tx, agent, fp)
            if any(g.consumed_at is None and g.expires_at > now for g in grants):
                return True, False
            return False, gate_repo.pending_for(tx, fp) is None

    def _go(self, proposal: Proposal, grant_id: str | None) -> Proposal:
        if proposal.mode is Mode.advisory:
            proposal.state = State.approved if grant_id else State.allowed
            return proposal
        if grant_id is None:
            return self._execute(proposal)
        # Someone may wait for this approved action on another replica: announce its outcome.
        try:
            return self._execute(proposal)
        finally:
            self._announce(proposal)

    def _announce(self, proposal: Proposal) -> None:
        """Wake waiters on every replica (Channel.actions). If it fails they learn within their fallback
        re-read: nothing depends on it but latency."""
        with contextlib.suppress(StoreError), self.store.transaction() as tx:
            publish(tx, Channel.actions, {"id": proposal.id, "op": proposal.state.value})

    def _execute(self, proposal: Proposal) -> Proposal:
        if proposal.rehearsal is not None:
            return self._execute_rehearsal(proposal)
        action = proposal.action
        target = self.policy.doc.targets.get(action.target) if action.target else None
        started = {"action_id": proposal.id, "agent": proposal.agent, "kind": action.kind.value,
                   "target": action.target}
        if self.replica is not None:
            started["replica"] = self.replica
        self._record("execution.started", started)
        if self.guard is None:
            result = self.executor(action, target)
        else:
            with self.guard.running(proposal.id, proposal.agent, action, proposal.passed):
                result = self.executor(action, target)
        body = result.model_dump(mode="json") if hasattr(result, "model_dump") else dict(result)
        proposal.result = body
        status = body.get("status")
        proposal.state = State.succeeded if status == "succeeded" else \
            State.cancelled if status == "cancelled" else State.failed
        # The log keeps the size and digest of the full output, never the output itself, and an excerpt
        # only where the target opts in (audit_output: excerpt): query results are customer data and the
        # log is permanent. The caller gets the full, redacted output in this answer.
        # SQL rows likewise go to the caller only; the log keeps each statement's command and counts.
        recorded = _audited_result(body, _keeps_excerpt(target))
        if recorded.get("statements"):
            recorded["statements"] = [{k: v for k, v in st.items() if k != "rows"} for st in recorded["statements"]]
        # If this record fails, the action still ran: `execution.started` is on record, and the missing
        # outcome is visible in its timeline.
        with contextlib.suppress(GatewayUnavailable):
            self._record("execution.finished", {
                "action_id": proposal.id, "agent": proposal.agent, "target": action.target,
                "outcome": proposal.state.value, "result": recorded,
                "blast": blast_of({"risk": proposal.decision.risk.value, "details": proposal.details},
                                  body, action.kind.value)})
        return proposal

    # --- sandbox first: rehearse on the twin, promote with the evidence ------------------------

    def _promote(self, agent: str, action: Action, classification: Classification, decision: Decision,
                 action_id: str) -> tuple[Decision, dict[str, Any] | None, dict[str, Any] | None]:
        """A `sandbox` rule matched: decide again with fresh, successful evidence from the target's twin
        in the environment the rule names, or say exactly why not and how to rehearse."""
        policy = self.policy
        env = decision.sandbox
        twin = twins.twin_in(policy.doc, action.target, env) if action.target and env else None
        if twin is None:
            why = (f"target {action.target} has no twin in {env}: add `twin:` to targets.{action.target} in the policy"
                   if action.target else "the action names no target, and only a target's twin can rehearse it: "
                   "propose it with a target that has a twin")
            return decision.model_copy(update={"reasons": (*decision.reasons, why)}), None, None
        hint = {"twin": twin, "environment": env, "endpoint": f"POST /v1/actions/{action_id}/rehearse",
                "cli": f"interlock rehearse {action_id}"}
        body_fp = evidence_store.body_fingerprint(agent, action)
        try:
            with self.store.transaction(readonly=True) as tx:
                found = evidence_store.find(tx, agent, body_fp, twin, policy.version)
                missing = "" if found else evidence_store.why_none(tx, agent, body_fp, twin, policy.version)
        except StoreError as exc:  # fail closed: no evidence read is no evidence
            found, missing = None, f"the evidence could not be read ({type(exc).__name__})"
        now = self.gate.clock()
        verdict = evidence_store.judge(found, now, policy.doc.defaults.evidence_ttl, missing)
        if found is None or not verdict.usable:
            how = (f"rehearse it on twin {twin} ({env}): {hint['endpoint']} or `{hint['cli']}`, then propose it "
                   f"in {action.environment} again")
            remedy = [how, *(r for r in decision.remedy if not r.startswith(f"run in {env} first"))]
            update = {"reasons": (*decision.reasons, verdict.reason), "remedy": tuple(remedy)}
            return decision.model_copy(update=update), None, hint
        promoted = decide(policy, agent, action, classification, sandboxed=True)
        used = f"promoted with evidence {found.id}: {verdict.reason}"
        sandbox_rules = {r.id for r in policy.doc.rules if r.effect == "sandbox"}
        satisfied = tuple(r for r in decision.rules if r in sandbox_rules)
        promoted = promoted.model_copy(update={"rules": (*promoted.rules, *satisfied),
                                               "reasons": (*promoted.reasons, used)})
        return promoted, found.to_json(now), None

    def rehearse(self, action_id: str, agent: str) -> Proposal:
        """Run the agent's action `action_id` on its target's twin, brokered, decided by the policy there.
        Returns the rehearsal (a proposal of its own); once it ran, its `evidence` can promote the action."""
        try:
            source = self.status(action_id, agent=agent)
            twin_action, twin = self._twin_action(source)
        except GatewayError as exc:
            with contextlib.suppress(GatewayUnavailable):
                self._record("rehearsal.refused", {"agent": agent, "of": action_id, "code": exc.code,
                                                   "error": str(exc)})
            raise
        rehearsal: dict[str, Any] = {"of": action_id, "twin": twin,
                                     "body_fingerprint": evidence_store.body_fingerprint(agent, source.action)}
        expected = self._proposed_plan(source.action)
        if expected is not None:
            rehearsal["expected_plan"] = expected
        return self.propose(agent, twin_action, mode=Mode.brokered, rehearsal=rehearsal)

    def _proposed_plan(self, action: Action) -> dict[str, Any] | None:
        """terraform: the summary of the plan file the action would apply (its own target's), so the
        twin's plan can be held against it: evidence of another plan must not promote this one."""
        target = self.policy.doc.targets.get(action.target or "")
        if action.kind is not Kind.terraform or "plan_file" not in action.payload or target is None:
            return None
        from interlock.execute.terraform import load_plan
        from interlock.sandbox.rehearse import plan_summary

        try:
            return plan_summary(load_plan(target, action.payload))
        except Exception:
            return None  # unreadable here: the rehearsal's own plan is all the evidence says

    def _twin_action(self, source: Proposal) -> tuple[Action, str]:
        """The same action (kind, payload, rationale) with the target and environment of the twin."""
        doc = self.policy.doc
        action = source.action
        if action.target is None:
            raise GatewayError("no_twin", f"action {source.id} names no target; a rehearsal runs on a target's twin: "
                               "propose it with a target that has `twin:` in the policy", "target")
        target = doc.targets.get(action.target)
        if target is None:
            raise GatewayError("unknown_target", f"target {action.target!r} is no longer in the policy", "target")
        env = source.decision.sandbox
        twin = twins.twin_in(doc, action.target, env) if env else target.twin
        if twin is None:
            where = f" in {env}" if env else ""
            raise GatewayError("no_twin", f"target {action.target} has no twin{where}: add `twin: NAME` to "
                               f"targets.{action.target} in the policy (a {target.kind.value} target in an earlier "
                               "environment)", "target")
        twin_target = doc.targets.get(twin)
        if twin_target is None or twin_target.kind is not action.kind:
            what = "missing from the policy" if twin_target is None else f"a {twin_target.kind.value} target"
            raise GatewayError("bad_twin", f"twin {twin} of {action.target} is {what}: fix "
                               f"targets.{action.target}.twin", "target")
        return action.model_copy(update={"environment": twin_target.environment, "target": twin}), twin

    def _execute_rehearsal(self, proposal: Proposal) -> Proposal:
        """Run a rehearsal with the rehearsal executor, then record its evidence: the audit entry first,
        then the row that indexes it (a row without its entry is never written)."""
        action = proposal.action
        assert proposal.rehearsal is not None and action.target is not None
        twin = self.policy.doc.targets[action.target]
        self._record("execution.started", {"action_id": proposal.id, "agent": proposal.agent,
                                           "kind": action.kind.value, "target": action.target, "rehearsal": True})
        outcome = self.rehearser(action, twin)
        result = outcome.result
        body = result.model_dump(mode="json")
        body["effects"] = outcome.effects
        proposal.result = body
        proposal.state = State.succeeded if result.status.value == "succeeded" else State.failed
        recorded = _audited_result(body, _keeps_excerpt(twin))
        with contextlib.suppress(GatewayUnavailable):
            self._record("execution.finished", {"action_id": proposal.id, "agent": proposal.agent,
                                                "outcome": proposal.state.value, "result": recorded,
                                                "rehearsal": True})
        status, summary = result.status.value, outcome.summary
        expected, planned = proposal.rehearsal.get("expected_plan"), outcome.effects.get("plan")
        if status == "succeeded" and isinstance(expected, dict) and isinstance(planned, dict):
            from interlock.sandbox.rehearse import plan_differences

            differs = plan_differences(expected, planned)
            if differs is not None:  # it ran, but it was not the proposed change: no promotion with it
                status, summary = "mismatch", f"the twin's plan is not the proposed plan ({differs}); {summary}"
        found = evidence_store.Evidence(
            id=proposal.id, agent=proposal.agent, body_fingerprint=proposal.rehearsal["body_fingerprint"],
            twin=action.target, environment=action.environment, policy_version=self.policy.version,
            status=status, finished_at=self.gate.clock(), duration_ms=result.duration_ms,
            summary=summary,
            effects={**outcome.effects, "output": _output_evidence(body, _keeps_excerpt(twin))},
        )
        try:
            receipt = self.audit.append(evidence_store.EVENT, evidence_store.entry_data(found))
            index = getattr(receipt, "index", None)
            if isinstance(index, int):
                with self.store.transaction() as tx:
                    evidence_store.record(tx, replace(found, audit_idx=index))
        except Exception:  # the rehearsal ran but left no evidence: nothing can be promoted with it
            proposal.evidence = None
            return proposal
        proposal.evidence = found.to_json(self.gate.clock())
        return proposal

    # --- after approval -----------------------------------------------------------------------

    def advance(self, action_id: str, agent: str | None = None) -> Proposal:
        """Move an action forward: once its request is approved, consume the grant and run it
        (brokered) or clear it (advisory). Safe to call from any number of waiters."""
        proposal = self.status(action_id, agent=agent)
        if proposal.state is not State.pending_approval or proposal.approval is None:
            return proposal
        status = self.gate.status(proposal.approval["id"])
        state = status.request.state
        if state is RequestState.approved and self._suspended(proposal) is not None:
            return self.status(action_id, agent=agent)  # frozen: votes count, the grant waits
        if state is RequestState.approved:
            try:
                grant = self.gate.consume_grant(proposal.agent, proposal.action, consumer=action_id)
            except GateError:
                return self.status(action_id, agent=agent)  # another waiter won; it runs the action
            self._record("action.approved", {"action_id": action_id, "agent": proposal.agent,
                                             "target": _seen_key(proposal.action),
                                             "grant_id": grant.id, "request_id": grant.request_id})
            proposal.approval = self._approval_json(proposal.approval["id"])
            return self._go(proposal, grant_id=grant.id)
        return self.status(action_id, agent=agent)

    def report(self, action_id: str, agent: str, outcome: dict[str, Any]) -> Proposal:
        """Advisory mode: the client says what happened when it ran the action itself."""
        self.record_report(action_id, agent, outcome)
        return self.status(action_id, agent=agent)

    def record_report(self, action_id: str, agent: str, outcome: dict[str, Any]) -> None:
        """`report` without its answer (the action read back): for a caller that reports after every
        tool call and reads nothing back (the MCP proxy). The same checks, the same audit entry. A report
        after the recovery sweep marked the action outcome_unknown is taken: it is the outcome, late."""
        proposal = self._advisory_runnable(action_id, agent, late=True)
        target = self.policy.doc.targets.get(proposal.action.target or "")
        self._record("execution.reported", {"action_id": action_id, "agent": agent,
                                            "outcome": _audited_report(outcome, _keeps_excerpt(target))})

    def record_own_report(self, action_id: str, agent: str, target: str | None, outcome: dict[str, Any]) -> None:
        """`record_report` for the in-process caller that proposed `action_id` itself (on target `target`)
        and ran it because this gateway allowed it (the in-process MCP proxy): the same entry, without
        reading the action back to check what that caller already knows. A report from a client over the
        API is checked: `record_report`."""
        self._record(*self.own_report(action_id, agent, target, outcome))

    def own_report(self, action_id: str, agent: str, target: str | None,
                   outcome: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The audit entry (event, data) `record_own_report` writes, for a caller that queues it itself
        (the in-process MCP proxy: `AuditLog.append_later`, durable before its next call goes upstream)."""
        found = self.policy.doc.targets.get(target or "")
        return "execution.reported", {"action_id": action_id, "agent": agent,
                                      "outcome": _audited_report(outcome, _keeps_excerpt(found))}

    def record_started(self, action_id: str, agent: str, started: str) -> None:
        """An advisory caller is about to run the allowed (or approved) action `action_id` itself and
        names its heartbeat lease `started`: `execution.started`, so the recovery sweep marks the action
        outcome_unknown if that caller dies before its report. (Allowed at once: `propose(started=…)`
        writes it with the proposal instead.)"""
        proposal = self._advisory_runnable(action_id, agent, late=False)
        self._record("execution.started", _advisory_start(proposal, started))

    def _advisory_runnable(self, action_id: str, agent: str, *, late: bool) -> Proposal:
        proposal = self.status(action_id, agent=agent)
        if proposal.mode is not Mode.advisory:
            raise GatewayError("not_advisory", "only advisory actions take reported outcomes; Interlock ran this one")
        runnable = (State.allowed, State.approved, State.outcome_unknown) if late else (State.allowed, State.approved)
        if proposal.state not in runnable:
            raise GatewayError("not_allowed",
                               f"action {action_id} is {proposal.state.value}: it was not allowed to run")
        return proposal

    # --- reading ------------------------------------------------------------------------------

    def status(self, action_id: str, *, agent: str | None = None) -> Proposal:
        """Fold the action's audit entries into its current state. `agent` restricts to its own.
        Only entries inside the tree whose content, leaf hash and MAC check out are folded (the log
        rule: what the product reads is what the proof covers); a bad one fails closed."""
        try:
            entries = [(event, data) for _, event, data in self.audit.action_entries(action_id)]
        except StoreError as exc:
            raise GatewayUnavailable(f"cannot read action {action_id}: {type(exc).__name__}") from exc
        except Exception as exc:
            raise GatewayUnavailable(f"the audit entries of action {action_id} fail verification: {exc}") from exc
        if not entries or entries[0][0] != "action.proposed" or (agent is not None and entries[0][1]["agent"] != agent):
            raise GatewayError("unknown_action", f"no action {action_id!r} for this agent", "id")
        first = entries[0][1]
        decision = _decision_from_json(first["decision"], first.get("policy_version", ""))
        proposal = Proposal(id=action_id, agent=first["agent"], mode=Mode(first["mode"]),
                            action=Action.model_validate(first["action"]), fingerprint=first["fingerprint"],
                            decision=decision, state=_initial_state(decision), rehearsal=first.get("rehearsal"),
                            evidence=first.get("evidence"), rehearse=first.get("rehearse"),
                            details=(first.get("classification") or {}).get("details") or {})
        request_id = None
        advisory = proposal.mode is Mode.advisory
        runnable = proposal.state  # advisory: what the action is once it may run (allowed or approved)
        for event, data in entries[1:]:
            proposal.events.append(event)
            if event == "action.pending":
                request_id = data["request_id"]
                proposal.state = State.pending_approval
            elif event == "action.approved":
                proposal.state = runnable = State.approved if advisory else State.executing
            elif event == "execution.started" and not advisory:
                # Advisory: the client runs it, and its report does not end it; it stays allowed/approved.
                proposal.state = State.executing
            elif event == "execution.finished":
                proposal.result = data["result"]
                proposal.state = State(data["outcome"])
            elif event == "execution.reported":
                proposal.reported = data["outcome"]
                if proposal.state is State.outcome_unknown:  # the client's report came late: it wins
                    proposal.state = runnable
            elif event == "execution.outcome_unknown" and (
                    proposal.state is State.executing
                    or (advisory and proposal.state in (State.allowed, State.approved) and not proposal.reported)):
                proposal.state = State.outcome_unknown
            elif event == evidence_store.EVENT:
                proposal.evidence = {k: v for k, v in data.items() if k != "action_id"}
        if proposal.state is State.executing and proposal.decision.value is DecisionValue.allow and \
                proposal.mode is Mode.advisory:
            proposal.state = State.allowed
        if request_id is not None:
            proposal.approval = self._approval_json(request_id)
            if proposal.state is State.pending_approval:
                req_state = proposal.approval["state"]
                proposal.state = {"denied": State.rejected, "expired": State.expired,
                                  "invalidated": State.invalidated}.get(req_state, State.pending_approval)
                ran = self._consumer_of(request_id) if req_state == "consumed" else None
                if ran is not None and ran != action_id:
                    # Another proposal of the same action consumed the grant this one waited for: it ran
                    # there, so this one ends, naming it (its waiters return).
                    proposal.state = State.superseded
                    proposal.approval = {**proposal.approval, "superseded_by": ran,
                                         "reason": f"superseded by action {ran}, which used the grant"}
            if proposal.state is State.pending_approval:
                suspended = self._suspended(proposal)
                if suspended is not None:
                    proposal.approval["suspended"] = suspended
        return proposal

    def _suspended(self, proposal: Proposal) -> dict[str, Any] | None:
        """A freeze over a pending action suspends its approval: votes may be cast, no grant is used."""
        if self.guard is None:
            return None
        try:
            found = self.guard.freeze_for(proposal.agent, proposal.action)
        except GuardUnavailable as exc:
            raise GatewayUnavailable(str(exc)) from exc
        if found is None:
            return None
        return {"freeze": found.id, "reason": found.reason,
                "message": f"suspended by freeze {found.id} ({found.scope()}): votes count, nothing runs until "
                           "it is thawed"}

    def _consumer_of(self, request_id: str) -> str | None:
        """The action that consumed the grant of a request, from the log's `grant.consumed` entry."""
        needle = json.dumps({"request_id": request_id}, separators=(",", ":"))[1:-1]
        for entry in self.audit.search(event="grant.consumed", text=needle, limit=10):
            if entry["data"].get("request_id") == request_id and entry["data"].get("action_id"):
                return str(entry["data"]["action_id"])
        return None

    def redecide_pending(self) -> dict[str, str]:
        """Re-decide every pending request made under another policy version through `classify` (this
        gateway's, so a plan file is judged as at proposal time). Returns {request id: outcome}."""
        return self.gate.on_policy_change(self.policy, classify=lambda _policy, action: self.classify(action))

    def _approval_json(self, request_id: str) -> dict[str, Any]:
        return _approval_json(self.gate.status(request_id))

    def _record_many(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        """Several entries in one durable batch, or none (GatewayUnavailable), as `_record` for one."""
        if (riders := _RIDERS.get()) is not None:
            items = [ridden for item in items for ridden in (item, *riders(*item))]
        limit = self.guard.decision_timeout if self.guard is not None else None
        try:
            self.audit.append_many(items, timeout=limit)
        except Exception as exc:
            raise _unrecorded(items[0][0], exc) from exc

    def _record(self, event: str, data: dict[str, Any]) -> None:
        if _RIDERS.get() is not None:  # a caller's entries ride with this one (`riding`)
            self._record_many([(event, data)])
            return
        limit = self.guard.decision_timeout if self.guard is not None else None
        try:
            if limit is None:
                self.audit.append(event, data)
            else:  # guards.decision_timeout: a store slower than this answers deny
                self.audit.append(event, data, timeout=limit)
        except Exception as exc:
            raise _unrecorded(event, exc) from exc


def _pending_entry(proposal: Proposal, request_id: str) -> dict[str, Any]:
    return {"action_id": proposal.id, "agent": proposal.agent, "request_id": request_id}


def _approval_json(status: RequestStatus) -> dict[str, Any]:
    """A request's status as a proposal's `approval` shows it."""
    req = status.request
    return {
        "id": req.id,
        "state": req.state.value,
        "required": [r.describe() for r in req.requirements],
        "from": sorted({g for r in req.requirements for g in r.from_groups}),
        "eligible": list(req.eligible),
        "approved_by": list(status.approved_by),
        "still_needs": status.still_needs,
        "expires_at": req.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "seconds_left": status.seconds_left,
        "reason": req.state_reason,
    }


def _unrecorded(event: str, exc: Exception) -> GatewayUnavailable:
    """An entry that is not durable: the step is denied (fail closed), saying why without the store's words
    (they may name hosts or paths) when the store or the disk failed."""
    if isinstance(exc, StoreError | OSError):
        return GatewayUnavailable(f"the audit log could not record {event}: {type(exc).__name__}")
    return GatewayUnavailable(f"the audit log could not record {event}: {exc}")


def _advisory_start(proposal: Proposal, replica: str) -> dict[str, Any]:
    """`execution.started` of an action its advisory caller runs: `replica` is that caller's heartbeat
    lease, which the recovery sweep checks (interlock.recovery)."""
    return {"action_id": proposal.id, "agent": proposal.agent, "kind": proposal.action.kind.value,
            "target": proposal.action.target, "replica": replica, "advisory": True}


def _output_evidence(body: dict[str, Any], excerpt: bool) -> dict[str, Any]:
    """What a rehearsal's evidence says about its output: exit code, size and digest; the excerpt only
    where the twin opts in (`audit_output: excerpt`)."""
    kept = {k: body.get(k) for k in ("exit_code", "output_bytes", "output_sha256")}
    if excerpt:
        kept["excerpt"] = body.get("excerpt", "")
    return kept


def _keeps_excerpt(target: Any) -> bool:
    return getattr(target, "audit_output", "digest") == "excerpt"


def _audited_result(body: dict[str, Any], excerpt: bool) -> dict[str, Any]:
    """An execution result as the log keeps it: output_bytes and output_sha256 always (they cover the
    whole output), the excerpt only when the target opted in."""
    dropped = {"output"} if excerpt else {"output", "excerpt"}
    return {k: v for k, v in body.items() if k not in dropped}


def _audited_report(outcome: dict[str, Any], excerpt: bool) -> dict[str, Any]:
    """A reported outcome as the log keeps it: the client's output excerpt becomes its size and SHA-256
    unless the target opted in to excerpts."""
    text = outcome.get("output_excerpt")
    if excerpt or not isinstance(text, str):
        return outcome
    raw = text.encode("utf-8", errors="replace")
    kept = {k: v for k, v in outcome.items() if k != "output_excerpt"}
    return {**kept, "output_excerpt_bytes": len(raw), "output_excerpt_sha256": hashlib.sha256(raw).hexdigest()}


def _seen_key(action: Action) -> str:
    """What the first-action detector calls the action's target (its environment when it has none)."""
    return action.target or action.environment


def _initial_state(decision: Decision) -> State:
    return {DecisionValue.deny: State.denied, DecisionValue.sandbox_required: State.sandbox_required,
            DecisionValue.approval_required: State.pending_approval}.get(decision.value, State.allowed)


def _decision_from_json(body: dict[str, Any], policy_version: str) -> Decision:
    from interlock.model import ApprovalRequirement

    return Decision(
        value=DecisionValue(body["decision"]), risk=Risk(body["risk"]), tags=tuple(body["tags"]),
        summary=body.get("summary", ""), rules=tuple(body["rules"]), reasons=tuple(body["reasons"]),
        remedy=tuple(body.get("remedy", ())),
        approvals=tuple(ApprovalRequirement(count=a["count"], from_groups=tuple(a["from"]),
                                            at_least=tuple(sorted(a["at_least"].items())), source=a["source"])
                        for a in body.get("approvals", ())),
        sandbox=body.get("sandbox"), policy_version=body.get("policy_version") or policy_version,
    )
