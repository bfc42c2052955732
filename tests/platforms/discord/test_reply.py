"""The reply stream's typing indicator and flusher, which start on the loop's own timers
(issue 22): an answer faster than the delay shows no typing; a slower one does, and is
posted once it is done."""

from __future__ import annotations

from platforms.discord.app import QuitBot
from platforms.discord.reply import ChannelReply
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.helpers import bot_messages, opened_thread


async def test_an_answer_within_the_delay_shows_no_typing(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    thread_id = await opened_thread(fake_discord, fake_anthropic)
    typed = len(fake_discord.calls_to("POST", rf"/channels/{thread_id}/typing"))
    reply = ChannelReply(bot.get_partial_messageable(int(thread_id)), typing_delay=3600)
    await reply.thinking()
    await reply.text("Quick.")
    await reply.done()
    await reply.close()
    assert len(fake_discord.calls_to("POST", rf"/channels/{thread_id}/typing")) == typed
    assert bot_messages(fake_discord, thread_id)[-1]["content"] == "Quick."


async def test_a_slower_answer_shows_typing_then_the_reply(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    thread_id = await opened_thread(fake_discord, fake_anthropic)
    typed = len(fake_discord.calls_to("POST", rf"/channels/{thread_id}/typing"))
    reply = ChannelReply(bot.get_partial_messageable(int(thread_id)), typing_delay=0.001)
    await reply.thinking()
    await fake_discord.wait_call("POST", rf"/channels/{thread_id}/typing", count=typed + 1)
    await reply.text("Thought it over.")
    await reply.done()
    await reply.close()
    assert bot_messages(fake_discord, thread_id)[-1]["content"] == "Thought it over."
