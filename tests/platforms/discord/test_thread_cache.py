"""What is kept per conversation's thread: discord.py's cached thread goes once nothing is
under way there, the place stays known as a channel id, and a thread out of the cache is
still answered, ended and locked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest_asyncio

from platforms.discord import translate
from platforms.discord.app import QuitBot
from platforms.discord.cog import ConversationCog
from platforms.discord.thread_cache import forget_thread
from quitbot.testing import discord_payloads as p
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.helpers import (
    ENDED_TITLE,
    abusive_turns,
    after_end,
    buttons,
    mention,
    titles,
    wait_bot_message,
)

CONVERSATIONS = 30


@pytest_asyncio.fixture
async def client() -> AsyncIterator[discord.Client]:
    client = discord.Client(intents=discord.Intents(guilds=True))
    yield client
    await client.close()


def a_server(client: discord.Client) -> tuple[discord.Guild, int]:
    """A server in discord.py's cache as GUILD_CREATE leaves it; its text channel's id."""
    state: Any = client._connection
    guild_id, channel_id = p.snowflake(), p.snowflake()
    data = p.guild(
        guild_id,
        "server",
        owner_id=1,
        roles=[p.role(guild_id, "@everyone", p.MEMBER_PERMISSIONS)],
        channels=[p.text_channel(channel_id, guild_id, "general")],
        threads=[],
        members=[],
    )
    guild = discord.Guild(data=data, state=state)  # type: ignore[arg-type]
    state._add_guild(guild)
    return guild, channel_id


async def test_a_thread_leaves_discord_py_s_cache_and_nothing_else_does(
    client: discord.Client,
) -> None:
    """Fails if discord.py stops keeping threads in `Guild._threads` or renames
    `_remove_thread`, which thread_cache relies on."""
    guild, channel_id = a_server(client)
    state: Any = client._connection
    ids = [p.snowflake() for _ in range(2000)]
    for thread_id in ids:
        state.parse_thread_create(p.thread(thread_id, guild.id, channel_id, 1, "t"))
    assert len(guild.threads) == len(ids)
    assert all(forget_thread(client, thread_id) for thread_id in ids)
    assert not guild.threads and client.get_channel(ids[0]) is None
    assert not forget_thread(client, ids[0])  # gone already
    assert not forget_thread(client, channel_id)  # a channel is no thread: it stays
    assert client.get_channel(channel_id) is not None


def conversations(bot: QuitBot) -> ConversationCog:
    cog = bot.get_cog("quitbot.conversations")
    assert isinstance(cog, ConversationCog)
    return cog


async def quiet(bot: QuitBot) -> None:
    """Until every line of the conversations cog ran dry (its threads let go then)."""
    cog = conversations(bot)
    while busy := cog._arrivals._workers | cog._answers._workers:
        await asyncio.wait(busy)


def cached_threads(bot: QuitBot) -> list[discord.Thread]:
    return [thread for guild in bot.guilds for thread in guild.threads]


async def test_many_conversations_keep_no_thread_cached_and_are_still_answered(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    fake_anthropic.add(*[text(f"reply {n}") for n in range(2 * CONVERSATIONS)])
    threads = [(await mention(fake, f"topic {n}"))["id"] for n in range(CONVERSATIONS)]
    await fake.wait_call("POST", r"/channels/\d+/messages", count=CONVERSATIONS)
    await quiet(bot)
    assert cached_threads(bot) == []
    for thread_id in threads:  # each thread out of the cache: a bare channel id now
        await fake.post(int(thread_id), fake.alice, "and again")
    await fake.wait_call("POST", r"/channels/\d+/messages", count=2 * CONVERSATIONS)
    await quiet(bot)
    answered = {c.path.split("/")[2] for c in fake.calls_to("POST", r"/channels/\d+/messages")}
    assert answered == set(threads)
    assert cached_threads(bot) == []
    assert len(bot.discord._known) == CONVERSATIONS  # one channel id each, nothing more
    # Answering in a thread out of the cache fetches nothing.
    assert fake.calls_to("GET", r"/channels/\d+") == []


async def test_a_thread_out_of_the_cache_still_leads_back_to_its_channel_once_ended(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    """Each message comes once its thread left the cache: still warned, ended and locked
    (test_conversations checks how), and what needs the thread itself fetches it."""
    fake = fake_discord
    abusive_turns(fake_anthropic)
    thread_id = int((await mention(fake, "you are useless"))["id"])
    await wait_bot_message(fake, thread_id, lambda m: "Let's move on." in m["content"])
    for words, seen in (("idiot", "Warning"), ("idiot idiot", ENDED_TITLE)):
        await quiet(bot)
        assert bot.get_channel(thread_id) is None
        await fake.post(thread_id, fake.alice, words)
        await fake.wait_until(lambda seen=seen: seen in titles(fake, thread_id))
    offer = await after_end(fake, fake.alice)
    assert translate.new_id(fake.channel_id) in buttons(offer)  # its parent channel
    assert fake.calls_to("GET", rf"/channels/{thread_id}")  # read from Discord
    await quiet(bot)
    assert bot.get_channel(thread_id) is None


async def test_a_thread_unarchived_by_someone_is_let_go_again_after_its_turn(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    fake_anthropic.add(text("first"), text("second"))
    thread_id = int((await mention(fake, "hello"))["id"])
    await wait_bot_message(fake, thread_id, lambda m: m["content"] == "first")
    await quiet(bot)
    await fake.set_thread(thread_id, archived=True, locked=False)
    await fake.set_thread(thread_id, archived=False, locked=False)  # cached again
    await fake.post(thread_id, fake.alice, "still there?")
    await wait_bot_message(fake, thread_id, lambda m: m["content"] == "second")
    await quiet(bot)
    assert bot.get_channel(thread_id) is None
