"""A fake of Discord's OAuth2 on 127.0.0.1, for the dashboard's "Sign in with Discord".

    async with FakeDiscordOAuth() as fake:
        fake.add_user("100", "mod", guilds={"g1": MANAGE_THREADS})
        fake.acting = "100"  # who is "signed in to Discord" in the browser
        settings.discord.oauth_base = fake.base_url

Endpoints (https://discord.com/developers/docs/topics/oauth2): GET /oauth2/authorize,
POST /api/v10/oauth2/token, and with the access token GET /api/v10/users/@me,
/api/v10/users/@me/guilds and /api/v10/users/@me/guilds/{guild}/member. Every call is in
`calls`; it refuses what Discord refuses, each rule's source beside it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlencode

from aiohttp import web

from quitbot.testing.loopback import Loopback

CLIENT_ID = "555000111222333444"
CLIENT_SECRET = "discord-client-secret-0123456789abcdef"
# https://discord.com/developers/docs/topics/permissions#permissions-bitwise-permission-flags
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
SEND_MESSAGES = 1 << 11
MANAGE_THREADS = 1 << 34


@dataclass
class _Grant:
    user_id: str
    scopes: set[str]
    redirect_uri: str
    challenge: str
    used: bool = False


@dataclass
class _User:
    id: str
    name: str
    guilds: dict[str, int]  # guild id -> that person's permissions there
    roles: dict[str, list[str]] = field(default_factory=dict)


class FakeDiscordOAuth(Loopback):
    def __init__(self, redirect_uris: tuple[str, ...] = ()) -> None:
        self.redirect_uris = set(redirect_uris)  # registered in the application's settings
        self.users: dict[str, _User] = {}
        self.guild_names: dict[str, str] = {}
        self.acting: str | None = None
        self.calls: list[tuple[str, str]] = []
        self._grants: dict[str, _Grant] = {}
        self._tokens: dict[str, _Grant] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/oauth2/authorize", self._authorize)
        app.router.add_post("/api/v10/oauth2/token", self._token)
        app.router.add_get("/api/v10/users/@me", self._me)
        app.router.add_get("/api/v10/users/@me/guilds", self._guilds)
        app.router.add_get("/api/v10/users/@me/guilds/{guild}/member", self._member)

    def add_user(
        self,
        user_id: str,
        name: str,
        guilds: dict[str, int],
        roles: dict[str, list[str]] | None = None,
    ) -> None:
        self.users[user_id] = _User(user_id, name, guilds, roles or {})
        for guild in guilds:
            self.guild_names.setdefault(guild, f"Server {guild}")

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(("GET", "/oauth2/authorize"))
        q = request.query
        # The redirect_uri must be one registered for the application ("redirect_uri ...
        # must match one of the redirect URIs in your application's OAuth2 settings", docs
        # topics/oauth2#authorization-code-grant); Discord shows an error page, no redirect.
        if q.get("client_id") != CLIENT_ID or q.get("redirect_uri") not in self.redirect_uris:
            return web.Response(status=400, text="Invalid OAuth2 redirect_uri")
        if q.get("response_type") != "code" or "state" not in q:
            return web.Response(status=400, text="Invalid response_type")
        # PKCE (RFC 7636 section 4.3); Discord documents only S256 (a guess: plain refused).
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return web.Response(status=400, text="Invalid code_challenge")
        if self.acting is None:  # nobody signed in to Discord in this browser
            return web.Response(status=401, text="Log in to Discord")
        code = secrets.token_urlsafe(16)
        scopes = set(q.get("scope", "").split())
        self._grants[code] = _Grant(self.acting, scopes, q["redirect_uri"], q["code_challenge"])
        # "state ... will be returned unchanged" (docs topics/oauth2#state-and-security). The
        # fake approves at once, as Discord does with prompt=none for an app approved before.
        back = urlencode({"code": code, "state": q["state"]})
        raise web.HTTPFound(f"{q['redirect_uri']}?{back}")

    async def _token(self, request: web.Request) -> web.Response:
        self.calls.append(("POST", "/api/v10/oauth2/token"))
        # "Content-Type: application/x-www-form-urlencoded" (docs, access token exchange).
        if request.content_type != "application/x-www-form-urlencoded":
            return _oauth_error(400, "invalid_request")
        form = await request.post()
        if not _client_ok(request, form):
            return _oauth_error(401, "invalid_client")
        grant = self._grants.get(str(form.get("code", "")))
        # A code works once, for the redirect_uri it was issued to (RFC 6749 section 4.1.3),
        # and with the verifier of its challenge (RFC 7636 section 4.6): else invalid_grant.
        if (
            form.get("grant_type") != "authorization_code"
            or grant is None
            or grant.used
            or form.get("redirect_uri") != grant.redirect_uri
            or _challenge(str(form.get("code_verifier", ""))) != grant.challenge
        ):
            return _oauth_error(400, "invalid_grant")
        grant.used = True
        token = secrets.token_urlsafe(24)
        self._tokens[token] = grant
        return web.json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": 604800,
                "refresh_token": secrets.token_urlsafe(24),
                "scope": " ".join(sorted(grant.scopes)),
            }
        )

    async def _me(self, request: web.Request) -> web.Response:
        grant = self._bearer(request, "identify")
        user = self.users[grant.user_id]
        return web.json_response({"id": user.id, "username": user.name, "global_name": user.name})

    async def _guilds(self, request: web.Request) -> web.Response:
        grant = self._bearer(request, "guilds")
        user = self.users[grant.user_id]
        # The partial guild: permissions as a string, without channel overwrites (docs,
        # resources/user#get-current-user-guilds).
        return web.json_response(
            [
                {"id": g, "name": self.guild_names[g], "owner": False, "permissions": str(p)}
                for g, p in sorted(user.guilds.items())
            ]
        )

    async def _member(self, request: web.Request) -> web.Response:
        grant = self._bearer(request, "guilds.members.read")
        user = self.users[grant.user_id]
        guild = request.match_info["guild"]
        if guild not in user.guilds:  # 10004 Unknown Guild (docs, opcodes-and-status-codes)
            return web.json_response({"message": "Unknown Guild", "code": 10004}, status=404)
        return web.json_response({"user": {"id": user.id}, "roles": user.roles.get(guild, [])})

    def _bearer(self, request: web.Request, scope: str) -> _Grant:
        self.calls.append(("GET", request.path))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        grant = self._tokens.get(token)
        if grant is None:
            raise web.HTTPUnauthorized(
                text='{"message": "401: Unauthorized", "code": 0}', content_type="application/json"
            )
        # A call whose scope was not granted: 403, 50001 Missing Access (a guess at the code;
        # the scopes each endpoint needs are in its docs).
        if scope not in grant.scopes:
            raise web.HTTPForbidden(
                text='{"message": "Missing Access", "code": 50001}', content_type="application/json"
            )
        return grant


def _client_ok(request: web.Request, form: Any) -> bool:
    """Client credentials by HTTP Basic or in the body (RFC 6749 section 2.3.1)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        pair = unquote_plus(base64.b64decode(header.removeprefix("Basic ")).decode())
        return pair == f"{CLIENT_ID}:{CLIENT_SECRET}"
    return bool(form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET)


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _oauth_error(status: int, error: str) -> web.Response:
    return web.json_response({"error": error}, status=status)
