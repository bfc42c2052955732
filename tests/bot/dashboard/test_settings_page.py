"""A community's settings from the dashboard: the commands' flows and validation."""

from __future__ import annotations

import aiohttp

from tests.bot.dashboard.conftest import GUILD_A, GUILD_B, HOSTILE, MOD_A, Dash, csrf_of, sign_in


async def post(http: aiohttp.ClientSession, url: str, form: dict[str, str]) -> tuple[int, str]:
    async with http.post(url, data=form) as response:
        return response.status, await response.text()


async def test_a_moderator_changes_and_resets_a_setting(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    url = f"{dash.url}/c/discord/{GUILD_A}/settings"
    page = await sign_in(http, dash, MOD_A, f"/c/discord/{GUILD_A}/settings")
    assert 'id="setting-redirects_before_end"' in page
    csrf = csrf_of(page)
    status, page = await post(
        http, url, {"csrf": csrf, "name": "redirects_before_end", "value": "5", "action": "set"}
    )
    assert status == 200 and "redirects_before_end: saved." in page
    own = await dash.runtime.engine.community_settings("discord", GUILD_A)
    assert own.redirects_before_end == 5
    status, page = await post(
        http, url, {"csrf": csrf, "name": "crisis_message", "value": HOSTILE, "action": "set"}
    )
    assert status == 200 and "<script>" not in page and "&lt;script&gt;" in page
    status, _ = await post(
        http, url, {"csrf": csrf, "name": "redirects_before_end", "value": "", "action": "reset"}
    )
    own = await dash.runtime.engine.community_settings("discord", GUILD_A)
    assert status == 200 and own.redirects_before_end is None and own.crisis_message == HOSTILE


async def test_a_community_can_never_end_before_it_warns(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    url = f"{dash.url}/c/discord/{GUILD_A}/settings"
    csrf = csrf_of(await sign_in(http, dash, MOD_A, f"/c/discord/{GUILD_A}/settings"))
    form = {"csrf": csrf, "name": "redirects_before_warning", "value": "9", "action": "set"}
    status, page = await post(http, url, form)
    assert status == 400 and "must be at least redirects_before_warning" in page
    for bad in ("0", "x", ""):
        status, page = await post(http, url, form | {"value": bad})
        assert status == 400 and "takes a whole number" in page
    assert (
        await dash.runtime.engine.community_settings("discord", GUILD_A)
    ).redirects_before_warning is None


async def test_another_communitys_settings_are_not_there(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    csrf = csrf_of(await sign_in(http, dash, MOD_A))
    url = f"{dash.url}/c/discord/{GUILD_B}/settings"
    async with http.get(url) as response:
        assert response.status == 404
    form = {"csrf": csrf, "name": "redirects_before_end", "value": "5", "action": "set"}
    assert (await post(http, url, form))[0] == 404
    mine = f"{dash.url}/c/discord/{GUILD_A}/settings"
    assert (await post(http, mine, form | {"csrf": ""}))[0] == 403


async def test_a_moderator_edits_the_community_s_texts_as_toml(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    url = f"{dash.url}/c/discord/{GUILD_A}/settings"
    csrf = csrf_of(await sign_in(http, dash, MOD_A, f"/c/discord/{GUILD_A}/settings"))
    form = {"csrf": csrf, "name": "texts", "action": "set"}
    words = 'warning = "Careful <b>now</b>."\n[discord]\nbutton_new = "Again"\n'
    status, page = await post(http, url, form | {"value": words})
    assert status == 200 and "texts: saved." in page
    assert "<b>now" not in page and "&lt;b&gt;now" in page  # shown back as text, escaped
    own = await dash.runtime.engine.community_settings("discord", GUILD_A)
    assert own.texts == {"warning": "Careful <b>now</b>.", "discord.button_new": "Again"}

    status, _ = await post(http, url, form | {"value": 'warning = "Careful, {name}."'})
    assert status == 400  # refused whole: nothing changed
    own = await dash.runtime.engine.community_settings("discord", GUILD_A)
    assert own.texts == {"warning": "Careful <b>now</b>.", "discord.button_new": "Again"}

    status, page = await post(http, url, form | {"value": 'discord.button_new = "Anew"'})
    own = await dash.runtime.engine.community_settings("discord", GUILD_A)
    assert status == 200 and own.texts == {"discord.button_new": "Anew"}  # warning left out
