"""Issue #22, "a reply given twice after a kill", with the real process on Discord: `quitbot
run` is SIGKILLed with one thread's reply shown in full (its last edit made) but its turn not
committed, and another thread's reply half-shown. The next run adopts the first (the model is
not asked again) and marks the second as cut short before answering it anew: every message
has exactly one complete answer in its thread and in the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.discord_processes import quitbot_discord
from tests.fakes.anthropic import FakeAnthropic, hold, text
from tests.fakes.discord import FakeDiscord
from tests.held_commit import (
    AT_LENGTH,
    commits_held,
    kill_between_reply_and_commit,
    stored_by_place,
)
from tests.platforms.discord.helpers import bot_messages

# One long first word: the first render goes out with the first delta, the rest held.
LONG = "x" * 300 + " and the rest of a long answer"
CUT = "-# (cut short: answered again below)"


async def test_a_kill_before_the_commit_answers_each_message_once(
    tmp_path: Path, fake_anthropic: FakeAnthropic, database_url: str
) -> None:
    never = asyncio.Event()  # the half thread's model never finishes in the first run
    fake_anthropic.add(hold(text(LONG), midway=never), text("Answered in full."))
    async with FakeDiscord() as discord:

        async def ask(words: str) -> str:
            """A mention that opens a thread (the mention's id is the thread's)."""
            said = f"<@{discord.bot_id}> {words}"
            opening = await discord.post(discord.channel_id, discord.alice, said, mention_bot=True)
            return str(opening["id"])

        async with (
            quitbot_discord(
                tmp_path, fake_anthropic, discord, database_url, QUITBOT_LOG_LEVEL="DEBUG"
            ) as first,
            commits_held(database_url),
        ):
            half, whole = await kill_between_reply_and_commit(first, ask)
        never.set()  # the dead run's model request may end now
        asked_before = len(fake_anthropic.requests)

        fake_anthropic.add(text("A fresh answer."))
        # Its start-up answers what the first kept, before the gateway connects.
        async with quitbot_discord(tmp_path, fake_anthropic, discord, database_url) as second:
            pass

    assert "Traceback" not in second.log, second.log
    assert [m["content"] for m in bot_messages(discord, whole)] == ["Answered in full."]
    shown = [m["content"] for m in bot_messages(discord, half)]
    assert shown[1:] == ["A fresh answer."]
    assert shown[0].startswith("x" * 300) and shown[0].endswith(CUT)
    asked_again = fake_anthropic.requests[asked_before:]
    assert len(asked_again) == 1  # the half thread only
    assert AT_LENGTH in str(asked_again[0]["messages"][-1]["content"])

    stored = await stored_by_place(tmp_path, fake_anthropic, database_url)
    assert {place: (s.messages[-1], s.adopted) for place, s in stored.items()} == {
        whole: (("assistant", "Answered in full."), 1),
        half: (("assistant", "A fresh answer."), 0),
    }
    assert all(len(s.messages) == 2 for s in stored.values())  # one question, one answer
