"""Request dependencies: the app state and who is asking.

Module-level functions reading `request.app.state`, so a test can swap one with
`app.dependency_overrides[deps.principal] = ...`. Identity comes from the bearer token only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from interlock.identity import AuthError, Principal
from interlock.server.errors import ApiError
from interlock.server.state import Server
from interlock.store import StoreError


def get_server(request: Request) -> Server:
    """The app state built by `create_app`."""
    server: Server = request.app.state.server
    return server


def bearer(request: Request) -> str:
    """The secret of the `Authorization: Bearer …` header, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "unauthenticated", "send your Interlock token as `Authorization: Bearer ilk_…`")
    return secret.strip()


async def principal_of(server: Server, secret: str) -> Principal:
    """The principal of a bearer secret, from the cache or one store lookup (in a worker thread, shared by
    the requests with the same secret that ask meanwhile: state.TokenCache); 401 or 503 (deny) otherwise.
    A caller on the hot path tries `server.tokens.get(secret)` first: a hit then costs no coroutine."""
    try:
        return await server.tokens.principal(secret)
    except AuthError as exc:
        raise ApiError(401, f"token_{exc.reason}", str(exc)) from exc
    except StoreError as exc:
        raise ApiError(503, "store_unavailable", "cannot check the token: the store is unavailable") from exc


def bearer_secret(authorization: str) -> str | None:
    """The secret of an `Authorization: Bearer …` header value, or None."""
    scheme, _, secret = authorization.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None


def require_agent(who: Principal) -> Principal:
    if who.kind != "agent":
        raise ApiError(403, "human_token", "this endpoint is for agents: propose with the agent's own token")
    return who


def require_human(who: Principal) -> Principal:
    if who.kind != "human":
        raise ApiError(403, "agent_token", f"agent {who.name} is refused here: only humans review approvals")
    return who


async def principal(request: Request) -> Principal:
    """Any authenticated principal, agent or human."""
    server, secret = get_server(request), bearer(request)
    found = server.tokens.get(secret) or await principal_of(server, secret)
    request.state.principal = found
    return found


async def agent(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """An agent's token, or 403."""
    return require_agent(who)


async def human(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """A human's token, or 403."""
    return require_human(who)


ServerDep = Annotated[Server, Depends(get_server)]
AnyPrincipal = Annotated[Principal, Depends(principal)]
Agent = Annotated[Principal, Depends(agent)]
Human = Annotated[Principal, Depends(human)]
