"""Where Discord lets a conversation live (issue 16, part 2): forum and media channels, whose
posts are threads opened only with a first message, and a voice channel's text chat, which
has no threads. The fake refuses what Discord refuses there (sources in tests/fakes/discord.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import discord
import pytest

from bot.conversation import ConversationKey
from bot.notices import too_long_text
from platforms.discord import render
from platforms.discord.app import QuitBot
from tests.conftest import make_settings
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.conftest import discord_settings, running_bot
from tests.platforms.discord.helpers import (
    ENDED_TITLE,
    abusive_turns,
    after_end,
    bot_messages,
    buttons,
    wait_bot_message,
)

Json = dict[str, Any]
POSTS = r"/channels/%s/threads"


@pytest.fixture(autouse=True)
def _places(fake_discord: FakeDiscord) -> None:
    """A forum, a media channel and a voice channel, there before the bot connects."""
    fake = fake_discord
    fake.forum_id = fake.add_forum("help")  # type: ignore[attr-defined]
    fake.media_id = fake.add_forum("clips", media=True)  # type: ignore[attr-defined]
    fake.voice_id = fake.add_voice("Lounge")  # type: ignore[attr-defined]
    fake.tagged_id = fake.add_forum(  # type: ignore[attr-defined]
        "questions", tags=("staff-only", "general", "bugs")
    )


def forum_of(fake: FakeDiscord, media: bool) -> int:
    return int(fake.media_id if media else fake.forum_id)  # type: ignore[attr-defined]


def titled(message: Json, title: str) -> bool:
    return any(e.get("title") == title for e in message["embeds"])


async def post_with_mention(fake: FakeDiscord, forum_id: int, words: str) -> str:
    """Alice opens a post in the forum mentioning the bot; the post's (thread's) id."""
    post = await fake.open_post(
        forum_id, fake.alice, words, f"<@{fake.bot_id}> {words}", mention_bot=True
    )
    return str(post["id"])


async def ended_in_a_post(fake: FakeDiscord, anthropic: FakeAnthropic, forum_id: int) -> str:
    """Alice abuses the bot in a forum post of her own until it ends; the post's id."""
    abusive_turns(anthropic)
    post_id = await post_with_mention(fake, forum_id, "you are useless")
    await wait_bot_message(fake, post_id, lambda m: "Let's move on." in m["content"])
    await fake.post(int(post_id), fake.alice, "you are useless, idiot")
    await wait_bot_message(fake, post_id, lambda m: titled(m, "Warning"))
    await fake.post(int(post_id), fake.alice, "idiot idiot idiot")
    await wait_bot_message(fake, post_id, lambda m: titled(m, ENDED_TITLE))
    await fake.wait_until(lambda: fake.channels[int(post_id)]["thread_metadata"]["locked"])
    return post_id


async def opened_post(fake: FakeDiscord, forum_id: int, *, count: int = 1) -> Json:
    """The `count`-th post the bot opened in the forum: the thread, with its first message."""
    return (await fake.wait_call("POST", POSTS % forum_id, count=count)).response


# --- the fake refuses what Discord refuses ---------------------------------------------------


async def test_the_fake_takes_posts_in_a_forum_only_with_a_first_message(
    bot: QuitBot, fake_discord: FakeDiscord
) -> None:
    fake = fake_discord
    for forum_id in (forum_of(fake, media=False), forum_of(fake, media=True)):
        forum = bot.get_channel(forum_id)
        assert isinstance(forum, discord.ForumChannel)
        send = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=forum_id)
        with pytest.raises(discord.HTTPException) as refused:
            await bot.http.request(send, json={"content": "hello, forum"})
        assert refused.value.status == 400 and refused.value.code == 50008
        posts = discord.http.Route("POST", "/channels/{channel_id}/threads", channel_id=forum_id)
        with pytest.raises(discord.HTTPException) as refused:
            await bot.http.request(posts, json={"name": "no first message", "type": 11})
        assert refused.value.code == 50035 and "message" in str(refused.value)
        with pytest.raises(discord.HTTPException) as refused:
            await bot.http.request(posts, json={"name": "empty", "message": {"content": ""}})
        assert refused.value.code == 50006
        created = await forum.create_thread(name="a post", content="its first message")
        assert created.thread.parent_id == forum_id
        assert created.message.id == created.thread.id  # a post's first message has its id
        assert fake.messages[created.thread.id]["content"] == "its first message"


async def test_a_post_in_a_forum_that_requires_a_tag_carries_one_anyone_may_set(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake, forum_id = fake_discord, int(fake_discord.tagged_id)  # type: ignore[attr-defined]
    forum = bot.get_channel(forum_id)
    assert isinstance(forum, discord.ForumChannel) and forum.flags.require_tag
    with pytest.raises(discord.HTTPException) as refused:  # the fake's rule
        await forum.create_thread(name="untagged", content="hi")
    assert refused.value.status == 400 and refused.value.code == 40067

    fake_anthropic.add(text("Tagged and answered."))
    post_id = await post_with_mention(fake, forum_id, "hi")
    await wait_bot_message(fake, post_id, lambda m: m["content"] == "Tagged and answered.")
    asked = await fake.slash("new", channel_id=int(post_id), author=fake.alice)
    new_post = await opened_post(fake, forum_id, count=1)
    assert new_post["id"] in (await fake.followup(asked)).body["content"]
    general = fake.channels[forum_id]["available_tags"][1]
    sent = fake.calls_to("POST", POSTS % forum_id)[-1].body
    assert sent["applied_tags"] == [general["id"]]  # not the moderators' own tag


async def test_the_fake_has_no_threads_in_a_voice_channels_chat(
    bot: QuitBot, fake_discord: FakeDiscord
) -> None:
    fake = fake_discord
    voice = bot.get_channel(fake.voice_id)  # type: ignore[attr-defined]
    assert isinstance(voice, discord.VoiceChannel)
    said = await voice.send("text in voice works")
    with pytest.raises(discord.HTTPException) as refused:
        await said.create_thread(name="no threads here")
    assert refused.value.status == 400 and refused.value.code == 50024
    alone = discord.http.Route("POST", "/channels/{channel_id}/threads", channel_id=voice.id)
    with pytest.raises(discord.HTTPException) as refused:
        await bot.http.request(alone, json={"name": "nor here", "type": 11})
    assert refused.value.code == 50024


# --- forum and media channels ----------------------------------------------------------------


@pytest.mark.parametrize("media", [False, True], ids=["forum", "media"])
async def test_a_conversation_in_a_post_starts_anew_in_a_new_post(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic, media: bool
) -> None:
    fake, forum_id = fake_discord, forum_of(fake_discord, media)
    fake_anthropic.add(text("Hello from the post."))
    post_id = await post_with_mention(fake, forum_id, "hi there")
    reply = await wait_bot_message(fake, post_id, lambda m: m["content"] == "Hello from the post.")

    asked = await fake.slash("new", channel_id=int(post_id), author=fake.alice)
    assert (await fake.response(asked)).body["type"] == 5
    new_post = await opened_post(fake, forum_id)
    assert new_post["message"]["content"] == render.opening(fake.alice["id"]).content
    assert new_post["id"] in (await fake.followup(asked)).body["content"]
    greeting = await wait_bot_message(
        fake, new_post["id"], lambda m: "new conversation" in m["content"]
    )
    assert greeting["content"].startswith(f"<@{fake.alice['id']}>")
    started = await bot.flows.engine.find(ConversationKey("discord", new_post["id"]))
    assert started is not None and started.user_id == fake.alice["id"]
    fake_anthropic.add(text("Still here."))
    await fake.post(int(new_post["id"]), fake.alice, "and in the new post?")
    await wait_bot_message(fake, new_post["id"], lambda m: m["content"] == "Still here.")

    branched = await fake.message_command("Branch from here", reply, author=fake.alice)
    branch = await opened_post(fake, forum_id, count=2)
    assert branch["id"] in (await fake.followup(branched)).body["content"]
    await wait_bot_message(fake, branch["id"], lambda m: fake.alice["id"] in m["content"])
    assert await bot.flows.engine.find(ConversationKey("discord", branch["id"])) is not None


async def test_after_an_end_in_a_post_the_offer_opens_a_new_post_in_the_forum(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake, forum_id = fake_discord, forum_of(fake_discord, media=False)
    await ended_in_a_post(fake, fake_anthropic, forum_id)
    offer = await after_end(fake, fake.alice)
    pressed = await fake.press(f"quitbot:new:{forum_id}", message=offer, author=fake.alice)
    assert (await fake.response(pressed)).body["type"] == 5
    new_post = await opened_post(fake, forum_id)
    assert new_post["id"] in (await fake.followup(pressed)).body["content"]
    await wait_bot_message(fake, new_post["id"], lambda m: "new conversation" in m["content"])


@pytest.mark.parametrize("media", [False, True], ids=["forum", "media"])
async def test_without_dms_the_offer_is_a_post_of_its_own_addressed_to_the_starter(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic, media: bool
) -> None:
    fake, forum_id = fake_discord, forum_of(fake_discord, media)
    fake.closed_dms.add(int(fake.alice["id"]))
    post_id = await ended_in_a_post(fake, fake_anthropic, forum_id)
    # Nothing to click was left in the ended post: it is locked, and its buttons with it.
    assert not [m for m in bot_messages(fake, post_id) if buttons(m)]

    offer_post = await opened_post(fake, forum_id)
    assert offer_post["name"].startswith("Ended: ")
    offer = fake.messages[int(offer_post["id"])]
    assert offer["content"].startswith(f"<@{fake.alice['id']}> Your conversation has ended")
    new_id, mistake_id = f"quitbot:new:{forum_id}", buttons(offer)[1]
    assert fake.clickable(offer) == [new_id, mistake_id]  # an open post: usable
    call = fake.calls_to("POST", POSTS % forum_id)[0]
    mentions = call.body["message"]["allowed_mentions"]
    assert "users" in mentions["parse"]  # the person is pinged, so they see it

    mistake = await fake.press(mistake_id, message=offer, author=fake.alice)
    assert (await fake.response(mistake)).body["type"] == 9  # the feedback form
    pressed = await fake.press(new_id, message=offer, author=fake.alice)
    assert (await fake.response(pressed)).body["type"] == 5
    new_post = await opened_post(fake, forum_id, count=2)
    assert new_post["id"] in (await fake.followup(pressed)).body["content"]
    await wait_bot_message(fake, new_post["id"], lambda m: "new conversation" in m["content"])


# --- a voice channel's text chat ----------------------------------------------------------


async def test_a_mention_in_a_voice_channels_chat_is_told_plainly_where_to_talk(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    voice_id = int(fake.voice_id)  # type: ignore[attr-defined]
    asked = await fake.post(voice_id, fake.alice, f"<@{fake.bot_id}> hi", mention_bot=True)
    said = await wait_bot_message(fake, voice_id, lambda m: True)
    assert said["content"] == render.NO_THREADS_HERE
    call = fake.calls_to("POST", rf"/channels/{voice_id}/messages")[0]
    assert str(call.body["message_reference"]["message_id"]) == asked["id"]  # a reply to it
    await fake.post(voice_id, fake.bob, "just chatting in voice, no mention")

    chat = await fake.slash(
        "chat", [{"name": "prompt", "type": 3, "value": "hi"}], channel_id=voice_id,
        author=fake.alice,
    )  # fmt: skip
    answered = (await fake.response(chat)).body["data"]
    assert answered["flags"] & 64 and answered["content"] == render.NO_THREADS_HERE
    new = await fake.slash("new", channel_id=voice_id, author=fake.alice)
    await fake.response(new)
    assert (await fake.followup(new)).body["content"] == render.NO_THREADS_HERE

    assert fake_anthropic.requests == []  # no conversation, so no model call
    assert not [c for c in fake.calls if c.path.endswith("/threads")]
    await fake.reconnect(replay=asked)  # the gateway sends the mention again
    bobs = await fake.post(voice_id, fake.bob, f"<@{fake.bot_id}> me too", mention_bot=True)
    second = await fake.wait_call("POST", rf"/channels/{voice_id}/messages", count=2)
    # Answered in order: had the replay been answered again, that reply would come first.
    assert str(second.body["message_reference"]["message_id"]) == bobs["id"]


async def test_without_dms_other_private_notices_stay_in_the_open_post(
    tmp_path: Path, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    """Only the offer after an end is worth a post of its own; a notice that can come again
    and again (a message too long, say) is said in the person's post while it is open."""
    fake, forum_id = fake_discord, forum_of(fake_discord, media=False)
    fake.closed_dms.add(int(fake.alice["id"]))
    settings = make_settings(
        tmp_path, fake_anthropic, discord=discord_settings(fake), max_message_chars=100
    )
    async with running_bot(fake, settings):
        fake_anthropic.add(text("Hello."))
        post_id = await post_with_mention(fake, forum_id, "hi")
        await wait_bot_message(fake, post_id, lambda m: m["content"] == "Hello.")
        await fake.post(int(post_id), fake.alice, "x" * 101)
        told = await wait_bot_message(
            fake, post_id, lambda m: m["content"].startswith(f"<@{fake.alice['id']}>")
        )
        assert too_long_text(100) in told["content"]
    assert not fake.calls_to("POST", POSTS % forum_id)  # no post of its own for that
