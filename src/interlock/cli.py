"""The `interlock` command line (DESIGN.md §5). Thin: parsing and printing; the work is elsewhere.

Exit codes everywhere: 0 ok/allow, 1 deny or failure found, 2 usage or policy error, 3 approval or
sandbox required (`check`).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any, ClassVar, NoReturn

import typer
import typer.main
import typer.models
from pydantic import ValidationError
from rich.table import Table
from typer import _click as click  # typer vendors click; its groups hold these Command classes
from typer.core import TyperGroup

from interlock import options
from interlock.classify.registry import ClassifyContext, payload_from_input
from interlock.classify.registry import classify as run_classifier
from interlock.console import err, out
from interlock.fingerprint import PayloadError, fingerprint, payload_size
from interlock.model import Action, Classification, Decision, Kind, Risk
from interlock.options import Format
from interlock.policy import Policy, PolicyError, context_for, decide, load_policy, run_tests
from interlock.policy.classifying import classify_action
from interlock.policy.lint import LINT_ERRORS, lint_file
from interlock.wire import decision_json


class Mounted(TyperGroup):
    """A command group whose sub-commands living beside their feature (audit/, gate/, server/…) are imported
    when they are run or listed, not when `interlock` starts. Importing all of them cost ~1.1 s of CPU per
    process (the server and its console, FastAPI, the policy engine), paid by every `interlock hook …` an
    agent's harness runs before each tool call and by every CLI call in the tests; `interlock hook` alone
    needs a fifth of that. Click's own lazy-group pattern (click.palletsprojects.com "Lazily Loading
    Subcommands"): `list_commands` names them, `get_command` imports one."""

    #: name → (module, attribute, passthrough); set per group by `mount`.
    mounted: ClassVar[dict[str, tuple[str, str, bool]]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        own = super().list_commands(ctx)
        return own + [name for name in self.mounted if name not in own]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in self.mounted:
            command = _load_mounted(cmd_name, *self.mounted[cmd_name])
            if command is not None:
                self.add_command(command, cmd_name)  # once per process
        return command


class Commands(Mounted):
    mounted: ClassVar[dict[str, tuple[str, str, bool]]] = {}


class PolicyCommands(Mounted):
    mounted: ClassVar[dict[str, tuple[str, str, bool]]] = {}


app = typer.Typer(
    name="interlock",
    cls=Commands,
    help="A safety gateway between AI agents and production systems. Options and their environment "
         "variables: docs/cli.md.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
)
policy_app = typer.Typer(help="Lint, test, export and replay policies.", no_args_is_help=True, cls=PolicyCommands)
app.add_typer(policy_app, name="policy")



def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", markup=True)
    raise typer.Exit(code)


def _load(path: Path) -> Policy:
    try:
        return load_policy(path)
    except PolicyError as exc:
        for problem in exc.problems:
            err.print(str(problem), markup=False)
        err.print(f"policy {path} refused: {len(exc.problems)} problem(s); see docs/policy.md", markup=False)
        raise typer.Exit(2) from exc


def _read_input(value: str | None) -> str:
    if value is None or value == "-":
        if sys.stdin.isatty():
            fail("give the action's input as an argument, or on standard input")
        return sys.stdin.read()
    return value


def _payload(kind: Kind, text: str) -> dict[str, Any]:
    try:
        return payload_from_input(kind, text)
    except ValueError as exc:
        fail(str(exc))


_VALUE_STYLE = {"allow": "green", "deny": "red", "approval_required": "yellow", "sandbox_required": "yellow"}


def print_decision(decision: Decision) -> None:
    style = _VALUE_STYLE[decision.value.value]
    out.print(f"[bold {style}]{decision.value.value}[/]  risk {decision.risk.value}"
              + (f"  tags {', '.join(decision.tags)}" if decision.tags else ""))
    if decision.summary:
        out.print(f"  what:   {decision.summary}", markup=False)
    for reason in decision.reasons:
        out.print(f"  why:    {reason}", markup=False)
    out.print(f"  rules:  {', '.join(decision.rules) or '-'}", markup=False)
    for remedy in decision.remedy:
        out.print(f"  to run: {remedy}", markup=False)


def _show_version(value: bool) -> None:
    if value:
        from interlock import __version__

        out.print(__version__, markup=False)
        raise typer.Exit(0)


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_show_version,
                                          help="print Interlock's version and exit")] = False,
) -> None:
    """A safety gateway between AI agents and production systems. Options and their environment
    variables: docs/cli.md."""


@app.command()
@options.shared
def check(
    policy: options.RequiredPolicy,
    agent: Annotated[str, typer.Option(help="the proposing agent")],
    env: Annotated[str, typer.Option(help="the environment")],
    kind: Annotated[Kind, typer.Option(help="the action kind")],
    input: Annotated[str | None, typer.Argument(help="the action's input (command, SQL, JSON); - for stdin")] = None,
    target: Annotated[str | None, typer.Option(help="the target, from the policy's targets")] = None,
    risk: Annotated[Risk | None, typer.Option(help="override the classified risk")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="override the classified tags (repeatable)")] = None,
    at: Annotated[str | None, typer.Option(
        "--at", help="decide at this time (RFC 3339, e.g. 2026-12-24T10:00:00Z): change freezes in force "
        "then apply (docs/guards.md); without it, none does")] = None,
    format: options.Fmt = Format.text,
) -> None:
    """Decide one action under a policy. Exit 0 allow, 1 deny, 3 approval or sandbox required, 2 error."""
    loaded = _load(policy)
    text = _read_input(input)
    try:
        action = Action(kind=kind, environment=env, target=target, payload=_payload(kind, text))
        size = payload_size(action)
    except (ValidationError, PayloadError) as exc:
        fail(f"invalid action: {exc}")
    limit = loaded.doc.defaults.max_payload_bytes
    if size > limit:
        fail(f"payload is {size} bytes, over the policy's max_payload_bytes of {limit}")
    found = classify_action(loaded, action)
    if risk is not None or tag:
        found = Classification(risk=risk or found.risk, tags=tuple(tag) if tag else found.tags,
                               summary=found.summary, details=found.details)
    decision = decide(loaded, agent, action, found)
    if at is not None:
        from datetime import datetime

        from interlock.guard.freezes import apply_windows

        try:
            moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            fail(f"--at {at!r} is not a time: write RFC 3339 with a zone, e.g. 2026-12-24T10:00:00Z")
        if moment.tzinfo is None:
            fail(f"--at {at!r} has no time zone: add Z or an offset, e.g. 2026-12-24T10:00:00+01:00")
        decision = apply_windows(loaded.doc, agent, action, decision, moment)
    if format is Format.json:
        out.print_json(data=decision_json(decision, fingerprint(agent, action, loaded.version)))
    else:
        print_decision(decision)
    raise typer.Exit(decision.value.exit_code)


@app.command()
@options.shared
def classify(
    kind: Annotated[Kind | None, typer.Option(help="the action kind")] = None,
    input: Annotated[str | None, typer.Argument(help="the action's input; - for stdin")] = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help='stdin: one {"kind","input"} per line')] = False,
    format: options.Fmt = Format.text,
    policy: options.PolicyFile = None,
    target: Annotated[str | None, typer.Option(help="the target, from the policy's targets (with --policy)")] = None,
) -> None:
    """Say what an action would do: risk, tags and a one-line summary. With --policy, under what the
    policy says (its protected and secret paths, the target's SQL dialect, …)."""
    context = context_for(_load(policy), target) if policy is not None else None
    if jsonl:
        _classify_jsonl(context)
        return
    if kind is None:
        fail("--kind is required (or use --jsonl)")
    try:
        found = run_classifier(kind, payload_from_input(kind, _read_input(input)), context)
    except ValueError as exc:  # in none of the kind's forms: unknown, saying which forms are accepted
        found = Classification(risk=Risk.unknown, summary=str(exc))
    if format is Format.json:
        out.print_json(data={"kind": kind.value, "risk": found.risk.value, "tags": list(found.tags),
                             "summary": found.summary, "details": found.details})
    else:
        out.print(f"{found.risk.value}  {found.summary}" + (f"  [{', '.join(found.tags)}]" if found.tags else ""),
                  markup=False)


def _classify_jsonl(context: ClassifyContext | None = None) -> None:
    """One answer per input line, same order; a bad line answers `unknown` with the error, never stops."""
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict) or set(item) - {"kind", "input"}:
                raise ValueError('each line must be {"kind": …, "input": …}')
            kind = Kind(item["kind"])
            raw = item["input"]
            text = raw if isinstance(raw, str) else json.dumps(raw)
            found = run_classifier(kind, payload_from_input(kind, text), context)
            answer: dict[str, Any] = {"kind": kind.value, "risk": found.risk.value, "tags": list(found.tags),
                                      "summary": found.summary}
        except (ValueError, KeyError, TypeError) as exc:
            answer = {"kind": str(item.get("kind")) if isinstance(item, dict) else None, "risk": "unknown",
                      "tags": [], "summary": f"line {number}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


@policy_app.command("lint")
def policy_lint(
    file: options.PolicyArgument = None,
    strict: Annotated[bool, typer.Option(help="fail on warnings too")] = False,
) -> None:
    """Check a policy: problems as file:line:col: message. Exit 1 when there are errors."""
    file = options.policy_file(file)
    problems = lint_file(file)
    for problem in problems:
        (err if problem.severity in LINT_ERRORS else out).print(str(problem), markup=False)
    errors = [p for p in problems if p.severity in LINT_ERRORS or (strict and p.severity == "warning")]
    if errors:
        raise typer.Exit(1)
    warnings = sum(p.severity == "warning" for p in problems)
    hints = len(problems) - warnings
    notes = [f"{n} {word}(s)" for n, word in ((warnings, "warning"), (hints, "hint")) if n]
    out.print(f"{file}: ok" + (f" ({', '.join(notes)})" if notes else ""), markup=False)


@policy_app.command("test")
def policy_test(
    file: options.PolicyArgument = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show every case's decision")] = False,
) -> None:
    """Run the policy's inline tests: each failure as expected vs got, with the deciding rules."""
    file = options.policy_file(file)
    loaded = _load(file)
    results = run_tests(loaded)
    if verbose:
        table = Table("test", "agent", "env", "input", "risk", "decision", "rules", box=None)
        for r in results:
            d = r.decision
            got = d.value.value if d else "error"
            style = "green" if r.passed else "red"
            table.add_row(r.test.name or str(r.index), r.test.agent, r.test.env, r.test.input[:60],
                          d.risk.value if d else "-", f"[{style}]{got}[/]", ", ".join(d.rules) if d else "")
        out.print(table)
    failed = [r for r in results if not r.passed]
    for r in failed:
        err.print(str(r.location(loaded)), markup=False)
    if not results:
        out.print(f"{file}: no tests (add a `tests:` list)", markup=False)
    out.print(f"{len(results) - len(failed)} passed, {len(failed)} failed", markup=False)
    if failed:
        raise typer.Exit(1)


@policy_app.command("schema")
def policy_schema() -> None:
    """Print the policy's JSON Schema (for editors: yaml-language-server, VS Code)."""
    from interlock.policy.schema import PolicyDocument

    schema = PolicyDocument.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Interlock policy"
    sys.stdout.write(json.dumps(schema, indent=2) + "\n")


@app.command()
def version() -> None:
    """Print Interlock's version."""
    from interlock import __version__

    out.print(__version__)


def _load_mounted(name: str, module: str, attr: str, passthrough: bool) -> click.Command | None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:  # a feature not installed is simply not offered
        if exc.name and module.startswith(exc.name):
            return None
        raise
    obj = getattr(mod, attr)
    if isinstance(obj, typer.Typer):
        group = typer.main.get_group(obj)
        group.name = name
        return group
    # `passthrough`: commands that take `-- CMD…` after their own options (exec, mcp-proxy).
    settings = {"allow_extra_args": True, "ignore_unknown_options": True} if passthrough else {}
    return typer.main.get_command_from_info(
        typer.models.CommandInfo(name=name, callback=obj, context_settings=settings),
        pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=app.rich_markup_mode)


def mount(group: type[Mounted], name: str, module: str, attr: str, *, passthrough: bool = False) -> None:
    group.mounted[name] = (module, attr, passthrough)


mount(Commands, "audit", "interlock.audit.cli", "app")
mount(PolicyCommands, "replay", "interlock.audit.cli", "replay_command")
mount(Commands, "approvals", "interlock.gate.cli", "app")
mount(Commands, "token", "interlock.identity_cli", "app")
mount(Commands, "serve", "interlock.server.cli", "serve")
mount(Commands, "hook", "interlock.integrations.hooks_cli", "app")
mount(Commands, "exec", "interlock.integrations.exec_cli", "exec_", passthrough=True)
mount(Commands, "mcp-proxy", "interlock.integrations.mcp_cli", "mcp_proxy", passthrough=True)
mount(Commands, "demo", "interlock.demo.cli", "demo")
mount(Commands, "rehearse", "interlock.sandbox.cli", "rehearse")
mount(Commands, "freeze", "interlock.guard.cli", "freeze")
mount(Commands, "thaw", "interlock.guard.cli", "thaw")
mount(Commands, "guards", "interlock.guard.cli", "app")
mount(Commands, "rollout", "interlock.rollout.cli", "app")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
