"""A fake of Sign in with Slack (OpenID Connect) on 127.0.0.1, for the dashboard.

    async with FakeSlackOIDC() as fake:
        fake.add_user("U1", "Ada", team="T0")
        fake.acting = "U1"  # who is signed in to Slack in the browser

Endpoints (https://docs.slack.dev/authentication/sign-in-with-slack): GET
/openid/connect/authorize, POST /api/openid.connect.token and, with the access token,
/api/openid.connect.userInfo. Workspace roles (`users.info`) are the bot API's: FakeSlack.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from quitbot.testing.loopback import Loopback

CLIENT_ID = "1111.2222"
CLIENT_SECRET = "slack-client-secret-0123456789abcdef"


@dataclass
class _Grant:
    user_id: str
    redirect_uri: str
    used: bool = False


class FakeSlackOIDC(Loopback):
    def __init__(self) -> None:
        self.redirect_uris: set[str] = set()
        self.users: dict[str, tuple[str, str]] = {}  # id -> (name, team id)
        self.acting: str | None = None
        self._grants: dict[str, _Grant] = {}
        self.tokens: dict[str, str] = {}  # access token -> user id

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/openid/connect/authorize", self._authorize)
        app.router.add_post("/api/openid.connect.token", self._token)
        app.router.add_post("/api/openid.connect.userInfo", self._user_info)

    def add_user(self, user_id: str, name: str, *, team: str) -> None:
        self.users[user_id] = (name, team)

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        # "scope: must be openid ... also request profile and/or email"; response_type=code;
        # the redirect_uri must be one of the app's Redirect URLs (the page above). Slack
        # shows an error page then, no redirect.
        scopes = set(q.get("scope", "").split())
        if q.get("client_id") != CLIENT_ID or q.get("redirect_uri") not in self.redirect_uris:
            return web.Response(status=400, text="redirect_uri did not match")
        if q.get("response_type") != "code" or "openid" not in scopes or "state" not in q:
            return web.Response(status=400, text="invalid request")
        if self.acting is None:
            return web.Response(status=401, text="Sign in to your workspace")
        code = secrets.token_urlsafe(16)
        self._grants[code] = _Grant(self.acting, q["redirect_uri"])
        raise web.HTTPFound(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        # The method's errors (docs.slack.dev/reference/methods/openid.connect.token):
        # invalid_client_id, bad_client_secret, invalid_code (also a code used before, a
        # guess from OAuth's one-time codes), bad_redirect_uri; HTTP 200 with ok false.
        if form.get("client_id") != CLIENT_ID:
            return _error("invalid_client_id")
        if form.get("client_secret") != CLIENT_SECRET:
            return _error("bad_client_secret")
        grant = self._grants.get(str(form.get("code", "")))
        if grant is None or grant.used:
            return _error("invalid_code")
        if form.get("redirect_uri") != grant.redirect_uri:
            return _error("bad_redirect_uri")
        grant.used = True
        token = "xoxp-" + secrets.token_urlsafe(16)
        self.tokens[token] = grant.user_id
        return web.json_response(
            {"ok": True, "access_token": token, "token_type": "Bearer", "id_token": "x.y.z"}
        )

    async def _user_info(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        user_id = self.tokens.get(token)
        if user_id is None:
            return _error("invalid_auth")
        name, team = self.users[user_id]
        # Claims as the method's page shows them (openid.connect.userInfo).
        return web.json_response(
            {
                "ok": True,
                "sub": user_id,
                "https://slack.com/user_id": user_id,
                "https://slack.com/team_id": team,
                "https://slack.com/team_name": f"Workspace {team}",
                "name": name,
            }
        )


def _error(error: str) -> web.Response:
    return web.json_response({"ok": False, "error": error})
