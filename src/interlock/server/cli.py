"""`interlock serve`: start the HTTP gateway (mounted by interlock.cli)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from interlock.policy import PolicyError
from interlock.server.app import ServerError, Settings, check_policy_for_serving, create_app


def serve(
    policy: Annotated[Path, typer.Option(help="the policy file; refused if it fails lint or its tests")],
    db: Annotated[str, typer.Option(help="sqlite:///path or postgresql://…")] = "sqlite:///.interlock/interlock.db",
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8700,
    workers: Annotated[int, typer.Option(min=1, max=64, help="worker processes")] = 1,
    key_dir: Annotated[Path, typer.Option(help="where the audit signing key lives")] = Path(".interlock/keys"),
) -> None:
    """Serve the HTTP API: agents propose, humans approve, Interlock executes and audits."""
    import uvicorn

    try:
        check_policy_for_serving(policy)
    except (ServerError, PolicyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        typer.echo("the server does not start on a policy that fails lint or its tests", err=True)
        raise typer.Exit(2) from exc
    if db.startswith("sqlite:///") and ":memory:" not in db:
        Path(db.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    settings = Settings(policy=policy, db=db, key_dir=key_dir, public_url=f"http://{host}:{port}")
    typer.echo(f"Interlock listening on http://{host}:{port} (policy {policy}, store {db.split('@')[-1]}, "
               f"{workers} worker{'s' if workers > 1 else ''}); API docs at /docs", err=True)
    options = {"host": host, "port": port, "log_level": "warning", "access_log": False, "timeout_keep_alive": 5,
               "limit_concurrency": 1000, "timeout_graceful_shutdown": 10}
    if workers == 1:
        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]
        return
    os.environ.update({"INTERLOCK_POLICY": str(policy), "INTERLOCK_DB": db, "INTERLOCK_KEY_DIR": str(key_dir)})
    uvicorn.run("interlock.server.app:create_app_from_env", factory=True, workers=workers, **options)  # type: ignore[arg-type]
