"""The real discord.py bot, wired to the real engine, against FakeDiscord and FakeAnthropic."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio

with warnings.catch_warnings():
    # discord.py imports audioop (for voice), deprecated since Python 3.11
    warnings.simplefilter("ignore", DeprecationWarning)
    import discord

from bot.app import build_runtime
from bot.settings import DiscordSettings, Settings
from platforms.discord.app import QuitBot, build_bot, configure_endpoints
from tests.conftest import make_settings
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.discord import FakeDiscord

BotT = TypeVar("BotT", bound=discord.Client)


def discord_settings(fake: FakeDiscord, **overrides: Any) -> DiscordSettings:
    return DiscordSettings(  # type: ignore[call-arg]
        _env_file=None,
        DISCORD_TOKEN=fake.token,
        api_base=fake.api_base,
        gateway_url=fake.gateway_url,
        **overrides,
    )


def settings_for(
    tmp_path: Path, anthropic: FakeAnthropic, fake: FakeDiscord, **overrides: Any
) -> Settings:
    return make_settings(tmp_path, anthropic, discord=discord_settings(fake, **overrides))


@asynccontextmanager
async def running_bot(fake: FakeDiscord, settings: Settings) -> AsyncIterator[QuitBot]:
    """The bot connected, commands synced and the server known; closed on the way out."""
    async with build_runtime(settings) as runtime:
        configure_endpoints(settings.discord)
        bot = build_bot(runtime.engine, settings, edit_interval=0.0, typing_delay=0.0)
        async with running_host(fake, bot, settings):
            yield bot


@asynccontextmanager
async def running_host(fake: FakeDiscord, bot: BotT, settings: Settings) -> AsyncIterator[BotT]:
    """A bot (quitbot's own, or someone's with quitbot embedded) connected to the fake
    Discord and knowing its server; closed on the way out."""
    configure_endpoints(settings.discord)
    token = settings.discord.token
    assert token is not None
    async with bot:
        connected = fake.guild_creates
        started = asyncio.create_task(bot.start(token.get_secret_value()))
        try:
            await fake.wait_until(lambda: fake.guild_creates > connected)
            yield bot
        finally:
            await bot.close()
            await started


@pytest.fixture(autouse=True)
def _restore_discord_endpoints() -> Iterator[None]:
    """configure_endpoints changes discord.py class attributes; put them back after a test."""
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


@pytest_asyncio.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake
        assert fake.unexpected == [], "the bot made calls the fake Discord does not know"


@pytest.fixture
def settings(tmp_path: Path, fake_anthropic: FakeAnthropic, fake_discord: FakeDiscord) -> Settings:
    return settings_for(tmp_path, fake_anthropic, fake_discord)


@pytest_asyncio.fixture
async def bot(fake_discord: FakeDiscord, settings: Settings) -> AsyncIterator[QuitBot]:
    async with running_bot(fake_discord, settings) as running:
        yield running
