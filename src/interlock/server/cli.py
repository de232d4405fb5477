"""`interlock serve`: start the HTTP gateway (mounted by interlock.cli)."""

from __future__ import annotations

import ipaddress
import os
import ssl
from pathlib import Path
from typing import Annotated, Any

import typer

from interlock import options
from interlock.audit import AuditError
from interlock.credentials import Missing
from interlock.options import DEFAULT_DB
from interlock.policy import PolicyError
from interlock.policy.lint import lint_file
from interlock.policy.load import UNSATISFIABLE
from interlock.server.app import ServerError, Settings, check_policy_for_serving, create_app, settle_heap
from interlock.server.state import (
    ENV_ALLOW_MISSING_SECRETS,
    ENV_PUBLIC_URL,
    ENV_TRUST_PROXY_FROM,
    ENV_TRUST_PROXY_HEADER,
    check_credentials,
)
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
    allow_missing_secrets: Annotated[bool, typer.Option(
        "--allow-missing-secrets",
        help="start even if credential references do not resolve (each is reported on stderr and in /readyz; "
             "actions on those targets are denied)")] = False,
    tls_cert: Annotated[Path | None, typer.Option(help="serve HTTPS with this certificate (PEM, chain first)")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="the certificate's private key (PEM)")] = None,
    public_url: Annotated[str | None, typer.Option(
        help="where approvers reach this server (links in webhooks and Slack to the console's review page); "
             f"default scheme://host:port or ${ENV_PUBLIC_URL}")] = None,
    trust_proxy_header: Annotated[str | None, typer.Option(
        envvar=ENV_TRUST_PROXY_HEADER,
        help="console: trust this header (e.g. X-Forwarded-User) from an authenticating proxy to name the "
             "human; needs --trust-proxy-from; off by default (docs/console.md says the risks)")] = None,
    trust_proxy_from: Annotated[list[str] | None, typer.Option(
        envvar=ENV_TRUST_PROXY_FROM,
        help="the proxy's address range (CIDR, repeatable; in the variable: separated by spaces): the header is "
             "ignored from anywhere else")] = None,
) -> None:
    """Serve the HTTP API: agents propose, humans approve, Interlock executes and audits.

    The policy is refused if it fails lint or its own tests; the server refuses to start when a
    credential reference of the policy does not resolve (unless --allow-missing-secrets)."""
    import uvicorn

    keys = options.key_dir_for(db, key_dir)
    try:
        loaded = check_policy_for_serving(policy)
    except (ServerError, PolicyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        typer.echo("the server does not start on a policy that fails lint or its tests", err=True)
        raise typer.Exit(2) from exc
    tls = _tls_options(tls_cert, tls_key)
    if db.startswith("sqlite:///") and ":memory:" not in db:
        Path(db.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    scheme = "https" if tls else "http"
    # Links in webhooks point where approvers reach the server: behind a proxy that is not host:port.
    public_url = public_url or os.environ.get(ENV_PUBLIC_URL) or f"{scheme}://{host}:{port}"
    ranges = _proxy_ranges(trust_proxy_header, trust_proxy_from or [])
    settings = Settings(policy=policy, db=db, key_dir=keys, public_url=public_url,
                        allow_missing_secrets=allow_missing_secrets, trust_proxy_header=trust_proxy_header,
                        trust_proxy_from=ranges)
    banner = (f"Interlock listening on {scheme}://{host}:{port} (policy {policy}, store {db.split('@')[-1]}, "
              f"{workers} worker{'s' if workers > 1 else ''}); API docs at /docs, approvers' console at "
              f"{public_url.rstrip('/')}/ui")
    # uvicorn's proxy headers are applied by the app (InterlockApp.trust_forwarded_headers), to every request
    # but the hot route's, which reads neither the client's address nor the scheme. With a trusted proxy
    # header, not at all: the proxy's range is checked against the connection's own peer address, which
    # must not be replaced with an X-Forwarded-For value any client can send.
    served = {"host": host, "port": port, "log_level": "warning", "access_log": False, "timeout_keep_alive": 5,
              "limit_concurrency": 1000, "timeout_graceful_shutdown": 10, "http": _http_protocol(),
              "proxy_headers": False, **tls}
    if workers == 1:
        try:
            app = create_app(settings)  # opens the store, then resolves every credential reference
        except StoreError as exc:  # a store it cannot open: say which and stop, no traceback
            typer.echo(f"error: {exc} (--db or {ENV_DB})", err=True)
            raise typer.Exit(2) from exc
        except ServerError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        except AuditError as exc:  # a key directory that is not this log's: say which key, where
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        if not trust_proxy_header:
            app.trust_forwarded_headers()
        _warn(app.state.server.missing_secrets, policy)
        typer.echo(banner, err=True)
        settle_heap()
        uvicorn.run(app, **served)
        return
    try:  # each worker checks again; say it once, here, before any starts
        _warn(check_credentials(loaded, allow_missing_secrets), policy)
    except ServerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(banner, err=True)
    os.environ.update({ENV_POLICY: str(policy), ENV_DB: db, ENV_KEY_DIR: str(keys),
                       ENV_ALLOW_MISSING_SECRETS: "1" if allow_missing_secrets else "0", ENV_PUBLIC_URL: public_url,
                       ENV_TRUST_PROXY_HEADER: trust_proxy_header or "", ENV_TRUST_PROXY_FROM: " ".join(ranges)})
    uvicorn.run("interlock.server.app:create_app_from_env", factory=True, workers=workers, **served)


def _http_protocol() -> Any:
    """uvicorn's httptools protocol writing each response in one piece (server/http.py); uvicorn's own
    choice where httptools is not installed."""
    try:
        from interlock.server.http import OneWriteHttp
    except ImportError:
        return "auto"
    return OneWriteHttp


def _warn(missing: list[Missing], policy: Path) -> None:
    for m in missing:
        effect = "its target's actions are denied" if m.where.startswith("targets.") else "deliveries will fail"
        typer.echo(f"warning: {m} ({effect} until it resolves)", err=True)
    for problem in unsatisfiable_warnings(policy):
        typer.echo(f"warning: {problem}", err=True)


def _proxy_ranges(header: str | None, ranges: list[str]) -> tuple[str, ...]:
    """The proxy's address ranges, checked now: trusting a header from anywhere would let any client
    name any human, so the header needs its ranges, and each must be a network."""
    if header is None:
        if ranges:
            typer.echo("error: --trust-proxy-from without --trust-proxy-header: which header to trust?", err=True)
            raise typer.Exit(2)
        return ()
    if not ranges:
        typer.echo("error: --trust-proxy-header needs --trust-proxy-from CIDR (the proxy's addresses): from "
                   "anywhere else the header is a claim anyone can make", err=True)
        raise typer.Exit(2)
    for net in ranges:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError as exc:
            typer.echo(f"error: --trust-proxy-from {net!r} is not an address range (e.g. 10.0.0.5/32)", err=True)
            raise typer.Exit(2) from exc
    return tuple(ranges)


def _tls_options(cert: Path | None, key: Path | None) -> dict[str, str]:
    """uvicorn's TLS settings, checked now: a certificate that does not load is an error at start, with
    the file named, never a server that fails each handshake."""
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        typer.echo("error: --tls-cert and --tls-key go together (the certificate and its private key)", err=True)
        raise typer.Exit(2)
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        typer.echo(f"error: cannot read {exc.filename}: no such file (--tls-cert/--tls-key)", err=True)
        raise typer.Exit(2) from exc
    except (ssl.SSLError, OSError) as exc:
        typer.echo(f"error: the certificate {cert} and key {key} do not load together: {exc} "
                   "(PEM files; the key must match the certificate and not need a passphrase)", err=True)
        raise typer.Exit(2) from exc
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


def unsatisfiable_warnings(policy: Path) -> list[str]:
    """Approvals that can never be gathered: `policy lint` fails on them, the server warns."""
    return [str(p) for p in lint_file(policy) if p.severity == UNSATISFIABLE]
