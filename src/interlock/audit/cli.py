"""`interlock audit …` (verify, show, export, proof, checkpoint, pubkey) and `interlock policy replay`.

Mounted by interlock/cli.py. Exit codes: 0 ok, 1 verification failed (or, with
--fail-on-change, replay found changes), 2 usage error or unreadable store/key.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from interlock import options
from interlock.audit.checkpoint import SigningKeyError
from interlock.audit.log import AuditError, AuditLog, outcome_of
from interlock.audit.verify import (
    Checkpoint,
    Keys,
    Problem,
    checkpoint_problem,
    load_public_key,
    verify_consistency,
)
from interlock.options import DEFAULT_DB, Format
from interlock.store import StoreError, open_store

app = typer.Typer(
    help="Verify, read, export and prove the audit log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


Db = options.Db
KeyDir = options.KeyDir
Fmt = options.Fmt


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def _opened_store(db: str) -> Iterator[Any]:
    """The store at `db`; a SQLite file that does not exist is an error, not a new empty log."""
    if db.startswith("sqlite:///") and db != "sqlite:///:memory:" and not Path(db[len("sqlite:///"):]).exists():
        _fail(f"no audit database at {db}: pass --db, or run `interlock serve` first")
    try:
        store = open_store(db)
    except StoreError as exc:
        _fail(str(exc))
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _opened(db: str, key_dir: Path | None, *, create_key: bool = False, sign: bool = False) -> Iterator[AuditLog]:
    with _opened_store(db) as store:
        try:
            log = AuditLog(store, key_dir=options.key_dir_for(db, key_dir), create_key=create_key, sign=sign)
        except (AuditError, SigningKeyError, StoreError) as exc:
            _fail(str(exc))
        try:
            yield log
        except (AuditError, SigningKeyError, StoreError) as exc:
            _fail(str(exc))
        finally:
            log.close()


def _emit(data: Any, fmt: Format, text: str) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True) if fmt is Format.json else text)


# --- verify ---------------------------------------------------------------------------------------


@app.command()
@options.shared
def verify(
    db: Db = DEFAULT_DB,
    key_dir: KeyDir = None,
    witness: Annotated[
        Path | None, typer.Option("--witness", help="a checkpoint saved earlier: the log must extend it")
    ] = None,
    public_key: Annotated[
        list[Path] | None,
        typer.Option("--public-key", help="PEM public key to trust; repeat it for a keyring (key rotation)"),
    ] = None,
    format: Fmt = Format.text,
) -> None:
    """Recompute the whole tree, check every checkpoint's signature and root, each entry's MAC and
    side columns; report the first bad place and which key signed which checkpoints."""
    keys = []
    for path in public_key or []:
        try:
            keys.append(load_public_key(path.read_bytes()))
        except (OSError, ValueError) as exc:
            _fail(f"cannot read the public key {path}: {exc}")
    with _opened(db, key_dir) as log:
        # Default keyring: the log's key and the keys it retired (`audit rotate-key` archives them).
        trusted = keys or [log.public_key(), *_retired(log.key_dir)]
        report = log.verify(trusted)
        report.problems.extend(_gate_problems(log))
        if witness is not None:
            report.problems.extend(_witness_problems(log, witness, trusted))
        text = report.describe()
        data = report.to_json()
    _emit(data, format, text)
    raise typer.Exit(0 if report.ok else 1)


def _gate_problems(log: AuditLog) -> list[Problem]:
    """The gate's votes and grants, each checked against the entry that recorded it (when this
    process holds the entry key: without it MACs cannot be checked and the report's note says so)."""
    from interlock.gate.integrity import gate_problems

    if not log.has_entry_key:
        return []
    return gate_problems(log)


def _witness_problems(log: AuditLog, path: Path, key: Keys) -> list[Problem]:
    """Is the checkpoint saved in `path` a prefix of the log's latest checkpoint?"""
    try:
        saved = Checkpoint(
            **{k: str(v) for k, v in json.loads(path.read_text()).items() if k in ("body", "signature")}
        )
    except (OSError, ValueError, TypeError) as exc:
        return [Problem(f"saved checkpoint {path}", f"unreadable: {exc}")]
    where = f"saved checkpoint {path}"
    problem = checkpoint_problem(saved, key)
    if problem is not None:
        return [Problem(where, problem)]
    latest = log.latest_checkpoint()
    if latest is None or latest.tree_size < saved.tree_size:
        size = 0 if latest is None else latest.tree_size
        return [
            Problem(
                where,
                f"covers {saved.tree_size} entries but the newest checkpoint covers only {size} "
                "(the log was truncated or replaced)",
                index=size,
                until=saved.tree_size,
                exact=False,
            )
        ]
    if saved.tree_size == 0:
        return []
    proof = [bytes.fromhex(p) for p in log.consistency_proof(saved.tree_size, latest.tree_size)]
    if not verify_consistency(saved.tree_size, latest.tree_size, proof, saved.root, latest.root):
        return [
            Problem(
                where,
                f"the log at size {latest.tree_size} is not an extension of the saved checkpoint "
                f"(size {saved.tree_size}): history was rewritten",
                index=0,
                until=saved.tree_size,
                exact=False,
            )
        ]
    return []


# --- show -----------------------------------------------------------------------------------------


@app.command()
@options.shared
def show(
    db: Db = DEFAULT_DB,
    key_dir: KeyDir = None,
    agent: Annotated[str | None, typer.Option(help="only this agent")] = None,
    env: Annotated[str | None, typer.Option("--env", help="only this environment")] = None,
    risk: Annotated[str | None, typer.Option(help="read, write, destructive or unknown")] = None,
    decision: Annotated[
        str | None, typer.Option(help="allow, deny, approval_required, sandbox_required")
    ] = None,
    event: Annotated[str | None, typer.Option(help="e.g. action.decided")] = None,
    since: Annotated[str | None, typer.Option(help="RFC 3339 time or a duration ago (30m, 24h, 7d)")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339 time or a duration ago")] = None,
    text: Annotated[str | None, typer.Option(help="entries containing this text (case-insensitive)")] = None,
    action: Annotated[str | None, typer.Option(help="timeline of one action, proposal to outcome")] = None,
    limit: Annotated[int, typer.Option(help="at most this many (the newest)")] = 100,
    format: Fmt = Format.text,
) -> None:
    """List entries with filters, or the timeline of one action (--action ID)."""
    with _opened(db, key_dir) as log:
        rows = log.search(
            agent=agent,
            environment=env,
            risk=risk,
            outcome=decision,
            event=event,
            action_id=action,
            since=_when(since),
            until=_when(until),
            text=text,
            limit=limit if action is None else 10_000,
        )
        if action is not None:
            rows = _with_its_approvals(log, rows)
    if format is Format.json:
        _emit(rows, format, "")
        return
    if not rows:
        typer.echo("no matching entries")
        return
    if action is not None:
        typer.echo(timeline(rows))
        return
    for row in rows:
        typer.echo(
            f"#{row['index']:<6} {row['time']}  {row['event']:<20} {summary(row['event'], row['data'])}"
        )


def _with_its_approvals(log: AuditLog, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An action's timeline plus the entries of the approval request it waited on (votes, grant), which
    another proposal of the same action may have opened: the timeline then shows who approved."""
    requests = {str(r["data"]["request_id"]) for r in rows if isinstance(r["data"].get("request_id"), str)}
    found = {r["index"]: r for r in rows}
    for request_id in sorted(requests):
        needle = json.dumps({"request_id": request_id}, separators=(",", ":"))[1:-1]
        for row in log.search(text=needle, limit=10_000):
            if row["data"].get("request_id") == request_id:
                found.setdefault(row["index"], row)
    return [found[i] for i in sorted(found)]


def _when(value: str | None) -> str | None:
    """RFC 3339 (or a duration ago: 30m, 24h, 7d) as the log's fixed-width UTC text."""
    if value is None:
        return None
    match = re.fullmatch(r"(\d+)([smhd])", value.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match[2]]
        moment = datetime.now(UTC) - timedelta(**{unit: int(match[1])})
    else:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            _fail(f"time {value!r} is neither RFC 3339 (2026-01-31T12:00:00Z) nor a duration (30m, 24h, 7d)")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def summary(event: str, data: dict[str, Any]) -> str:
    """One readable line for an entry."""
    action = _dict(data.get("action"))
    decision = _dict(data.get("decision"))
    who = data.get("principal") or data.get("human") or data.get("agent") or data.get("by") or ""
    parts: list[str] = [str(who)] if who else []
    if action:
        payload = _dict(action.get("payload"))
        text = payload.get("command") or payload.get("sql") or json.dumps(payload, sort_keys=True)
        parts.append(f"{action.get('kind', '?')}@{action.get('environment', '?')}: {_clip(str(text), 80)}")
    outcome = outcome_of(data)
    if outcome:
        parts.append(f"→ {outcome}")
    risk = data.get("risk") or decision.get("risk") or _dict(data.get("classification")).get("risk")
    if risk:
        parts.append(f"[{risk}]")
    for key in (
        "verdict",
        "approved_by",
        "counted",
        "still_needs",
        "reason",
        "reasons",
        "rules",
        "request_id",
        "grant_id",
        "exit_status",
        "rows_affected",
        "duration_ms",
        "code",
        "error",
        "message",
    ):
        if key in data and data[key] not in (None, "", []):
            parts.append(f"{key}={_clip(json.dumps(data[key]), 80)}")
    if data.get("action_id"):
        parts.append(f"(action {data['action_id']})")
    if parts:
        return " ".join(parts)
    fields = [f"{k}={_clip(json.dumps(v), 40)}" for k, v in sorted(data.items())]
    return " ".join(fields) or "{}"


def _clip(text: str, width: int) -> str:
    """Shorten one field's text visibly (… and how much was left out), never mid-way through the line's
    other fields: a reader can tell a shortened value from a whole one."""
    if len(text) <= width:
        return text
    return f"{text[: width - 12]}…(+{len(text) - width + 12} chars)"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def timeline(rows: list[dict[str, Any]]) -> str:
    """The story of one action: each step with the time elapsed since the proposal."""
    start = _parse_time(rows[0]["time"])
    lines = [f"action {rows[0]['data'].get('action_id', '?')}: {len(rows)} entries"]
    for row in rows:
        elapsed = (_parse_time(row["time"]) - start).total_seconds()
        lines.append(
            f"  +{elapsed:9.3f}s  #{row['index']:<6} {row['event']:<20} {summary(row['event'], row['data'])}"
        )
    return "\n".join(lines)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- export, proof, checkpoint, pubkey ------------------------------------------------------------


@app.command()
@options.shared
def export(
    db: Db = DEFAULT_DB,
    key_dir: KeyDir = None,
    out: Annotated[Path | None, typer.Option("--out", help="file to write (default: stdout)")] = None,
) -> None:
    """Write every entry and checkpoint as JSON Lines (verify it with `python verify.py`)."""
    with _opened(db, key_dir) as log:
        if out is None:
            count = log.export(sys.stdout)
        else:
            with out.open("w", encoding="utf-8") as handle:
                count = log.export(handle)
    typer.echo(f"exported {count} entries", err=True)


@app.command()
@options.shared
def proof(
    entry: Annotated[int, typer.Argument(help="the entry's index")],
    db: Db = DEFAULT_DB,
    key_dir: KeyDir = None,
    size: Annotated[int | None, typer.Option("--size", help="tree size (default: latest checkpoint)")] = None,
) -> None:
    """Inclusion proof of one entry in a signed checkpoint (JSON)."""
    with _opened(db, key_dir) as log:  # only the signer signs: a proof uses the checkpoints there are
        found = log.inclusion_proof(entry, size)
    typer.echo(json.dumps(found.to_json(), indent=2, sort_keys=True))


@app.command()
@options.shared
def checkpoint(db: Db = DEFAULT_DB, key_dir: KeyDir = None) -> None:
    """Sign a checkpoint of the log now; prints it (save it to use with `verify --witness`)."""
    with _opened(db, key_dir, create_key=True, sign=True) as log:  # the operator as the designated signer
        made = log.checkpoint()
    typer.echo(json.dumps(made.to_json(), sort_keys=True))


@app.command("rotate-key")
@options.shared
def rotate_key_command(db: Db = DEFAULT_DB, key_dir: KeyDir = None, format: Fmt = Format.text) -> None:
    """Replace the signing key: the old key signs a last checkpoint over an audit.key_rotated entry, a
    new key pair (0600) takes over, and the old public key is archived under retired/ for verify.
    Needs the current private key; stop every server using the key directory first."""
    from interlock.audit.rotation import rotate_key

    with _opened_store(db) as store:
        try:
            done = rotate_key(store, options.key_dir_for(db, key_dir))
        except (AuditError, SigningKeyError, StoreError) as exc:
            _fail(str(exc))
    where = done.archived.parent.parent
    text = (
        f"signing key rotated: {done.old_key_id} -> {done.new_key_id}\n"
        + (f"the old key signed its last checkpoint at size {done.final_checkpoint.tree_size} "
           f"(entry {done.entry_index}: audit.key_rotated)\n" if done.final_checkpoint else
           "finished the key files of an interrupted rotation\n")
        + f"old public key archived at {done.archived}; new public key in {where}\n"
        "copy the key directory to every replica, then start the servers again"
    )
    _emit(done.to_json(), format, text)


def _retired(key_dir: Path) -> list[Any]:
    from interlock.audit.rotation import retired_keys

    try:
        return list(retired_keys(key_dir))
    except SigningKeyError as exc:
        _fail(str(exc))


@app.command()
@options.shared
def pubkey(db: Db = DEFAULT_DB, key_dir: KeyDir = None) -> None:
    """Print the public key (PEM) that verifies this log's checkpoints (creates the key pair if new)."""
    from interlock.audit.checkpoint import public_key_pem

    try:
        typer.echo(public_key_pem(options.key_dir_for(db, key_dir)).decode(), nl=False)
    except SigningKeyError as exc:
        _fail(str(exc))


# --- policy replay --------------------------------------------------------------------------------


@options.shared
def replay_command(
    policy: options.RequiredPolicy,
    db: Db = DEFAULT_DB,
    key_dir: KeyDir = None,
    since: Annotated[str | None, typer.Option(help="RFC 3339 time or a duration ago (30m, 24h, 7d)")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339 time or a duration ago")] = None,
    limit: Annotated[int, typer.Option(help="at most this many past proposals (the newest)")] = 100_000,
    fail_on_change: Annotated[bool, typer.Option(help="exit 1 when any decision would change")] = False,
    format: Fmt = Format.text,
) -> None:
    """Shadow mode: re-decide past proposals under a new policy; list every decision that would change."""
    from interlock.audit.replay import replay
    from interlock.policy import PolicyError, load_policy

    try:
        new_policy = load_policy(policy)
    except PolicyError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        _fail(f"policy {policy} refused: {len(exc.problems)} problem(s)")
    with _opened(db, key_dir) as log:
        result = replay(log, new_policy, since=_when(since), until=_when(until), limit=limit)
    if format is Format.json:
        _emit(result.to_json(), format, "")
    else:
        typer.echo(result.describe())
    raise typer.Exit(1 if fail_on_change and result.changes else 0)
