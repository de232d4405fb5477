"""The gate: opens approval requests, takes humans' votes, issues and consumes single-use grants.

Every decision here is made from authenticated principals (interlock.identity) and the current
policy, never from names in a request body. State changes are compare-and-set inside one store
transaction under a named lock, so concurrent approvers and consumers on several processes or
replicas see one outcome. Audit entries are appended after the transaction commits (the audit log
opens its own transaction); a refusal raises `GateError` with a specific `code`, audited first.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from interlock.fingerprint import fingerprint
from interlock.gate import repo
from interlock.gate.bindings import named_in_log
from interlock.gate.clock import Clock, stamp, system_clock
from interlock.gate.events import (
    APPROVAL_APPROVED,
    APPROVAL_DENIED,
    APPROVAL_EXPIRED,
    APPROVAL_INVALIDATED,
    APPROVAL_REFUSED,
    APPROVAL_REPINNED,
    APPROVAL_REQUESTED,
    GRANT_CONSUMED,
    GRANT_ISSUED,
    GRANT_REFUSED,
    GateAudit,
)
from interlock.gate.quorum import Quorum, eligible_humans, evaluate, humans_of, ineligible_reason, possible
from interlock.gate.requests import ApprovalRequest, Grant, RequestState, RequestStatus, Vote
from interlock.gate.webhook import Notifier
from interlock.identity import AuthError, Principal, require_human
from interlock.model import Action, ApprovalRequirement, Classification, Decision, DecisionValue
from interlock.policy import Policy, decide
from interlock.policy.classifying import classify_action
from interlock.store import Store, Transaction
from interlock.store.events import Channel, Subscriber, subscriber

ClassifyFn = Callable[[Policy, Action], Classification]


def vote_recorded(audit: GateAudit, tx: Transaction, request_id: str, vote: Vote) -> bool:
    """Whether the log records this vote: its entry is in the tree, authenticated, and names the same
    request, human and verdict."""
    found = audit.entry_at(tx, vote.entry_idx)
    if found is None:
        return False
    event, data = found
    expected = APPROVAL_APPROVED if vote.verdict == "approve" else APPROVAL_DENIED
    return (event == expected and data.get("request_id") == request_id and data.get("principal") == vote.human
            and data.get("verdict") == vote.verdict)


def request_recorded(audit: GateAudit, tx: Transaction, request: ApprovalRequest) -> bool:
    """Whether an approval request's row still says what the entry that recorded its terms says."""
    found = audit.entry_at(tx, request.entry_idx)
    if found is None:
        return False
    event, data = found
    return (event in (APPROVAL_REQUESTED, APPROVAL_REPINNED) and data.get("request_id") == request.id
            and data.get("agent") == request.agent and data.get("fingerprint") == request.fingerprint
            and data.get("policy_version") == request.policy_version
            and data.get("approvals") == [r.model_dump(mode="json") for r in request.requirements]
            and data.get("eligible") == list(request.eligible)
            and data.get("rollout_id") == request.rollout_id and data.get("rollout") == request.rollout)


def grant_recorded(audit: GateAudit, tx: Transaction, grant: Grant) -> bool:
    """Whether the log records this grant's issue (and, once used, its consumption) as stored."""
    found = audit.entry_at(tx, grant.issued_idx)
    if found is None:
        return False
    event, data = found
    issued = (event == GRANT_ISSUED and data.get("grant_id") == grant.id and data.get("request_id") == grant.request_id
              and data.get("agent") == grant.agent and data.get("fingerprint") == grant.fingerprint
              and data.get("expires_at") == stamp(grant.expires_at))
    if not issued or grant.consumed_at is None:
        return issued
    used = audit.entry_at(tx, grant.consumed_idx)
    return used is not None and used[0] == GRANT_CONSUMED and used[1].get("grant_id") == grant.id


class GateError(Exception):
    """A refused gate operation. `code` names the case (unknown_request, expired, denied, consumed,
    invalidated, approved, reason_required, not_eligible, already_voted, agent_token, stale_policy,
    not_approval_required, unsatisfiable, unknown_agent, no_grant, grant_consumed, grant_expired,
    request_pending, unrecorded_request); the message says what to do."""

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


#: How the gate re-classifies a pending request's action on a policy change: the gateway's own path.
default_classify: ClassifyFn = classify_action


@dataclass(frozen=True)
class _AfterCommit:
    """What a transaction decided; events are audited and errors raised after it commits."""

    events: tuple[tuple[str, dict[str, Any]], ...] = ()
    notify: tuple[tuple[str, ApprovalRequest, str], ...] = ()  # staged in the transaction: Gate._stage
    error: GateError | None = None


_ENDED = {
    RequestState.denied: "was denied",
    RequestState.expired: "expired without enough approvals",
    RequestState.invalidated: "was invalidated by a policy change",
    RequestState.consumed: "was approved and its grant already used",
    RequestState.approved: "is already approved",
}


@dataclass(frozen=True)
class _Join:
    """A join answer `Gate.joined_status` remembers, and what it was computed from: it holds while the
    approvals and grants channels' generations are these (every write that could change it publishes on
    one of them: gate/repo.py), under this policy, for this decision. `status.seconds_left` is stale by
    construction: it is recomputed at use, as is the request's expiry."""

    generations: tuple[int, int]
    policy: Policy
    decision: tuple[DecisionValue, tuple[ApprovalRequirement, ...], str]
    classification: Classification
    sandboxed: bool
    status: RequestStatus


#: Join answers a gate remembers: one per pending request being joined (the hot path joins few at once);
#: emptied when full, so a flood of distinct actions costs reads, never memory.
JOINS_MOST = 256


@dataclass(frozen=True)
class _Opened:
    """The request `Gate._open` opened (`new`) or found (when its status was not asked for)."""

    request: ApprovalRequest
    new: bool = False


class Gate:
    def __init__(
        self,
        store: Store,
        policy: Policy,
        audit: GateAudit,
        *,
        clock: Clock = system_clock,
        notifier: Notifier | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.audit = audit
        self.clock = clock
        self.notifier = notifier
        self._joins: dict[tuple[str, str], _Join] = {}
        self._events: Subscriber | None = None

    # --- the agent's side -------------------------------------------------------------------------

    def open_request(
        self,
        agent: str,
        action: Action,
        decision: Decision,
        classification: Classification,
        evidence: dict[str, Any] | None = None,
        *,
        action_id: str | None = None,
    ) -> ApprovalRequest:
        """Store a pending request for this exact action, or return the pending one for the same
        fingerprint (an agent retrying gets the same request, not a new one). `action_id` names the
        proposal that opened it: its votes and grant are recorded with it."""
        return self._open(agent, action, decision, classification, evidence, action_id, status=False).request

    def open_request_status(
        self,
        agent: str,
        action: Action,
        decision: Decision,
        classification: Classification,
        evidence: dict[str, Any] | None = None,
        *,
        action_id: str | None = None,
        with_new: Callable[[str], list[tuple[str, dict[str, Any]]]] | None = None,
        known: tuple[str, str] | None = None,
        looked: bool = False,
    ) -> tuple[RequestStatus, bool]:
        """`open_request`, answered with the request's `status`, and whether `with_new`'s entries were
        recorded (a new request, and `with_new` given). A pending
        request that is joined is read with its votes and grant in the one read that finds it; a new one's
        status is what was just stored (no votes, no grant). `with_new(request id)`: entries of the caller's
        recorded after the new request's own entry, in the transaction that stores it (the proposal's
        `action.pending`: one durable commit, not two); a joined request's are the caller's to record.
        `known`: the (policy version, fingerprint) the caller computed, as for `joined_status`. `looked`: the
        caller found no pending request for it a moment ago: the write transaction, which looks again under
        its lock, is the only read (a distinct action costs one read transaction fewer)."""
        found = self._open(agent, action, decision, classification, evidence, action_id, status=True,
                           with_new=with_new, known=known, looked=looked)
        if isinstance(found, RequestStatus):
            return found, False
        if not found.new:  # another caller opened it between our read and our lock: read it as it is now
            return self.status(found.request.id), False
        request = found.request
        now = self.clock()
        quorum = self._quorum(request, [])
        return RequestStatus(
            request=request, votes=(), approved_by=quorum.counted, satisfied=quorum.satisfied,
            still_needs=quorum.describe(), seconds_left=max(0, int((request.expires_at - now).total_seconds())),
            grant=None), with_new is not None

    def joined_status(
        self,
        agent: str,
        action: Action,
        decision: Decision,
        classification: Classification,
        evidence: dict[str, Any] | None = None,
        *,
        known: tuple[str, str] | None = None,
    ) -> RequestStatus | None:
        """The status of the pending request that `open_request` would return for this decision, when it
        would simply join it: nothing refused, no unconsumed grant for the fingerprint (its proposal may
        use that), a pending request not past its expiry. Read-only, in one read; None in every other case,
        for `open_request_status` (on a worker thread) to decide, audit and open as always. `known`: the
        (policy version, fingerprint) the caller computed; used when it is this gate's version."""
        policy = self.policy
        fp = known[1] if known is not None and known[0] == policy.version else \
            fingerprint(agent, action, policy.version)
        now = self.clock()
        sandboxed = evidence is not None
        terms = (decision.value, decision.approvals, decision.policy_version)
        # The generations are read before the store: a change committed after this read moves them, so an
        # answer read after that change is remembered under generations that are already stale (never used).
        generations = self._join_generations()
        key = (agent, fp)
        memo = self._joins.get(key) if generations is not None else None
        if (memo is not None and memo.generations == generations and memo.policy is policy
                and memo.decision == terms and memo.sandboxed == sandboxed
                and (memo.classification is classification or memo.classification == classification)):
            return self._at(memo.status, now)
        with self.store.transaction(readonly=True) as tx:
            found = repo.pending_for(tx, fp)  # first: a request to open costs this loop one query, no more
            if found is None or found.expires_at <= now:
                return None
            if any(g.consumed_at is None for g in repo.grants_for(tx, agent, fp)):
                return None  # whether it is usable, and what trying says, is the full path's to find
            status = self._status_in(tx, found, now)
        if self._open_problem(agent, action, decision, classification, sandboxed=sandboxed) is not None:
            return None
        if generations is not None:
            if len(self._joins) >= JOINS_MOST:
                self._joins.clear()
            self._joins[key] = _Join(generations, policy, terms, classification, sandboxed, status)
        return status

    def _join_generations(self) -> tuple[int, int] | None:
        """The approvals and grants channels' generations, exact at this instant; None when they cannot
        be (PostgreSQL: the listener's cache lags another replica's commit; join answers are not kept).
        On SQLite each call looks at the events mark that every process's publish moves after its commit
        (store/events.py: a memory read), so a vote, an open or an expiry committed by another process on the
        same file is seen too."""
        if self.store.dialect != "sqlite":
            return None
        events = self._events
        if events is None or events.closed:
            events = self._events = subscriber(self.store)
        return events.generation(Channel.approvals), events.generation(Channel.grants, look=False)

    @staticmethod
    def _at(status: RequestStatus, now: datetime) -> RequestStatus | None:
        """A remembered join answer as it is at `now`: None once its request is past its expiry (the full
        path expires it), else with the seconds left counted now."""
        if status.request.expires_at <= now:
            return None
        left = int((status.request.expires_at - now).total_seconds())
        return status if left == status.seconds_left else status.model_copy(update={"seconds_left": left})

    def _open(
        self,
        agent: str,
        action: Action,
        decision: Decision,
        classification: Classification,
        evidence: dict[str, Any] | None,
        action_id: str | None,
        *,
        status: bool,
        with_new: Callable[[str], list[tuple[str, dict[str, Any]]]] | None = None,
        known: tuple[str, str] | None = None,
        looked: bool = False,
    ) -> RequestStatus | _Opened:
        policy = self.policy
        problem = self._open_problem(agent, action, decision, classification, sandboxed=evidence is not None)
        if problem is not None:
            self._fail(
                _AfterCommit(
                    events=((APPROVAL_REFUSED, {"agent": agent, "code": problem.code, "error": str(problem)}),),
                    error=problem,
                )
            )
        owner = policy.doc.agents[agent].owner
        humans = humans_of(policy.doc.humans)
        reqs = decision.approvals
        fp = known[1] if known is not None and known[0] == policy.version else \
            fingerprint(agent, action, policy.version)
        now = self.clock()
        # Joining a pending request is a read: the hot path's approval-required proposals must not queue
        # for the store's write lock behind the audit writer (SQLite has one writer) just to find it.
        if not looked:
            with self.store.transaction(readonly=True) as tx:
                found = repo.pending_for(tx, fp)
                if found is not None and found.expires_at > now:
                    return self._status_in(tx, found, now) if status else _Opened(found)
        with self.store.transaction() as tx:
            tx.lock(f"gate:fingerprint:{fp}")
            existing = repo.pending_for(tx, fp)
            events: list[tuple[str, dict[str, Any]]] = []
            if existing is not None and existing.expires_at > now:
                return _Opened(existing)
            if existing is not None:
                repo.set_state(tx, existing.id, RequestState.expired, "expired before anyone decided", stamp(now))
                events.append((APPROVAL_EXPIRED, {"request_id": existing.id, "fingerprint": fp}))
            request = ApprovalRequest(
                id="apr_" + secrets.token_hex(10),
                agent=agent,
                owner=owner,
                action=action,
                fingerprint=fp,
                policy_version=policy.version,
                classification=classification,
                rules=decision.rules,
                requirements=reqs,
                eligible=eligible_humans(reqs, humans, agent, owner),
                state=RequestState.pending,
                created_at=now,
                expires_at=now + timedelta(seconds=policy.doc.defaults.approval_ttl),
                evidence=evidence,
                action_id=action_id,
            )
            request = self._insert(tx, request, with_new(request.id) if with_new is not None else ())
            self._stage(tx, ((APPROVAL_REQUESTED, request, ""),))
        self._finish(_AfterCommit(events=tuple(events)))
        return _Opened(request, new=True)

    def _insert(self, tx: Transaction, request: ApprovalRequest,
                after: Iterable[tuple[str, dict[str, Any]]] = ()) -> ApprovalRequest:
        """Store a new pending request and record its terms in this transaction (issue 10.2): votes are
        taken only while the row still says what this entry says. `after`: entries recorded after it.
        The entries go first and the row is stored with its entry's index (one statement, not an insert
        and an update); in one transaction the order is not seen. The row's insert after the audit lock
        waits on nobody: only an opener of the same fingerprint, serialized by the caller's lock, could
        insert the same pending key."""
        entries = [(APPROVAL_REQUESTED, {
            "request_id": request.id,
            "action_id": request.action_id,
            "agent": request.agent,
            "fingerprint": request.fingerprint,
            "policy_version": request.policy_version,
            "action": request.action.model_dump(mode="json"),
            "risk": request.classification.risk.value,
            "summary": request.classification.summary,
            "rules": list(request.rules),
            "requirements": [r.describe() for r in request.requirements],
            "approvals": [r.model_dump(mode="json") for r in request.requirements],
            "eligible": list(request.eligible),
            "expires_at": stamp(request.expires_at),
            **({"evidence": request.evidence.get("id")} if request.evidence else {}),
            **({"rollout_id": request.rollout_id, "rollout": request.rollout} if request.rollout_id else {}),
        }), *after]
        receipt = self.audit.append_many_in(tx, entries)[0] if len(entries) > 1 else \
            self.audit.append_in(tx, *entries[0])
        request = request.model_copy(update={"entry_idx": receipt.index})
        repo.insert_request(tx, request)
        return request

    # --- a rollout's one approval (rollout/service.py) ------------------------------------------------

    def open_rollout(
        self,
        tx: Transaction,
        *,
        agent: str,
        rollout_id: str,
        fingerprint: str,
        action: Action,
        classification: Classification,
        rules: tuple[str, ...],
        requirements: tuple[ApprovalRequirement, ...],
        rollout: dict[str, Any],
        evidence: dict[str, Any] | None = None,
    ) -> ApprovalRequest:
        """Open, in the caller's transaction, the one approval request of a rollout: an ordinary request
        (listed, voted on under the same quorum rules, expiring, notified) bound to the rollout's
        fingerprint. Its grant is used once, by the rollout, which then issues the per-target grants.
        The rollout service decided every member first."""
        policy = self.policy
        owner = policy.doc.agents[agent].owner
        now = self.clock()
        request = ApprovalRequest(
            id="apr_" + secrets.token_hex(10), agent=agent, owner=owner, action=action, fingerprint=fingerprint,
            policy_version=policy.version, classification=classification, rules=rules, requirements=requirements,
            eligible=eligible_humans(requirements, humans_of(policy.doc.humans), agent, owner),
            state=RequestState.pending, created_at=now,
            expires_at=now + timedelta(seconds=policy.doc.defaults.approval_ttl),
            evidence=evidence, rollout_id=rollout_id, rollout=rollout,
        )
        request = self._insert(tx, request)
        self._stage(tx, ((APPROVAL_REQUESTED, request, ""),))
        return request

    def withdraw_in(self, tx: Transaction, request_id: str, reason: str) -> ApprovalRequest | None:
        """End a pending request whose subject went away (a rollout aborted before approval): invalidated,
        audited and notified in the caller's transaction."""
        if not repo.set_state(tx, request_id, RequestState.invalidated, reason, stamp(self.clock())):
            return None
        self.audit.append_in(tx, APPROVAL_INVALIDATED, {"request_id": request_id, "reason": reason,
                                                        "policy_version": self.policy.version})
        request = repo.get_request(tx, request_id)
        if request is not None:
            self._stage(tx, ((APPROVAL_INVALIDATED, request, reason),))
        return request

    def use_grant_in(self, tx: Transaction, agent: str, fp: str, consumer: str) -> Grant | None:
        """Use the grant for fingerprint `fp` once, in the caller's transaction (a rollout starting on its
        approval); None when there is no usable one. The same checks as `consume_grant`."""
        return self._consume_in(tx, agent, fp, consumer, self.clock())

    def _open_problem(
        self, agent: str, action: Action, decision: Decision, classification: Classification,
        *, sandboxed: bool = False,
    ) -> GateError | None:
        policy = self.policy
        if decision.value is not DecisionValue.approval_required or not decision.approvals:
            return GateError(
                "not_approval_required",
                f"decision is {decision.value.value}, not approval_required: nothing to approve",
            )
        if decision.policy_version != policy.version:
            return GateError(
                "stale_policy",
                f"decision was made under policy {decision.policy_version[:12]}, the "
                f"gate runs {policy.version[:12]}: decide again",
            )
        if agent not in policy.doc.agents:
            return GateError("unknown_agent", f"agent {agent!r} is not in the policy")
        # The requirements are re-derived, not taken on trust: a caller cannot lower the bar by handing
        # in a decision with fewer approvals than the policy asks for this action. Guards (a change
        # freeze, an open breaker, an anomaly) may only add requirements: every one must hold anyway.
        # A promotion (evidence attached) is decided as sandboxed; the Gateway checked the evidence.
        expected = decide(policy, agent, action, classification, sandboxed=sandboxed)
        if expected.value not in (DecisionValue.approval_required, DecisionValue.allow) \
                or not set(expected.approvals) <= set(decision.approvals):
            wanted = "; ".join(r.describe() for r in expected.approvals) or expected.value.value
            return GateError(
                "decision_mismatch",
                f"the decision does not match the policy for this action (policy says: {wanted}): decide again",
            )
        owner = policy.doc.agents[agent].owner
        best = possible(decision.approvals, humans_of(policy.doc.humans), agent, owner)
        if not best.satisfied:
            return GateError(
                "unsatisfiable",
                f"no set of eligible humans can approve this ({best.describe()} even "
                f"if all approved; the owner {owner} never counts): fix the policy's humans or groups",
            )
        return None

    def consume_grant(self, agent: str, action: Action, *, consumer: str = "") -> Grant:
        """Use the grant for exactly this action, once. The fingerprint is recomputed from the action
        PRESENTED now and the CURRENT policy version, so any change needs a new approval. Exactly one
        of any number of concurrent callers (threads, processes, replicas) gets the grant."""
        fp = fingerprint(agent, action, self.policy.version)
        now = self.clock()
        by = consumer or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        with self.store.transaction() as tx:
            action_id = consumer if consumer.startswith("act_") else None
            won = self._consume_in(tx, agent, fp, by, now, action_id=action_id)
            # A loser re-reads: under READ COMMITTED its first read may predate the winner's commit.
            error = None if won else self._no_grant(tx, agent, fp, repo.grants_for(tx, agent, fp), now)
        if won is not None:
            return won
        assert error is not None
        self._fail(
            _AfterCommit(
                events=(
                    (
                        GRANT_REFUSED,
                        {
                            "agent": agent,
                            "fingerprint": fp,
                            "code": error.code,
                            "error": str(error),
                            "request_id": error.request_id,
                        },
                    ),
                ),
                error=error,
            )
        )

    def _consume_in(self, tx: Transaction, agent: str, fp: str, by: str, now: datetime,
                    action_id: str | None = None) -> Grant | None:
        at = stamp(now)
        # Only a grant whose issue the log records (in the tree, authenticated, saying the same) is
        # honoured: a grants row written into the database directly is not an approval.
        grants = [g for g in repo.grants_for(tx, agent, fp) if self._issued(tx, g)]
        for grant in grants:
            if (grant.consumed_at is None and grant.expires_at > now and not self._used_in_log(tx, grant)
                    and repo.consume(tx, grant.id, at, by)):
                repo.set_state(tx, grant.request_id, RequestState.consumed, f"consumed by {by}", at,
                               expected=RequestState.approved)
                receipt = self.audit.append_in(tx, GRANT_CONSUMED, {
                    "grant_id": grant.id,
                    "request_id": grant.request_id,
                    "action_id": action_id,
                    "agent": agent,
                    "fingerprint": fp,
                    "by": by,
                })
                repo.bind_grant(tx, grant.id, consumed_idx=receipt.index)
                return grant
        return None

    def _no_grant(self, tx: Transaction, agent: str, fp: str, grants: list[Grant], now: datetime) -> GateError:
        replayed = next((g for g in grants if g.consumed_at is None and self._used_in_log(tx, g)), None)
        if replayed is not None:
            return GateError(
                "grant_consumed",
                f"grant {replayed.id} was already used (the audit log records it) although the grants table says "
                "it was not: the table was changed in the database; run `interlock audit verify`. A grant runs "
                "once: propose the action again for a new approval",
                replayed.request_id,
            )
        used = next((g for g in grants if g.consumed_at is not None), None)
        if used is not None and used.consumed_at is not None:
            return GateError(
                "grant_consumed",
                f"grant {used.id} was already used at {stamp(used.consumed_at)}"
                " (a grant runs once): propose the action again for a new approval",
                used.request_id,
            )
        if grants and all(g.expires_at <= now for g in grants):
            return GateError(
                "grant_expired",
                f"grant {grants[-1].id} expired at {stamp(grants[-1].expires_at)}: propose the action again",
                grants[-1].request_id,
            )
        request = repo.latest_for(tx, agent, fp)
        if request is not None and request.state is RequestState.pending and request.expires_at > now:
            quorum = self._quorum(request, self._recorded_votes(tx, request.id, repo.votes(tx, request.id)))
            return GateError(
                "request_pending",
                f"approval request {request.id} is still pending: {quorum.describe()}",
                request.id,
            )
        if request is not None:
            state = RequestState.expired if request.state is RequestState.pending else request.state
            return GateError(
                state.value,
                f"approval request {request.id} {_ENDED.get(state, state.value)}"
                f"{': ' + request.state_reason if request.state_reason else ''}; "
                "propose the action again",
                request.id,
            )
        return GateError(
            "no_grant",
            "no approval exists for this exact action: a change to the payload, target, "
            "environment or policy version is a different fingerprint; propose it and get it approved",
        )

    # --- the humans' side -------------------------------------------------------------------------

    def approve(self, request_id: str, principal: Principal, comment: str = "") -> RequestStatus:
        """One human's approval; `comment` (optional) is kept with the vote and in the audit entry."""
        return self._vote(request_id, principal, "approve", comment)

    def deny(self, request_id: str, principal: Principal, reason: str) -> RequestStatus:
        return self._vote(request_id, principal, "deny", reason)

    def _vote(self, request_id: str, principal: Principal, verdict: str, reason: str) -> RequestStatus:
        who = {
            "request_id": request_id,
            "principal": principal.name,
            "kind": principal.kind,
            "token_id": principal.token_id,
            "verdict": verdict,
        }
        try:
            require_human(principal)
        except AuthError as exc:
            self._refuse(GateError("agent_token", str(exc), request_id), who)
        reason = reason.strip()
        if verdict == "deny" and not reason:
            self._refuse(
                GateError(
                    "reason_required",
                    "a denial needs a reason (--reason …): the agent and the audit log are told why",
                    request_id,
                ),
                who,
            )
        now = self.clock()
        at = stamp(now)
        with self.store.transaction() as tx:
            tx.lock(f"gate:request:{request_id}")
            after = self._vote_in(tx, request_id, principal, verdict, reason, now, at, who)
            self._stage(tx, after.notify)
        self._finish(after)
        return self.status(request_id)

    def _vote_in(
        self,
        tx: Transaction,
        request_id: str,
        principal: Principal,
        verdict: str,
        reason: str,
        now: datetime,
        at: str,
        who: dict[str, Any],
    ) -> _AfterCommit:
        def refused(code: str, message: str, *extra: tuple[str, dict[str, Any]]) -> _AfterCommit:
            error = GateError(code, message, request_id)
            refusal = (APPROVAL_REFUSED, {**who, "code": code, "error": message})
            return _AfterCommit(events=(*extra, refusal), error=error)

        request = repo.get_request(tx, request_id)
        if request is None:
            return refused("unknown_request", f"no approval request {request_id!r}: see `interlock approvals list`")
        if request.state is RequestState.pending and request.expires_at <= now:
            repo.set_state(tx, request_id, RequestState.expired, "expired before enough approvals", at)
            expired = request.model_copy(update={"state": RequestState.expired})
            out = refused(
                "expired",
                f"approval request {request_id} expired at {stamp(request.expires_at)}; "
                "the agent must propose the action again",
                (APPROVAL_EXPIRED, {"request_id": request_id, "fingerprint": request.fingerprint}),
            )
            return _AfterCommit(events=out.events, notify=((APPROVAL_EXPIRED, expired, ""),), error=out.error)
        if request.state is not RequestState.pending:
            return refused(
                request.state.value,
                f"approval request {request_id} {_ENDED[request.state]}"
                f"{': ' + request.state_reason if request.state_reason else ''}; nothing to decide",
            )
        if not request_recorded(self.audit, tx, request):
            return refused(
                "unrecorded_request",
                f"approval request {request_id} does not match the audit entry that recorded its terms "
                "(changed in the database): no vote is taken on it; run `interlock audit verify`",
            )
        if request.policy_version != self.policy.version:
            return refused(
                "stale_policy",
                f"request {request_id} was made under policy "
                f"{request.policy_version[:12]} and this gate runs {self.policy.version[:12]}: "
                "the server re-decides pending requests when it starts with a new policy; until one runs "
                "this policy, the agent must propose the action again",
            )
        humans = humans_of(self.policy.doc.humans)
        why = ineligible_reason(principal.name, request.requirements, humans, request.agent, request.owner)
        owner_denying = verdict == "deny" and principal.name == request.owner and principal.name in humans
        if why is not None and not owner_denying:
            return refused("not_eligible", f"{why}: this vote does not count")
        previous = repo.votes(tx, request_id)
        if any(v.human == principal.name for v in previous):
            return refused(
                "already_voted",
                f"{principal.name} already voted on {request_id}; one human counts "
                "once — another eligible human must approve",
            )
        repo.insert_vote(tx, request_id, principal.name, principal.token_id, verdict, reason, at)
        who = {**who, "action_id": request.action_id}
        # Each vote and grant is recorded in the log in this same transaction, and bound to its entry.
        if verdict == "deny":
            repo.set_state(tx, request_id, RequestState.denied, f"denied by {principal.name}: {reason}", at)
            receipt = self.audit.append_in(tx, APPROVAL_DENIED, {**who, "reason": reason})
            repo.bind_vote(tx, request_id, principal.name, receipt.index)
            denied = request.model_copy(update={"state": RequestState.denied})
            return _AfterCommit(notify=((APPROVAL_DENIED, denied, f"{principal.name}: {reason}"),))
        votes = [*self._recorded_votes(tx, request_id, previous), Vote(human=principal.name, verdict="approve", at=now)]
        quorum = self._quorum(request, votes)
        receipt = self.audit.append_in(tx, APPROVAL_APPROVED, {
            **who,
            "satisfied": quorum.satisfied,
            "counted": list(quorum.counted),
            "still_needs": quorum.describe(),
            **({"comment": reason} if reason else {}),
        })
        repo.bind_vote(tx, request_id, principal.name, receipt.index)
        if not quorum.satisfied:
            return _AfterCommit()
        repo.set_state(tx, request_id, RequestState.approved, f"approved by {', '.join(quorum.counted)}", at)
        grant = Grant(
            id="gnt_" + secrets.token_hex(10),
            request_id=request_id,
            agent=request.agent,
            fingerprint=request.fingerprint,
            policy_version=request.policy_version,
            created_at=now,
            expires_at=now + timedelta(seconds=self.policy.doc.defaults.grant_ttl),
        )
        repo.insert_grant(tx, grant)
        receipt = self.audit.append_in(tx, GRANT_ISSUED, {
            "grant_id": grant.id,
            "request_id": request_id,
            "action_id": request.action_id,
            "agent": request.agent,
            "fingerprint": grant.fingerprint,
            "expires_at": stamp(grant.expires_at),
            "approved_by": list(quorum.counted),
        })
        repo.bind_grant(tx, grant.id, issued_idx=receipt.index)
        approved = request.model_copy(update={"state": RequestState.approved})
        return _AfterCommit(notify=((APPROVAL_APPROVED, approved, ", ".join(quorum.counted)),))

    # --- reading, expiry, policy change -----------------------------------------------------------

    def status(self, request_id: str) -> RequestStatus:
        """The request, its votes, who counts so far and what is missing; a pending request past its
        expiry is expired here (and the agent sees `expired`): a request never outlives its time."""
        now = self.clock()
        with self.store.transaction(readonly=True) as tx:
            request = repo.get_request(tx, request_id)
            if request is None:
                raise GateError("unknown_request", f"no approval request {request_id!r}", request_id)
            if not (request.state is RequestState.pending and request.expires_at <= now):
                return self._status_in(tx, request, now)
        self.expire_due()
        return self.status(request_id)

    def _status_in(self, tx: Transaction, request: ApprovalRequest, now: datetime) -> RequestStatus:
        """`status` of a request read in `tx` (not a pending one past its expiry: `status` expires those)."""
        votes = self._recorded_votes(tx, request.id, repo.votes(tx, request.id))
        grant = repo.grant_of(tx, request.id)
        quorum = self._quorum(request, votes)
        left = max(0, int((request.expires_at - now).total_seconds())) if request.state is RequestState.pending else 0
        return RequestStatus(
            request=request,
            votes=tuple(votes),
            approved_by=quorum.counted,
            satisfied=quorum.satisfied,
            still_needs=quorum.describe(),
            seconds_left=left,
            grant=grant,
        )

    def list_requests(self, state: RequestState | None = RequestState.pending) -> list[ApprovalRequest]:
        if state is RequestState.pending:
            self.expire_due()
        with self.store.transaction(readonly=True) as tx:
            return repo.list_requests(tx, state)

    def expire_due(self) -> list[str]:
        """Expire every pending request past its time (fail closed: expired = denied)."""
        at = stamp(self.clock())
        expired: list[ApprovalRequest] = []
        # Look first without the write lock: usually nothing is due, and SQLite has one writer.
        with self.store.transaction(readonly=True) as tx:
            if not repo.due_ids(tx, at):
                return []
        with self.store.transaction() as tx:
            for request_id in repo.due_ids(tx, at):
                if repo.set_state(tx, request_id, RequestState.expired, "expired before enough approvals", at):
                    request = repo.get_request(tx, request_id)
                    if request is not None:
                        expired.append(request)
            self._stage(tx, ((APPROVAL_EXPIRED, r, "") for r in expired))
        self._finish(
            _AfterCommit(
                events=tuple((APPROVAL_EXPIRED, {"request_id": r.id, "fingerprint": r.fingerprint}) for r in expired),
            )
        )
        return [r.id for r in expired]

    def on_policy_change(self, new_policy: Policy, classify: ClassifyFn = default_classify) -> dict[str, str]:
        """Re-decide every pending request under `new_policy`, then switch to it.

        The rule: a request stays pending (re-pinned to the new version and fingerprint, its votes
        kept and re-counted under the new groups) only when the new policy still says
        approval_required with exactly the same requirements for the same owner. Anything else —
        now allowed, denied, sandbox first, different approvals, a classifier error — invalidates
        it and the agent must propose again. Approved but unused grants are voided too (their
        fingerprint names the old version). Returns {request_id: "repinned" | "invalidated: why"}."""
        at = stamp(self.clock())
        result: dict[str, str] = {}
        events: list[tuple[str, dict[str, Any]]] = []
        notes: list[tuple[str, ApprovalRequest, str]] = []
        with self.store.transaction() as tx:
            tx.lock("gate:policy-change")
            for request in repo.list_requests(tx, RequestState.pending, limit=1_000_000):
                if request.policy_version == new_policy.version:
                    continue  # made under this policy already: nothing to re-decide
                why = self._still_valid(new_policy, request, classify)
                fp = fingerprint(request.agent, request.action, new_policy.version)
                twin = repo.pending_for(tx, fp) if why is None else None
                if twin is not None and twin.id != request.id:
                    # The same action was proposed again under another version (another replica):
                    # keep the request already pinned to the new version, never two for one action.
                    why = f"superseded by request {twin.id} for the same action under the new policy"
                if why is None:
                    humans = humans_of(new_policy.doc.humans)
                    eligible = eligible_humans(request.requirements, humans, request.agent, request.owner)
                    repo.repin(tx, request.id, fp, new_policy.version, request.requirements, eligible)
                    receipt = self.audit.append_in(tx, APPROVAL_REPINNED, {
                        "request_id": request.id,
                        "action_id": request.action_id,
                        "agent": request.agent,
                        "fingerprint": fp,
                        "policy_version": new_policy.version,
                        "approvals": [r.model_dump(mode="json") for r in request.requirements],
                        "eligible": list(eligible),
                    })
                    repo.bind_request(tx, request.id, receipt.index)
                    result[request.id] = "repinned"
                    continue
                repo.set_state(tx, request.id, RequestState.invalidated, why, at)
                result[request.id] = f"invalidated: {why}"
                events.append(
                    (
                        APPROVAL_INVALIDATED,
                        {"request_id": request.id, "reason": why, "policy_version": new_policy.version},
                    )
                )
                notes.append(
                    (
                        APPROVAL_INVALIDATED,
                        request.model_copy(update={"state": RequestState.invalidated}),
                        why,
                    )
                )
            for request in repo.list_requests(tx, RequestState.approved, limit=1_000_000):
                if request.policy_version != new_policy.version:
                    why = "the policy changed before its grant was used"
                    repo.set_state(tx, request.id, RequestState.invalidated, why, at, expected=RequestState.approved)
                    result[request.id] = f"invalidated: {why}"
                    events.append(
                        (
                            APPROVAL_INVALIDATED,
                            {"request_id": request.id, "reason": why, "policy_version": new_policy.version},
                        )
                    )
            self._stage(tx, notes)
        self.policy = new_policy
        self._finish(_AfterCommit(events=tuple(events)))
        return result

    def _still_valid(self, policy: Policy, request: ApprovalRequest, classify: ClassifyFn) -> str | None:
        if request.rollout_id is not None:
            return (f"rollout {request.rollout_id} was decided member by member under the old policy: the agent "
                    "submits it again")
        agent = policy.doc.agents.get(request.agent)
        if agent is None:
            return f"agent {request.agent} is no longer in the policy"
        if agent.owner != request.owner:
            return f"agent {request.agent}'s owner changed from {request.owner} to {agent.owner}"
        try:
            decision = decide(policy, request.agent, request.action, classify(policy, request.action))
        except Exception as exc:
            return f"re-deciding failed ({type(exc).__name__}); propose again"
        if decision.value is not DecisionValue.approval_required:
            return f"the new policy says {decision.value.value} ({', '.join(decision.rules)})"
        if set(decision.approvals) != set(request.requirements):
            wanted = "; ".join(r.describe() for r in decision.approvals)
            return f"the new policy requires different approvals ({wanted})"
        eligible = eligible_humans(decision.approvals, humans_of(policy.doc.humans), request.agent, request.owner)
        if set(eligible) != set(request.eligible):
            return (f"the new policy changes who may approve it ({', '.join(sorted(eligible)) or 'nobody'} instead "
                    f"of {', '.join(sorted(request.eligible)) or 'nobody'})")
        best = possible(decision.approvals, humans_of(policy.doc.humans), request.agent, request.owner)
        if not best.satisfied:
            return f"no set of eligible humans can approve it under the new policy ({best.describe()})"
        return None

    # --- helpers ----------------------------------------------------------------------------------

    def _recorded_votes(self, tx: Transaction, request_id: str, votes: list[Vote]) -> list[Vote]:
        """The votes the log records (issue 10.2): a vote row without its authenticated
        approval.approved / approval.denied entry saying the same is not counted."""
        return [v for v in votes if vote_recorded(self.audit, tx, request_id, v)]

    def _issued(self, tx: Transaction, grant: Grant) -> bool:
        return grant_recorded(self.audit, tx, grant)

    def _used_in_log(self, tx: Transaction, grant: Grant) -> bool:
        """Whether the log records a use of this grant although its row says unused: consumed_at was
        cleared in the database to run the action again. One indexed read (gate.bindings)."""
        since = 0 if grant.issued_idx is None else grant.issued_idx
        return named_in_log(self.audit, tx, GRANT_CONSUMED, "grant_id", grant.id, since) is not None

    def _quorum(self, request: ApprovalRequest, votes: list[Vote]) -> Quorum:
        approvers = [v.human for v in votes if v.verdict == "approve"]
        return evaluate(
            request.requirements, humans_of(self.policy.doc.humans), request.agent, request.owner, approvers
        )

    def _refuse(self, error: GateError, who: dict[str, Any]) -> NoReturn:
        self._fail(
            _AfterCommit(events=((APPROVAL_REFUSED, {**who, "code": error.code, "error": str(error)}),), error=error)
        )

    def _stage(self, tx: Transaction, notes: Iterable[tuple[str, ApprovalRequest, str]]) -> None:
        """Webhook deliveries go into the outbox in the transaction of the change they announce: they
        exist exactly when it does, and the lease holder sends them (interlock.gate.webhook)."""
        if self.notifier is not None:
            for event, request, detail in notes:
                self.notifier.stage(tx, event, request, detail)

    def _finish(self, after: _AfterCommit) -> None:
        """Audit (durably) what the transaction decided, then raise its error if any (its webhooks were
        staged in the transaction)."""
        for event, data in after.events:
            self.audit.append(event, data)
        if after.error is not None:
            raise after.error

    def _fail(self, after: _AfterCommit) -> NoReturn:
        self._finish(after)
        raise AssertionError("what _fail is given carries its error")
