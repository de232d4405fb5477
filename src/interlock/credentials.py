"""Which credential references a policy names, and which of them cannot be resolved here.

`serve` checks every reference at start (and refuses to start, unless `--allow-missing-secrets`);
the Gateway checks an action's target before asking anyone to approve it, so two humans never
approve an action that could not run. Values are resolved and dropped at once: only the reference
and the reason travel (`secrets.SecretError` never holds a value).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from interlock import secrets
from interlock.policy.schema import PolicyDocument, Target


@dataclass(frozen=True)
class Reference:
    where: str  # `targets.billing-db.dsn`, `notify[0].secret`
    ref: str  # `env:BILLING_DSN`, `file:/etc/interlock/prod.kubeconfig`


@dataclass(frozen=True)
class Missing:
    where: str
    ref: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.why}"


def target_references(name: str, target: Target) -> Iterator[Reference]:
    base = f"targets.{name}"
    if target.dsn:
        yield Reference(f"{base}.dsn", target.dsn)
    if target.kubeconfig:
        yield Reference(f"{base}.kubeconfig", target.kubeconfig)
    for header, ref in target.headers.items():
        yield Reference(f"{base}.headers.{header}", ref)
    for var, ref in target.env.items():
        yield Reference(f"{base}.env.{var}", ref)
    if target.aws is not None:
        for field in ("access_key_id", "secret_access_key", "session_token"):
            ref = getattr(target.aws, field)
            if ref:
                yield Reference(f"{base}.aws.{field}", ref)


def references(doc: PolicyDocument) -> list[Reference]:
    """Every credential reference of the policy: targets' and webhooks' signing secrets."""
    found = [ref for name, target in doc.targets.items() for ref in target_references(name, target)]
    found += [Reference(f"notify[{i}].secret", hook.secret) for i, hook in enumerate(doc.notify) if hook.secret]
    return found


def unresolved(refs: list[Reference] | Iterator[Reference]) -> list[Missing]:
    """The references that cannot be resolved in this process (value read, then dropped)."""
    missing = []
    for ref in refs:
        try:
            secrets.resolve(ref.ref)
        except secrets.SecretError as exc:
            missing.append(Missing(ref.where, ref.ref, str(exc)))
    return missing


def missing_for_target(doc: PolicyDocument, name: str | None) -> list[Missing]:
    target = doc.targets.get(name) if name else None
    return unresolved(target_references(name, target)) if target is not None and name else []
