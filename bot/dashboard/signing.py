"""Signing in and out, and who may see a community's pages (`moderating`)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from bot.dashboard.app import SESSION_COOKIE, SIGN_IN_COOKIE, Dashboard, dashboard_of
from bot.dashboard.security import csrf_ok
from bot.dashboard.sessions import SESSION_LIFETIME, SIGN_IN_LIFETIME, Session
from bot.dashboard.signin import SignIn, SignInFailed

Page = Callable[[web.Request, Session, str, str], Awaitable[web.StreamResponse]]


def moderating(page: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Decided on every request: a signed-in moderator of the community in the address, or
    a plain 404 (a community one does not moderate is not there). Every POST carries the
    session's CSRF token."""

    @functools.wraps(page)
    async def guarded(request: web.Request) -> web.StreamResponse:
        session = signed_in(request)
        if session is None:
            if request.method != "GET":
                raise web.HTTPForbidden(reason="Please sign in again.")
            return redirect(f"/?next={quote(request.path_qs, safe='')}")
        platform, community = request.match_info["platform"], request.match_info["community"]
        if not session.moderator.moderates(platform, community):
            raise web.HTTPNotFound()
        if request.method == "POST":
            form = await request.post()
            if not csrf_ok(session.csrf, form.get("csrf")):
                raise web.HTTPForbidden(reason="This form has expired; reload the page.")
        return await page(request, session, platform, community)

    return guarded


def signed_in(request: web.Request) -> Session | None:
    return dashboard_of(request).sessions.find(request.cookies.get(SESSION_COOKIE))


def safe_next(path: str | None) -> str:
    """Only ever a path of the dashboard itself: no scheme, no host, no `//host`."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):  # no header splitting, no tabs
        return "/"
    return path


async def start(request: web.Request) -> web.StreamResponse:
    dashboard, provider = _provider(request)
    state, pending = dashboard.sessions.begin_sign_in(
        provider.name, safe_next(request.query.get("next"))
    )
    url = provider.authorize_url(state, pending.verifier, _callback(dashboard, provider.name))
    response = redirect(url)
    # The state is bound to this browser too: a callback carrying a state issued to someone
    # else's browser (a login CSRF) is refused.
    signed = dashboard.sessions.signer.sign(state)
    _cookie(dashboard, response, SIGN_IN_COOKIE, signed, SIGN_IN_LIFETIME.total_seconds())
    return response


async def callback(request: web.Request) -> web.StreamResponse:
    dashboard, provider = _provider(request)
    state = request.query.get("state", "")
    bound = dashboard.sessions.signer.unsign(request.cookies.get(SIGN_IN_COOKIE, ""))
    pending = dashboard.sessions.finish_sign_in(state) if state and bound == state else None
    code = request.query.get("code")
    if pending is None or pending.provider != provider.name or not code:
        raise web.HTTPBadRequest(reason="This sign-in has expired or was not started here.")
    try:
        redirect_uri = _callback(dashboard, provider.name)
        moderator = await provider.moderator(code, pending.verifier, redirect_uri)
    except SignInFailed as exc:
        raise web.HTTPBadGateway(reason=str(exc)) from None
    cookie, _ = dashboard.sessions.start(moderator)
    response = redirect(pending.next_path)
    response.del_cookie(SIGN_IN_COOKIE, path="/")
    _cookie(dashboard, response, SESSION_COOKIE, cookie, SESSION_LIFETIME.total_seconds())
    return response


async def sign_out(request: web.Request) -> web.StreamResponse:
    dashboard = dashboard_of(request)
    session = signed_in(request)
    form = await request.post()
    if session is None or not csrf_ok(session.csrf, form.get("csrf")):
        raise web.HTTPForbidden(reason="This form has expired; reload the page.")
    dashboard.sessions.end(request.cookies.get(SESSION_COOKIE))
    response = redirect("/")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def redirect(location: str) -> web.Response:
    """A 303, so that a redirect after a POST is followed with a GET."""
    return web.Response(status=303, headers={"Location": location})


def _provider(request: web.Request) -> tuple[Dashboard, SignIn]:
    """The sign-in named in the address, if this client has not tried too often."""
    dashboard = dashboard_of(request)
    provider = dashboard.sign_ins.get(request.match_info["provider"])
    if provider is None:
        raise web.HTTPNotFound()
    # By the connection's address: behind a reverse proxy that is the proxy's, so the
    # limit is then shared by everyone (a proxy header is not trusted without knowing it).
    if not dashboard.sign_in_limit.allow(request.remote or ""):
        raise web.HTTPTooManyRequests(reason="Too many sign-in attempts; wait a few minutes.")
    return dashboard, provider


def _callback(dashboard: Dashboard, provider: str) -> str:
    return f"{dashboard.base_url}/signin/{provider}/callback"


def _cookie(
    dashboard: Dashboard, response: web.StreamResponse, name: str, value: str, seconds: float
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(seconds),
        path="/",
        httponly=True,
        samesite="Lax",
        secure=dashboard.secure,
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/signin/{provider}", start)
    app.router.add_get("/signin/{provider}/callback", callback)
    app.router.add_post("/signout", sign_out)
