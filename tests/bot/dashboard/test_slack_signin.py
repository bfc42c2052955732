"""Signing in with Slack (OpenID Connect): workspace admins and owners, or configured admin
ids, moderate the bot's workspace; nobody else, and nobody from another workspace."""

from __future__ import annotations

import aiohttp

from bot.conversation import ConversationKey
from tests.bot.dashboard.conftest import (
    SLACK_ADMIN,
    SLACK_MEMBER,
    SLACK_STRANGER,
    SLACK_TEAM,
    T0,
    Dash,
    csrf_of,
    sign_in,
)
from tests.bot.storekit import ENDED


async def test_a_workspace_admin_signs_in_and_sees_the_queue(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    key = ConversationKey("slack", "C1:1.0")
    conversation = await dash.runtime.store.create(key, "UALICE", T0, community=SLACK_TEAM)
    page = await sign_in(http, dash, SLACK_ADMIN, provider="slack")
    assert f"/c/slack/{SLACK_TEAM}/queue" in page and "Slack Admin" in page
    async with http.get(f"{dash.url}/c/slack/{SLACK_TEAM}/conversations") as response:
        assert conversation.id in await response.text()
    # Discord's pages are not a Slack moderator's.
    async with http.get(f"{dash.url}/c/discord/{SLACK_TEAM}/conversations") as response:
        assert response.status == 404
    [info] = dash.slack.calls_to("users.info")
    assert info["user"] == SLACK_ADMIN


async def test_a_member_moderates_nothing_unless_configured(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    page = await sign_in(http, dash, SLACK_MEMBER, provider="slack")
    assert 'id="no-communities"' in page
    dash.dashboard.sign_ins["slack"]._admins.add(SLACK_MEMBER)  # type: ignore[attr-defined]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as again:
        page = await sign_in(again, dash, SLACK_MEMBER, provider="slack")
    assert f"/c/slack/{SLACK_TEAM}/queue" in page


async def test_someone_from_another_workspace_moderates_nothing(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    page = await sign_in(http, dash, SLACK_STRANGER, provider="slack")
    assert 'id="no-communities"' in page
    assert dash.slack.calls_to("users.info") == []
    async with http.get(f"{dash.url}/c/slack/TOTHER/queue") as response:
        assert response.status == 404


async def test_a_reopen_from_the_dashboard_reaches_the_slack_thread(
    dash: Dash, http: aiohttp.ClientSession
) -> None:
    key = ConversationKey("slack", "C1:1.0")
    created = await dash.runtime.store.create(key, "UALICE", T0, community=SLACK_TEAM)
    await dash.runtime.store.commit_turn(created.id, ENDED, T0)
    queue = await sign_in(http, dash, SLACK_ADMIN, f"/c/slack/{SLACK_TEAM}/queue", "slack")
    form = {"csrf": csrf_of(queue), "decision": "reopen", "note": "fine after all"}
    url = f"{dash.url}/c/slack/{SLACK_TEAM}/conversations/{created.id}/decide"
    async with http.post(url, data=form) as response:
        page = await response.text()
    assert 'id="decided"' in page and 'class="problem"' not in page
    [unmarked] = dash.slack.calls_to("reactions.remove")
    assert (unmarked["channel"], unmarked["timestamp"]) == ("C1", "1.0")
    [told] = dash.slack.calls_to("chat.postMessage")
    assert told["thread_ts"] == "1.0" and "reopen" in str(told).lower()
