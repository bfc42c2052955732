"""Signing in with Discord: state, PKCE, cookies, the rate limit, failures as plain pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import aiohttp

from bot.dashboard.security import RateLimit
from bot.dashboard.signing import safe_next
from tests.bot.dashboard.conftest import GUILD_A, GUILD_B, MEMBER, MOD_A, MOD_B, Dash, sign_in


async def test_a_moderator_signs_in_and_sees_the_servers_they_moderate(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    page = await sign_in(http, dash, MOD_B)
    assert "Your communities" in page and "Mod B" in page
    assert f"/c/discord/{GUILD_B}/queue" in page
    assert f"/c/discord/{GUILD_A}/" not in page  # only Send Messages there
    # PKCE and the scopes went to Discord; no role configured, so no guilds.members.read.
    authorize = next(c for c in dash.oauth.calls if c[1] == "/oauth2/authorize")
    assert authorize == ("GET", "/oauth2/authorize")


async def test_a_member_without_the_permission_moderates_nothing(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    page = await sign_in(http, dash, MEMBER)
    assert 'id="no-communities"' in page
    async with http.get(f"{dash.url}/c/discord/{GUILD_A}/queue") as response:
        assert response.status == 404


async def test_the_moderator_role_counts_where_it_is_held(dash: Dash) -> None:
    dash.oauth.add_user("9004", "Role holder", {GUILD_A: 0}, roles={GUILD_A: ["777"]})
    provider = dash.dashboard.sign_ins["discord"]
    provider._role = "777"  # type: ignore[attr-defined]  # as QUITBOT_DISCORD_MODERATOR_ROLE_ID
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        page = await sign_in(http, dash, "9004")
    assert f"/c/discord/{GUILD_A}/queue" in page
    assert ("GET", f"/api/v10/users/@me/guilds/{GUILD_A}/member") in dash.oauth.calls


async def test_the_session_cookie_is_httponly_and_lax(dash: Dash) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        dash.oauth.acting = MOD_A
        async with http.get(f"{dash.url}/signin/discord", allow_redirects=False) as started:
            to_discord = started.headers["Location"]
            assert "code_challenge_method=S256" in to_discord and "state=" in to_discord
            assert "HttpOnly" in started.headers["Set-Cookie"]
        async with http.get(to_discord, allow_redirects=False) as back:
            callback = back.headers["Location"]
        async with http.get(callback, allow_redirects=False) as landed:
            cookies = landed.headers.getall("Set-Cookie")
    session = next(c for c in cookies if c.startswith("quitbot_session="))
    assert "HttpOnly" in session and "SameSite=Lax" in session and "Secure" not in session


async def test_a_state_from_another_browser_is_refused(dash: Dash) -> None:
    dash.oauth.acting = MOD_A
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as attacker:
        async with attacker.get(f"{dash.url}/signin/discord", allow_redirects=False) as started:
            to_discord = started.headers["Location"]
        async with attacker.get(to_discord, allow_redirects=False) as back:
            callback = back.headers["Location"]
    # The victim's browser follows the attacker's callback: no sign-in cookie, no session.
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as victim, victim.get(callback) as response:
        assert response.status == 400
        assert "expired or was not started here" in await response.text()
    assert not [c for c in jar if c.key == "quitbot_session"]


async def test_a_refused_code_is_a_plain_error_page(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{dash.url}/signin/discord", allow_redirects=False) as started:
        state = parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]
    callback = f"{dash.url}/signin/discord/callback"
    async with http.get(callback, params={"code": "forged", "state": state}) as response:
        page = await response.text()
    assert response.status == 502
    assert "Discord did not accept the sign-in" in page
    assert "Traceback" not in page and "invalid_grant" not in page


async def test_sign_in_attempts_are_rate_limited(dash: Dash, http: aiohttp.ClientSession) -> None:
    statuses = []
    for _ in range(dash.dashboard.sign_in_limit.attempts + 1):
        async with http.get(f"{dash.url}/signin/discord", allow_redirects=False) as response:
            statuses.append(response.status)
    assert statuses[:-1] == [303] * dash.dashboard.sign_in_limit.attempts
    assert statuses[-1] == 429


def test_after_sign_in_only_a_path_of_the_dashboard() -> None:
    assert safe_next("/c/discord/1/queue") == "/c/discord/1/queue"
    hostiles = ("https://evil.example", "//evil.example/x", "/\\evil.example", "/\t/evil", "")
    for hostile in (*hostiles, None):
        assert safe_next(hostile) == "/"


async def test_cookies_are_secure_where_the_dashboard_is_reached_over_https(dash: Dash) -> None:
    served_at = dash.url
    dash.dashboard.base_url = "https://mod.example.org"  # a TLS proxy in front
    dash.oauth.redirect_uris.add("https://mod.example.org/signin/discord/callback")
    dash.oauth.acting = MOD_A
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(f"{served_at}/signin/discord", allow_redirects=False) as started:
            assert "Secure" in started.headers["Set-Cookie"]
            bound = started.cookies["quitbot_sign_in"].value
        async with http.get(started.headers["Location"], allow_redirects=False) as back:
            query = urlsplit(back.headers["Location"]).query
        callback = f"{served_at}/signin/discord/callback?{query}"
        headers = {"Cookie": f"quitbot_sign_in={bound}"}
        async with http.get(callback, headers=headers, allow_redirects=False) as landed:
            session = next(
                c for c in landed.headers.getall("Set-Cookie") if c.startswith("quitbot_session=")
            )
    assert "Secure" in session and "HttpOnly" in session


def test_the_sign_in_limit_lets_an_address_try_again_after_the_window() -> None:
    now = [datetime(2026, 3, 1, tzinfo=UTC)]
    limit = RateLimit(attempts=2, window=timedelta(minutes=5), clock=lambda: now[0])
    assert [limit.allow("a"), limit.allow("a"), limit.allow("a")] == [True, True, False]
    assert limit.allow("b")
    now[0] += timedelta(minutes=5)
    assert limit.allow("a")
    assert set(limit._seen) == {"a"}  # b's attempts aged out, and b with them
