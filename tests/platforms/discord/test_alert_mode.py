"""Alert-only mode on Discord, end to end: where the ladder would end, nothing is closed,
the mod-log gets an alert, and `would_end` is on the record."""

from __future__ import annotations

from pathlib import Path

from platforms.discord import translate
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.conftest import running_bot, settings_for
from tests.platforms.discord.helpers import (
    ENDED_TITLE,
    abusive_turns,
    bot_messages,
    mention,
    titles,
    wait_bot_message,
)


async def test_where_it_would_end_the_mod_log_is_alerted_and_the_thread_stays_open(
    tmp_path: Path, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    settings = settings_for(
        tmp_path, fake_anthropic, fake, modlog_channel_id=fake.channel_id
    ).model_copy(update={"enforcement": "alert"})
    async with running_bot(fake, settings) as bot:
        abusive_turns(fake_anthropic)
        fake_anthropic.add(text("Shall we talk about something else?"))  # not ended: goes on
        thread_id = (await mention(fake, "you are useless"))["id"]
        await wait_bot_message(fake, thread_id, lambda m: "Let's move on." in m["content"])
        await fake.post(int(thread_id), fake.alice, "you are useless, idiot")
        await wait_bot_message(fake, thread_id, lambda m: "Warning" in str(m["embeds"]))
        await fake.post(int(thread_id), fake.alice, "idiot idiot idiot")
        alert = await wait_bot_message(
            fake, fake.channel_id, lambda m: any("Alert" in e.get("title", "") for e in m["embeds"])
        )
        assert "persistent_abuse" in str(alert["embeds"][0]["fields"])
        await wait_bot_message(fake, thread_id, lambda m: "something else?" in m["content"])
        assert thread_id in alert["embeds"][0]["description"]
        assert ENDED_TITLE not in titles(fake, thread_id)
        assert not fake.calls_to("PATCH", rf"/channels/{thread_id}")  # neither archived nor locked
        warning = next(m for m in bot_messages(fake, thread_id) if m["embeds"])
        assert "end" not in warning["embeds"][0]["description"]  # nobody is told it will end
        conversation = await bot.flows.engine.find(translate.thread_key(int(thread_id)))
        assert conversation is not None and not conversation.ladder.ended
        _, events = await bot.flows.engine.record(conversation.id)
        assert "would_end" in [e.kind for e in events] and "end" not in [e.kind for e in events]
