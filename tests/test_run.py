"""`quitbot run` as an operator starts it: a real process, every configured platform, SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import platforms.slack as slack_platform
from bot.app import build_runtime
from bot.ports import PlatformUnavailable
from platforms.slack import run
from platforms.slack.listener import SWITCH_SECONDS, prompt_switches
from tests.conftest import make_settings
from tests.fakes.anthropic import FakeAnthropic, hold, text
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.platforms.slack.conftest import slack_settings
from tests.processes import (
    clean_env,
    free_port,
    reaching_discord,
    reaching_slack_socket,
    read_until,
    start_quitbot,
)


async def test_run_serves_discord_and_slack_then_stops_cleanly_on_sigterm(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    async with FakeDiscord() as discord, FakeSlack() as slack:
        env = clean_env(
            tmp_path,
            fake_anthropic,
            **reaching_discord(discord),
            **reaching_slack_socket(slack),
        )
        process = await start_quitbot(tmp_path, env, "run")
        try:
            await discord.wait_until(lambda: discord.guild_creates == 1)
            await slack.wait_socket_open()
            fake_anthropic.add(text("Hello from a real process."))
            opening = await discord.post(
                discord.channel_id, discord.alice, f"<@{discord.bot_id}> hi", mention_bot=True
            )
            await discord.wait_until(
                lambda: any(
                    m["content"] == "Hello from a real process."
                    for m in discord.messages.values()
                    if m["channel_id"] == opening["id"]
                )
            )
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        assert "Traceback" not in err.decode()
        assert discord.unexpected == [] and slack.unexpected == []


async def test_a_reply_under_way_at_sigterm_is_finished_and_kept_while_slack_has_stopped(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    """Slack stops at once on SIGTERM; the Discord reply still streaming must get its
    grace, and its turn must be committed before the store closes (it once was not: the
    platforms' runs were gathered, and the first to stop let the runtime close)."""
    release = asyncio.Event()
    async with FakeDiscord() as discord, FakeSlack() as slack:
        env = clean_env(
            tmp_path,
            fake_anthropic,
            **reaching_discord(discord),
            **reaching_slack_socket(slack),
        )
        process = await start_quitbot(tmp_path, env, "run")
        assert process.stderr is not None
        seen: list[str] = []
        try:
            await discord.wait_until(lambda: discord.guild_creates == 1)
            await slack.wait_socket_open()
            fake_anthropic.add(hold(text("Finished after the signal."), midway=release))
            await discord.post(
                discord.channel_id, discord.alice, f"<@{discord.bot_id}> hi", mention_bot=True
            )
            await fake_anthropic.wait_requests(1)
        finally:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(read_until(process.stderr, "replies under way", seen), 30)
        release.set()
        _, rest = await process.communicate()
        err = "".join(seen) + rest.decode()
        assert process.returncode == 0, err
        assert "Traceback" not in err and "store is closed" not in err
        assert any(m["content"] == "Finished after the signal." for m in discord.messages.values())
    settings = make_settings(tmp_path, fake_anthropic, database_url=env["QUITBOT_DATABASE_URL"])
    async with build_runtime(settings) as runtime:
        assert await runtime.store.pending(datetime.now(UTC)) == []


async def test_run_with_a_refused_discord_token_says_so_plainly(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    async with FakeDiscord() as discord:
        env = clean_env(
            tmp_path,
            fake_anthropic,
            **{**reaching_discord(discord), "DISCORD_TOKEN": "not-the-token"},
        )
        process = await start_quitbot(tmp_path, env, "run")
        _, err = await process.communicate()
    assert process.returncode == 1
    assert "quitbot: Discord refused DISCORD_TOKEN" in err.decode()
    assert "Traceback" not in err.decode() and "voice will NOT be supported" not in err.decode()


async def test_slack_refusing_the_bot_token_stops_start_up_plainly(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    async with FakeSlack() as slack:
        slack.fail("auth.test", "invalid_auth")
        settings = make_settings(tmp_path, fake_anthropic, slack=slack_settings(slack))
        async with build_runtime(settings) as runtime:
            with pytest.raises(
                PlatformUnavailable, match=r"Slack refused SLACK_BOT_TOKEN \(invalid_auth\)"
            ):
                await run(runtime.engine, settings)


async def test_slack_http_run_passes_the_gil_promptly_while_it_serves_and_not_after(
    tmp_path: Path, fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listener's acknowledgements wait on the GIL (`prompt_switches`); the interval is
    quitbot's own run's, given back when it stops."""
    before = sys.getswitchinterval()
    seen: list[float] = []

    async def serving(bot: object) -> None:  # what `_ready` would do: serve until stopped
        seen.append(sys.getswitchinterval())

    monkeypatch.setattr(slack_platform, "_ready", serving)
    async with FakeSlack() as slack:
        settings = make_settings(
            tmp_path,
            fake_anthropic,
            slack=slack_settings(slack, http_host="127.0.0.1", http_port=free_port()),
        )
        async with build_runtime(settings) as runtime:
            await run(runtime.engine, settings)
    # CPython keeps the interval in whole microseconds: 0.0002 reads back as 0.000199...
    assert seen == [pytest.approx(min(before, SWITCH_SECONDS))]
    assert sys.getswitchinterval() == before


def test_prompt_switches_keeps_a_shorter_interval_and_leaves_other_ways_alone() -> None:
    before = sys.getswitchinterval()
    with prompt_switches(False):
        assert sys.getswitchinterval() == before
    sys.setswitchinterval(SWITCH_SECONDS / 2)
    shorter = sys.getswitchinterval()  # as CPython keeps it, in whole microseconds
    try:
        with prompt_switches(True):
            assert sys.getswitchinterval() == shorter
    finally:
        sys.setswitchinterval(before)
