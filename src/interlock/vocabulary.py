"""The words of Interlock's command line, written once: option names, environment variables, defaults.

Standard library only, and cheap to import: the lean `interlock-hook` imports it (so no
dataclasses, and pathlib, hashlib and urllib only inside the functions that need them), and so
does everything that needs a default (the store URL, the key directory). `interlock/options.py`
turns these into typer options; docs/cli.md is the table a user reads.

    default_key_dir("sqlite:///.interlock/interlock.db")   # .interlock/keys (beside the file)
    default_key_dir("postgresql://app@db:5432/interlock")  # ~/.local/state/interlock/keys/postgresql-db-5432-…
    choose_client(gateway=Given("http://127.0.0.1:8700"), policy=Given(None), token="…")  # Remote(...)
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

# --- environment variables (each option's one variable) -------------------------------------------

ENV_DB = "INTERLOCK_DB"
ENV_KEY_DIR = "INTERLOCK_KEY_DIR"
ENV_URL = "INTERLOCK_URL"
ENV_TOKEN = "INTERLOCK_TOKEN"
ENV_POLICY = "INTERLOCK_POLICY"
ENV_ENV = "INTERLOCK_ENV"
ENV_AGENT = "INTERLOCK_AGENT"

#: Old spellings, kept as hidden aliases that warn (a public contract: scripts use them).
OLD_ENV_SERVER = "INTERLOCK_SERVER"  # now INTERLOCK_URL
OLD_ENV_KEYS = "INTERLOCK_KEYS"  # now INTERLOCK_KEY_DIR

# --- defaults ----------------------------------------------------------------------------------------

DEFAULT_DB = "sqlite:///.interlock/interlock.db"
DEFAULT_GATEWAY = "http://127.0.0.1:8700"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8700
#: Seconds a command waits for a pending approval before it gives up (`--wait`).
DEFAULT_WAIT = 300.0
#: The key folder's name beside a SQLite store; also the folder under the per-user state directory.
KEY_DIR_NAME = "keys"


def user_state_dir() -> Path:
    """Interlock's per-user state folder: $XDG_STATE_HOME/interlock, else ~/.local/state/interlock."""
    from pathlib import Path

    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "interlock"


def sqlite_path(db_url: str) -> str | None:
    """The file of a `sqlite:///path` URL; None for in-memory or non-SQLite stores."""
    if not db_url.startswith("sqlite:///"):
        return None
    path = db_url.removeprefix("sqlite:///").split("?", 1)[0]
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        return None
    return path


def default_key_dir(db_url: str) -> Path:
    """Where the audit signing key of the store at `db_url` lives when no --key-dir is given.

    Derived from the store, never from the current directory, so every command that opens one
    store finds the same key wherever it is run from:
    - a SQLite file: `keys/` beside the file (`sqlite:///.interlock/interlock.db` → `.interlock/keys`;
      a relative file is relative to the current directory, and its keys are beside it);
    - PostgreSQL (or an in-memory store): a per-user folder named after the store, without the user
      or password (a password rotation or another role keeps the key):
      `$XDG_STATE_HOME/interlock/keys/postgresql-HOST-PORT-DBNAME-HASH` (default
      `~/.local/state/interlock/keys/…`).
    """
    from pathlib import Path

    path = sqlite_path(db_url)
    if path is not None:
        return Path(path).parent / KEY_DIR_NAME
    return user_state_dir() / KEY_DIR_NAME / store_slug(db_url)


def store_slug(db_url: str) -> str:
    """A folder name for a store that is not a file: readable, unique per host, port and database."""
    import hashlib
    from urllib.parse import parse_qs, unquote, urlsplit

    if db_url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(db_url)
        query = parse_qs(parts.query)
        host = parts.hostname or (query.get("host") or ["localhost"])[0]
        try:
            port = parts.port or int((query.get("port") or ["5432"])[0])
        except ValueError:
            port = 5432
        dbname = unquote(parts.path.lstrip("/")) or (query.get("dbname") or [""])[0] or "postgres"
        canonical = f"postgresql://{host}:{port}/{dbname}"
        readable = f"postgresql-{host}-{port}-{dbname}"
    else:
        canonical = db_url.split("?", 1)[0]
        readable = "memory" if "memory" in canonical else "store"
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", readable)[:80] + "-" + digest


def key_dir_for(db_url: str, key_dir: str | Path | None) -> Path:
    """The key directory a command uses: the one given, else the store's default."""
    from pathlib import Path

    return Path(key_dir) if key_dir else default_key_dir(db_url)


# --- the client choice: a gateway URL, or the Gateway in-process over a policy ----------------------


class UsageError(ValueError):
    """The options do not say how to reach Interlock; the message says what to pass."""


class _Record:
    """A small immutable value compared by its fields (a dataclass costs the hook ~8 ms to import)."""

    __slots__: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Record) and type(self) is type(other) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({inner})"


class Given(_Record):
    """An option's value and whether it was typed on the command line (else: environment or default)."""

    __slots__ = ("value", "on_command_line")  # noqa: RUF023 (constructor order: repr and equality read it)
    value: str | None
    on_command_line: bool

    def __init__(self, value: str | None, on_command_line: bool = True) -> None:
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "on_command_line", on_command_line)


class Remote(_Record):
    """Talk to a running `interlock serve` at `url` with `token`."""

    __slots__ = ("url", "token")  # noqa: RUF023
    url: str
    token: str

    def __init__(self, url: str, token: str) -> None:
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "token", token)

    def __repr__(self) -> str:  # never the token
        return f"Remote(url={self.url!r}, token='***')"


class InProcess(_Record):
    """Run the Gateway in this process over `policy`, on the store `db` with keys in `key_dir`."""

    __slots__ = ("policy", "agent", "db", "key_dir")  # noqa: RUF023
    policy: str
    agent: str | None
    db: str
    key_dir: Path

    def __init__(self, policy: str, agent: str | None, db: str, key_dir: Path) -> None:
        for name, value in zip(self.__slots__, (policy, agent, db, key_dir), strict=True):
            object.__setattr__(self, name, value)


def choose_client(*, gateway: Given, policy: Given, token: str | None = None, agent: str | None = None,
                  db: str | None = None, key_dir: str | Path | None = None, needs_agent: bool = True,
                  needs_token: bool = True) -> Remote | InProcess:
    """`--gateway URL` (token from --token/INTERLOCK_TOKEN) or in-process `--policy FILE`: exactly one.

    A value typed on the command line beats one from the environment (`--policy p.yaml` with
    INTERLOCK_URL set runs in-process); two at the same level are a usage error, never a guess.
    `needs_token=False` where the token is only needed later (`hook install` writes a command).
    """
    url, file = gateway.value or None, policy.value or None
    if url and file and gateway.on_command_line == policy.on_command_line:
        where = "on the command line" if gateway.on_command_line else f"in the environment ({ENV_URL}, {ENV_POLICY})"
        raise UsageError(f"both --gateway and --policy are given {where}: pass one, --gateway URL (a running "
                         "`interlock serve`) or --policy FILE (in-process)")
    if url and file:
        url, file = (url, None) if gateway.on_command_line else (None, file)
    if url:
        if not token and needs_token:
            raise UsageError(f"no token for --gateway: set {ENV_TOKEN} (or pass --token)")
        return Remote(url=url, token=token or "")
    if file:
        if needs_agent and not agent:
            raise UsageError(f"--policy needs --agent NAME (or {ENV_AGENT}): the agent the actions are for")
        store = db or DEFAULT_DB
        return InProcess(policy=file, agent=agent, db=store, key_dir=key_dir_for(store, key_dir))
    extra = " --agent NAME" if needs_agent else ""
    raise UsageError(f"no gateway: pass --gateway URL ({ENV_URL}, token in {ENV_TOKEN}) or --policy FILE{extra} "
                     f"({ENV_POLICY}) to run in-process")
