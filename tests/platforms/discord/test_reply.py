"""The reply stream's typing indicator and flusher, which start on the loop's own timers
(issue 22): an answer faster than the delay shows no typing; a slower one does, and either
is posted once it is done."""

from __future__ import annotations

import pytest

from platforms.discord.app import QuitBot
from platforms.discord.reply import ChannelReply
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.helpers import bot_messages, opened_thread


@pytest.mark.parametrize(("delay", "slower"), [(3600.0, False), (0.001, True)])
async def test_typing_shows_only_for_an_answer_slower_than_the_delay(
    bot: QuitBot,
    fake_discord: FakeDiscord,
    fake_anthropic: FakeAnthropic,
    delay: float,
    slower: bool,
) -> None:
    thread_id = await opened_thread(fake_discord, fake_anthropic)
    typing = rf"/channels/{thread_id}/typing"
    typed = len(fake_discord.calls_to("POST", typing))
    reply = ChannelReply(bot.get_partial_messageable(int(thread_id)), typing_delay=delay)
    await reply.thinking()
    if slower:
        await fake_discord.wait_call("POST", typing, count=typed + 1)
    await reply.text("The answer.")
    await reply.done()
    await reply.close()
    assert len(fake_discord.calls_to("POST", typing)) == typed + slower
    assert bot_messages(fake_discord, thread_id)[-1]["content"] == "The answer."
