"""The core's flows through Slack end to end: the model's end proposal (only the starter may
confirm it, and it lapses when they write on), and "delivered means kept" across a restart."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import pytest

from bot.app import engine_config
from bot.conversation import Conversation, Inbound
from bot.engine import Engine, Reception
from bot.flows import REFUSAL_TEXT, Refusal
from bot.notices import END_LAPSED_TEXT
from platforms.slack import SlackBot
from platforms.slack.render import END_CANCEL, END_CONFIRM
from platforms.slack.translate import thread_key
from tests.fakes.anthropic import text, tool
from tests.fakes.slack_requests import button, event_callback, mention, message
from tests.platforms.slack.conftest import SlackHarness

THREAD = "1700000100.000100"
ASKED = {"reason": "user_requested", "explanation": "they asked to stop"}


async def proposed(harness: SlackHarness) -> tuple[Conversation, dict[str, Any]]:
    """Alice asks in words; the model proposes the end; the proposal is posted in the thread."""
    harness.claude.add(tool("end_conversation", ASKED, text="Okay."), text("Confirm above."))
    await harness.send.event(event_callback(mention("please end this", ts=THREAD)))
    await harness.settle()
    conversation = await harness.runtime.engine.find(thread_key("C0GENERAL", THREAD))
    assert conversation is not None and conversation.state == "active"
    assert conversation.ladder.end_proposed
    proposal = next(c for c in harness.slack.calls_to("chat.postMessage") if "blocks" in c)
    assert proposal["thread_ts"] == THREAD  # in the thread, for everyone to see
    [actions] = [b for b in proposal["blocks"] if b["type"] == "actions"]
    return conversation, {e["action_id"]: e for e in actions["elements"]}


def proposal_ts(harness: SlackHarness) -> str:
    """The ts of the posted proposal (the first message of the app's with blocks)."""
    return next(
        str(r["ts"])
        for c, r in zip(
            harness.slack.calls_to("chat.postMessage"),
            harness.slack.results_of("chat.postMessage"),
            strict=True,
        )
        if "blocks" in c
    )


async def test_the_starter_confirms_the_models_proposal(harness: SlackHarness) -> None:
    conversation, buttons = await proposed(harness)
    assert [b["text"]["text"] for b in buttons.values()] == ["End conversation", "Keep talking"]
    await harness.send.interaction(
        button(END_CONFIRM, buttons[END_CONFIRM]["value"], thread_ts=THREAD)
    )
    await harness.settle()
    after = await harness.runtime.engine.get(conversation.id)
    assert after is not None and after.state == "ended"
    final = harness.slack.calls_to("chat.postMessage")[-1]
    assert "you asked to end it" in final["text"] and final["thread_ts"] == THREAD
    labels = [
        e["text"]["text"] for b in final["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert labels == ["Start a new conversation", "This was a mistake"]  # usable: no lock
    assert harness.slack.calls_to("reactions.add")[0]["timestamp"] == THREAD


async def test_nobody_else_can_confirm_it(harness: SlackHarness) -> None:
    conversation, buttons = await proposed(harness)
    value = buttons[END_CONFIRM]["value"]
    await harness.send.interaction(button(END_CONFIRM, value, user="U0MALLORY", thread_ts=THREAD))
    await harness.settle()
    [refusal] = harness.slack.calls_to("chat.postEphemeral")
    assert refusal["user"] == "U0MALLORY" and "Only the person" in refusal["text"]
    after = await harness.runtime.engine.get(conversation.id)
    assert after is not None and after.state == "active"


async def test_keep_talking_withdraws_it(harness: SlackHarness) -> None:
    conversation, buttons = await proposed(harness)
    shown = proposal_ts(harness)
    value = buttons[END_CANCEL]["value"]
    await harness.send.interaction(button(END_CANCEL, value, message_ts=shown, thread_ts=THREAD))
    await harness.settle()
    assert not harness.slack.calls_to("chat.postEphemeral")  # the proposal itself says it
    [tidied] = harness.slack.calls_to("chat.update")  # the proposal loses its buttons
    assert tidied["ts"] == shown and not tidied.get("blocks") and "goes on" in tidied["text"]
    after = await harness.runtime.engine.get(conversation.id)
    assert after is not None and after.state == "active" and not after.ladder.end_proposed


async def write_on(harness: SlackHarness) -> None:
    harness.claude.add(text("Sure, go on."))
    later = message("actually, one more question", ts="1700000100.000300", thread_ts=THREAD)
    await harness.send.event(event_callback(later))
    await harness.settle()


async def test_the_proposal_lapses_when_the_person_writes_on(harness: SlackHarness) -> None:
    conversation, _ = await proposed(harness)
    await write_on(harness)
    after = await harness.runtime.engine.get(conversation.id)
    assert after is not None and after.state == "active" and not after.ladder.end_proposed
    _, events = await harness.runtime.engine.record(conversation.id)
    assert [e.kind for e in events if "proposal" in e.kind] == ["end_proposal_lapsed"]
    [withdrawn] = harness.slack.calls_to("chat.update")  # its buttons go: none left stale
    assert withdrawn["ts"] == proposal_ts(harness) and withdrawn["text"] == END_LAPSED_TEXT
    assert not [b for b in withdrawn["blocks"] if b["type"] == "actions"]


async def test_a_button_left_from_a_lapsed_proposal_ends_nothing(harness: SlackHarness) -> None:
    conversation, buttons = await proposed(harness)
    harness.slack.fail("chat.update", "internal_error", times=1)  # the buttons stay
    await write_on(harness)
    value, shown = buttons[END_CONFIRM]["value"], proposal_ts(harness)
    await harness.send.interaction(button(END_CONFIRM, value, message_ts=shown, thread_ts=THREAD))
    await harness.settle()
    [refusal] = harness.slack.calls_to("chat.postEphemeral")
    assert refusal["user"] == "U0ALICE" and refusal["text"] == REFUSAL_TEXT[Refusal.NOT_ASKED]
    after = await harness.runtime.engine.get(conversation.id)
    assert after is not None and after.state == "active"
    # Withdrawn now: no stale button left.
    failed, withdrawn = harness.slack.calls_to("chat.update")
    assert failed["ts"] == withdrawn["ts"]  # the first try, when the person wrote on
    assert withdrawn["ts"] == shown and withdrawn["text"] == END_LAPSED_TEXT
    assert not [b for b in withdrawn["blocks"] if b["type"] == "actions"]


async def kept_then_killed(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch, event: dict[str, Any]
) -> None:
    """Slack's 200 comes only after the core kept the message; the run dies before
    answering it (nothing is answered, no file is read)."""
    killed = asyncio.Event()

    async def never(*_: object) -> None:
        await killed.wait()

    monkeypatch.setattr(harness.bot.inbox, "_answer", never)
    try:
        sent = await harness.send.event(event_callback(event))
        assert sent.status == 200
    finally:
        await harness.bot.drain(0)  # the run dies: its work is gone
    assert harness.claude.requests == []


async def next_run(harness: SlackHarness) -> Engine:
    """A new engine and bot over the same database; its start-up answers what was kept."""
    rt = harness.runtime
    engine = Engine(rt.store, rt.model, engine_config(rt.settings))
    restarted = SlackBot(
        engine, rt.settings, harness.bot.deps.client, session=harness.bot.deps.session
    )
    assert await restarted.inbox.resume() == 1
    await restarted.drain()
    assert await engine.pending() == []
    return engine


async def test_an_acknowledged_message_survives_a_kill(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that dies before answering leaves it to the next run, which answers it once."""
    await kept_then_killed(harness, monkeypatch, mention("are you there?", ts=THREAD))
    harness.claude.add(text("Yes, here."))
    engine = await next_run(harness)
    conversation = await engine.find(thread_key("C0GENERAL", THREAD))
    assert conversation is not None
    messages, _ = await engine.record(conversation.id)
    assert [m.text for m in messages] == ["are you there?", "Yes, here."]


async def test_a_kept_messages_files_are_read_by_the_next_run(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only where to read the file was kept; the next run downloads it (with the bot token,
    which the fake Slack checks) and the model gets its contents."""
    harness.slack.files["agenda.txt"] = b"1. budget 2. hiring"
    shared = {
        "id": "F1",
        "name": "agenda.txt",
        "mimetype": "text/plain",
        "size": 19,
        "url_private_download": harness.slack.file_url("agenda.txt"),
    }
    event = mention("sum this up", ts=THREAD, subtype="file_share", files=[shared])
    await kept_then_killed(harness, monkeypatch, event)
    assert harness.slack.calls_to("files:agenda.txt") == []
    harness.claude.add(text("Budget, then hiring."))
    await next_run(harness)
    [asked] = harness.claude.requests
    told = asked["messages"][-1]["content"][-1]["text"]
    assert told == 'sum this up\n\n<file name="agenda.txt">\n1. budget 2. hiring\n</file>'
    assert len(harness.slack.calls_to("files:agenda.txt")) == 1


async def test_a_retry_while_keeping_fails_is_not_acknowledged_in_vain(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keeping the first copy is slow (Slack retries after 3 s) and then fails: the retry,
    already in, must not get its 200 before that is known, and then keeps the message.
    (HTTP mode: both reach the listener's door, on its own thread, once the bot knows its
    user id from a first mention.)"""
    harness.claude.add(text("First."), text("Kept after all."))
    await harness.send.event(event_callback(mention("hi", ts=THREAD)))
    await harness.settle()
    entered: concurrent.futures.Future[None] = concurrent.futures.Future()
    fail: concurrent.futures.Future[None] = concurrent.futures.Future()
    waiting: concurrent.futures.Future[None] = concurrent.futures.Future()
    keep = Reception.receive

    async def slow_then_broken(reception: Reception, inbound: Inbound) -> bool:
        if not entered.done():
            entered.set_result(None)
            await asyncio.wrap_future(fail)
            raise OSError("database is locked")
        return await keep(reception, inbound)

    class Watched(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            if not waiting.done():
                waiting.set_result(None)  # the retry looks for a first copy being kept
            return super().get(key, default)

    monkeypatch.setattr(Reception, "receive", slow_then_broken)
    assert harness.bot.inbox.listener_door is not None
    monkeypatch.setattr(harness.bot.inbox.listener_door, "_accepting", Watched())
    payload = event_callback(message("hello?", ts=f"{THREAD[:-1]}2", thread_ts=THREAD))
    first = asyncio.create_task(harness.send.event(payload))
    await asyncio.wrap_future(entered)
    retry = asyncio.create_task(harness.send.event(payload, retry_num=1))
    await asyncio.wrap_future(waiting)
    assert not retry.done()  # no 200 yet: the first copy is not kept
    fail.set_result(None)
    assert (await first).status == 500  # not kept: Slack will send it again
    assert (await retry).status == 200  # ...and this copy is the one kept
    await harness.settle()
    conversation = await harness.runtime.engine.find(thread_key("C0GENERAL", THREAD))
    assert conversation is not None
    messages, _ = await harness.runtime.engine.record(conversation.id)
    assert [m.text for m in messages][-2:] == ["hello?", "Kept after all."]
