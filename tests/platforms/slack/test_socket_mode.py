"""`run` in Socket Mode: the real slack_sdk client connects to the fake's WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import aiohttp
import pytest

from bot.app import Runtime, build_runtime
from bot.health import health_app, serving
from bot.metrics import Metrics
from bot.ports import PlatformUnavailable
from bot.readiness import Readiness
from bot.settings import Settings
from platforms.slack import run
from tests.conftest import make_settings
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, WAIT, FakeSlack, Lost
from tests.fakes.slack_requests import command, event_callback, mention
from tests.platforms.slack.conftest import slack_settings

# Short, so that the SDK's monitor notices a dropped connection within the test's wait; not
# shorter, or a busy machine would miss the SDK's pongs and reconnect on its own.
PING_SECONDS = 1.0


class WatchedReadiness(Readiness):
    """A Readiness a test can wait on, instead of sleeping."""

    def __init__(self, platforms: Iterable[str]) -> None:
        super().__init__(platforms)
        self._changed = asyncio.Event()

    def set(self, platform: str, connected: bool) -> None:
        super().set(platform, connected)
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, connected: bool) -> None:
        async with asyncio.timeout(WAIT):
            while self.ready != connected:
                await self._changed.wait()


@pytest.fixture
def socket_settings(
    tmp_path: Path, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> Settings:
    return make_settings(tmp_path, fake_anthropic, slack=slack_settings(fake_slack, mode="socket"))


async def answered(fake_slack: FakeSlack, fake_anthropic: FakeAnthropic, ts: str) -> None:
    """A mention sent now over the newest connection is answered."""
    fake_anthropic.add(text("Answered."))
    await fake_slack.socket_send("events_api", event_callback(mention("still there?", ts=ts)))
    await fake_slack.wait_for("chat.postMessage")
    assert len(fake_anthropic.requests) == 1


@contextlib.asynccontextmanager
async def running_slack(
    settings: Settings, readiness: Readiness, *, ping_interval: float = PING_SECONDS
) -> AsyncIterator[Runtime]:
    async with build_runtime(settings, readiness=readiness) as runtime:
        task = asyncio.create_task(run(runtime.engine, settings, ping_interval=ping_interval))
        try:
            yield runtime
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


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


@pytest.mark.parametrize(
    ("token", "error"),
    [("xapp-1-wrong", "invalid_auth"), (BOT_TOKEN, "not_allowed_token_type")],
)
async def test_a_refused_app_token_stops_the_run_saying_what_to_do(
    tmp_path: Path, fake_anthropic: FakeAnthropic, token: str, error: str
) -> None:
    """slack_sdk's connect retries every failure forever; one refusal is enough to say so."""
    async with FakeSlack() as fake:  # not the fixture: this test's call is refused on purpose
        slack = slack_settings(fake, mode="socket", SLACK_APP_TOKEN=token)
        settings = make_settings(tmp_path, fake_anthropic, slack=slack)
        async with build_runtime(settings) as runtime, asyncio.timeout(WAIT):
            with pytest.raises(PlatformUnavailable, match=rf"SLACK_APP_TOKEN \({error}\)"):
                await run(runtime.engine, settings)
            assert runtime.engine.readiness.platforms() == {"slack": False}
        assert fake.unexpected == [f"apps.connections.open with token {token!r}"]
        assert fake.connections == 0


async def test_the_fake_takes_the_app_token_from_the_header_only() -> None:
    """Slack's rules for apps.connections.open, as the fake keeps them: no token is
    not_authed, and the app token as a POST parameter is refused (invalid_auth), not read."""
    async with FakeSlack() as fake, aiohttp.ClientSession() as session:
        url = f"{fake.base_url}apps.connections.open"
        async with session.post(url) as answer:
            assert (await answer.json())["error"] == "not_authed"
        async with session.post(url, data={"token": APP_TOKEN}) as answer:
            assert (await answer.json())["error"] == "invalid_auth"
        headers = {"Authorization": f"Bearer {APP_TOKEN}"}
        async with session.post(url, headers=headers) as answer:
            assert (await answer.json())["ok"] is True


async def test_slack_failing_for_a_moment_is_retried_not_taken_for_a_refusal(
    socket_settings: Settings, fake_slack: FakeSlack
) -> None:
    fake_slack.fail("apps.connections.open", "internal_error", times=1)
    readiness = WatchedReadiness(["slack"])
    async with running_slack(socket_settings, readiness):
        await readiness.until(True)
    assert len(fake_slack.calls_to("apps.connections.open")) == 2 and fake_slack.connections == 1


@pytest.mark.parametrize("how", ["drop", "close", "silent"])
async def test_readyz_follows_a_connection_that_is_lost_and_comes_back(
    socket_settings: Settings, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic, how: Lost
) -> None:
    readiness = WatchedReadiness(["slack"])
    async with (
        running_slack(socket_settings, readiness) as runtime,
        serving(health_app(readiness, runtime.store, Metrics()), "127.0.0.1", 0) as port,
        aiohttp.ClientSession() as http,
    ):

        async def readyz() -> int:
            async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                return response.status

        await readiness.until(True)
        assert await readyz() == 200
        fake_slack.hold_connections = asyncio.Event()  # the reconnect waits for the test
        await fake_slack.lose(how)
        await fake_slack.wait_for("apps.connections.open", count=2)
        await readiness.until(False)
        assert await readyz() == 503
        fake_slack.hold_connections.set()
        await fake_slack.wait_connections(2)
        await readiness.until(True)
        assert await readyz() == 200
        await answered(fake_slack, fake_anthropic, ts="1700000100.000200")


@pytest.mark.parametrize("reason", ["refresh_requested", "warning"])
async def test_readiness_follows_slack_replacing_a_connection(
    socket_settings: Settings, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic, reason: str
) -> None:
    readiness = WatchedReadiness(["slack"])
    # Slack's disconnect message, not the SDK's ping, starts the replacement.
    async with running_slack(socket_settings, readiness, ping_interval=10.0):
        await readiness.until(True)
        fake_slack.hold_connections = asyncio.Event()
        await fake_slack.disconnect(reason)
        await fake_slack.wait_for("apps.connections.open", count=2)
        await readiness.until(False)
        fake_slack.hold_connections.set()
        await fake_slack.wait_connections(2)
        await readiness.until(True)
        await answered(fake_slack, fake_anthropic, ts="1700000100.000300")


async def test_socket_mode_turned_off_leaves_slack_not_ready(
    socket_settings: Settings, fake_slack: FakeSlack
) -> None:
    readiness = WatchedReadiness(["slack"])
    async with running_slack(socket_settings, readiness, ping_interval=10.0):
        await readiness.until(True)
        await fake_slack.disconnect("link_disabled")
        await fake_slack.wait_for("apps.connections.open", count=2)
        await readiness.until(False)
        assert fake_slack.connections == 1
    assert fake_slack.results_of("apps.connections.open")[-1]["ok"] is False
