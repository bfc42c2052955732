"""The dashboard in a real browser (chromium): a moderator's whole round, the refusals,
and hostile text that stays text."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, Page, expect

from tests.bot.dashboard.conftest import (
    GUILD_A,
    HOSTILE,
    MEMBER,
    MOD_A,
    MOD_B,
    SLACK_ADMIN,
    SLACK_TEAM,
    T0,
    Dash,
)
from tests.browser import chromium, chromium_path


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[BrowserContext]:
    async with chromium() as launched:
        context = await launched.new_context()
        yield context
        await context.close()


async def shoot(page: Page, name: str) -> None:
    """A screenshot of the page where QUITBOT_TEST_SCREENSHOTS names a folder (the README's
    pictures are made so)."""
    folder = os.environ.get("QUITBOT_TEST_SCREENSHOTS")
    if folder:
        await page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


async def signed_in(browser: BrowserContext, dash: Dash, user_id: str) -> tuple[Page, list[str]]:
    """A page signed in as `user_id` through the fake Discord; the dialogs it opened (a
    script that ran would open one)."""
    dash.oauth.acting = user_id
    page = await browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await page.goto(f"{dash.url}/")
    await page.click("#signin-discord")
    await expect(page.locator("h1")).to_have_text("Your communities")
    return page, dialogs


async def test_a_moderator_signs_in_reads_a_transcript_and_reopens(
    dash: Dash, browser: BrowserContext
) -> None:
    conversation_id = await dash.seed(GUILD_A, text=HOSTILE)
    dash.dashboard.clock = lambda: T0 + timedelta(days=1)  # the seeded day in the overview
    page, dialogs = await signed_in(browser, dash, MOD_A)
    await page.click(f"text=Server {GUILD_A}")
    await expect(page.locator("h1")).to_have_text("Review queue")
    await shoot(page, "queue")

    await page.click("text=Overview")
    conversations = page.locator("#chart-conversation")
    await expect(conversations).to_contain_text("Conversations: 1")
    await expect(conversations.locator("rect.bar")).to_have_count(1)
    await shoot(page, "overview")
    await page.click("text=Review queue")
    await expect(page.locator(".item .messages .text")).to_have_text(HOSTILE)

    await page.click(f"text={conversation_id}")
    await expect(page.locator("h1")).to_have_text(f"Conversation {conversation_id}")
    await expect(page.locator(".event.end")).to_contain_text("persistent_abuse")
    await expect(page.locator(".message.user .text")).to_have_text(HOSTILE)
    await shoot(page, "transcript")

    await page.click("text=Review queue")
    await page.fill("input[name=note]", HOSTILE)
    await page.click("button[value=reopen]")
    await expect(page.locator("#decided")).to_have_text("Reopened")
    await expect(page.locator(".problem")).to_have_count(0)

    conversation = await dash.runtime.engine.get(conversation_id)
    assert conversation is not None and not conversation.ladder.ended
    # Discord's REST API, with no gateway: the thread unlocked, the people there told.
    thread = conversation.key.place
    unlocked = await dash.discord.wait_call("PATCH", rf"/channels/{thread}")
    assert unlocked.body["archived"] is False and unlocked.body["locked"] is False
    told = await dash.discord.wait_call("POST", rf"/channels/{thread}/messages")
    assert "reopened" in str(told.body).lower()
    _, events = await dash.runtime.engine.record(conversation_id)
    review = [e for e in events if e.kind == "review"][-1]
    assert review.detail["moderator_id"] == MOD_A and review.detail["note"] == HOSTILE
    await page.goto(f"{dash.url}/c/discord/{GUILD_A}/conversations/{conversation_id}")
    await expect(page.locator("#state")).to_have_text("active")
    await expect(page.locator(".event.review .detail").last).to_have_text(f"note: {HOSTILE}")
    assert await page.locator("script").count() == 0
    assert dialogs == []


async def test_a_slack_workspace_admin_signs_in(dash: Dash, browser: BrowserContext) -> None:
    dash.slack_oidc.acting = SLACK_ADMIN
    page = await browser.new_page()
    await page.goto(f"{dash.url}/")
    await page.click("#signin-slack")
    await expect(page.locator("h1")).to_have_text("Your communities")
    await page.click(f"text=Workspace {SLACK_TEAM}")
    await expect(page.locator("h1")).to_have_text("Review queue")
    await expect(page.locator("#queue-empty")).to_be_visible()


async def test_a_member_without_the_permission_is_refused(
    dash: Dash, browser: BrowserContext
) -> None:
    await dash.seed(GUILD_A)
    page, _ = await signed_in(browser, dash, MEMBER)
    await expect(page.locator("#no-communities")).to_be_visible()
    response = await page.goto(f"{dash.url}/c/discord/{GUILD_A}/queue")
    assert response is not None and response.status == 404
    await expect(page.locator("h1")).to_have_text("Not found")


async def test_a_moderator_of_another_server_gets_404s(dash: Dash, browser: BrowserContext) -> None:
    theirs = await dash.seed(GUILD_A)
    page, _ = await signed_in(browser, dash, MOD_B)
    base = f"{dash.url}/c/discord/{GUILD_A}"
    for path in ("/queue", "/conversations", f"/conversations/{theirs}"):
        response = await page.goto(base + path)
        assert response is not None and response.status == 404, path
        await expect(page.locator("main")).not_to_contain_text(theirs)


async def test_a_post_without_the_csrf_token_is_refused(
    dash: Dash, browser: BrowserContext
) -> None:
    conversation_id = await dash.seed(GUILD_A)
    page, _ = await signed_in(browser, dash, MOD_A)
    decide = f"{dash.url}/c/discord/{GUILD_A}/conversations/{conversation_id}/decide"
    # The browser's own cookies go with it, as they would with a form on another site.
    response = await page.request.post(decide, form={"decision": "reopen", "note": "x"})
    assert response.status == 403
    conversation = await dash.runtime.engine.get(conversation_id)
    assert conversation is not None and conversation.ladder.ended


def test_a_missing_browser_fails_saying_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUITBOT_TEST_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        chromium_path()
