"""What a Discord thread already shows of a reply (issue #22): the reply stream says when its
first message is there and when all of it is; the place finds it again in the channel's
history after the message it answers, and marks a half one as cut short."""

from __future__ import annotations

import asyncio

from platforms.discord import history, translate
from platforms.discord.app import QuitBot
from platforms.discord.reply import ChannelReply
from platforms.discord.stream import MESSAGE_LIMIT
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.helpers import bot_messages, mention, wait_bot_message

LONG = " ".join(f"word{n}" for n in range(900))  # about 6,000 characters: several messages


async def answered(fake: FakeDiscord, anthropic: FakeAnthropic, answer: str) -> tuple[str, str]:
    """A mention answered in its thread: (the mention's id, the reply's first message id)."""
    anthropic.add(text(answer))
    opening = await mention(fake, "a question")
    thread_id = opening["id"]
    last = answer.split()[-1]
    await wait_bot_message(fake, thread_id, lambda m: m["content"].endswith(last))
    return thread_id, bot_messages(fake, thread_id)[0]["id"]


async def test_the_reply_is_found_after_the_message_it_answers(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    thread_id, reply_id = await answered(fake_discord, fake_anthropic, "The answer.")
    place = bot.discord.place(translate.thread_key(int(thread_id)))
    assert await place.reply_after(thread_id, reply_id) == "The answer."
    assert await place.reply_after(thread_id, "1") is None  # not there (deleted)
    looked = fake_discord.calls_to("GET", rf"/channels/{thread_id}/messages")
    assert looked[0].query == {"limit": "100", "after": thread_id}


async def test_a_long_reply_is_read_with_its_later_parts(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    thread_id, reply_id = await answered(fake_discord, fake_anthropic, LONG)
    parts = bot_messages(fake_discord, thread_id)
    assert len(parts) > 1
    place = bot.discord.place(translate.thread_key(int(thread_id)))
    found = await place.reply_after(thread_id, reply_id)
    assert found == "".join(m["content"] for m in parts)


async def test_a_half_reply_is_marked_cut_short_within_the_limit(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    thread_id, reply_id = await answered(fake_discord, fake_anthropic, LONG)
    place = bot.discord.place(translate.thread_key(int(thread_id)))
    await place.cut_short(thread_id, reply_id)
    last = bot_messages(fake_discord, thread_id)[-1]["content"]
    assert last.endswith(history.CUT_SHORT_MARK) and len(last) <= MESSAGE_LIMIT


async def test_the_reply_stream_tells_its_first_message_and_its_end(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    thread_id, _ = await answered(fake_discord, fake_anthropic, "Opened.")
    channel = bot.get_partial_messageable(int(thread_id))
    marks: list[tuple[str, bool]] = []
    told = asyncio.Event()

    async def shown(reply_id: str, complete: bool) -> None:
        marks.append((reply_id, complete))
        told.set()

    whole = ChannelReply(channel, bot.http, typing_delay=0)
    whole.track("1", shown)
    await whole.text("All at once.")  # done at once: the flusher has not run yet
    reply_id = await whole.done()
    assert marks == [(reply_id, True)]  # posted whole at the end: one mark

    marks.clear()
    told.clear()
    streamed = ChannelReply(channel, bot.http, typing_delay=0, interval=0)
    streamed.track("1", shown)
    await streamed.text("First words")
    await told.wait()  # the flusher posted them, and said so
    await streamed.text(", then the rest.")
    reply_id = await streamed.done()
    await streamed.close()
    assert marks == [(reply_id, False), (reply_id, True)]
