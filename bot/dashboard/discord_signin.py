"""Sign in with Discord: OAuth2's authorization code grant (with `state` and PKCE) against
Discord's documented endpoints, over plain HTTP.

Plain HTTP rather than a port the Discord adapter implements: discord.py is a bot's client
(a bot token, the gateway) and has no user-token OAuth calls, so an adapter port would only
wrap these same four requests; here they need no platform SDK in the dashboard process.

Who may moderate: as `/quitbot`, Manage Threads, Administrator or the configured moderator
role; also Manage Server and the server's owner, as issue 17 asks. Discord's `permissions`
on `/users/@me/guilds` are the server-wide ones (without channel overwrites), where
`/quitbot` sees the channel's.
"""

from __future__ import annotations

import base64
import logging
from typing import Any
from urllib.parse import quote_plus, urlencode

import aiohttp

from bot.dashboard.sessions import Moderator
from bot.dashboard.signin import OAuthClient, SignInFailed, pkce_challenge

log = logging.getLogger(__name__)

API = "/api/v10"
# https://discord.com/developers/docs/topics/permissions#permissions-bitwise-permission-flags
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
MANAGE_THREADS = 1 << 34
MODERATES = ADMINISTRATOR | MANAGE_GUILD | MANAGE_THREADS
# Get Current User Guilds returns at most 200 per page ("limit ... 1-200").
GUILDS_PAGE = 200
# The role check costs one request per server; a person in more servers than this without
# a moderating permission is checked in the first ones only (a bound, not Discord's rule).
ROLE_CHECKS = 25
TIMEOUT = aiohttp.ClientTimeout(total=15)


class DiscordSignIn:
    name = "discord"

    def __init__(self, client: OAuthClient, moderator_role_id: int | None) -> None:
        self._client_id, self._secret, self._base = client.id, client.secret, client.base
        self._role = str(moderator_role_id) if moderator_role_id else None

    @property
    def scopes(self) -> str:
        # guilds.members.read: the roles a person holds, for the moderator role.
        return "identify guilds" + (" guilds.members.read" if self._role else "")

    def authorize_url(self, state: str, verifier: str, redirect_uri: str) -> str:
        query = {
            "response_type": "code",
            "client_id": self._client_id,
            "scope": self.scopes,
            "state": state,
            "redirect_uri": redirect_uri,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
            "prompt": "none",
        }
        return f"{self._base}/oauth2/authorize?{urlencode(query)}"

    async def moderator(self, code: str, verifier: str, redirect_uri: str) -> Moderator:
        try:
            async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
                token = await self._token(http, code, verifier, redirect_uri)
                headers = {"Authorization": f"Bearer {token}"}
                me = await _get(http, f"{self._base}{API}/users/@me", headers)
                guilds = await self._guilds(http, headers)
                unchecked = [g for g in guilds if not _moderates(g)][:ROLE_CHECKS]
                by_role = [g for g in unchecked if await self._has_role(http, headers, g)]
                communities = {
                    str(g["id"]): str(g.get("name", g["id"]))
                    for g in [*filter(_moderates, guilds), *by_role]
                }
        except (aiohttp.ClientError, TimeoutError, KeyError, TypeError, ValueError) as exc:
            log.warning("Discord sign-in failed: %s", type(exc).__name__)
            raise SignInFailed("Discord could not be reached or answered unexpectedly.") from None
        name = str(me.get("global_name") or me.get("username") or me["id"])
        return Moderator("discord", str(me["id"]), name, communities)

    async def _token(
        self, http: aiohttp.ClientSession, code: str, verifier: str, redirect_uri: str
    ) -> str:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        url = f"{self._base}{API}/oauth2/token"
        async with http.post(url, data=form, headers=self._basic_auth()) as response:
            body = await response.json(content_type=None)
        if response.status != 200 or not isinstance(body, dict) or "access_token" not in body:
            error = body.get("error", response.status) if isinstance(body, dict) else "?"
            log.warning("Discord refused the sign-in code (%s)", error)
            raise SignInFailed("Discord did not accept the sign-in. Please try again.")
        return str(body["access_token"])

    def _basic_auth(self) -> dict[str, str]:
        # RFC 6749 section 2.3.1: each part form-encoded, then joined and Base64-encoded.
        pair = f"{quote_plus(self._client_id)}:{quote_plus(self._secret)}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}

    async def _guilds(
        self, http: aiohttp.ClientSession, headers: dict[str, str]
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            query = f"?limit={GUILDS_PAGE}" + (f"&after={found[-1]['id']}" if found else "")
            page = await _get(http, f"{self._base}{API}/users/@me/guilds{query}", headers)
            if not isinstance(page, list):
                raise ValueError("guilds is not a list")
            found += page
            if len(page) < GUILDS_PAGE:
                return found

    async def _has_role(
        self, http: aiohttp.ClientSession, headers: dict[str, str], guild: dict[str, Any]
    ) -> bool:
        if self._role is None:
            return False
        url = f"{self._base}{API}/users/@me/guilds/{guild['id']}/member"
        member = await _get(http, url, headers)
        return self._role in [str(r) for r in member.get("roles", [])]


def _moderates(guild: dict[str, Any]) -> bool:
    return bool(guild.get("owner")) or bool(int(guild.get("permissions", "0")) & MODERATES)


async def _get(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Any:
    async with http.get(url, headers=headers) as response:
        response.raise_for_status()
        return await response.json(content_type=None)
