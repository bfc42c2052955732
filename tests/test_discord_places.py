"""The real `quitbot run` on Discord in a forum and a voice channel's text chat (issue 16,
part 2), against the fake's rules for them (sources in tests/fakes/discord.py): a forum
takes no plain message and a post only with its first message; a voice chat has no threads.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from platforms.discord import render
from tests import fakes
from tests.discord_processes import quitbot_discord
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.helpers import (
    ENDED_TITLE,
    abusive_turns,
    bot_messages,
    buttons,
    wait_bot_message,
)


@pytest.fixture(autouse=True)
def _patient_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real process on a loaded machine answers slower than a bot in the test's loop: the
    fake's waits get a longer guard (against hanging, not a measurement)."""
    monkeypatch.setattr(fakes.discord, "WAIT_SECONDS", 60.0)


async def test_run_in_a_forum_and_a_voice_chat(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'quitbot.db'}"
    async with FakeDiscord() as discord:
        forum_id, voice_id = discord.add_forum("help"), discord.add_voice("Lounge")
        alice = discord.alice
        discord.closed_dms.add(int(alice["id"]))
        async with quitbot_discord(tmp_path, fake_anthropic, discord, url) as run:
            # Alice's post in the forum is a conversation; abused, the model ends it.
            abusive_turns(fake_anthropic)
            words = "you are useless"
            post = await discord.open_post(
                forum_id, alice, words, f"<@{discord.bot_id}> {words}", mention_bot=True
            )
            post_id = int(post["id"])
            await wait_bot_message(discord, post_id, lambda m: "Let's move on." in m["content"])
            await discord.post(post_id, alice, "you are useless, idiot")
            await wait_bot_message(discord, post_id, lambda m: bool(m["embeds"]))
            await discord.post(post_id, alice, "idiot idiot idiot")
            await wait_bot_message(discord, post_id, lambda m: ENDED_TITLE in str(m["embeds"]))
            await discord.wait_until(lambda: discord.channels[post_id]["thread_metadata"]["locked"])

            # Her DMs are closed: the way on is a post of its own in the forum, for her.
            offer_post = await discord.wait_call("POST", rf"/channels/{forum_id}/threads")
            offer = discord.messages[int(offer_post.response["id"])]
            assert offer["content"].startswith(f"<@{alice['id']}>")
            assert len(discord.clickable(offer)) == 2
            pressed = await discord.press(buttons(offer)[0], message=offer, author=alice)
            new_post = await discord.wait_call("POST", rf"/channels/{forum_id}/threads", count=2)
            new_id = new_post.response["id"]
            assert new_id in (await discord.followup(pressed)).body["content"]
            fake_anthropic.add(text("A fresh start."))
            await discord.post(int(new_id), alice, "hello again")
            await wait_bot_message(discord, new_id, lambda m: m["content"] == "A fresh start.")

            # In a voice channel's chat a mention is told plainly where to talk instead.
            requests = len(fake_anthropic.requests)
            await discord.post(voice_id, alice, f"<@{discord.bot_id}> hi", mention_bot=True)
            said = await wait_bot_message(discord, voice_id, lambda m: True)
            assert said["content"] == render.NO_THREADS_HERE
            assert len(fake_anthropic.requests) == requests

        refused = [c.response["code"] for c in discord.calls if c.status >= 400]
        assert refused == [50007], "Discord refused something but the closed DM"
        assert discord.unexpected == []
        assert "Traceback" not in run.log
        assert len(bot_messages(discord, forum_id)) == 0  # nothing plain at the forum itself
