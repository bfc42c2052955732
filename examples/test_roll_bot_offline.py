"""discord_roll_bot.py tested with no token and no internet: the real discord.py and
anthropic SDKs talk to quitbot's fakes of Discord and of Claude's Messages API on 127.0.0.1.

    pip install pytest pytest-asyncio     # and asyncio_mode = "auto" (see the guide, 10)
    pytest test_roll_bot_offline.py
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from discord_roll_bot import DiceRoll, RollBot, roll_dice, tools

import quitbot
from quitbot.testing import FakeAnthropic, FakeDiscord
from quitbot.testing.anthropic import text, tool


@pytest_asyncio.fixture
async def claude() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake
        assert fake.unexpected == []  # no request the real API would have refused


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake
        assert fake.unexpected == []  # no call the fake Discord does not know


@pytest_asyncio.fixture
async def bot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claude: FakeAnthropic, server: FakeDiscord
) -> AsyncIterator[RollBot]:
    for name, value in {
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_BASE_URL": claude.base_url,
        "DISCORD_TOKEN": server.token,
        "QUITBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'quitbot.db'}",
        "QUITBOT_TOOLS": "roll_dice",
    }.items():
        monkeypatch.setenv(name, value)
    settings = quitbot.load_settings(env_file=None)
    quitbot.discord.configure_endpoints(api_base=server.api_base, gateway_url=server.gateway_url)
    async with (
        quitbot.build_runtime(settings, tools=tools()) as runtime,
        RollBot(runtime, random.Random(7)) as bot,
    ):
        started = asyncio.create_task(bot.start(server.token))
        await server.wait_until(lambda: server.guild_creates > 0)  # connected, server known
        yield bot
        await bot.close()
        await started


async def test_the_slash_command_is_answered_without_claude(
    bot: RollBot, server: FakeDiscord, claude: FakeAnthropic
) -> None:
    option = {"name": "dice", "type": 3, "value": "2d6"}
    asked = await server.slash("roll", [option], channel_id=server.channel_id, author=server.bob)
    answer = (await server.response(asked)).body["data"]["content"]
    assert answer.startswith("2d6: ")
    assert claude.requests == []


async def test_claude_rolls_with_the_tool_in_a_conversation(
    bot: RollBot, server: FakeDiscord, claude: FakeAnthropic
) -> None:
    # What the fake Claude answers, in order: a call of our tool, then the reply.
    claude.add(tool("roll_dice", {"dice": "1d20"}), text("A natural twenty!"))
    mention = f"<@{server.bot_id}> roll me a d20"
    asked = await server.post(server.channel_id, server.alice, mention, mention_bot=True)
    thread = asked["id"]  # quitbot answers in a thread started from the message
    await server.wait_until(
        lambda: any(
            m["channel_id"] == thread and m["content"] == "A natural twenty!"
            for m in server.messages.values()
        )
    )
    assert "roll_dice" in [offered["name"] for offered in claude.requests[0]["tools"]]
    [result] = [
        block
        for block in claude.requests[1]["messages"][-1]["content"]
        if block["type"] == "tool_result"
    ]
    assert result["content"].startswith("1d20: ") and not result.get("is_error")


async def test_the_tool_alone() -> None:
    context = quitbot.ToolContext("c1", "alice", "", "console")
    assert str(await roll_dice(context, DiceRoll(dice="2d6"))).startswith("2d6: ")
    with pytest.raises(quitbot.ToolFailure, match="Roll like"):
        await roll_dice(context, DiceRoll(dice="0d0"))
