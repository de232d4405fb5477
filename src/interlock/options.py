"""The shared command-line options, each defined once with its environment variable and default.

Every command takes its options from here (Datasette's shared-option decorators are the model), so
`--db` means the store with INTERLOCK_DB everywhere, `--key-dir` the signing key's folder with
INTERLOCK_KEY_DIR, `--gateway`/INTERLOCK_URL and `--token`/INTERLOCK_TOKEN a running server,
`--policy`/INTERLOCK_POLICY a policy file, `--format json` JSON on stdout and `--wait` the seconds to
wait for approval. The table a user reads is docs/cli.md; the words are in interlock/vocabulary.py.

    @app.command("list")
    @options.shared
    def list_command(db: options.Db = DEFAULT_DB, key_dir: options.KeyDir = None,
                     format: options.Fmt = Format.text) -> None: ...

`@shared` adds the old spellings of the options a command uses as hidden aliases (`--server`,
INTERLOCK_SERVER, `--keys`, INTERLOCK_KEYS, `--json`, `--approval-timeout`, `audit verify --since
FILE`): they keep working, warn on stderr, and an old and a new spelling that disagree are an error.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar, get_type_hints

import typer

from interlock import vocabulary as words
from interlock.vocabulary import (
    DEFAULT_DB,
    DEFAULT_WAIT,
    ENV_AGENT,
    ENV_DB,
    ENV_ENV,
    ENV_KEY_DIR,
    ENV_POLICY,
    ENV_TOKEN,
    ENV_URL,
    Given,
    InProcess,
    Remote,
    UsageError,
)

__all__ = ["DEFAULT_DB", "DEFAULT_WAIT", "Format", "Given", "InProcess", "Remote", "UsageError"]


class Format(StrEnum):
    text = "text"
    json = "json"


# --- the options (one definition each) -----------------------------------------------------------

#: The store. Default: DEFAULT_DB (`sqlite:///.interlock/interlock.db`).
Db = Annotated[str, typer.Option(
    "--db", envvar=ENV_DB, show_envvar=True, help="the store: sqlite:///path/to/interlock.db or postgresql://…")]
#: The audit signing key's folder. Default: derived from the store (vocabulary.default_key_dir).
KeyDir = Annotated[Path | None, typer.Option(
    "--key-dir", envvar=ENV_KEY_DIR, show_envvar=True, show_default=False,
    help="the audit signing key's folder (default: beside a SQLite store, per user for PostgreSQL; docs/cli.md)")]
#: A running `interlock serve`.
Gateway = Annotated[str | None, typer.Option(
    "--gateway", envvar=ENV_URL, show_envvar=True, show_default=False,
    help="URL of a running `interlock serve`, e.g. http://127.0.0.1:8700")]
#: The caller's bearer token (an agent's or a human's, as the command says).
Token = Annotated[str | None, typer.Option(
    "--token", envvar=ENV_TOKEN, show_envvar=True, show_default=False,
    help="your Interlock token (prefer the environment variable: a command line is visible to others)")]
#: A policy file (optional where a gateway can be used instead).
PolicyFile = Annotated[Path | None, typer.Option(
    "--policy", envvar=ENV_POLICY, show_envvar=True, show_default=False, help="the policy file")]
#: A policy file the command cannot run without.
RequiredPolicy = Annotated[Path, typer.Option(
    "--policy", envvar=ENV_POLICY, show_envvar=True, show_default=False, help="the policy file")]
#: The policy file a command works on (`policy lint|test [FILE]`), given as the argument or, like
#: `--policy` everywhere else, by INTERLOCK_POLICY; `policy_file` refuses neither.
PolicyArgument = Annotated[Path | None, typer.Argument(
    envvar=ENV_POLICY, show_envvar=True, show_default=False, help="the policy file (default: $INTERLOCK_POLICY)")]


def policy_file(given: Path | None) -> Path:
    """The policy file of a `PolicyArgument`, or a usage error (exit 2) saying how to give one."""
    if given is None:
        usage_error(f"no policy file: give FILE, or set {ENV_POLICY} (as for --policy)")
    return given


#: text for people, json for programs (on stdout).
Fmt = Annotated[Format, typer.Option("--format", help="text, or json on stdout")]
#: Seconds to wait for a pending approval.
Wait = Annotated[float, typer.Option("--wait", min=0, help="seconds to wait for a pending approval")]
#: The environment an action is for.
Env = Annotated[str | None, typer.Option(
    "--env", envvar=ENV_ENV, show_envvar=True, show_default=False, help="the environment the actions are for")]
#: The agent an in-process command speaks for.
Agent = Annotated[str | None, typer.Option(
    "--agent", envvar=ENV_AGENT, show_envvar=True, show_default=False,
    help="the agent the actions are for (with --policy)")]


def key_dir_for(db: str, key_dir: Path | None) -> Path:
    """The key folder a command uses: --key-dir/INTERLOCK_KEY_DIR, else the store's default."""
    return words.key_dir_for(db, key_dir)


# --- old spellings: hidden, warned, never silently disagreeing ----------------------------------


@dataclass(frozen=True)
class Alias:
    """An old spelling of the option behind parameter `param`."""

    param: str
    flag: str
    new_flag: str
    type: Any
    env: str | None = None
    new_env: str | None = None
    #: For an old flag that takes no value (`--json`): the new option's value it stands for.
    means: Any = None

    @property
    def slot(self) -> str:
        return f"old_{self.flag.lstrip('-').replace('-', '_')}"


ALIASES = (
    Alias("gateway", "--server", "--gateway", str, words.OLD_ENV_SERVER, ENV_URL),
    Alias("key_dir", "--keys", "--key-dir", Path, words.OLD_ENV_KEYS, ENV_KEY_DIR),
    Alias("format", "--json", "--format json", bool, means=Format.json),
    Alias("wait", "--approval-timeout", "--wait", float),
    Alias("witness", "--since", "--witness", Path),
)

_CONTEXT = "options_context"
_typed: ContextVar[frozenset[str]] = ContextVar("interlock_typed_options", default=frozenset())

F = TypeVar("F", bound=Callable[..., Any])


def warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def usage_error(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def on_command_line(param: str) -> bool:
    """Was the option behind `param` typed on the command line (old spelling included)?

    Used where the command line must beat the environment (the --gateway/--policy choice)."""
    return param in _typed.get()


def given(param: str, value: object) -> Given:
    return Given(None if value is None else str(value), on_command_line(param))


def shared(func: F) -> F:
    """Add the hidden old spellings of the shared options `func` takes; resolve and warn on use.

    Apply under `@app.command(...)`. The command itself sees only the new parameter."""
    signature = inspect.signature(func, eval_str=True)
    hints = get_type_hints(func, include_extras=True)
    aliases = [a for a in ALIASES if a.param in signature.parameters
               and not (a.flag == "--since" and "since" in signature.parameters)]
    extra = [
        inspect.Parameter(a.slot, inspect.Parameter.KEYWORD_ONLY, default=False if a.type is bool else None,
                          annotation=Annotated[a.type if a.type is bool else a.type | None,
                                               typer.Option(a.flag, envvar=a.env, hidden=True, show_default=False)])
        for a in aliases
    ]
    # typer hands the context to one parameter only: the command's own if it has one, else ours.
    own = [name for name, hint in hints.items() if hint is typer.Context]
    context = own[0] if own else _CONTEXT
    if not own:
        extra.append(inspect.Parameter(_CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context))
    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx: typer.Context | None = kwargs.get(context) if own else kwargs.pop(_CONTEXT, None)
        if ctx is None:  # called as a plain function, not through typer: no old spellings to resolve
            return func(*args, **{k: v for k, v in kwargs.items() if k not in {a.slot for a in aliases}})
        typed = {name for name in kwargs if _source(ctx, name) == "COMMANDLINE"}
        for alias in aliases:
            old = kwargs.pop(alias.slot)
            if old is None or old is False:
                continue
            source = _source(ctx, alias.slot)
            kwargs[alias.param] = _resolve(alias, old, source, kwargs[alias.param], _source(ctx, alias.param))
            if source == "COMMANDLINE":
                typed.add(alias.param)
        with _typed_options(frozenset(typed)):
            return func(*args, **kwargs)

    # typer reads the signature and the annotations: the command's own, then the hidden aliases.
    wrapper.__signature__ = signature.replace(parameters=params + extra)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**hints, **{p.name: p.annotation for p in extra}}
    return wrapper  # type: ignore[return-value]


@contextmanager
def _typed_options(names: frozenset[str]) -> Iterator[None]:
    token = _typed.set(names)
    try:
        yield
    finally:
        _typed.reset(token)


def _source(ctx: typer.Context, name: str) -> str:
    found = ctx.get_parameter_source(name)
    return found.name if found is not None else "DEFAULT"


def _resolve(alias: Alias, old: Any, old_source: str, new: Any, new_source: str) -> Any:
    """The value the command gets when an old spelling was used (warned), or a usage error."""
    value = alias.means if alias.type is bool else old
    if old_source == "COMMANDLINE":
        if new_source == "COMMANDLINE" and new != value:
            usage_error(f"{alias.flag} is the old name of {alias.new_flag}: give {alias.new_flag} only")
        warn(f"{alias.flag} is deprecated and will be removed: use {alias.new_flag}")
        return value
    # From the old environment variable: the new variable or a typed option wins; both set must agree.
    if new_source == "COMMANDLINE":
        warn(f"{alias.env} is deprecated and ignored here ({alias.new_flag} is given): set {alias.new_env}")
        return new
    if new_source == "ENVIRONMENT" and str(new) != str(old):
        usage_error(f"{alias.env} and {alias.new_env} disagree: "
                    f"{alias.env} is the old name of {alias.new_env}; unset it")
    warn(f"{alias.env} is deprecated and will be removed: set {alias.new_env}")
    return value


def client(*, gateway: str | None, policy: Path | str | None, token: str | None, agent: str | None = None,
           db: str = DEFAULT_DB, key_dir: Path | str | None = None, needs_agent: bool = True,
           needs_token: bool = True) -> Remote | InProcess:
    """The one `--gateway URL` or in-process `--policy FILE` choice (vocabulary.choose_client), or exit 2."""
    try:
        return words.choose_client(gateway=given("gateway", gateway), policy=given("policy", policy), token=token,
                                   agent=agent, db=db, key_dir=key_dir, needs_agent=needs_agent,
                                   needs_token=needs_token)
    except UsageError as exc:
        usage_error(str(exc))
