"""A running quitbot Slack app in HTTP mode, wired to the fake Slack and the fake Claude API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
import pytest_asyncio

from bot.app import Runtime, build_runtime
from bot.conversation import Inbound
from bot.engine import Reception
from bot.settings import Settings, SlackSettings
from platforms.slack import Serving, SlackBot, start_http
from platforms.slack.client import build_client
from platforms.slack.translate import thread_key
from tests import postgres
from tests.conftest import make_settings
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.fakes.slack_requests import SlackSender
from tests.tcp_proxy import TcpProxy


async def no_wait(seconds: float) -> None:
    """Slack's Retry-After honoured without the test waiting for it."""
    no_wait.waits.append(seconds)  # type: ignore[attr-defined]


def slack_settings(fake: FakeSlack, **overrides: Any) -> SlackSettings:
    values: dict[str, Any] = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "mode": "http",
        "api_url": fake.base_url,
        **overrides,
    }
    return SlackSettings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest_asyncio.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake
        if fake.unexpected:
            pytest.fail("FakeSlack saw unexpected calls:\n" + "\n".join(fake.unexpected))


class Clock:
    """Time stands still unless a test moves it: the reply throttle never fires by itself."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class SlackHarness:
    slack: FakeSlack
    claude: FakeAnthropic
    runtime: Runtime
    bot: SlackBot
    send: SlackSender
    clock: Clock
    serving: Serving  # the HTTP endpoint, which the fixture cleans up

    async def settle(self) -> None:
        """Every answer started by what was sent so far has finished."""
        await self.bot.drain()


@pytest.fixture
def slack_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Process-wide settings a test module changes (slack_overrides: the Slack section)."""
    return {}


@pytest_asyncio.fixture
async def harness(
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_anthropic: FakeAnthropic,
    slack_overrides: dict[str, Any],
    settings_overrides: dict[str, Any],
) -> AsyncIterator[SlackHarness]:
    settings: Settings = make_settings(
        tmp_path,
        fake_anthropic,
        slack=slack_settings(fake_slack, **slack_overrides),
        **settings_overrides,
    )
    no_wait.waits = []  # type: ignore[attr-defined]
    clock = Clock()
    async with build_runtime(settings) as runtime, aiohttp.ClientSession() as session:
        client = build_client(settings.slack, session, sleep=no_wait)
        bot = SlackBot(runtime.engine, settings, client, session=session, clock=clock)
        runner = await start_http(bot, "127.0.0.1", 0)
        port = runner.addresses[0][1]
        try:
            url = f"http://127.0.0.1:{port}/slack/events"
            sender = SlackSender(url, session, response_urls=fake_slack.response_url)
            yield SlackHarness(fake_slack, fake_anthropic, runtime, bot, sender, clock, runner)
        finally:
            await runner.cleanup()
            await bot.drain()


@pytest_asyncio.fixture
async def proxied_database() -> AsyncIterator[tuple[str, TcpProxy]]:
    """A throw-away database, reached through a proxy the test can cut."""
    url = await postgres.create_database()
    target = urlsplit(url)
    try:
        async with TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
            netloc = target.netloc.rsplit("@", 1)
            host = f"127.0.0.1:{proxy.port}"
            via = f"{netloc[0]}@{host}" if len(netloc) == 2 else host
            yield urlunsplit(target._replace(netloc=via)), proxy
    finally:
        await postgres.drop_database(url)


def receipts_fail_once(monkeypatch: pytest.MonkeyPatch, failure: Exception) -> None:
    """The next message's receipt raises `failure`; the one after is kept as usual. Patched
    on `Reception`, which the edge's listener keeps messages through, on its own thread."""
    keep, failures = Reception.receive, [failure]

    async def once(reception: Reception, inbound: Inbound) -> bool:
        if failures:
            raise failures.pop()
        return await keep(reception, inbound)

    monkeypatch.setattr(Reception, "receive", once)


async def recorded(harness: SlackHarness, thread: str, channel: str = "C0GENERAL") -> list[str]:
    """Once every message is answered: the texts of the conversation at `thread`, in order."""
    await harness.settle()
    conversation = await harness.runtime.engine.find(thread_key(channel, thread))
    assert conversation is not None
    messages, _ = await harness.runtime.engine.record(conversation.id)
    return [m.text for m in messages]
