"""`interlock serve`: the HTTP API of DESIGN.md §5 over the one Gateway, declared here from its parts.

Agents and humans hold different bearer tokens and reach different endpoints; the identity in
every decision and vote comes from the token, never from a request body. Every rejected request
(4xx) is audited. If the store or audit log fails, proposals are denied with 503 (fail closed).

Where things live: `state.py` (what one process serves with), `deps.py` (who is asking),
`errors.py` (the error shape), `middleware.py` (body limit, observation), `background.py`
(the lifespan's jobs), `routes/` (one APIRouter per area).
"""

from __future__ import annotations

import gc
import logging
import os

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from interlock.policy import Policy
from interlock.server import background, errors, hot, ui
from interlock.server.hot import HotRoute
from interlock.server.logs import configure_logging
from interlock.server.middleware import BodyLimit, Observe
from interlock.server.responses import JSON
from interlock.server.routes import actions, apidocs, approvals, audit, guards, ops, rollouts
from interlock.server.state import DEFAULT_MAX_BODY, Server, ServerError, Settings, check_policy_for_serving

__all__ = ["DEFAULT_MAX_BODY", "InterlockApp", "Server", "ServerError", "Settings", "check_policy_for_serving",
           "create_app", "create_app_from_env", "settle_heap"]


class InterlockApp(FastAPI):
    """FastAPI with the hot route in front: `POST /v1/actions` goes straight to `hot.HotRoute` (which does
    what FastAPI's and Interlock's middleware did for it, in one function: server/hot.py), every other
    request through FastAPI as before. /openapi.json still describes the route from its FastAPI
    declaration (routes/actions.py, docs/design-deviations.md)."""

    hot: HotRoute | None = None
    #: uvicorn's proxy-header rewriting (the client's address and scheme from X-Forwarded-For/-Proto, from
    #: trusted addresses) for every request but the hot route's, which reads neither: `interlock serve` turns
    #: uvicorn's own off and sets this instead (`trust_forwarded_headers`); None in tests and embedders.
    proxied: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == hot.PATH and scope["method"] == hot.METHOD \
                and self.hot is not None:
            scope["app"] = self  # as Starlette sets it: rejections find the server through it
            await self.hot(scope, receive, send)
        elif self.proxied is not None:
            await self.proxied(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    def trust_forwarded_headers(self, trusted: str | None = None) -> None:
        """What uvicorn's `proxy_headers=True` does (its default), for every request but the hot route's
        (~1.5 µs a request saved there); `trusted`: uvicorn's `forwarded_allow_ips`, by default as uvicorn
        reads it ($FORWARDED_ALLOW_IPS, else 127.0.0.1)."""
        trusted = trusted if trusted is not None else os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
        self.proxied = ProxyHeadersMiddleware(super().__call__, trusted_hosts=trusted)  # type: ignore[arg-type,assignment]


def create_app(settings: Settings, policy: Policy | None = None) -> InterlockApp:
    configure_logging()
    app = InterlockApp(title="Interlock", version="0.1.0", default_response_class=JSON,
                       description="A safety gateway between AI agents and production systems.",
                       exception_handlers=errors.HANDLERS, lifespan=background.lifespan,
                       docs_url=None, redoc_url=None,  # their pages need a CDN: routes/apidocs.py works offline
                       # Interlock exports Prometheus metrics and JSON logs, not OpenTelemetry; FastAPI's native
                       # telemetry asked the global OTel providers on every request (~25 µs) to find none.
                       telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.server = Server(settings, policy)
    for area in (actions, approvals, audit, guards, rollouts):
        app.include_router(area.router, responses=errors.DOCUMENTED)
    for area in (ops, apidocs):  # no token, no body: their answers are their own
        app.include_router(area.router)
    app.include_router(ui.router)  # the approvers' console under /ui (docs/console.md)
    app.add_middleware(ui.ConsoleHeaders)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Observe, server=app.state.server)  # outermost: sees every answer, the body limit's too
    # The hot path skips FastAPI's layers; its FastAPI route stays for /openapi.json (design-deviations.md).
    app.hot = HotRoute(app.state.server, settings.max_body_bytes)
    return app


def create_app_from_env() -> InterlockApp:
    """For `uvicorn --factory` with several workers: settings come from INTERLOCK_* variables. A serving
    process's entry point, so its heap is settled (`settle_heap`) once the app is built. uvicorn's proxy
    headers are off (server/cli.py): the app applies them, unless the console trusts a proxy's header."""
    settings = Settings.from_env()
    app = create_app(settings)
    if settings.trust_proxy_header is None:
        app.trust_forwarded_headers()
    settle_heap()
    return app


#: Allocations (net of frees) between collections of the youngest generation in a serving process; Python's
#: default is 700. A small, measured gain (settle_heap), not a large one: in process, a proposal through the
#: app triggers ~0.02 young collections at 700; live (uvicorn, the sockets, the writer) the fixed mix gained
#: 4-8% of CPU per request in two interleaved runs, one with the order swapped; the varied mix no change.
GC_YOUNG_THRESHOLD = 20_000


def settle_heap() -> None:
    """Move everything a serving process built before its first request (modules, the app, the policy, the
    classifiers: ~265,000 tracked objects) out of the cyclic garbage collector's sight (`gc.freeze`).
    Every full collection walked all of them: ~130 ms of CPU each, a pause of the whole event loop, and
    with the younger generations ~125 µs of CPU per proposal in the live server; ~38 µs after
    (docs/benchmarks.md). They live as long as the process anyway; reference counting still frees them.
    And the youngest generation is collected every GC_YOUNG_THRESHOLD allocations, not 700: live server,
    fixed mix, interleaved with the default (2026-11-26 05:31 and 05:34 UTC, load 1.2-1.4, the second run
    in the other order): 286/301 and 289/311 µs of CPU per proposal against 311/315 and 301/330.
    Called by `interlock serve`'s entry points only, never by `create_app` (a test process builds many
    apps and must be able to collect them)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD)


logging.getLogger("uvicorn.access").disabled = True
