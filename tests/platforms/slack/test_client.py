"""The Slack Web API client quitbot builds (platforms/slack/client.py)."""

from __future__ import annotations

import copy
import logging
import warnings
from typing import Any

import aiohttp
import pytest
from slack_sdk.web import deprecation
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import SlackSettings
from platforms.slack.client import DEPRECATED_PREFIXES, SlackWebClient, build_client, deprecated
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


# --- SlackWebClient: slack_sdk's api_call, the URL joined and the deprecation check made once


async def _sent(client: AsyncWebClient, method: str, **arguments: Any) -> list[Any]:
    """What `api_call` hands slack_sdk's `_send`, and the warnings it gave."""
    sent: list[Any] = []

    async def send(**what: Any) -> None:
        sent.append(what)

    client._send = send  # type: ignore[method-assign]
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        await client.api_call(method, **arguments)
    return [*sent, [str(w.message) for w in warned]]


CALLS: list[tuple[str, dict[str, Any]]] = [
    ("chat.postMessage", {"json": {"channel": "C1", "text": "hi", "thread_ts": None}}),
    ("chat.postMessage", {"json": {"channel": "C1", "token": "xoxb-other"}}),
    ("/chat.update", {"json": {"channel": "C1", "ts": "1.2", "text": "x"}}),
    ("conversations.replies", {"http_verb": "GET", "params": {"channel": "C1", "ts": "1"}}),
    ("reactions.add", {"data": {"channel": "C1", "name": "eyes"}, "headers": {"X-A": "b"}}),
    ("oauth.v2.access", {"data": {"code": "c"}, "auth": {"client_id": "i", "client_secret": "s"}}),
    ("channels.list", {"http_verb": "GET", "params": {}}),
    ("stars.add", {"json": {"channel": "C1"}}),
    ("workflows.stepCompleted", {"json": {"workflow_step_execute_id": "w"}}),
]


@pytest.mark.parametrize(("method", "arguments"), CALLS)
@pytest.mark.parametrize("base_url", ["https://slack.com/api/", "http://127.0.0.1:9/api/"])
async def test_a_call_is_sent_as_slack_sdk_sends_it(
    method: str, arguments: dict[str, Any], base_url: str
) -> None:
    ours = SlackWebClient(token=BOT_TOKEN, base_url=base_url, headers={"X-Z": "1"})
    sdks = AsyncWebClient(token=BOT_TOKEN, base_url=base_url, headers={"X-Z": "1"})
    for _ in range(2):  # the second time from what was joined and checked the first
        assert await _sent(ours, method, **copy.deepcopy(arguments)) == await _sent(
            sdks, method, **copy.deepcopy(arguments)
        )


def test_the_deprecated_methods_are_slack_sdks() -> None:
    # Fails when slack_sdk gains (or loses) a list of deprecated methods' prefixes.
    lists = [v for k, v in vars(deprecation).items() if k.startswith("deprecated_method")]
    assert tuple(prefix for found in lists for prefix in found) == DEPRECATED_PREFIXES
    assert deprecated("channels.list") and not deprecated("chat.postMessage")
