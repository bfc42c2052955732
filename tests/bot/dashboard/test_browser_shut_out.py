"""A disputed shut-out on the dashboard's review queue, in chromium: whose shut-out it is,
their words and feedback, and the moderator's readmit."""

from __future__ import annotations

from datetime import timedelta

from playwright.async_api import BrowserContext, expect

from bot.conversation import Actor, AuditEvent, ConversationKey
from bot.ports import NewMessage
from tests.bot.dashboard.conftest import GUILD_A, HOSTILE, MOD_A, T0, Dash
from tests.bot.dashboard.test_browser import browser, signed_in
from tests.bot.storekit import ENDED

__all__ = ["browser"]


async def bob_disputes(dash: Dash) -> str:
    """Alice's conversation goes on; bob, shut out of it, called that a mistake."""
    thread = dash.discord.add_thread("a shared conversation")
    store = dash.runtime.store
    created = await store.create(
        ConversationKey("discord", thread["id"]), "alice", T0, community=GUILD_A
    )
    said = NewMessage("user", HOSTILE, [], T0, user_id="bob")
    detail = {"participant": "bob", "reason": "persistent_abuse", "explanation": "kept on"}
    shut = AuditEvent("participant_shut_out", T0, Actor.MODEL, detail)
    await store.commit_turn(
        created.id, created.ladder, T0, [said], [shut], participant=("bob", ENDED)
    )
    later = T0 + timedelta(minutes=1)
    feedback = AuditEvent("feedback", later, Actor.USER, {"user_id": "bob", "text": "a joke"})
    await store.add_feedback(created.id, "bob", "a joke", later, (feedback,))
    return created.id


async def test_a_disputed_shut_out_is_shown_and_readmitted(
    dash: Dash, browser: BrowserContext
) -> None:
    conversation_id = await bob_disputes(dash)
    page, dialogs = await signed_in(browser, dash, MOD_A)
    await page.click(f"text=Server {GUILD_A}")
    await expect(page.locator("h1")).to_have_text("Review queue")
    item = page.locator(".item")
    await expect(item.locator(".shut-out")).to_contain_text("Shut out: bob (persistent_abuse)")
    await expect(item.locator(".shut-out")).to_contain_text("the conversation is active")
    await expect(item.locator(".reason")).to_contain_text("kept on")
    await expect(item.locator(".messages .text")).to_have_text(HOSTILE)
    await expect(item.locator("ul .text")).to_have_text("a joke")
    await expect(item.locator("button[value=reopen]")).to_have_count(0)

    await page.fill("input[name=note]", "only joking")
    await page.click("button[value=readmit]")
    await expect(page.locator("#decided")).to_have_text("Readmitted")
    theirs = (await dash.runtime.engine.participants(conversation_id))["bob"]
    assert not theirs.ended
    _, events = await dash.runtime.engine.record(conversation_id)
    review = [e for e in events if e.kind == "review"][-1]
    assert review.detail["moderator_id"] == MOD_A and review.detail["participant"] == "bob"
    await page.click("text=Back to the queue")
    await expect(page.locator("#queue-empty")).to_be_visible()
    assert dialogs == []
