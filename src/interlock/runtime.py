"""Everything a Gateway runs on, assembled once: store → audit log → gate → gateway.

Used by the HTTP server and by in-process front doors (the MCP proxy's `--policy`, the SDK's
LocalClient), so each of them gets the same sequence and the same audit.
"""

from __future__ import annotations

from pathlib import Path

from interlock.audit import AuditLog
from interlock.gate.clock import Clock, system_clock
from interlock.gate.service import Gate
from interlock.gate.webhook import Notifier
from interlock.gateway import Gateway
from interlock.guard.service import Guard
from interlock.policy import Policy, load_policy
from interlock.store import Store, open_store
from interlock.vocabulary import DEFAULT_DB, key_dir_for


class Runtime:
    def __init__(self, policy: Policy | str | Path, db: str = DEFAULT_DB, key_dir: Path | None = None,
                 *, public_url: str = "http://127.0.0.1:8700", clock: Clock = system_clock) -> None:
        self.policy = policy if isinstance(policy, Policy) else load_policy(policy)
        if db.startswith("sqlite:///") and ":memory:" not in db:
            Path(db.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.store: Store = open_store(db)
        try:
            self.store.migrate()
            self.audit = AuditLog(self.store, key_dir=key_dir_for(db, key_dir))
        except BaseException:
            self.store.close()
            raise
        # Its deliveries are staged in the outbox with their cause (alerts: through an audit hook it adds).
        self.notifier = Notifier(self.policy.doc.notify, self.audit, self.store, public_url=public_url) \
            if self.policy.doc.notify else None
        self.gate = Gate(self.store, self.policy, self.audit, notifier=self.notifier)
        self.guard = Guard(self.store, self.policy, self.audit, clock=clock)
        self.gateway = Gateway(self.store, self.policy, self.audit, self.gate, guard=self.guard)

    def close(self) -> None:
        if self.notifier is not None:  # what it has not sent stays in the outbox for the next holder
            self.notifier.close()
        self.guard.close()
        self.audit.close()
        self.store.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
