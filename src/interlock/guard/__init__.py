"""Guards: the kill switch, change freezes, circuit breakers and anomaly detectors (docs/guards.md).

Modules (one concept each):

- `windows`   recurring weekday/time ranges in a named zone and one-off periods (pure)
- `freezes`   kill-switch freezes in the store, and the policy's change-freeze windows
- `breakers`  circuit breaker state per agent and per agent × target (pure transitions + store)
- `detectors` anomaly detectors evaluated from counters kept in the audit log's own transaction
- `service`   `Guard`: what the Gateway asks before it answers, and the after-commit hook
- `cli`       `interlock freeze`, `interlock thaw`, `interlock guards status`

This package's `__init__` imports nothing: the policy schema imports `guard.windows`.
"""
