"""Sign in with Slack: OpenID Connect's code flow against Slack's documented endpoints,
over plain HTTP (https://docs.slack.dev/authentication/sign-in-with-slack).

Who may moderate: as `/quitbot` on Slack, a configured admin id, or a workspace admin or
owner by `users.info` with the bot's token; and only in the workspace the bot is in (its
`auth.test`), the one community a Slack deployment serves.

Slack's OpenID Connect takes no PKCE challenge in its documentation; `state` (bound to the
browser) and the code's exchange on the server with the client secret stand instead.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bot.dashboard.sessions import Moderator
from bot.dashboard.signin import OAuthClient, SignInFailed

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=15)
USER_ID = "https://slack.com/user_id"
TEAM_ID = "https://slack.com/team_id"
TEAM_NAME = "https://slack.com/team_name"


class SlackSignIn:
    name = "slack"

    def __init__(
        self, client: OAuthClient, *, api_url: str, bot_token: str | None, admin_ids: list[str]
    ) -> None:
        self._client_id, self._secret, self._base = client.id, client.secret, client.base
        self._api, self._bot, self._admins = api_url, bot_token, set(admin_ids)

    def authorize_url(self, state: str, verifier: str, redirect_uri: str) -> str:
        query = {
            "response_type": "code",
            "scope": "openid profile",
            "client_id": self._client_id,
            "state": state,
            # The id_token (where Slack puts the nonce) is not used: who signed in comes from
            # userInfo over the server's own TLS call, so the nonce is sent, never checked.
            "nonce": verifier[:32],
            "redirect_uri": redirect_uri,
        }
        return f"{self._base}/openid/connect/authorize?{urlencode(query)}"

    async def moderator(self, code: str, verifier: str, redirect_uri: str) -> Moderator:
        try:
            async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
                token = await self._token(http, code, redirect_uri)
                url = f"{self._base}/api/openid.connect.userInfo"
                me = await _call(http, url, {}, token)
                user_id, team = str(me[USER_ID]), str(me[TEAM_ID])
                moderates = await self._moderates(http, user_id, team)
        except (aiohttp.ClientError, TimeoutError, KeyError, TypeError, ValueError) as exc:
            log.warning("Slack sign-in failed: %s", type(exc).__name__)
            raise SignInFailed("Slack could not be reached or answered unexpectedly.") from None
        communities = {team: str(me.get(TEAM_NAME) or team)} if moderates else {}
        return Moderator("slack", user_id, str(me.get("name") or user_id), communities)

    async def _token(self, http: aiohttp.ClientSession, code: str, redirect_uri: str) -> str:
        form = {
            "client_id": self._client_id,
            "client_secret": self._secret,
            "code": code,
            "redirect_uri": redirect_uri,
            "grant_type": "authorization_code",
        }
        url = f"{self._base}/api/openid.connect.token"
        async with http.post(url, data=form) as response:
            body = await response.json(content_type=None)
        if not isinstance(body, dict) or not body.get("ok") or "access_token" not in body:
            error = body.get("error", "?") if isinstance(body, dict) else "?"
            log.warning("Slack refused the sign-in code (%s)", error)
            raise SignInFailed("Slack did not accept the sign-in. Please try again.")
        return str(body["access_token"])

    async def _moderates(self, http: aiohttp.ClientSession, user_id: str, team: str) -> bool:
        if self._bot is None:
            return user_id in self._admins
        bot = await _call(http, f"{self._api}auth.test", {}, self._bot)
        if str(bot.get("team_id")) != team:
            return False  # signed in to another workspace than the bot's
        if user_id in self._admins:
            return True
        user = (await _call(http, f"{self._api}users.info", {"user": user_id}, self._bot))["user"]
        return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))


async def _call(
    http: aiohttp.ClientSession, url: str, form: dict[str, str], token: str
) -> dict[str, Any]:
    """A Slack Web API method: HTTP 200 with `ok: false` is a refusal too."""
    headers = {"Authorization": f"Bearer {token}"}
    async with http.post(url, data=form, headers=headers) as response:
        response.raise_for_status()
        body = await response.json(content_type=None)
    if not isinstance(body, dict) or not body.get("ok"):
        error = body.get("error", "?") if isinstance(body, dict) else "?"
        raise ValueError(f"Slack answered {error}")
    return body
