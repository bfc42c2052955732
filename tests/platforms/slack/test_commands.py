"""/quitbot, the end confirmation, the buttons on the final notice, and "Branch from here"."""

from __future__ import annotations

from typing import Any

import pytest

from bot.conversation import Conversation
from bot.flows import REFUSAL_TEXT, Refusal
from platforms.slack.render import (
    BRANCH,
    END,
    END_CANCEL,
    END_CONFIRM,
    MISTAKE,
    NEW_CONVERSATION,
    action_value,
)
from platforms.slack.translate import Place, thread_key
from tests.fakes.anthropic import text
from tests.fakes.slack import BOT_USER_ID, permalink
from tests.fakes.slack_requests import (
    button,
    command,
    event_callback,
    mention,
    message,
    message_shortcut,
)
from tests.platforms.slack.conftest import SlackHarness

THREAD = "1700000100.000100"
LINK = permalink("C0GENERAL", THREAD)


async def started(harness: SlackHarness) -> Conversation:
    """Alice mentions the app in #general and gets an answer."""
    harness.claude.add(text("Hello!"))
    await harness.send.event(event_callback(mention("hi", ts=THREAD)))
    await harness.settle()
    conversation = await harness.runtime.engine.find(thread_key("C0GENERAL", THREAD))
    assert conversation is not None
    return conversation


async def ended(harness: SlackHarness) -> Conversation:
    conversation = await started(harness)
    value = action_value(conversation.id, Place.CHANNEL)
    await harness.send.interaction(button(END_CONFIRM, value, thread_ts=THREAD, ephemeral=True))
    await harness.settle()
    after = await harness.runtime.engine.get(conversation.id)
    assert after is not None and after.state == "ended"
    return after


def ephemerals(harness: SlackHarness) -> list[dict[str, Any]]:
    return harness.slack.calls_to("chat.postEphemeral")


async def test_end_from_inside_the_thread_asks_then_ends(harness: SlackHarness) -> None:
    """Slack runs no slash command in a thread; the "End this conversation" shortcut works there."""
    conversation = await started(harness)
    reply_ts = harness.slack.results_of("chat.postMessage")[-1]["ts"]  # the app's answer
    shortcut = message_shortcut(END, ts=reply_ts, thread_ts=THREAD, author=BOT_USER_ID)
    assert (await harness.send.interaction(shortcut)).status == 200
    await harness.settle()
    [confirm] = ephemerals(harness)
    assert confirm["user"] == "U0ALICE" and confirm["thread_ts"] == THREAD
    actions = next(b for b in confirm["blocks"] if b["type"] == "actions")
    end_it = actions["elements"][0]
    assert end_it["action_id"] == END_CONFIRM
    assert (await harness.runtime.engine.get(conversation.id)).state == "active"  # type: ignore[union-attr]

    await harness.send.interaction(
        button(END_CONFIRM, end_it["value"], thread_ts=THREAD, ephemeral=True)
    )
    await harness.settle()
    final = harness.slack.calls_to("chat.postMessage")[-1]
    assert final["thread_ts"] == THREAD and "you asked to end it" in final["text"]
    assert harness.slack.calls_to("reactions.add")[0]["timestamp"] == THREAD
    _, events = await harness.runtime.engine.record(conversation.id)
    [end] = [e for e in events if e.kind == "end"]
    assert end.detail["reason"] == "user_requested" and end.detail["user_id"] == "U0ALICE"
    assert end.detail["via"] == "shortcut"  # how it really came, on the record


async def test_the_end_shortcut_on_the_threads_first_message(harness: SlackHarness) -> None:
    conversation = await started(harness)
    await harness.send.interaction(message_shortcut(END, ts=THREAD, thread_ts=THREAD))
    await harness.settle()
    [confirm] = ephemerals(harness)
    assert conversation.id in str(confirm["blocks"])


async def test_end_by_thread_link_from_a_channel(harness: SlackHarness) -> None:
    conversation = await started(harness)
    assert (await harness.send.command(command(f"end <{LINK}>"))).status == 200
    await harness.settle()
    [confirm] = ephemerals(harness)
    assert confirm["channel"] == "C0GENERAL" and "thread_ts" not in confirm
    end_it = next(b for b in confirm["blocks"] if b["type"] == "actions")["elements"][0]
    await harness.send.interaction(button(END_CONFIRM, end_it["value"], ephemeral=True))
    await harness.settle()
    assert (await harness.runtime.engine.get(conversation.id)).state == "ended"  # type: ignore[union-attr]
    assert harness.slack.calls_to("chat.postMessage")[-1]["thread_ts"] == THREAD
    _, events = await harness.runtime.engine.record(conversation.id)
    assert [e.detail["via"] for e in events if e.kind == "end"] == ["command"]


async def test_the_end_shortcut_outside_a_conversation(harness: SlackHarness) -> None:
    chatter = message_shortcut(END, ts="1700000555.000100", thread_ts=None)
    await harness.send.interaction(chatter)
    await harness.settle()
    assert "no conversation" in ephemerals(harness)[0]["text"]


def replaced(harness: SlackHarness, response_url: str) -> dict[str, Any]:
    """The one message posted to `response_url`, which replaced the clicked one."""
    [posted] = harness.slack.posted_to(response_url)
    assert posted["replace_original"] is True and posted["blocks"] == []  # no buttons left
    return posted


async def confirmation(harness: SlackHarness) -> dict[str, str]:
    """The end command's ephemeral confirmation: each button's value by its action id."""
    assert (await harness.send.command(command(f"end <{LINK}>"))).status == 200
    await harness.settle()
    actions = next(b for b in ephemerals(harness)[-1]["blocks"] if b["type"] == "actions")
    return {e["action_id"]: e["value"] for e in actions["elements"]}


async def test_end_cancelled_keeps_it_going(harness: SlackHarness) -> None:
    """The ephemeral confirmation is replaced through the click's response_url (chat.update
    cannot edit an ephemeral message), so its "End conversation" button is gone too."""
    conversation = await started(harness)
    values = await confirmation(harness)
    cancel = button(END_CANCEL, values[END_CANCEL], ephemeral=True)
    sent = await harness.send.interaction(cancel)
    await harness.settle()
    assert "goes on" in replaced(harness, sent.response_url)["text"]
    assert len(ephemerals(harness)) == 1 and not harness.slack.calls_to("chat.update")
    assert (await harness.runtime.engine.get(conversation.id)).state == "active"  # type: ignore[union-attr]


async def test_the_ended_confirmation_is_replaced(harness: SlackHarness) -> None:
    conversation = await started(harness)
    values = await confirmation(harness)
    sent = await harness.send.interaction(button(END_CONFIRM, values[END_CONFIRM], ephemeral=True))
    await harness.settle()
    assert replaced(harness, sent.response_url)["text"] == "The conversation was ended."
    assert (await harness.runtime.engine.get(conversation.id)).state == "ended"  # type: ignore[union-attr]
    assert not harness.slack.calls_to("chat.update")


@pytest.mark.parametrize("pressed", [END_CANCEL, END_CONFIRM], ids=["keep talking", "end"])
async def test_a_stale_confirmation_after_the_end_says_it_ended(
    harness: SlackHarness, pressed: str
) -> None:
    """Two confirmations were shown (the command run twice); one ended it, then a button on
    the other: it must not say the conversation goes on, nor end it again."""
    conversation = await started(harness)
    first, second = await confirmation(harness), await confirmation(harness)
    await harness.send.interaction(button(END_CONFIRM, first[END_CONFIRM], ephemeral=True))
    await harness.settle()
    stale = await harness.send.interaction(button(pressed, second[pressed], ephemeral=True))
    await harness.settle()
    assert replaced(harness, stale.response_url)["text"] == REFUSAL_TEXT[Refusal.ALREADY_ENDED]
    assert len(ephemerals(harness)) == 2  # the two confirmations; nothing says "goes on"
    assert len(harness.slack.calls_to("reactions.add")) == 1  # ended once
    assert (await harness.runtime.engine.get(conversation.id)).state == "ended"  # type: ignore[union-attr]
    _, events = await harness.runtime.engine.record(conversation.id)
    assert [e.kind for e in events].count("end") == 1 and "end_proposal_lapsed" not in str(events)


async def test_a_confirmation_whose_response_url_expired(harness: SlackHarness) -> None:
    """Past 30 minutes Slack refuses the response_url: the confirmation cannot be replaced,
    so the person is told in the channel instead."""
    conversation = await started(harness)
    values = await confirmation(harness)
    now = [0.0]
    harness.slack.clock = lambda: now[0]
    cancel = button(END_CANCEL, values[END_CANCEL], ephemeral=True)
    cancel["response_url"] = harness.slack.response_url()
    now[0] += 30 * 60 + 1
    sent = await harness.send.interaction(cancel)
    await harness.settle()
    assert harness.slack.hooks[sent.response_url].refused == ["expired_url"]
    assert "goes on" in ephemerals(harness)[-1]["text"]
    assert (await harness.runtime.engine.get(conversation.id)).state == "active"  # type: ignore[union-attr]


async def test_only_the_starter_can_end_it(harness: SlackHarness) -> None:
    conversation = await started(harness)
    await harness.send.interaction(
        message_shortcut(END, ts=THREAD, thread_ts=THREAD, user="U0MALLORY", author="U0ALICE")
    )
    await harness.send.command(command(f"end {LINK}", user="U0MALLORY"))
    value = action_value(conversation.id, Place.CHANNEL)
    await harness.send.interaction(button(END_CONFIRM, value, user="U0MALLORY", thread_ts=THREAD))
    await harness.settle()
    told = sorted(e["text"] for e in ephemerals(harness))
    # Asking to end someone else's conversation leaves it; confirming an end is refused.
    assert len(told) == 3 and "Only the person" in told[0]
    assert all("You've left this conversation" in t for t in told[1:])
    assert (await harness.runtime.engine.get(conversation.id)).state == "active"  # type: ignore[union-attr]
    _, events = await harness.runtime.engine.record(conversation.id)
    assert [e.kind for e in events].count("participant_left") == 2


async def test_end_without_a_link_says_how(harness: SlackHarness) -> None:
    await harness.send.command(command("end"))
    await harness.settle()
    text = ephemerals(harness)[0]["text"]
    assert "End this conversation" in text and "/quitbot end &lt;link&gt;" in text


async def test_help(harness: SlackHarness) -> None:
    await harness.send.command(command(""))
    await harness.settle()
    assert "/quitbot end" in ephemerals(harness)[0]["text"]


@pytest.mark.parametrize("verb", ["reopen", "status", "audit"])
async def test_moderator_commands_are_refused_to_a_member(harness: SlackHarness, verb: str) -> None:
    conversation = await ended(harness)
    await harness.send.command(command(f"{verb} {conversation.id}", user="U0MEMBER"))
    await harness.settle()
    [refusal] = [e for e in ephemerals(harness) if e["user"] == "U0MEMBER"]
    assert "Only moderators" in refusal["text"]
    assert harness.slack.calls_to("users.info")[-1]["user"] == "U0MEMBER"
    assert (await harness.runtime.engine.get(conversation.id)).state == "ended"  # type: ignore[union-attr]


@pytest.mark.parametrize("slack_overrides", [{"admin_user_ids": ["U0MOD"]}])
async def test_a_configured_moderator_reopens_by_thread_link(harness: SlackHarness) -> None:
    conversation = await ended(harness)
    await harness.send.command(command(f"reopen <{LINK}> they apologised", user="U0MOD"))
    await harness.settle()
    assert (await harness.runtime.engine.get(conversation.id)).state == "active"  # type: ignore[union-attr]
    assert "Reopened" in ephemerals(harness)[-1]["text"]
    assert "reopened" in harness.slack.calls_to("chat.postMessage")[-1]["text"]
    assert harness.slack.calls_to("reactions.remove")[0]["timestamp"] == THREAD
    _, events = await harness.runtime.engine.record(conversation.id)
    reopen = [e for e in events if e.kind == "reopen"]
    assert reopen and reopen[0].detail["note"] == "they apologised"
    assert reopen[0].detail["moderator_id"] == "U0MOD"
    assert harness.slack.calls_to("users.info") == []


async def test_a_workspace_admin_sees_status_and_audit(harness: SlackHarness) -> None:
    harness.slack.admins.add("U0ADMIN")
    conversation = await ended(harness)
    await harness.send.command(command(f"status {conversation.id}", user="U0ADMIN"))
    await harness.send.command(command(f"audit {LINK}", user="U0ADMIN"))
    await harness.settle()
    status, audit = [e["text"] for e in ephemerals(harness) if e["user"] == "U0ADMIN"]
    assert "State: *ended*" in status and conversation.id in status
    assert "Audit trail" in audit and "user" in audit


async def test_unknown_target(harness: SlackHarness) -> None:
    harness.slack.admins.add("U0ADMIN")
    await harness.send.command(command("status nope", user="U0ADMIN"))
    await harness.settle()
    assert "no conversation" in ephemerals(harness)[0]["text"]


@pytest.mark.parametrize("slack_overrides", [{"modlog_channel": "C0MODLOG"}])
async def test_the_mistake_button_is_stored_audited_and_logged(harness: SlackHarness) -> None:
    conversation = await ended(harness)
    value = action_value(conversation.id, Place.CHANNEL)
    await harness.send.interaction(button(MISTAKE, value, thread_ts=THREAD))
    await harness.settle()
    _, events = await harness.runtime.engine.record(conversation.id)
    [feedback] = [e for e in events if e.kind == "feedback"]
    assert feedback.detail == {"user_id": "U0ALICE", "text": "This was a mistake"}
    assert "Thank you" in ephemerals(harness)[-1]["text"]
    modlog = [c for c in harness.slack.calls_to("chat.postMessage") if c["channel"] == "C0MODLOG"]
    assert len(modlog) == 2  # the end, then the feedback
    assert "ended by user" in modlog[0]["text"] and "fake.slack.com/archives" in modlog[0]["text"]
    assert "This was a mistake" in modlog[1]["text"]


async def test_start_a_new_conversation_opens_a_fresh_thread(harness: SlackHarness) -> None:
    conversation = await ended(harness)
    value = action_value(conversation.id, Place.CHANNEL)
    await harness.send.interaction(button(NEW_CONVERSATION, value, thread_ts=THREAD))
    await harness.settle()
    root, greeting = harness.slack.calls_to("chat.postMessage")[-2:]
    assert "thread_ts" not in root and "<@U0ALICE>" in root["text"]
    assert "new conversation" in greeting["text"]
    assert greeting["thread_ts"] == harness.slack.results_of("chat.postMessage")[-2]["ts"]
    fresh = await harness.runtime.store.list_conversations(state="active")
    assert len(fresh) == 1 and fresh[0].user_id == "U0ALICE"

    harness.claude.add(text("Fresh start."))
    _, root_ts = fresh[0].key.place.split(":")
    again = message("hi again", ts="1700000900.000001", thread_ts=root_ts)
    await harness.send.event(event_callback(again))
    await harness.settle()
    assert harness.claude.requests[-1]["messages"][0]["content"][-1]["text"] == "hi again"


async def test_branch_from_here_carries_history_up_to_the_message(harness: SlackHarness) -> None:
    conversation = await ended(harness)
    shortcut = message_shortcut(BRANCH, ts=THREAD, thread_ts=THREAD)
    await harness.send.interaction(shortcut)
    await harness.settle()
    root, greeting = harness.slack.calls_to("chat.postMessage")[-2:]
    assert "branched" in root["text"] and "thread_ts" not in root
    assert "carries an earlier one" in greeting["text"]
    [branch] = await harness.runtime.store.list_conversations(state="active")
    assert branch.branched_from == conversation.id
    messages, _ = await harness.runtime.engine.record(branch.id)
    assert [m.text for m in messages] == ["hi"]


async def test_branch_from_a_message_outside_the_conversation(harness: SlackHarness) -> None:
    await ended(harness)
    shortcut = message_shortcut(BRANCH, ts="1700000100.999999", thread_ts=THREAD)
    await harness.send.interaction(shortcut)
    await harness.settle()
    assert "Pick one of this conversation's messages" in ephemerals(harness)[-1]["text"]


async def test_a_new_dm_conversation_stays_a_dm(harness: SlackHarness) -> None:
    harness.claude.add(text("Hi in DM."))
    dm = message("hello", ts="1700000200.000100", channel="D0ALICE", channel_type="im")
    await harness.send.event(event_callback(dm))
    await harness.settle()
    first = await harness.runtime.engine.find(thread_key("D0ALICE", "1700000200.000100"))
    assert first is not None
    value = action_value(first.id, Place.DM)
    await harness.send.interaction(button(NEW_CONVERSATION, value, channel="D0ALICE"))
    await harness.settle()
    root = harness.slack.results_of("chat.postMessage")[-2]["ts"]  # then its greeting
    harness.claude.add(text("Fresh."))
    reply = message(
        "again",
        ts="1700000200.000500",
        channel="D0ALICE",
        channel_type="im",
        thread_ts=root,
        parent_user_id=BOT_USER_ID,
    )
    await harness.send.event(event_callback(reply))
    await harness.settle()
    assert len(harness.claude.requests) == 2
    assert not [m for m in harness.slack.methods() if m.startswith("assistant.")]
