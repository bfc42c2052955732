"""How a conversation ends on Discord, end to end against the stricter fake: the model's
proposal confirmed only by the starter, and every control after an end usable."""

from __future__ import annotations

from bot.flows import REFUSAL_TEXT, Refusal
from bot.notices import CUT_SHORT_TEXT, END_LAPSED_TEXT
from platforms.discord import translate
from platforms.discord.app import QuitBot
from tests.fakes.anthropic import FakeAnthropic, text, tool
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.helpers import (
    ENDED_TITLE,
    after_end,
    bot_messages,
    buttons,
    converse_until_ended,
    opened_thread,
    wait_bot_message,
)

USER_ASKED = {"reason": "user_requested", "explanation": "they asked to stop"}


async def proposal(fake: FakeDiscord, anthropic: FakeAnthropic) -> tuple[str, dict[str, object]]:
    """Alice opens a thread and asks in words to end it; the bot's public confirmation."""
    thread_id = await opened_thread(fake, anthropic)
    anthropic.add(tool("end_conversation", USER_ASKED), text("Understood."))
    await fake.post(int(thread_id), fake.alice, "please end this conversation")
    confirm = await wait_bot_message(fake, thread_id, lambda m: bool(buttons(m)))
    return thread_id, confirm


async def test_the_models_end_proposal_ends_only_when_the_starter_confirms(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id, confirm = await proposal(fake, fake_anthropic)
    assert fake.clickable(confirm) == ["quitbot:end", "quitbot:keep"]
    conversation = await bot.flows.engine.find(translate.thread_key(int(thread_id)))
    assert conversation is not None and not conversation.ladder.ended  # a proposal only

    by_bob = await fake.press("quitbot:end", message=confirm, author=fake.bob)
    refused = (await fake.response(by_bob)).body["data"]
    assert refused["flags"] & 64 and "Only the person" in refused["content"]
    assert fake.clickable(confirm) == ["quitbot:end", "quitbot:keep"]  # still Alice's to press
    assert not fake.calls_to("PATCH", rf"/channels/{thread_id}")

    by_alice = await fake.press("quitbot:end", message=confirm, author=fake.alice)
    assert (await fake.response(by_alice)).body["type"] == 7  # the buttons go, before the lock
    await fake.wait_call("PATCH", rf"/channels/{thread_id}")
    assert ENDED_TITLE in str(bot_messages(fake, thread_id)[-1]["embeds"])
    assert not [m for m in bot_messages(fake, thread_id) if buttons(m)]  # none left to die
    offer = await after_end(fake, fake.alice)
    assert len(fake.clickable(offer)) == 2
    ended = await bot.flows.engine.find(translate.thread_key(int(thread_id)))
    assert ended is not None and ended.ladder.ended and ended.ladder.ended_by == "user"


async def test_the_models_end_proposal_lapses_when_the_person_writes_on(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id, confirm = await proposal(fake, fake_anthropic)
    fake_anthropic.add(text("Happy to keep going."))
    await fake.post(int(thread_id), fake.alice, "actually, one more question")
    await wait_bot_message(fake, thread_id, lambda m: m["content"] == "Happy to keep going.")
    # The confirmation loses its buttons and says so: no stale End can end it later.
    await fake.wait_call("PATCH", rf"/channels/{thread_id}/messages/{confirm['id']}")
    assert fake.clickable(confirm) == []
    assert fake.messages[int(confirm["id"])]["content"] == END_LAPSED_TEXT
    conversation = await bot.flows.engine.find(translate.thread_key(int(thread_id)))
    assert conversation is not None and not conversation.ladder.ended
    _, events = await bot.flows.engine.record(conversation.id)
    assert [e.kind for e in events][-3:] == [
        "end_proposed",
        "end_confirmation_shown",
        "end_proposal_lapsed",
    ]
    assert events[-2].detail["message_id"] == confirm["id"]
    assert not fake.calls_to("PATCH", rf"/channels/{thread_id}")


async def test_an_end_button_left_from_a_lapsed_proposal_ends_nothing(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id, confirm = await proposal(fake, fake_anthropic)
    confirmation = rf"/channels/{thread_id}/messages/{confirm['id']}"
    fake.fail_next("PATCH", confirmation)  # the withdrawal fails: the buttons stay
    fake_anthropic.add(text("Happy to keep going."))
    await fake.post(int(thread_id), fake.alice, "actually, one more question")
    await fake.wait_call("PATCH", confirmation, ok_only=False)
    assert fake.clickable(confirm) == ["quitbot:end", "quitbot:keep"]

    pressed = await fake.press("quitbot:end", message=confirm, author=fake.alice)
    withdrawn = (await fake.response(pressed)).body
    assert withdrawn["type"] == 7 and withdrawn["data"]["content"] == END_LAPSED_TEXT
    assert fake.clickable(confirm) == []  # withdrawn now: no stale button left
    refused = (await fake.followup(pressed)).body
    assert refused["flags"] & 64 and refused["content"] == REFUSAL_TEXT[Refusal.NOT_ASKED]
    conversation = await bot.flows.engine.find(translate.thread_key(int(thread_id)))
    assert conversation is not None and not conversation.ladder.ended
    assert not fake.calls_to("PATCH", rf"/channels/{thread_id}")

    # The end command's own confirmation still ends it: no proposal is needed for that.
    asked = await fake.slash("end", channel_id=int(thread_id), author=fake.alice)
    private = (await fake.response(asked)).response["resource"]["message"]
    ending = await fake.press("quitbot:end", message=private, author=fake.alice)
    assert (await fake.response(ending)).body["type"] == 7
    await fake.wait_call("PATCH", rf"/channels/{thread_id}")
    ended = await bot.flows.engine.find(translate.thread_key(int(thread_id)))
    assert ended is not None and ended.ladder.ended


async def test_ending_with_the_end_command_in_a_thread_offers_the_way_on_by_dm(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id = await opened_thread(fake, fake_anthropic)
    asked = await fake.slash("end", channel_id=int(thread_id), author=fake.alice)
    confirm = (await fake.response(asked)).response["resource"]["message"]
    pressed = await fake.press("quitbot:end", message=confirm, author=fake.alice)
    await fake.response(pressed)
    await fake.wait_call("PATCH", rf"/channels/{thread_id}")
    offer = await after_end(fake, fake.alice)
    # Not as an ephemeral follow-up in the thread: it is locked, so its buttons are dead.
    assert not [m for m in bot_messages(fake, thread_id) if buttons(m)]
    new = await fake.press(f"quitbot:new:{fake.channel_id}", message=offer, author=fake.alice)
    assert (await fake.response(new)).body["type"] == 5
    opened = await fake.wait_call("POST", rf"/channels/{fake.channel_id}/threads")
    assert opened.response["id"] in (await fake.followup(new)).body["content"]
    await wait_bot_message(
        fake, opened.response["id"], lambda m: "new conversation" in m["content"]
    )


async def test_without_dms_the_way_on_is_offered_in_the_channel_it_began_in(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    fake.closed_dms.add(int(fake.alice["id"]))
    thread_id = await converse_until_ended(fake, fake_anthropic)
    offer = await wait_bot_message(
        fake, fake.channel_id, lambda m: "Your conversation has ended" in m["content"]
    )
    assert offer["content"].startswith(f"<@{fake.alice['id']}>")
    assert len(fake.clickable(offer)) == 2
    assert fake.channels[int(thread_id)]["thread_metadata"]["locked"]


async def test_a_reply_cut_at_max_tokens_says_so(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id = await opened_thread(fake, fake_anthropic)
    fake_anthropic.add(text("The long answer begins and", stop_reason="max_tokens"))
    await fake.post(int(thread_id), fake.alice, "tell me everything")
    await wait_bot_message(fake, thread_id, lambda m: m["content"] == CUT_SHORT_TEXT)
