"""A shared place on Discord, end to end: Bob abuses in the thread Alice started. Only Bob
is shut out (told by DM, named in the mod-log); Alice's thread stays open, her daily limit
untouched; and nobody but the people concerned can say an end was a mistake."""

from __future__ import annotations

from pathlib import Path

from platforms.discord import translate
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.conftest import running_bot, settings_for
from tests.platforms.discord.helpers import (
    abusive_turns,
    bot_messages,
    converse_until_ended,
    dm_id,
    opened_thread,
    wait_bot_message,
)


async def test_someone_else_abusing_in_a_thread_is_shut_out_and_the_thread_goes_on(
    tmp_path: Path, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    settings = settings_for(
        tmp_path, fake_anthropic, fake, modlog_channel_id=fake.channel_id
    ).model_copy(update={"max_ended_per_day": 1})
    async with running_bot(fake, settings) as bot:
        thread_id = await opened_thread(fake, fake_anthropic)  # Alice's
        abusive_turns(fake_anthropic)
        for n, words in enumerate(["you are useless", "idiot", "idiot idiot idiot"]):
            await fake.post(int(thread_id), fake.bob, words)
            await fake_anthropic.wait_requests(2 + 2 * n if n < 2 else 6)
        bobs_dm = dm_id(fake, fake.bob)
        shut = await wait_bot_message(
            fake, bobs_dm, lambda m: "can no longer take part" in m["content"]
        )
        assert "abusive" in shut["content"]
        warned = [m for m in bot_messages(fake, bobs_dm) if m["embeds"]]
        assert warned and warned[0]["embeds"][0]["title"] == "Warning"
        assert "Warning" not in str(bot_messages(fake, thread_id))  # not Alice's warning
        logged = await wait_bot_message(
            fake,
            fake.channel_id,
            lambda m: any("shut out" in e.get("title", "") for e in m["embeds"]),
        )
        assert f"<@{fake.bob['id']}>" in str(logged["embeds"][0]["fields"])
        assert not fake.calls_to("PATCH", rf"/channels/{thread_id}")  # not archived or locked

        conversation = await bot.flows.engine.find(translate.thread_key(int(thread_id)))
        assert conversation is not None and not conversation.ladder.ended
        assert conversation.ladder.redirects == 0 and not conversation.ladder.warned
        fake_anthropic.add(text("Sure, where to?"))
        await fake.post(int(thread_id), fake.alice, "anyway, help me plan a trip")
        await wait_bot_message(fake, thread_id, lambda m: m["content"] == "Sure, where to?")
        asked = len(fake_anthropic.requests)
        await fake.post(int(thread_id), fake.bob, "let me back in")
        await wait_bot_message(fake, bobs_dm, lambda m: "won't reply to you here" in m["content"])
        assert len(fake_anthropic.requests) == asked  # never reaches the model

        engine = bot.flows.engine
        assert await engine.may_start("discord", str(fake.alice["id"]))
        assert not await engine.may_start("discord", str(fake.bob["id"]))


async def test_a_bystander_cannot_say_someone_elses_end_was_a_mistake(
    tmp_path: Path, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    async with running_bot(fake, settings_for(tmp_path, fake_anthropic, fake)) as bot:
        thread_id = await converse_until_ended(fake, fake_anthropic)  # Alice earned it
        conversation = await bot.flows.engine.find(translate.thread_key(int(thread_id)))
        assert conversation is not None
        submitted = await fake.submit(
            translate.feedback_modal_id(conversation.id),
            translate.FEEDBACK_FIELD,
            "this was a mistake",
            channel_id=fake.channel_id,
            author=fake.bob,
        )
        answer = await fake.followup(submitted)
        assert "Only the person whose conversation it was" in answer.body["content"]
        _, events = await bot.flows.engine.record(conversation.id)
        assert "feedback" not in [e.kind for e in events]
