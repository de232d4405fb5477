"""`interlock freeze`, `interlock thaw ID`, `interlock guards status|reset` (mounted by interlock.cli).

The caller is whoever the token says (`--token` or INTERLOCK_TOKEN); agent tokens are refused. With
`--gateway URL` (INTERLOCK_URL) it uses the HTTP API (`/v1/freezes`, `/v1/guards`); with `--policy FILE`
(INTERLOCK_POLICY), the store directly (`--db`, `--key-dir`): every process on that store honours the
freeze at its next decision. Options as in docs/cli.md (the old `--server`, `--keys`, `--json` warn).
Exit codes: 0 done, 1 refused (the error says why), 2 usage, policy, store or server error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer

from interlock import options
from interlock.console import fail, out
from interlock.guard.freezes import FreezeError
from interlock.human_api import HumanApi, human_session, on_store, refused, signed_in
from interlock.identity import Principal
from interlock.options import DEFAULT_DB, Db, Fmt, Format, Gateway, KeyDir, Token
from interlock.options import PolicyFile as PolicyOpt

app = typer.Typer(help="Circuit breakers, freezes and anomaly detectors: status (a human's token).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

View = dict[str, Any]



class Guards(Protocol):
    def freeze(self, agent: str | None, environment: str | None, target: str | None, reason: str) -> View: ...
    def thaw(self, freeze_id: str) -> View: ...
    def status(self) -> View: ...


class LocalGuards:
    def __init__(self, guard: Any, principal: Principal, groups: tuple[str, ...]) -> None:
        self.guard, self.principal, self.groups = guard, principal, groups

    def freeze(self, agent: str | None, environment: str | None, target: str | None, reason: str) -> View:
        found = self.guard.freeze(agent=agent, environment=environment, target=target, reason=reason,
                                  by=self.principal.name)
        return dict(found.to_json())

    def thaw(self, freeze_id: str) -> View:
        return dict(self.guard.thaw(freeze_id, by=self.principal.name, groups=self.groups).to_json())

    def status(self) -> View:
        return dict(self.guard.status())


class RemoteGuards:
    """The server's API (`/v1/freezes`, `/v1/guards`) as the token's human."""

    def __init__(self, api: HumanApi) -> None:
        self._call = api.call

    def freeze(self, agent: str | None, environment: str | None, target: str | None, reason: str) -> View:
        return dict(self._call("POST", "/v1/freezes", json={"agent": agent, "environment": environment,
                                                            "target": target, "reason": reason}))

    def thaw(self, freeze_id: str) -> View:
        return dict(self._call("DELETE", f"/v1/freezes/{freeze_id}"))

    def status(self) -> View:
        return dict(self._call("GET", "/v1/guards"))


@contextmanager
def guards_for(gateway: str | None, db: str, policy_path: Path | None, token: str | None,
               key_dir: Path | None) -> Iterator[Guards]:
    """The one client choice: the server's API, or the guards on the store."""
    with human_session(gateway, db, policy_path, token, key_dir, local=_local, remote=RemoteGuards) as found:
        yield found


@contextmanager
def _local(db: str, policy_path: Path, token: str, key_dir: Path) -> Iterator[Guards]:
    """The guards on the store; the caller authenticated as a human (appends, never signs)."""
    from interlock.guard.service import Guard

    with on_store(db, policy_path, key_dir) as (policy, store, audit):
        principal = signed_in(store, token, audit)
        human = policy.doc.humans.get(principal.name)
        guard = Guard(store, policy, audit)
        try:
            yield LocalGuards(guard, principal, human.groups if human else ())
        except FreezeError as exc:
            refused(exc.code, str(exc), exc.status)
        finally:
            guard.close()


def _print(view: View, format: Format) -> None:
    if format is Format.json:
        out.print_json(json.dumps(view))
        return
    state = "active" if view.get("active") else f"thawed by {view.get('thawed_by')} at {view.get('thawed_at')}"
    out.print(f"{view['id']}  {view['scope']}  ({state})\n  reason: {view['reason']}  "
              f"(by {view['created_by']} at {view['created_at']})", markup=False, highlight=False)


@options.shared
def freeze(
    reason: Annotated[str, typer.Option("--reason", help="why (required; shown in every denial)")] = "",
    agent: Annotated[str | None, typer.Option("--agent", help="freeze only this agent")] = None,
    env: Annotated[str | None, typer.Option("--env", help="freeze only this environment")] = None,
    target: Annotated[str | None, typer.Option("--target", help="freeze only this target")] = None,
    gateway: Gateway = None, db: Db = DEFAULT_DB, policy: PolicyOpt = None, token: Token = None,
    key_dir: KeyDir = None, format: Fmt = Format.text,
) -> None:
    """Kill switch: deny every proposal in scope, suspend its pending approvals, cancel what runs."""
    if not reason.strip():
        fail('a freeze needs a reason: --reason "incident 4711: agents stop now"', 2)
    with guards_for(gateway, db, policy, token, key_dir) as guards:
        _print(guards.freeze(agent, env, target, reason), format)


@options.shared
def thaw(
    freeze_id: Annotated[str, typer.Argument(help="the freeze id (frz_…), from `interlock guards status`")],
    gateway: Gateway = None, db: Db = DEFAULT_DB, policy: PolicyOpt = None, token: Token = None,
    key_dir: KeyDir = None, format: Fmt = Format.text,
) -> None:
    """End a freeze (members of the policy's guards.thaw_by groups only)."""
    with guards_for(gateway, db, policy, token, key_dir) as guards:
        _print(guards.thaw(freeze_id), format)


@app.command("status")
@options.shared
def status(
    gateway: Gateway = None, db: Db = DEFAULT_DB, policy: PolicyOpt = None, token: Token = None,
    key_dir: KeyDir = None, format: Fmt = Format.text,
) -> None:
    """Active freezes, change-freeze windows, open breakers and the detectors in force."""
    with guards_for(gateway, db, policy, token, key_dir) as guards:
        view = guards.status()
    if format is Format.json:
        out.print_json(json.dumps(view))
        return
    out.print(f"guards at {view['time']}", markup=False)
    out.print(f"freezes: {len(view['freezes']) or 'none'}", markup=False)
    for item in view["freezes"]:
        _print(item, Format.text)
    for window in view["change_freezes"]:
        mark = "IN FORCE" if window["in_force"] else "not now"
        out.print(f"change freeze {window['name'] or ''} [{mark}] {', '.join(window['window'])}: {window['reason']}",
                  markup=False, highlight=False)
    out.print(f"open breakers: {len(view['breakers']) or 'none'}", markup=False)
    for item in view["breakers"]:
        out.print(f"  agent {item['agent']}{' on ' + item['target'] if item['target'] else ''}: {item['state']} "
                  f"since {item['opened_at']} — {item['reason']}", markup=False, highlight=False)
    detectors = ", ".join(f"{k}{'' if v.get('enforce', True) else ' (shadow)'}" for k, v in view["anomalies"].items())
    out.print(f"detectors: {detectors or 'none'}", markup=False)
