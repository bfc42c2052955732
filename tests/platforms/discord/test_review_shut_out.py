"""A disputed shut-out in a server's review queue, end to end against the fake Discord:
Bob, shut out of Alice's thread, says it was a mistake; a moderator sees whose shut-out it
is and readmits him, and Bob's next message reaches the model again."""

from __future__ import annotations

from platforms.discord import translate
from platforms.discord.app import QuitBot
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.helpers import (
    abusive_turns,
    dm_id,
    opened_thread,
    wait_bot_message,
)
from tests.platforms.discord.test_moderation import answer
from tests.platforms.discord.test_review import moderator, option, resolved


async def bob_disputes_his_shut_out(fake: FakeDiscord, anthropic: FakeAnthropic) -> str:
    """Bob abuses in Alice's thread until he is shut out, then sends the feedback form;
    the thread id."""
    thread_id = await opened_thread(fake, anthropic)
    abusive_turns(anthropic)
    for n, words in enumerate(["you are useless", "idiot", "idiot idiot idiot"]):
        await fake.post(int(thread_id), fake.bob, words)
        await anthropic.wait_requests(2 + 2 * n if n < 2 else 6)
    await wait_bot_message(
        fake, dm_id(fake, fake.bob), lambda m: "can no longer take part" in m["content"]
    )
    return thread_id


async def test_a_disputed_shut_out_is_listed_and_readmit_lets_him_back(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id = await bob_disputes_his_shut_out(fake, fake_anthropic)
    conversation = await bot.flows.engine.find(translate.thread_key(int(thread_id)))
    assert conversation is not None
    mod = {"author": fake.alice}  # a moderator of the server (by permissions)
    empty = await answer(fake, await moderator(fake, "review", **mod))
    assert "Nothing to review" in empty["content"]  # undisputed: not in the queue

    submitted = await fake.submit(
        translate.feedback_modal_id(conversation.id),
        translate.FEEDBACK_FIELD,
        "I was quoting a film",
        channel_id=fake.channel_id,
        author=fake.bob,
    )
    await fake.followup(submitted)
    listed = await answer(fake, await moderator(fake, "review", **mod))
    queue = listed["embeds"][0]["description"]
    assert "1 to review" in listed["content"] and conversation.id in queue
    assert f"<@{fake.bob['id']}> shut out: persistent_abuse" in queue
    assert "I was quoting a film" in queue and "idiot idiot idiot" in queue

    asked = await moderator(
        fake,
        "review-resolve",
        option("conversation", conversation.id),
        option("decision", "readmit"),
        option("note", "a film quote"),
        **mod,
    )
    assert "Readmitted the person shut out of" in await resolved(fake, asked)
    _, events = await bot.flows.engine.record(conversation.id)
    assert events[-2].detail["decision"] == "readmitted"
    assert events[-2].detail["moderator_id"] == str(fake.alice["id"])
    emptied = await answer(fake, await moderator(fake, "review", **mod))
    assert "Nothing to review" in emptied["content"]
    fake_anthropic.add(text("Welcome back, Bob."))
    await fake.post(int(thread_id), fake.bob, "sorry about that")
    await wait_bot_message(fake, thread_id, lambda m: m["content"] == "Welcome back, Bob.")
