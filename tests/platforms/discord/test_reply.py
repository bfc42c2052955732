"""The reply stream's typing indicator and flusher, which start on the loop's own timers
(issue 22): an answer faster than the delay shows no typing; a slower one does, and either
is posted once it is done."""

from __future__ import annotations

import pytest

from platforms.discord.app import QuitBot
from platforms.discord.reply import NO_MENTIONS, ChannelReply
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
    reply = ChannelReply(bot.get_partial_messageable(int(thread_id)), bot.http, typing_delay=delay)
    await reply.thinking()
    if slower:
        await fake_discord.wait_call("POST", typing, count=typed + 1)
    await reply.text("The answer.")
    await reply.done()
    await reply.close()
    assert len(fake_discord.calls_to("POST", typing)) == typed + slower
    assert bot_messages(fake_discord, thread_id)[-1]["content"] == "The answer."


async def test_a_reply_posts_and_edits_what_discord_py_would(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    """A reply goes through discord.py's HTTP client, not `send` and `edit` (issue 22): this
    fails if discord.py's own calls come to send other bodies or to other routes."""
    thread_id = await opened_thread(fake_discord, fake_anthropic)
    posts, edits = rf"/channels/{thread_id}/messages", rf"/channels/{thread_id}/messages/\d+"
    channel = bot.get_partial_messageable(int(thread_id))
    theirs = await channel.send("First words", allowed_mentions=NO_MENTIONS)
    await theirs.edit(content="First words, then the rest.", allowed_mentions=NO_MENTIONS)
    sent = len(fake_discord.calls_to("POST", posts))
    reply = ChannelReply(channel, bot.http, typing_delay=0, interval=0)
    await reply.text("First words")
    await fake_discord.wait_call("POST", posts, count=sent + 1)
    await reply.text(", then the rest.")
    ours = await reply.done()
    await reply.close()
    their_post, our_post = fake_discord.calls_to("POST", posts)[-2:]
    their_edit, our_edit = fake_discord.calls_to("PATCH", edits)[-2:]
    assert our_post.body["nonce"] != their_post.body["nonce"]  # each post has its own
    assert our_post.body == their_post.body | {"nonce": our_post.body["nonce"]}
    # `Message.edit` resends the flags of its own copy of the message (0 for a reply);
    # quitbot leaves the message's flags as Discord has them.
    assert our_edit.body == {k: v for k, v in their_edit.body.items() if k != "flags"}
    assert our_edit.path == f"/channels/{thread_id}/messages/{ours}"
    assert bot_messages(fake_discord, thread_id)[-1]["content"] == "First words, then the rest."
