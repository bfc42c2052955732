"""quitbot's own bot takes each message as discord.py parses it, without a task for
`on_message` (issue 22), and anyone else waiting on messages still hears them."""

from __future__ import annotations

import asyncio

import discord
import pytest

from platforms.discord.app import QuitBot
from platforms.discord.cog import ConversationCog
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.helpers import opened_thread, wait_bot_message


async def test_a_message_is_taken_without_on_message(
    bot: QuitBot,
    fake_discord: FakeDiscord,
    fake_anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    called: list[int] = []

    async def on_message(message: discord.Message) -> None:
        called.append(message.id)

    monkeypatch.setattr(bot, "on_message", on_message)  # where discord.py's dispatch looks
    await opened_thread(fake_discord, fake_anthropic)  # a mention, and the bot's own reply
    assert called == []


async def test_a_bots_message_never_becomes_a_discord_py_message(
    bot: QuitBot,
    fake_discord: FakeDiscord,
    fake_anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arrived: list[str] = []
    arrive = ConversationCog.arrive

    def counted(cog: ConversationCog, message: discord.Message) -> None:
        arrived.append(message.author.name)
        arrive(cog, message)

    monkeypatch.setattr(ConversationCog, "arrive", counted)
    thread_id = await opened_thread(fake_discord, fake_anthropic)  # the reply is echoed
    await fake_discord.post(int(thread_id), fake_discord.other_bot, "a bot's words")
    fake_anthropic.add(text("Still here."))
    await fake_discord.post(int(thread_id), fake_discord.alice, "and mine")
    await wait_bot_message(fake_discord, thread_id, lambda m: m["content"] == "Still here.")
    assert arrived == ["alice", "alice"]
    assert len(fake_anthropic.requests) == 2


async def test_those_waiting_for_messages_hear_them_and_quitbot_answers_once(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    thread_id = await opened_thread(fake_discord, fake_anthropic)
    listened, own_reply_heard = asyncio.Event(), asyncio.Event()

    async def listener(message: discord.Message) -> None:
        if message.content == "listened":
            listened.set()
        if message.content == "Heard two.":  # the bot's own reply, too
            own_reply_heard.set()

    bot.add_listener(listener, "on_message")
    waiting = asyncio.create_task(bot.wait_for("message", check=lambda m: m.content == "waited"))
    fake_anthropic.add(text("Heard one."), text("Heard two."))
    await fake_discord.post(int(thread_id), fake_discord.alice, "listened")
    await listened.wait()
    # The private hook `dispatch` reads to know whether anyone waits: this fails if
    # discord.py keeps `wait_for`'s waiters elsewhere.
    assert bot._listeners.get("message")
    await fake_discord.post(int(thread_id), fake_discord.alice, "waited")
    assert (await waiting).content == "waited"
    await own_reply_heard.wait()
    bot.remove_listener(listener, "on_message")
    assert len(fake_anthropic.requests) == 3  # the mention and the two messages, once each
