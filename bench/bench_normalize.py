"""What matching input patterns against normalized forms costs a decision (issue 11.4).

The same decisions (SQL and shell actions under a policy with `input`-pattern deny rules that do
not match, so every form is tried) timed with the normalized forms and with the text as written
only, interleaved round by round so a loaded machine weighs on both alike.
"""

from __future__ import annotations

import statistics
import time
from unittest import mock

from interlock.classify import classify
from interlock.model import Action, Kind
from interlock.policy import decide, engine, load_policy_text

POLICY = """\
version: 1
humans: {alice: {groups: [sre]}}
agents: {kiro: {owner: alice, roles: [dev]}}
environments: {lab: {}}
targets: {db: {environment: lab, kind: sql, dsn: env:DB}}
roles: {dev: {lab: {autonomous: destructive}}}
rules:
  - {id: no-drop, effect: deny, when: {input: ['(?i)drop\\s+table\\s+customers']}}
  - {id: no-truncate, effect: deny, when: {input: ['(?i)truncate\\s+orders']}}
  - {id: no-rm-srv, effect: deny, when: {kind: shell, input: ['rm -rf /srv']}}
"""

ACTIONS = [
    Action(kind=Kind.sql, environment="lab", target="db",
           payload={"sql": "UPDATE invoices SET paid = true WHERE id = 42 /* ticket 1234 */"}),
    Action(kind=Kind.sql, environment="lab", target="db",
           payload={"sql": "SELECT c.id, sum(o.total) FROM customers c JOIN orders o ON o.customer_id = c.id "
                           "WHERE o.created_at > now() - interval '7 days' GROUP BY c.id -- weekly"}),
    Action(kind=Kind.shell, environment="lab", payload={"command": "kubectl get pods -n billing # check"}),
]


def _as_written(text: str, kind: Kind, inner: tuple[str, ...] = (), dialect: str = "postgres") -> tuple[str, ...]:
    return (text,)


def main(rounds: int = 40, per_round: int = 50) -> None:
    policy = load_policy_text(POLICY, "bench.yaml")
    cases = [(a, classify(a.kind, a.payload)) for a in ACTIONS]
    samples: dict[str, list[float]] = {"normalized": [], "as written": []}
    for _ in range(rounds):
        for label in ("normalized", "as written"):
            patch = mock.patch.object(engine, "input_forms", _as_written) if label == "as written" else None
            if patch:
                patch.start()
            start = time.perf_counter_ns()
            for _ in range(per_round):
                for action, classification in cases:
                    decide(policy, "kiro", action, classification)
            samples[label].append((time.perf_counter_ns() - start) / (per_round * len(cases)) / 1000)
            if patch:
                patch.stop()
    print(f"decide() with 3 input-pattern deny rules, mean of {len(cases)} actions (SQL, SQL, shell), µs per decision")
    print(f"{'forms':<12} {'median':>8} {'p90':>8}")
    for label, values in samples.items():
        values.sort()
        print(f"{label:<12} {statistics.median(values):>8.1f} {values[int(len(values) * 0.9)]:>8.1f}")


if __name__ == "__main__":
    main()
