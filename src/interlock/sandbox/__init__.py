"""Sandbox first (docs/sandbox.md): twins, rehearsals on them, and the evidence that promotes an action.

- `twins`: where a target's actions are rehearsed (`targets.X.twin`), pure functions over the policy;
- `evidence`: the body fingerprint, the evidence records kept in the store, the promotion lookup;
- `rehearse`: the rehearsal executors (sql rolled back, shell in bubblewrap, terraform plan+apply, …).
"""
