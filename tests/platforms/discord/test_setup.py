"""Operating it: attachments, doctor, the invite URL, command sync targets, sharding."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import discord
import pytest
from pydantic import SecretStr

from bot import operator
from bot.app import build_runtime
from bot.settings import Settings
from platforms.discord import doctor, invite_url, run
from platforms.discord.app import ShardedQuitBot, build_bot
from platforms.discord.app import intents as bot_intents
from platforms.discord.permissions import needed
from tests.fakes.anthropic import FakeAnthropic, hold, text
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.conftest import running_bot, settings_for
from tests.platforms.discord.helpers import wait_bot_message

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


async def test_text_is_read_up_to_the_limit_images_go_to_claude_others_are_named(
    tmp_path: Path, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    settings = settings_for(tmp_path, fake_anthropic, fake, max_attachment_bytes=10)
    async with running_bot(fake, settings):
        files = [
            fake.add_file("notes.md", "text/markdown; charset=utf-8", b"0123456789ABCDEF"),
            fake.add_file("cat.png", "image/png", PNG),
            fake.add_file("tool.exe", "application/x-msdownload", b"MZ" * 50),
        ]
        fake_anthropic.add(text("Got them."))
        opening = await fake.post(
            fake.channel_id,
            fake.alice,
            f"<@{fake.bot_id}> look",
            mention_bot=True,
            attachments=files,
        )
        await wait_bot_message(fake, opening["id"], lambda m: m["content"] == "Got them.")
    content = fake_anthropic.requests[0]["messages"][-1]["content"]
    images = [b for b in content if b["type"] == "image"]
    words = " ".join(b.get("text", "") for b in content)
    assert images and images[0]["source"]["data"] == base64.b64encode(PNG).decode()
    assert "0123456789" in words and "ABCDEF" not in words and "truncated" in words
    assert "tool.exe" in words and "MZMZ" not in words
    fetched = [c for c in fake.calls if "attachments" in c.path]
    assert fetched == []  # files come from the CDN address, not the REST API


async def test_doctor_checks_token_intent_and_permissions(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    async with FakeDiscord() as fake:
        good = await doctor(settings_for(tmp_path, fake_anthropic, fake))
        assert all(ok for ok, _ in good) and len(good) == 3
    async with FakeDiscord(message_content_intent=False) as fake:
        checks = await doctor(settings_for(tmp_path, fake_anthropic, fake))
        [intent] = [line for ok, line in checks if not ok]
        assert "Message Content intent is off" in intent and "privileged" in intent
    async with FakeDiscord() as fake:
        settings = settings_for(tmp_path, fake_anthropic, fake)
        settings.discord.token = SecretStr("not-the-token")
        [(ok, line)] = await doctor(settings)
        assert not ok and "rejected" in line


async def test_doctor_warns_without_manage_threads_and_still_exits_0(
    tmp_path: Path, fake_anthropic: FakeAnthropic, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeDiscord(bot_can_manage_threads=False) as fake:
        code = await operator.doctor(settings_for(tmp_path, fake_anthropic, fake))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "WARN discord: in server 'Test Server' I am missing Manage Threads" in out
    assert "FAIL" not in out


async def test_invite_url_asks_for_exactly_the_needed_permissions(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    async with FakeDiscord() as fake:
        url = await invite_url(settings_for(tmp_path, fake_anthropic, fake))
    query = parse_qs(urlparse(url).query)
    assert query["client_id"] == [str(fake.app_id)]
    assert query["scope"] == ["bot applications.commands"]
    granted = discord.Permissions(int(query["permissions"][0]))
    assert granted == needed()
    assert granted.manage_threads and granted.create_public_threads
    assert not (granted.administrator or granted.manage_messages or granted.mention_everyone)


async def test_commands_sync_to_the_development_server_when_set(
    tmp_path: Path, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    settings = settings_for(tmp_path, fake_anthropic, fake, dev_guild_id=fake.guild_id)
    async with running_bot(fake, settings):
        synced = await fake.wait_call(
            "PUT", rf"/applications/{fake.app_id}/guilds/{fake.guild_id}/commands"
        )
    names = {c["name"] for c in synced.body}
    assert names == {"chat", "new", "end", "quitbot", "Branch from here"}
    assert not fake.calls_to("PUT", rf"/applications/{fake.app_id}/commands")
    assert fake.identifies[0]["intents"] == bot_intents().value


async def test_shard_settings_choose_discord_py_auto_sharding(
    tmp_path: Path, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    settings: Settings = settings_for(tmp_path, fake_anthropic, fake, shard_count=1)
    async with running_bot(fake, settings) as bot:
        assert isinstance(bot, ShardedQuitBot)
        fake_anthropic.add(text("Sharded hello."))
        opening = await fake.post(
            fake.channel_id, fake.alice, f"<@{fake.bot_id}> hi", mention_bot=True
        )
        await wait_bot_message(fake, opening["id"], lambda m: m["content"] == "Sharded hello.")
    assert fake.identifies[0]["shard"] == [0, 1]
    plain = build_bot(bot.flows.engine, settings_for(tmp_path, fake_anthropic, fake))
    assert not isinstance(plain, ShardedQuitBot)
    await plain.close()


async def test_run_serves_until_cancelled_and_closes_everything(
    tmp_path: Path, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    settings = settings_for(tmp_path, fake_anthropic, fake)
    async with build_runtime(settings) as runtime:
        running = asyncio.create_task(run(runtime.engine, settings))
        await fake.wait_until(lambda: fake.guild_creates == 1)
        fake_anthropic.add(text("Up and running."))
        opening = await fake.post(
            fake.channel_id, fake.alice, f"<@{fake.bot_id}> hi", mention_bot=True
        )
        await wait_bot_message(fake, opening["id"], lambda m: m["content"] == "Up and running.")
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert running.cancelled()


async def test_shutdown_mid_reply_says_so_and_is_recorded(
    tmp_path: Path, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    settings = settings_for(tmp_path, fake_anthropic, fake)
    midway = asyncio.Event()
    async with build_runtime(settings) as runtime:
        running = asyncio.create_task(run(runtime.engine, settings, shutdown_grace=0))
        await fake.wait_until(lambda: fake.guild_creates == 1)
        fake_anthropic.add(hold(text("The first part of a long answer"), midway=midway))
        opening = await fake.post(
            fake.channel_id, fake.alice, f"<@{fake.bot_id}> explain", mention_bot=True
        )
        await fake_anthropic.wait_requests(1)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        midway.set()
        said = [m["content"] for m in fake.messages.values() if m["channel_id"] == opening["id"]]
        assert said and said[-1].endswith(
            "(This reply was interrupted. Please send your message again.)"
        )
        conversations = await runtime.store.list_conversations()
        _, events = await runtime.engine.record(conversations[0].id)
        assert events[-1].kind == "reply_interrupted"


def test_start_up_and_health_do_not_run_doctor() -> None:
    """doctor calls live APIs: a network blip or an optional permission must not keep
    quitbot from starting or mark it unhealthy (issue 10, item 9)."""
    deploy = Path(__file__).parents[3] / "deploy"
    unit = (deploy / "quitbot.service").read_text().splitlines()
    starts = [line for line in unit if line.startswith(("ExecStart", "ExecStartPre"))]
    assert starts and not [line for line in starts if "doctor" in line]
    dockerfile = (deploy / "Dockerfile").read_text().splitlines()
    assert not [line for line in dockerfile if line.startswith("HEALTHCHECK") and "doctor" in line]


async def test_the_bot_reports_itself_ready_once_connected(
    tmp_path: Path, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    settings = settings_for(tmp_path, fake_anthropic, fake_discord)
    async with running_bot(fake_discord, settings) as bot:
        await bot.wait_until_ready()
        for _ in range(100):  # on_ready runs as its own task right after; no time passes
            if bot.flows.engine.readiness.platforms().get("discord"):
                break
            await asyncio.sleep(0)
        assert bot.flows.engine.readiness.platforms() == {"discord": True}
        bot.dispatch("disconnect")  # what discord.py does when the gateway drops
        for _ in range(100):  # the listener runs as its own task; no time passes
            if not bot.flows.engine.readiness.ready:
                break
            await asyncio.sleep(0)
        assert not bot.flows.engine.readiness.ready
