"""The Slack Web API client quitbot builds (platforms/slack/client.py)."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from bot.settings import SlackSettings
from platforms.slack.client import build_client
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, FakeSlack

SDK_LOG = "slack_sdk.web.async_base_client"


def _settings(fake: FakeSlack) -> SlackSettings:
    return SlackSettings(  # type: ignore[call-arg]
        _env_file=None, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_APP_TOKEN=APP_TOKEN, api_url=fake.base_url
    )


async def test_slack_sdk_formats_its_debug_lines_only_while_debug_is_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # slack_sdk compares its logger's `level` with DEBUG before formatting them; the level
    # is set where operators set it, above slack_sdk's own module loggers (NOTSET).
    async with FakeSlack() as fake, aiohttp.ClientSession() as session:
        client = build_client(_settings(fake), session)
        assert logging.getLogger(SDK_LOG).level == logging.NOTSET
        caplog.set_level(logging.INFO, logger="slack_sdk")
        assert client.logger.level == logging.INFO
        await client.auth_test()
        assert not [r for r in caplog.records if r.name == SDK_LOG]

        caplog.set_level(logging.DEBUG, logger="slack_sdk")
        assert client.logger.level == logging.DEBUG
        await client.auth_test()
    sent = [r.getMessage() for r in caplog.records if r.name == SDK_LOG]
    assert any(line.startswith("Sending a request - url: POST") for line in sent)
    assert all("auth.test" in line or "Received" in line for line in sent)
