"""End to end: real discord.py, real engine, FakeDiscord and FakeAnthropic over loopback."""

from __future__ import annotations

import asyncio
from typing import Any

from platforms.discord import translate
from platforms.discord.app import QuitBot
from tests.fakes.anthropic import FakeAnthropic, error, hold, text
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.helpers import (
    ENDED_TITLE,
    after_end,
    bot_messages,
    buttons,
    converse_until_ended,
    dm_id,
    wait_bot_message,
)

REPLY = "A thread is a side conversation attached to a message in a channel."


def contents(fake: FakeDiscord, channel_id: int | str) -> list[str]:
    return [
        m["content"]
        for m in fake.messages.values()
        if m["channel_id"] == str(channel_id) and m["author"]["id"] == fake.bot["id"]
    ]


async def mention(fake: FakeDiscord, words: str) -> dict[str, Any]:
    return await fake.post(
        fake.channel_id, fake.alice, f"<@{fake.bot_id}> {words}", mention_bot=True
    )


async def test_mention_opens_a_thread_and_streams_the_reply(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    asked, midway = asyncio.Event(), asyncio.Event()
    fake_anthropic.add(hold(text(REPLY), before=asked, midway=midway))
    message = await mention(fake, "what is a thread?")
    thread_id = message["id"]  # a thread opened from a message shares its id
    created = await fake.wait_call(
        "POST", rf"/channels/{fake.channel_id}/messages/{thread_id}/threads"
    )
    assert created.body["name"] == "what is a thread?"
    await fake.wait_call("POST", rf"/channels/{thread_id}/typing")  # while the model thinks
    asked.set()

    first = await fake.wait_call("POST", rf"/channels/{thread_id}/messages")
    assert REPLY.startswith(first.body["content"]) and first.body["content"] != REPLY
    midway.set()
    await fake.wait_until(lambda: REPLY in contents(fake, thread_id))

    edits = fake.calls_to("PATCH", rf"/channels/{thread_id}/messages/{first.response['id']}")
    assert edits and edits[-1].body["content"] == REPLY
    assert len(fake.calls_to("POST", rf"/channels/{thread_id}/messages")) == 1
    sent = fake_anthropic.requests[0]["messages"][-1]["content"]
    assert "what is a thread?" in str(sent) and f"<@{fake.bot_id}>" not in str(sent)


async def test_persistent_abuse_is_warned_then_ended_and_the_thread_locked_after_the_notice(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id = await converse_until_ended(fake, fake_anthropic)
    lock = await fake.wait_call("PATCH", rf"/channels/{thread_id}")
    assert lock.body == {"archived": True, "locked": True}

    notices = [m for m in bot_messages(fake, thread_id) if m["embeds"]]
    assert [m["embeds"][0]["title"] for m in notices] == ["Warning", ENDED_TITLE]
    final = notices[-1]
    assert "abusive" in final["embeds"][0]["description"]
    assert "/chat" in final["embeds"][0]["description"]  # how to start again
    # Nothing to click is left in the locked thread (the client would disable it) ...
    assert not [m for m in bot_messages(fake, thread_id) if buttons(m)]
    # ... the starter gets the controls by DM, where they work.
    offer = await after_end(fake, fake.alice)
    ended = await bot.flows.engine.find(translate.thread_key(int(thread_id)))
    assert ended is not None
    assert fake.clickable(offer) == [
        f"quitbot:new:{fake.channel_id}",
        f"quitbot:mistake:{ended.id}",
    ]
    final_post = next(
        c
        for c in fake.calls_to("POST", rf"/channels/{thread_id}/messages")
        if c.response["id"] == final["id"]
    )
    assert fake.calls.index(final_post) < fake.calls.index(lock)
    meta = fake.channels[int(thread_id)]["thread_metadata"]
    assert meta["archived"] and meta["locked"]
    assert len(fake_anthropic.requests) == 5 and fake_anthropic.pending == 0


async def test_an_unlocked_ended_thread_is_locked_again_and_never_reaches_the_model(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id = await converse_until_ended(fake, fake_anthropic)
    await fake.wait_call("PATCH", rf"/channels/{thread_id}")
    requests = len(fake_anthropic.requests)

    await fake.set_thread(int(thread_id), archived=False, locked=False)
    relock = await fake.wait_call("PATCH", rf"/channels/{thread_id}", count=2)
    assert relock.body == {"archived": True, "locked": True}

    await fake.set_thread(int(thread_id), archived=False, locked=True)  # as a post would
    await fake.post(int(thread_id), fake.alice, "let me back in")
    # Told privately, with a button that works there.
    blocked = await wait_bot_message(
        fake, dm_id(fake, fake.alice), lambda m: "won't reply" in m["content"]
    )
    assert "/chat" in blocked["content"]
    assert fake.clickable(blocked) == [f"quitbot:new:{fake.channel_id}"]
    third = await fake.wait_call("PATCH", rf"/channels/{thread_id}", count=3)
    assert third.body == {"archived": True, "locked": True}
    assert len(fake_anthropic.requests) == requests


async def test_model_down_says_so_in_the_thread_and_keeps_the_message(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    fake_anthropic.add(error(529, retry_after=0.001), error(529, retry_after=0.001))
    message = await mention(fake, "are you there?")
    notice = await wait_bot_message(
        fake, message["id"], lambda m: "couldn't reach the model" in str(m)
    )
    assert notice
    conversation = await bot.flows.engine.find(translate.thread_key(int(message["id"])))
    assert conversation is not None
    messages, _ = await bot.flows.engine.record(conversation.id)
    assert [m.text for m in messages] == ["are you there?"]
