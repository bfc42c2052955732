"""quitbot embedded in someone else's discord.py bot (`quitbot.discord`): what it refuses,
whose failures it answers, and how it comes off again."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import discord
import pytest
from discord import app_commands
from discord.ext import commands

import quitbot
from bot.flows import Flows
from platforms.discord.cog import ConversationCog
from platforms.discord.parts import BRANCH
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.conftest import running_host
from tests.platforms.discord.helpers import opened_thread, wait_bot_message

HOST_FAILED = "The host's own handler: that went wrong."
Setup = Callable[["Host"], Coroutine[Any, Any, None]]


class HostTree(app_commands.CommandTree[discord.Client]):
    """A host's tree error handler, as many bots write one: it answers what is unanswered."""

    seen: list[str]

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError, /
    ) -> None:
        self.seen.append(interaction.command.name if interaction.command else "?")
        if not interaction.response.is_done():
            await interaction.response.send_message(HOST_FAILED)


class Host(commands.Bot):
    """Someone's own bot: a prefix, a slash command that fails, quitbot added in setup_hook."""

    def __init__(
        self, setup: Setup, intents: discord.Intents | None = None, **options: Any
    ) -> None:
        if intents is None:
            intents = discord.Intents.default()
            intents.message_content = True
        super().__init__(command_prefix="!", intents=intents, tree_cls=HostTree, **options)
        self.tree.seen = []  # type: ignore[attr-defined]
        self._setup = setup

        @self.tree.command(description="Always fails")
        async def boom(interaction: discord.Interaction) -> None:
            raise RuntimeError("the host's own bug")

    async def setup_hook(self) -> None:
        await self._setup(self)


def attaching(runtime: quitbot.Runtime) -> Setup:
    async def setup(bot: Host) -> None:
        await quitbot.discord.attach(bot, runtime)

    return setup


async def test_missing_intents_are_refused_clearly_and_nothing_is_added(
    runtime: quitbot.Runtime,
) -> None:
    bot = Host(attaching(runtime), intents=discord.Intents.default())
    with pytest.raises(quitbot.discord.MissingIntents, match="message_content intent") as refused:
        await quitbot.discord.attach(bot, runtime)
    assert "Developer Portal" in str(refused.value)
    assert bot.cogs == {} and [c.name for c in bot.tree.get_commands()] == ["boom"]


async def test_a_name_already_taken_or_a_second_attach_is_refused_before_anything_is_added(
    runtime: quitbot.Runtime,
) -> None:
    bot = Host(attaching(runtime))

    @bot.tree.command(name="new", description="The host's own /new")
    async def new(interaction: discord.Interaction) -> None: ...

    with pytest.raises(quitbot.discord.CommandClash, match="/new"):
        await quitbot.discord.attach(bot, runtime)
    assert bot.cogs == {} and {c.name for c in bot.tree.get_commands()} == {"boom", "new"}

    bot.tree.remove_command("new")
    await quitbot.discord.attach(bot, runtime)
    with pytest.raises(quitbot.discord.CommandClash, match="already attached"):
        await quitbot.discord.attach(bot, runtime)


async def test_quitbots_failures_are_quitbots_and_the_hosts_are_the_hosts(
    fake_discord: FakeDiscord,
    runtime: quitbot.Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = fake_discord

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("quitbot's own bug")

    monkeypatch.setattr(Flows, "ask_to_end", broken)
    monkeypatch.setattr(Flows, "review_queue", broken)
    async with running_host(fake, Host(attaching(runtime)), runtime.settings) as bot:
        ours = await fake.slash("end", channel_id=fake.channel_id, author=fake.alice)
        answered = (await fake.response(ours)).body["data"]
        assert answered["content"] == "Something went wrong on my side. Please try again."
        assert answered["flags"] & 64  # privately
        # In the moderators' group too, and once: the group's cog answers for it.
        review = [{"type": 1, "name": "review", "options": []}]
        grouped = await fake.slash("quitbot", review, channel_id=fake.channel_id, author=fake.bob)
        assert (await fake.response(grouped)).body["data"]["content"].startswith("Something")

        theirs = await fake.slash("boom", channel_id=fake.channel_id, author=fake.alice)
        assert (await fake.response(theirs)).body["data"]["content"] == HOST_FAILED
        # discord.py calls the tree's handler for every command; quitbot had answered its own.
        assert bot.tree.seen == ["end", "review", "boom"]  # type: ignore[attr-defined]
        for interaction in (ours, grouped, theirs):
            path = rf"/interactions/{interaction['id']}/.*"
            assert len([c for c in fake.calls_to("POST", path) if c.status < 300]) == 1
        assert not fake.calls_to("POST", r"/webhooks/.*")  # no second answer as a follow-up


async def test_detaching_takes_quitbot_off_and_leaves_the_host_as_it_was(
    fake_discord: FakeDiscord, runtime: quitbot.Runtime, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    host = Host(attaching(runtime), guild_ready_timeout=0)  # on_ready without waiting
    async with running_host(fake, host, runtime.settings) as bot:
        thread_id = int(await opened_thread(fake, fake_anthropic))
        await bot.wait_until_ready()
        cog = bot.get_cog("quitbot.conversations")
        assert isinstance(cog, ConversationCog)
        while busy := cog._arrivals._workers | cog._answers._workers:
            await asyncio.wait(busy)
        # The host's client is the host's: quitbot's own bot drops an idle conversation's
        # thread from discord.py's cache (platforms/discord/thread_cache.py), a host's not.
        assert isinstance(bot.get_channel(thread_id), discord.Thread)

        assert await quitbot.discord.detach(bot)
        assert bot.cogs == {}
        assert [c.name for c in bot.tree.get_commands()] == ["boom"]
        assert bot.tree.get_command(BRANCH, type=discord.AppCommandType.message) is None
        listeners = [f for found in bot.extra_events.values() for f in found]
        assert not [
            f for f in listeners if isinstance(getattr(f, "__self__", None), ConversationCog)
        ]
        assert bot.extra_events.get("on_message", []) == []
        assert runtime.engine.readiness.platforms() == {"discord": False}
        assert not await quitbot.discord.detach(bot)  # nothing left to take off

        # And on again, as after a reload: connected already, so no on_ready comes.
        await quitbot.discord.attach(bot, runtime)
        assert runtime.engine.readiness.platforms() == {"discord": True}
        fake_anthropic.add(text("Back."))
        again = await fake.post(
            fake.channel_id, fake.bob, f"<@{fake.bot_id}> hello", mention_bot=True
        )
        await wait_bot_message(fake, again["id"], lambda m: m["content"] == "Back.")


async def test_the_extension_brings_its_own_runtime_from_the_environment(
    fake_discord: FakeDiscord,
    fake_anthropic: FakeAnthropic,
    settings: quitbot.Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = fake_discord
    for name in [n for n in os.environ if n.startswith(("QUITBOT_", "ANTHROPIC_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    monkeypatch.setenv("QUITBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'extension.db'}")
    monkeypatch.chdir(tmp_path)  # no .env here

    async def load(bot: Host) -> None:
        await bot.load_extension("quitbot.discord")

    async with running_host(fake, Host(load), settings) as bot:
        await opened_thread(fake, fake_anthropic)
        await bot.unload_extension("quitbot.discord")
        assert bot.cogs == {} and [c.name for c in bot.tree.get_commands()] == ["boom"]
