"""examples/discord_roll_bot.py: someone's own discord.py bot with quitbot embedded, the real
discord.py against the fake Discord and the fake Messages API, in one process."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

import quitbot
from tests.examples.receiver import EXAMPLES, load_example
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.conftest import running_host
from tests.platforms.discord.helpers import (
    after_end,
    buttons,
    converse_until_ended,
    opened_thread,
    wait_bot_message,
)
from tests.processes import clean_env, reaching_discord, start_quitbot

QUITBOTS = {"chat", "new", "end", "quitbot", "Branch from here"}


@pytest_asyncio.fixture
async def roll_bot(fake_discord: FakeDiscord, settings: quitbot.Settings) -> AsyncIterator[Any]:
    async with quitbot.build_runtime(settings) as runtime:
        bot = load_example("discord_roll_bot").RollBot(runtime, random.Random(7))
        async with running_host(fake_discord, bot, settings):
            yield bot


async def _slash_roll(fake: FakeDiscord, dice: str) -> str:
    option = {"name": "dice", "type": 3, "value": dice}
    interaction = await fake.slash("roll", [option], channel_id=fake.channel_id, author=fake.bob)
    return str((await fake.response(interaction)).body["data"]["content"])


async def test_the_hosts_roll_and_quitbots_conversation_are_both_answered(
    roll_bot: Any, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    [synced] = fake.calls_to("PUT", r"/applications/\d+/commands")  # by the host, once
    assert {c["name"] for c in synced.body} == {"roll", *QUITBOTS}

    assert (await _slash_roll(fake, "2d6")).startswith("2d6: ")
    thread_id = await opened_thread(fake, fake_anthropic)
    # The host's prefix command, even in quitbot's thread, is the host's alone.
    completed = roll_bot.wait_for("command_completion", timeout=10)
    await fake.post(int(thread_id), fake.alice, "!roll 3d4")
    await completed
    await wait_bot_message(fake, thread_id, lambda m: m["content"].startswith("3d4: "))
    assert len(fake_anthropic.requests) == 1
    [reply] = [
        c for c in fake.calls_to("POST", rf"/channels/{thread_id}/messages")
        if c.body.get("content") == "Hello."
    ]  # fmt: skip
    # The host's client leaves allowed_mentions unset, and Discord then pings whatever the
    # content mentions; `parse: []` suppresses every mention (the allowed mentions object,
    # https://discord.com/developers/docs/resources/message#allowed-mentions-object).
    assert reply.body["allowed_mentions"]["parse"] == []


async def test_an_end_in_quitbots_thread_leaves_roll_working(
    roll_bot: Any, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id = await converse_until_ended(fake, fake_anthropic)
    meta = fake.channels[int(thread_id)]["thread_metadata"]
    await fake.wait_until(lambda: meta["archived"] and meta["locked"])

    assert (await _slash_roll(fake, "1d20")).startswith("1d20: ")
    # quitbot's own buttons still work in the host's bot: a new conversation from the offer.
    offer = await after_end(fake, fake.alice)
    new = await fake.press(f"quitbot:new:{fake.channel_id}", message=offer, author=fake.alice)
    assert (await fake.response(new)).body["type"] == 5
    opened = await fake.wait_call("POST", rf"/channels/{fake.channel_id}/threads")
    assert opened.response["id"] in (await fake.followup(new)).body["content"]


async def test_the_hosts_button_is_the_hosts(
    roll_bot: Any, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    # discord.py keeps the view once the message is sent: the command has completed then.
    completed = roll_bot.wait_for("command_completion", timeout=10)
    await fake.post(fake.channel_id, fake.alice, "!roll 2d6")
    await completed
    rolled = await wait_bot_message(fake, fake.channel_id, lambda m: bool(buttons(m)))
    assert buttons(rolled) == ["dice:again"]

    pressed = await fake.press("dice:again", message=rolled, author=fake.bob)
    answered = (await fake.response(pressed, ok_only=False)).body
    assert answered["type"] == 4 and answered["data"]["content"].startswith("2d6: ")
    callbacks = [c for c in fake.calls if c.path.startswith(f"/interactions/{pressed['id']}/")]
    assert len(callbacks) == 1  # quitbot did not answer it too
    assert fake_anthropic.requests == []


def test_the_guide_shows_the_examples_own_code() -> None:
    guide = (EXAMPLES.parent / "docs" / "build-on-quitbot.md").read_text()
    section = guide[guide.index("## 7. Embed quitbot in your discord.py bot") :]
    shown = section.split("```python\n", 1)[1].split("```", 1)[0]
    example = (EXAMPLES / "discord_roll_bot.py").read_text()
    for part in shown.split("\n\n\n"):
        assert part.strip() in example


async def test_run_as_a_script_it_reaches_the_fakes_from_the_settings_alone(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    """The guide's "outside pytest" paragraph: QUITBOT_DISCORD_API_BASE and _GATEWAY_URL,
    applied by `configure_endpoints(settings)` in the example's main."""
    async with FakeDiscord() as fake:
        env = clean_env(tmp_path, fake_anthropic, **reaching_discord(fake))
        process = await start_quitbot(tmp_path, env, script=EXAMPLES / "discord_roll_bot.py")
        try:
            await fake.wait_until(lambda: fake.guild_creates > 0)
            assert (await _slash_roll(fake, "1d4")).startswith("1d4: ")
        finally:
            process.terminate()
            await process.wait()
        assert fake.unexpected == []
