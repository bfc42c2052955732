"""`run` in Socket Mode: the real slack_sdk client connects to the fake's WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from bot.app import build_runtime
from platforms.slack import run
from tests.conftest import make_settings
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.slack import APP_TOKEN, FakeSlack
from tests.fakes.slack_requests import command, event_callback, mention
from tests.platforms.slack.conftest import slack_settings


async def test_socket_mode_answers_events_and_commands(
    tmp_path: Path, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> None:
    slack = slack_settings(fake_slack, mode="socket")
    settings = make_settings(tmp_path, fake_anthropic, slack=slack)
    fake_anthropic.add(text("Hello over a socket."))
    async with build_runtime(settings) as runtime:
        running = asyncio.create_task(run(runtime.engine, settings))
        try:
            bad = event_callback(mention("x", ts="1700000100.000050", files=["nope"]))
            dropped = await fake_slack.socket_send("events_api", bad)
            assert "payload" not in dropped  # acknowledged (not redelivered) and dropped
            ack = await fake_slack.socket_send(
                "events_api", event_callback(mention("hi", ts="1700000100.000100"))
            )
            assert ack["envelope_id"].startswith("env-")
            await fake_slack.wait_for("chat.postMessage")
            await fake_slack.socket_send("slash_commands", command("help"))
            [helped] = await fake_slack.wait_for("chat.postEphemeral")
            assert "/quitbot end" in helped["text"]
            assert runtime.engine.readiness.platforms() == {"slack": True}  # for /readyz
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        assert runtime.engine.readiness.platforms() == {"slack": False}
    [opened] = [c for c in fake_slack.calls if c.method == "apps.connections.open"]
    assert opened.token == APP_TOKEN
    assert len(fake_anthropic.requests) == 1
