"""People's messages reach the inbox from the edge without Bolt once the bot knows its own
user id; everything else, and the first message before that, still goes through Bolt."""

from __future__ import annotations

from typing import Any

import pytest

from platforms.slack.translate import thread_key
from tests.fakes.anthropic import text
from tests.fakes.slack_requests import event_callback, mention, message
from tests.platforms.slack.conftest import SlackHarness, receipts_fail_once, recorded

THREAD = "1700000100.000100"


def count_bolt(harness: SlackHarness, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The event types Bolt dispatches from now on."""
    seen: list[str] = []
    dispatch = harness.bot.app.async_dispatch

    async def counted(req: Any) -> Any:
        seen.append(str((req.body.get("event") or {}).get("type") or req.body.get("type")))
        return await dispatch(req)

    monkeypatch.setattr(harness.bot.app, "async_dispatch", counted)
    return seen


async def test_messages_skip_bolt_once_the_bot_knows_itself(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    bolt = count_bolt(harness, monkeypatch)
    harness.claude.add(text("First."), text("Second."), text("Third."))
    assert (await harness.send.event(event_callback(mention("hi", ts=THREAD)))).status == 200
    await harness.settle()
    assert bolt == ["app_mention"]  # Bolt learnt the bot's user id (auth.test) with it
    follow_up = message("and then?", ts="1700000100.000200", thread_ts=THREAD)
    assert (await harness.send.event(event_callback(follow_up))).status == 200
    elsewhere = mention("hello", ts="1700000200.000100")
    assert (await harness.send.event(event_callback(elsewhere))).status == 200
    await harness.settle()
    assert bolt == ["app_mention"]
    conversation = await harness.runtime.engine.find(thread_key("C0GENERAL", THREAD))
    assert conversation is not None
    messages, _ = await harness.runtime.engine.record(conversation.id)
    assert [m.text for m in messages] == ["hi", "First.", "and then?", "Second."]
    assert [c["markdown_text"] for c in harness.slack.calls_to("chat.postMessage")] == [
        "First.",
        "Second.",
        "Third.",
    ]


async def test_a_message_that_could_not_be_kept_is_a_500_and_kept_when_sent_again(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.claude.add(text("First."), text("Kept after all."))
    await harness.send.event(event_callback(mention("hi", ts=THREAD)))
    await harness.settle()
    receipts_fail_once(monkeypatch, RuntimeError("the disk is on fire"))
    payload = event_callback(message("still there?", ts="1700000100.000200", thread_ts=THREAD))
    assert (await harness.send.event(payload)).status == 500  # Slack sends it again
    assert (await harness.send.event(payload, retry_num=1)).status == 200
    assert (await recorded(harness, THREAD))[-2:] == ["still there?", "Kept after all."]
