"""The approvers' console under /ui: sign-in, the queue (live), the review page, approve / deny,
an action's timeline and an agent's recent actions. Same process, store and gate as the API.

Every state-changing form carries a CSRF token checked here; the session cookie is HttpOnly and
SameSite=Strict; votes go through `Gate.approve` / `Gate.deny`, the same audited votes as the API's.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from interlock.audit import AuditError
from interlock.audit.cli import summary
from interlock.audit.events import AuditEvent
from interlock.gate.service import GateError
from interlock.guard.freezes import FreezeError
from interlock.identity import AuthError, Principal, authenticate
from interlock.server.state import Server
from interlock.server.ui import pages, render
from interlock.server.ui.sessions import (
    COOKIE,
    PROXY_TOKEN_ID,
    TLS_COOKIE,
    Session,
    close_session,
    csrf_ok,
    find_session,
    open_session,
    token_expiry,
)
from interlock.store import StoreError
from interlock.store.events import Channel, subscriber

router = APIRouter(tags=["console"], include_in_schema=False)

_HERE = Path(__file__).parent
_TEMPLATES = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(default=True),
                         trim_blocks=True, lstrip_blocks=True)
_TEMPLATES.filters["tojson_text"] = lambda value: json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
_STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
#: Double-submit cookie of the sign-in form (there is no session yet to bind a CSRF token to).
SIGNIN_COOKIE = "interlock_signin"
#: How long one server-sent-events response waits for a change before sending a keep-alive comment.
SSE_KEEPALIVE_SECONDS = 15.0


def _server(request: Request) -> Server:
    server: Server = request.app.state.server
    return server


def _tls(request: Request) -> bool:
    return request.url.scheme == "https"


def _cookie_name(request: Request) -> str:
    return TLS_COOKIE if _tls(request) else COOKIE


def page(request: Request, template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    html = _TEMPLATES.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=http_status)


# --- sessions ------------------------------------------------------------------------------------


async def session_of(request: Request) -> Session | None:
    """The request's live session: its cookie, or (with --trust-proxy-header, from the proxy's range) a
    session opened for the human the proxy names."""
    server = _server(request)
    secret = request.cookies.get(_cookie_name(request), "")
    now = server.gate.clock()
    try:
        found = (await anyio.to_thread.run_sync(find_session, server.store, secret, now, server.audit)
                 if secret else None)
    except StoreError:
        return None  # fail closed: no session, so no vote
    proxied = _proxy_human(request)
    if found is not None:
        if found.via == "proxy" and proxied != found.principal.name:
            return None  # a proxy session lives only while the proxy still names the same human
        request.state.principal = found.principal
        return found
    if proxied is None:
        return None
    principal = Principal(kind="human", name=proxied, token_id=PROXY_TOKEN_ID)
    opened = await anyio.to_thread.run_sync(
        lambda: open_session(server.store, principal, now, server.audit, via="proxy"))
    request.state.new_session = opened
    request.state.principal = principal
    return opened


def _proxy_human(request: Request) -> str | None:
    """The human an authenticating proxy names, only when trusted (off by default) and only from its
    address range; a name that is not a human of the policy is ignored."""
    settings = _server(request).settings
    header = getattr(settings, "trust_proxy_header", None)
    if not header or request.client is None:
        return None
    try:
        peer = ipaddress.ip_address(request.client.host)
    except ValueError:
        return None
    if not any(peer in ipaddress.ip_network(net, strict=False) for net in settings.trust_proxy_from):
        return None
    name = request.headers.get(header, "").strip()
    return name if name in _server(request).policy.doc.humans else None


def _set_cookie(request: Request, response: Response, session: Session) -> None:
    seconds = max(1, int((session.expires_at - _server(request).gate.clock()).total_seconds()))
    response.set_cookie(_cookie_name(request), session.secret, max_age=seconds, path="/", httponly=True,
                        samesite="strict", secure=_tls(request))


def _finish(request: Request, response: Response) -> Response:
    opened: Session | None = getattr(request.state, "new_session", None)
    if opened is not None:
        _set_cookie(request, response, opened)
    return response


def _to_signin(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/signin?next={quote(target, safe='')}", status_code=303)


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body())[:16384].decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


async def _audit(request: Request, event: str, data: dict[str, Any]) -> None:
    await anyio.to_thread.run_sync(_server(request).audit.append, event, data)


async def _refuse(request: Request, status: int, code: str, message: str, session: Session | None) -> Response:
    """A refused console request: audited like the API's refusals, shown as a page saying what to do."""
    await _server(request).audit_rejection(request.method, request.url.path, status, code,
                                           session.principal if session else None)
    return page(request, "error.html", status, code=code, message=message, session=session)


# --- sign-in -------------------------------------------------------------------------------------


def _safe_next(target: str) -> str:
    """Only paths of the console: never another site (an open redirect after sign-in)."""
    return target if target.startswith("/ui") and not target.startswith("//") and "\\" not in target else "/ui"


@router.get("/ui/signin")
async def signin_form(request: Request) -> Response:
    session = await session_of(request)
    if session is not None:
        return _finish(request, RedirectResponse(_safe_next(request.query_params.get("next", "/ui")), 303))
    return _signin_page(request, "", 200)


def _signin_page(request: Request, error: str, status: int) -> Response:
    import secrets

    nonce = secrets.token_urlsafe(24)
    response = page(request, "signin.html", status, nonce=nonce, error=error, session=None,
                    next=_safe_next(request.query_params.get("next", "/ui")),
                    proxy=bool(getattr(_server(request).settings, "trust_proxy_header", None)))
    response.set_cookie(SIGNIN_COOKIE, nonce, max_age=900, path="/ui/signin", httponly=True, samesite="strict",
                        secure=_tls(request))
    return response


@router.post("/ui/signin")
async def signin(request: Request) -> Response:
    server = _server(request)
    form = await _form(request)
    nonce = request.cookies.get(SIGNIN_COOKIE, "")
    if not nonce or form.get("csrf") != nonce:
        await server.audit_rejection("POST", "/ui/signin", 403, "csrf", None)
        return _signin_page(request, "the sign-in form expired or did not come from this page: try again", 403)
    token = form.get("token", "").strip()
    try:
        principal = await anyio.to_thread.run_sync(
            lambda: authenticate(server.store, token, log=server.audit, audit=server.audit, clock=server.gate.clock))
    except AuthError as exc:
        return _signin_page(request, str(exc), 401)
    except StoreError:
        return _signin_page(request, "the store is unavailable: nobody can sign in until it is back", 503)
    if principal.kind != "human":
        await _audit(request, AuditEvent.CONSOLE_REFUSED, {"token_id": principal.token_id, "agent": principal.name,
                                                           "code": "agent_token"})
        return _signin_page(request, f"agent {principal.name} cannot sign in: the console is for humans, "
                                     "who sign in with their own token (ilk_h_…)", 403)
    now = server.gate.clock()
    expires = await anyio.to_thread.run_sync(token_expiry, server.store, principal.token_id)
    session = await anyio.to_thread.run_sync(
        lambda: open_session(server.store, principal, now, server.audit, token_expires_at=expires))
    response = RedirectResponse(_safe_next(form.get("next", "/ui")), status_code=303)
    _set_cookie(request, response, session)
    response.delete_cookie(SIGNIN_COOKIE, path="/ui/signin")
    return response


@router.post("/ui/signout")
async def signout(request: Request) -> Response:
    session = await session_of(request)
    form = await _form(request)
    if session is None:
        return RedirectResponse("/ui/signin", status_code=303)
    if not csrf_ok(session, form.get("csrf")):
        return await _refuse(request, 403, "csrf", "this form did not come from your console page: reload it", session)
    server = _server(request)
    await anyio.to_thread.run_sync(close_session, server.store, session, server.gate.clock(), server.audit)
    response = RedirectResponse("/ui/signin", status_code=303)
    response.delete_cookie(_cookie_name(request), path="/")
    return response


# --- the queue -----------------------------------------------------------------------------------


@router.get("/ui")
async def queue_page(request: Request) -> Response:
    session = await session_of(request)
    if session is None:
        return _to_signin(request)
    server = _server(request)
    found = await anyio.to_thread.run_sync(pages.queue, server.gate, session.principal.name)
    unknown = await anyio.to_thread.run_sync(pages.unknown_outcomes, server.audit)
    return _finish(request, page(request, "queue.html", queue=found, rows_html=render.queue_rows(found.rows),
                                 session=session, unknown=unknown))


@router.get("/ui/queue/rows")
async def queue_rows(request: Request) -> Response:
    """The queue's rows alone: what the page fetches when the events stream says something changed."""
    session = await session_of(request)
    if session is None:
        return Response(status_code=401)
    found = await anyio.to_thread.run_sync(pages.queue, _server(request).gate, session.principal.name)
    response = page(request, "_rows.html", rows_html=render.queue_rows(found.rows))
    response.headers["X-Interlock-Pending"] = str(found.total)
    return _finish(request, response)


#: The store channels a console page may follow (`/ui/events?on=…`), each sent as an event of its name.
EVENT_CHANNELS = {"approvals": Channel.approvals, "rollouts": Channel.rollouts}


@router.get("/ui/events")
async def events(request: Request, on: str = "approvals") -> Response:
    """Server-sent events, one named after the channel each time it changes: `approvals` (the default: a
    request opens, gets a vote, or ends) or, with `?on=rollouts`, `rollouts` (a rollout starts, records a
    target's step, a measurement or a transition, or is commanded: its progress page follows it).

    Fed by the store's events: every replica's pages hear of a change made by any replica, and an open
    page costs no database read until something changed."""
    session = await session_of(request)
    if session is None:
        return Response(status_code=401)
    channel = EVENT_CHANNELS.get(on)
    if channel is None:
        return Response(f"no such event channel: {on[:40]!r} (one of {', '.join(EVENT_CHANNELS)})",
                        status_code=400, media_type="text/plain")
    sub = subscriber(_server(request).store)
    name = channel.value.encode()

    async def stream() -> AsyncIterator[bytes]:
        seen = sub.generation(channel)
        yield b"retry: 2000\n: connected\n\n"
        while not await request.is_disconnected():
            now = await sub.wait_async(channel, seen, SSE_KEEPALIVE_SECONDS)
            if now > seen:
                seen = now
                yield b"event: " + name + f"\ndata: {now}\n\n".encode()
            else:
                yield b": keep-alive\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# --- one request ---------------------------------------------------------------------------------


async def _status(request: Request, request_id: str, session: Session) -> Any:
    try:
        return await anyio.to_thread.run_sync(_server(request).gate.status, request_id)
    except GateError as exc:
        return await _refuse(request, 404, exc.code, str(exc), session)
    except StoreError:
        return await _refuse(request, 503, "unavailable", "the store is unavailable: try again shortly", session)


@router.get("/ui/approvals/{request_id}")
async def review_page(request: Request, request_id: str) -> Response:
    session = await session_of(request)
    if session is None:
        return _to_signin(request)
    status = await _status(request, request_id, session)
    if isinstance(status, Response):
        return status
    context = pages.review(_server(request).gate, status, session.principal.name)
    notice = request.query_params.get("done", "")
    return _finish(request, page(request, "review.html", session=session, notice=notice, error="", **context))


@router.get("/ui/approvals/{request_id}/version")
async def review_version(request: Request, request_id: str) -> Response:
    """What an open review page compares when the events stream says something changed: its state and
    votes. A different answer shows the page's "this request changed" notice."""
    session = await session_of(request)
    if session is None:
        return Response(status_code=401)
    status = await _status(request, request_id, session)
    if isinstance(status, Response):
        return status
    return Response(pages.version(status), media_type="text/plain")


@router.post("/ui/approvals/{request_id}/{verdict}")
async def vote(request: Request, request_id: str, verdict: str) -> Response:
    session = await session_of(request)
    form = await _form(request)
    if session is None:
        return await _refuse(request, 401, "unauthenticated", "sign in first: your session ended", None)
    if not csrf_ok(session, form.get("csrf")):
        return await _refuse(request, 403, "csrf", "this form did not come from your console page: reload the "
                             "request and vote again", session)
    if verdict not in ("approve", "deny"):
        return await _refuse(request, 404, "not_found", "a vote is approve or deny", session)
    server = _server(request)
    text = form.get("reason", "")[:2000]
    fn = server.gate.approve if verdict == "approve" else server.gate.deny
    try:
        await anyio.to_thread.run_sync(fn, request_id, session.principal, text)
    except GateError as exc:
        status = await _status(request, request_id, session)
        if isinstance(status, Response):
            return status
        context = pages.review(server.gate, status, session.principal.name)
        await server.audit_rejection("POST", request.url.path, 403, exc.code, session.principal)
        return page(request, "review.html", 403 if exc.code in ("not_eligible", "already_voted") else 409,
                    session=session, notice="", error=str(exc), **context)
    except StoreError:
        return await _refuse(request, 503, "unavailable", "the store is unavailable: your vote was not recorded",
                             session)
    server.changed.set()  # wakes this process's long polls at once, as the API's votes do
    server.rollouts_changed.set()  # and its rollout runner (a rollout starts or ends on its request's outcome)
    return RedirectResponse(f"/ui/approvals/{quote(request_id)}?done={verdict}", status_code=303)


# --- rollouts ------------------------------------------------------------------------------------


@router.get("/ui/rollouts/{rollout_id}")
async def rollout_page(request: Request, rollout_id: str) -> Response:
    """A rollout's progress: phase, steps, every target's state and the last analysis (while it runs the
    page follows it: console.js reloads it on the `rollouts` events); its approval links to the review page."""
    session = await session_of(request)
    if session is None:
        return _to_signin(request)
    from interlock.rollout.service import TERMINAL, CommandError

    server = _server(request)
    try:
        rollout = await anyio.to_thread.run_sync(server.rollouts.get, rollout_id)
    except CommandError as exc:
        return await _refuse(request, 404, exc.code, str(exc), session)
    except StoreError:
        return await _refuse(request, 503, "unavailable", "the store is unavailable: try again shortly", session)
    return _finish(request, page(request, "rollout.html", session=session, r=rollout.to_json(),
                                 live=rollout.phase not in TERMINAL))


# --- actions and agents --------------------------------------------------------------------------


@router.get("/ui/actions/{action_id}")
async def action_page(request: Request, action_id: str) -> Response:
    """An action's timeline from the audit log, each entry checked (leaf hash and MAC) before it is shown."""
    session = await session_of(request)
    if session is None:
        return _to_signin(request)
    server = _server(request)
    problem = ""
    try:
        entries = await anyio.to_thread.run_sync(server.audit.action_entries, action_id)
    except AuditError as exc:
        entries, problem = [], str(exc)
    checkpoint = await anyio.to_thread.run_sync(server.audit.latest_checkpoint)
    if not entries and not problem:
        return await _refuse(request, 404, "unknown_action", f"no audit entries for action {action_id!r}", session)
    found = await anyio.to_thread.run_sync(lambda: server.audit.search(action_id=action_id, limit=10_000))
    times = {row["index"]: row["time"] for row in found}
    steps = [{"index": i, "event": e, "data": d, "time": times.get(i, ""), "line": summary(e, d)}
             for i, e, d in entries]
    agent = next((str(d.get("agent")) for _, _, d in entries if d.get("agent")), "")
    return _finish(request, page(request, "action.html", session=session, action_id=action_id, steps=steps,
                                 problem=problem, checkpoint=checkpoint, agent=agent))


@router.get("/ui/agents/{agent}")
async def agent_page(request: Request, agent: str) -> Response:
    """An agent's recent actions (their proposals, newest first) with how each ended."""
    session = await session_of(request)
    if session is None:
        return _to_signin(request)
    server = _server(request)
    if agent not in server.policy.doc.agents:
        return await _refuse(request, 404, "unknown_agent", f"no agent {agent!r} in the policy", session)
    rows = await anyio.to_thread.run_sync(
        lambda: server.audit.search(agent=agent, event=AuditEvent.ACTION_PROPOSED.value, limit=50))
    ends = await anyio.to_thread.run_sync(
        lambda: server.audit.search(agent=agent, event=AuditEvent.EXECUTION_FINISHED.value, limit=200))
    unknown = await anyio.to_thread.run_sync(
        lambda: server.audit.search(agent=agent, event=AuditEvent.EXECUTION_OUTCOME_UNKNOWN.value, limit=200))
    # A late execution.finished wins over outcome_unknown (interlock.recovery): it comes second.
    outcome = {str(r["data"].get("action_id")): {**r["data"], "status": "outcome_unknown"} for r in unknown}
    outcome |= {str(r["data"].get("action_id")): r["data"] for r in ends}
    return _finish(request, page(request, "agent.html", session=session, agent=agent, rows=list(reversed(rows)),
                                 outcome=outcome, owner=server.policy.doc.agents[agent].owner))


# --- guards: the kill switch ---------------------------------------------------------------------


@router.get("/ui/guards")
async def guards_page(request: Request) -> Response:
    """Freezes (with the freeze button and thaw), change-freeze windows, open breakers, detectors."""
    session = await session_of(request)
    if session is None:
        return _to_signin(request)
    return _finish(request, await _guards(request, session, "", 200))


async def _guards(request: Request, session: Session, error: str, code: int) -> Response:
    server = _server(request)
    try:
        state = await anyio.to_thread.run_sync(server.runtime.guard.status)
    except StoreError:
        return await _refuse(request, 503, "unavailable", "the store is unavailable: guards cannot be read", session)
    human = server.policy.doc.humans.get(session.principal.name)
    groups = set(human.groups) if human else set()
    thaw_by = set(state["thaw_by"])
    doc = server.policy.doc
    return page(request, "guards.html", code, session=session, state=state, error=error,
                notice=request.query_params.get("done", ""),
                may_thaw=not thaw_by or bool(groups & thaw_by), agents=sorted(doc.agents),
                environments=sorted(doc.environments), targets=sorted(doc.targets))


@router.post("/ui/guards/freeze")
async def freeze(request: Request) -> Response:
    session = await session_of(request)
    form = await _form(request)
    if session is None:
        return await _refuse(request, 401, "unauthenticated", "sign in first: your session ended", None)
    if not csrf_ok(session, form.get("csrf")):
        return await _refuse(request, 403, "csrf", "this form did not come from your console page: reload it", session)
    server = _server(request)
    try:
        await anyio.to_thread.run_sync(lambda: server.runtime.guard.freeze(
            agent=form.get("agent") or None, environment=form.get("environment") or None,
            target=form.get("target") or None, reason=form.get("reason", "")[:500], by=session.principal.name))
    except FreezeError as exc:
        await server.audit_rejection("POST", request.url.path, exc.status, exc.code, session.principal)
        return await _guards(request, session, str(exc), exc.status)
    except StoreError:
        return await _refuse(request, 503, "unavailable", "the store is unavailable: nothing was frozen", session)
    return RedirectResponse("/ui/guards?done=frozen", status_code=303)


@router.post("/ui/guards/thaw/{freeze_id}")
async def thaw(request: Request, freeze_id: str) -> Response:
    session = await session_of(request)
    form = await _form(request)
    if session is None:
        return await _refuse(request, 401, "unauthenticated", "sign in first: your session ended", None)
    if not csrf_ok(session, form.get("csrf")):
        return await _refuse(request, 403, "csrf", "this form did not come from your console page: reload it", session)
    server = _server(request)
    human = server.policy.doc.humans.get(session.principal.name)
    try:
        await anyio.to_thread.run_sync(lambda: server.runtime.guard.thaw(
            freeze_id, by=session.principal.name, groups=tuple(human.groups) if human else ()))
    except FreezeError as exc:
        await server.audit_rejection("POST", request.url.path, exc.status, exc.code, session.principal)
        return await _guards(request, session, str(exc), exc.status)
    except StoreError:
        return await _refuse(request, 503, "unavailable", "the store is unavailable: nothing was thawed", session)
    return RedirectResponse("/ui/guards?done=thawed", status_code=303)


# --- assets --------------------------------------------------------------------------------------


@router.get("/ui/static/{name}")
async def static(name: str) -> Response:
    if name not in _STATIC:
        return Response("not found", status_code=404, media_type="text/plain")
    body = (_HERE / "static" / name).read_bytes()
    if name == "console.css":
        body += render.pygments_css().encode()
    return Response(body, media_type=_STATIC[name], headers={"Cache-Control": "public, max-age=3600"})

