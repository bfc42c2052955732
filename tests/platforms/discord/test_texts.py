"""The operator's own words on Discord, end to end: the final notice, the buttons' labels
and the way on, as the real discord.py sends them to the fake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.communities import CommunitySettings
from bot.settings import Settings
from bot.texts import TextKey, Texts
from platforms.discord import render
from platforms.discord.app import QuitBot
from tests.conftest import make_settings
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.conftest import discord_settings
from tests.platforms.discord.helpers import opened_thread, wait_bot_message

WORDS = """
end_user_requested = "Done: you wanted to stop here."
refused.not_found = "Nothing of mine lives here."
[discord]
command_gone = "That command retired; try /chat."
thread_name = "Chat: {name}"
started_in = "Over here: {thread}."
end_title = "Finished"
button_end = "Yes, stop it"
button_keep = "No, go on"
button_new = "Begin again"
start_again_dm = "Type /new whenever you like."
"""


def labels(message: dict[str, object]) -> list[str]:
    rows = message["components"]
    assert isinstance(rows, list)
    return [c["label"] for row in rows for c in row["components"]]


@pytest.fixture
def settings(tmp_path: Path, fake_anthropic: FakeAnthropic, fake_discord: FakeDiscord) -> Settings:
    path = tmp_path / "texts.toml"
    path.write_text(WORDS, encoding="utf-8")
    discord = discord_settings(fake_discord)
    return make_settings(tmp_path, fake_anthropic, discord=discord, texts=path)


async def confirmation(fake: FakeDiscord, channel_id: int) -> dict[str, Any]:
    """Alice's /end there: the confirmation shown to her."""
    asked = await fake.slash("end", channel_id=channel_id, author=fake.alice)
    confirm: dict[str, Any] = (await fake.response(asked)).response["resource"]["message"]
    return confirm


async def dm_confirmation(fake: FakeDiscord, anthropic: FakeAnthropic) -> tuple[int, Any]:
    """A conversation in Alice's DM, then her /end: the DM and the confirmation."""
    anthropic.add(text("Hi Alice!"))
    await fake.dm(fake.alice, "hello")
    dm_id = int(fake.dm_channel_of(fake.alice)["id"])
    await wait_bot_message(fake, dm_id, lambda m: m["content"] == "Hi Alice!")
    return dm_id, await confirmation(fake, dm_id)


async def test_the_operator_s_words_show_in_the_end_and_on_the_buttons(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    dm_id, confirm = await dm_confirmation(fake, fake_anthropic)
    assert labels(confirm) == ["Yes, stop it", "No, go on"]
    pressed = await fake.press("quitbot:end", message=confirm, author=fake.alice)
    final = await wait_bot_message(fake, dm_id, lambda m: bool(m["embeds"]))
    [embed] = final["embeds"]
    assert embed["title"] == "Finished"
    assert embed["description"] == "Done: you wanted to stop here.\n\nType /new whenever you like."
    offer = (await fake.followup(pressed)).response
    assert labels(offer) == ["Begin again", "This was a mistake"]


async def test_a_server_s_own_label_beats_the_operator_s_there_only(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    own = CommunitySettings(texts={"discord.button_end": "End it for good"})
    await bot.flows.set_community_settings(str(fake.guild_id), own, "mod", is_moderator=True)
    thread_id = await opened_thread(fake, fake_anthropic)
    assert labels(await confirmation(fake, int(thread_id))) == ["End it for good", "No, go on"]
    # A DM belongs to no server: the operator's words.
    _, confirm = await dm_confirmation(fake, fake_anthropic)
    assert labels(confirm) == ["Yes, stop it", "No, go on"]


async def refusal_to_end(fake: FakeDiscord, channel_id: int) -> str:
    """Alice's /end where no conversation is: what she is told, privately."""
    asked = await fake.slash("end", channel_id=channel_id, author=fake.alice)
    answer = (await fake.response(asked)).body["data"]
    assert answer["flags"] & 64
    return str(answer["content"])


async def test_a_refusal_is_in_the_operator_s_words_and_a_server_s_own_beats_it_there_only(
    bot: QuitBot, fake_discord: FakeDiscord
) -> None:
    fake = fake_discord
    dm_id = int(fake.dm_channel_of(fake.alice)["id"])
    assert await refusal_to_end(fake, fake.channel_id) == "Nothing of mine lives here."
    own = CommunitySettings(texts={"refused.not_found": "No conversation on this server here."})
    await bot.flows.set_community_settings(str(fake.guild_id), own, "mod", is_moderator=True)
    assert await refusal_to_end(fake, fake.channel_id) == "No conversation on this server here."
    # A DM belongs to no server: the operator's words.
    assert await refusal_to_end(fake, dm_id) == "Nothing of mine lives here."


async def test_a_command_failure_is_answered_in_the_operator_s_words(
    bot: QuitBot, fake_discord: FakeDiscord
) -> None:
    fake = fake_discord
    for name, options in [
        ("retired", []),
        ("quitbot", [{"type": 1, "name": "old", "options": []}]),
    ]:
        asked = await fake.slash(name, options, channel_id=fake.channel_id, author=fake.alice)
        answer = (await fake.response(asked)).body["data"]
        assert answer["content"] == "That command retired; try /chat." and answer["flags"] & 64


async def test_a_fresh_start_is_named_and_pointed_to_in_the_operator_s_words(
    bot: QuitBot, fake_discord: FakeDiscord
) -> None:
    fake = fake_discord
    asked = await fake.slash("new", channel_id=fake.channel_id, author=fake.alice)
    created = await fake.wait_call("POST", rf"/channels/{fake.channel_id}/threads")
    assert created.body["name"].startswith("Chat: ")
    answer = await fake.followup(asked)
    assert answer.body["content"] == f"Over here: <#{created.response['id']}>."


def test_a_value_in_a_template_stays_plain_and_only_the_bot_s_mention_is_markup() -> None:
    words = Texts({"discord.opening": "Started by {mention}."})
    hostile = "@everyone **bold** <@123456789012345678> {mention}"
    shown = words.get(TextKey.DISCORD_OPENING, render.escape, mention=hostile)
    assert shown.startswith("Started by ") and shown.endswith(" {mention}.")  # not read again
    for markup in ("@everyone", "**", "<@123456789012345678>"):
        assert markup not in shown
    assert render.opening("42", words).content == "Started by <@42>."
