"""`interlock serve`: start the HTTP gateway (mounted by interlock.cli)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from interlock import options
from interlock.options import DEFAULT_DB
from interlock.policy import PolicyError
from interlock.server.app import ServerError, Settings, check_policy_for_serving, create_app
from interlock.store import StoreError
from interlock.vocabulary import DEFAULT_HOST, DEFAULT_PORT, ENV_DB, ENV_KEY_DIR, ENV_POLICY


@options.shared
def serve(
    policy: options.RequiredPolicy,
    db: options.Db = DEFAULT_DB,
    host: Annotated[str, typer.Option(help="address to listen on")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="port to listen on")] = DEFAULT_PORT,
    workers: Annotated[int, typer.Option(min=1, max=64, help="worker processes")] = 1,
    key_dir: options.KeyDir = None,
) -> None:
    """Serve the HTTP API: agents propose, humans approve, Interlock executes and audits.

    The policy is refused if it fails lint or its own tests."""
    import uvicorn

    keys = options.key_dir_for(db, key_dir)
    try:
        check_policy_for_serving(policy)
    except (ServerError, PolicyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        typer.echo("the server does not start on a policy that fails lint or its tests", err=True)
        raise typer.Exit(2) from exc
    if db.startswith("sqlite:///") and ":memory:" not in db:
        Path(db.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    settings = Settings(policy=policy, db=db, key_dir=keys, public_url=f"http://{host}:{port}")
    banner = (f"Interlock listening on http://{host}:{port} (policy {policy}, store {db.split('@')[-1]}, "
              f"{workers} worker{'s' if workers > 1 else ''}); API docs at /docs")
    served = {"host": host, "port": port, "log_level": "warning", "access_log": False, "timeout_keep_alive": 5,
              "limit_concurrency": 1000, "timeout_graceful_shutdown": 10}
    if workers == 1:
        try:
            app = create_app(settings)
        except StoreError as exc:  # a store it cannot open: say which and stop, no traceback
            typer.echo(f"error: {exc} (--db or {ENV_DB})", err=True)
            raise typer.Exit(2) from exc
        typer.echo(banner, err=True)
        uvicorn.run(app, **served)  # type: ignore[arg-type]
        return
    typer.echo(banner, err=True)
    os.environ.update({ENV_POLICY: str(policy), ENV_DB: db, ENV_KEY_DIR: str(keys)})
    uvicorn.run("interlock.server.app:create_app_from_env", factory=True, workers=workers, **served)  # type: ignore[arg-type]
