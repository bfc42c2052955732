"""Slash commands and buttons in a server: /chat, /new, /end, branching, feedback."""

from __future__ import annotations

from pathlib import Path

from bot.conversation import ConversationKey
from platforms.discord.app import QuitBot
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.conftest import running_bot, settings_for
from tests.platforms.discord.helpers import (
    ENDED_TITLE,
    after_end,
    buttons,
    converse_until_ended,
    opened_thread,
    wait_bot_message,
)


def option(name: str, value: object, kind: int = 3) -> dict[str, object]:
    return {"name": name, "type": kind, "value": value}


async def test_chat_opens_a_thread_from_the_prompt_and_answers_there(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    fake_anthropic.add(text("Bonjour!"))
    asked = await fake.slash(
        "chat",
        [option("prompt", "say hello in French")],
        channel_id=fake.channel_id,
        author=fake.alice,
    )
    shown = (await fake.response(asked)).response["resource"]["message"]
    assert shown["content"] == "**alice:** say hello in French"
    created = await fake.wait_call(
        "POST", rf"/channels/{fake.channel_id}/messages/{shown['id']}/threads"
    )
    assert created.body["name"] == "say hello in French"
    await wait_bot_message(fake, shown["id"], lambda m: m["content"] == "Bonjour!")
    assert "say hello in French" in str(fake_anthropic.requests[0]["messages"][-1])


async def test_new_opens_an_empty_conversation_thread(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    asked = await fake.slash("new", channel_id=fake.channel_id, author=fake.alice)
    deferred = await fake.response(asked)
    assert deferred.body["type"] == 5 and deferred.body["data"]["flags"] & 64
    answer = await fake.followup(asked)
    created = await fake.wait_call("POST", rf"/channels/{fake.channel_id}/threads")
    thread_id = created.response["id"]
    assert answer.body["flags"] & 64 and thread_id in answer.body["content"]
    greeting = await wait_bot_message(fake, thread_id, lambda m: fake.alice["id"] in m["content"])
    assert "new conversation" in greeting["content"]
    key = ConversationKey("discord", thread_id)
    conversation = await bot.flows.engine.find(key)
    assert conversation is not None and conversation.user_id == fake.alice["id"]

    fake_anthropic.add(text("Sure."))
    await fake.post(int(thread_id), fake.alice, "no mention needed here")
    await wait_bot_message(fake, thread_id, lambda m: m["content"] == "Sure.")


async def test_end_asks_to_confirm_and_only_the_starter_may_end(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id = await opened_thread(fake, fake_anthropic)

    by_bob = await fake.slash("end", channel_id=int(thread_id), author=fake.bob)
    left = (await fake.response(by_bob)).body["data"]  # someone else just leaves
    assert left["flags"] & 64 and "You've left this conversation" in left["content"]
    assert "Only they can end it" in left["content"] and not left.get("components")

    asked = await fake.slash("end", channel_id=int(thread_id), author=fake.alice)
    confirm = (await fake.response(asked)).response["resource"]["message"]
    kept = await fake.press("quitbot:keep", message=confirm, author=fake.alice)
    assert "goes on" in (await fake.response(kept)).body["data"]["content"]
    assert not fake.calls_to("PATCH", rf"/channels/{thread_id}")
    assert fake.clickable(confirm) == []  # "Keep talking" took the buttons away

    asked = await fake.slash("end", channel_id=int(thread_id), author=fake.alice)
    confirm = (await fake.response(asked)).response["resource"]["message"]
    pressed = await fake.press("quitbot:end", message=confirm, author=fake.alice)
    await fake.response(pressed)
    final = await wait_bot_message(fake, thread_id, lambda m: bool(m["embeds"]))
    assert final["embeds"][0]["title"] == ENDED_TITLE
    lock = await fake.wait_call("PATCH", rf"/channels/{thread_id}")
    assert lock.body == {"archived": True, "locked": True}


async def test_branch_from_here_carries_the_history_up_to_that_message(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id = await converse_until_ended(fake, fake_anthropic)
    first = fake.messages[int(thread_id)]  # the mention that opened the thread
    record = await bot.flows.engine.find(ConversationKey("discord", thread_id))
    assert record is not None
    messages, _ = await bot.flows.engine.record(record.id)
    first_reply = next(m for m in messages if m.role == "assistant")
    target = fake.messages[int(first_reply.platform_message_id)]
    assert target["channel_id"] == thread_id and first["id"] == thread_id

    asked = await fake.message_command("Branch from here", target, author=fake.alice)
    assert (await fake.response(asked)).body["type"] == 5
    answer = await fake.followup(asked)
    created = await fake.wait_call("POST", rf"/channels/{fake.channel_id}/threads")
    branch_id = created.response["id"]
    assert branch_id in answer.body["content"] and answer.body["flags"] & 64
    branched = await bot.flows.engine.find(ConversationKey("discord", branch_id))
    assert branched is not None and branched.branched_from == record.id

    fake_anthropic.add(text("Where were we?"))
    await fake.post(int(branch_id), fake.alice, "let's start over nicely")
    await wait_bot_message(fake, branch_id, lambda m: m["content"] == "Where were we?")
    assert len(fake_anthropic.requests[-1]["messages"]) > 1  # the history came along


async def test_branch_refuses_a_message_outside_the_conversation(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id = await opened_thread(fake, fake_anthropic)
    stranger = await fake.post(fake.channel_id, fake.bob, "unrelated")
    stranger["channel_id"] = thread_id  # as if it were in the thread but not recorded
    asked = await fake.message_command("Branch from here", stranger, author=fake.alice)
    answer = await fake.followup(asked)
    assert "Pick one of this conversation's messages" in answer.body["content"]
    assert not fake.calls_to("POST", rf"/channels/{fake.channel_id}/threads")


async def test_this_was_a_mistake_records_feedback_and_tells_the_mod_log(
    tmp_path: Path, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    settings = settings_for(tmp_path, fake_anthropic, fake, modlog_channel_id=fake.channel_id)
    async with running_bot(fake, settings) as bot:
        thread_id = await converse_until_ended(fake, fake_anthropic)
        await fake.wait_call("PATCH", rf"/channels/{thread_id}")  # locked
        offer = await after_end(fake, fake.alice)  # by DM: the thread's buttons would be dead
        mistake = buttons(offer)[1]
        pressed = await fake.press(mistake, message=offer, author=fake.alice)
        modal = (await fake.response(pressed)).body
        assert modal["type"] == 9
        conversation_id = mistake.rsplit(":", 1)[1]
        submitted = await fake.submit(
            modal["data"]["custom_id"],
            "quitbot:feedback-text",
            "I was quoting a song",
            channel_id=int(offer["channel_id"]),
            author=fake.alice,
        )
        assert (await fake.response(submitted)).body["data"]["flags"] & 64
        thanks = await fake.followup(submitted)
        assert "on the record" in thanks.body["content"]
        _, events = await bot.flows.engine.record(conversation_id)
        feedback = [e for e in events if e.kind == "feedback"]
        assert feedback and "I was quoting a song" in feedback[0].detail["text"]
        logged = await wait_bot_message(
            fake,
            fake.channel_id,
            lambda m: any("Feedback" in e.get("title", "") for e in m["embeds"]),
        )
        assert thread_id in logged["embeds"][0]["description"]
        ended = [
            m
            for m in fake.messages.values()
            if m["channel_id"] == str(fake.channel_id)
            and any(e.get("title") == "Conversation ended" for e in m["embeds"])
        ]
        assert len(ended) == 1
