"""A shared place on Slack, end to end over signed HTTP: Bob abuses in the thread Alice
started. Only Bob is shut out (told in an ephemeral message, named in the mod-log); the
thread still gets answers for Alice, her daily limit is untouched; and nobody but the people
concerned can say an end was a mistake."""

from __future__ import annotations

from typing import Any

import pytest

from platforms.slack.render import MISTAKE, action_value
from platforms.slack.translate import Place, thread_key
from tests.fakes.anthropic import text, tool
from tests.fakes.slack_requests import button, event_callback, mention, message
from tests.platforms.slack.conftest import SlackHarness

THREAD = "1700000300.000100"
ABUSE = {"kind": "abuse", "note": "insults"}
END_ABUSE = {"reason": "persistent_abuse", "explanation": "kept insulting after a warning"}


@pytest.fixture
def slack_overrides() -> dict[str, Any]:
    return {"modlog_channel": "C0MODLOG"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"max_ended_per_day": 1}


def told(harness: SlackHarness, user: str) -> list[str]:
    return [c["text"] for c in harness.slack.calls_to("chat.postEphemeral") if c["user"] == user]


async def bob_says(harness: SlackHarness, words: str, n: int) -> None:
    said = message(words, ts=f"1700000300.{n:06d}", thread_ts=THREAD, user="U0BOB")
    await harness.send.event(event_callback(said))
    await harness.settle()


async def test_someone_else_abusing_in_a_thread_is_shut_out_and_the_thread_goes_on(
    harness: SlackHarness,
) -> None:
    harness.claude.add(text("Hello Alice."))
    await harness.send.event(event_callback(mention("help me plan a trip", ts=THREAD)))
    await harness.settle()
    for n in (1, 2, 3):  # warned at the second redirect, may be shut out after the third
        harness.claude.add(tool("note_concern", ABUSE, text="Let's keep it civil."), text("OK?"))
        await bob_says(harness, "you are useless", n)
    harness.claude.add(tool("end_conversation", END_ABUSE, text="Enough."))
    await bob_says(harness, "idiot idiot", 4)

    to_bob = told(harness, "U0BOB")
    assert any("Warning" in t or "no longer be able to take part" in t for t in to_bob)
    assert any("can no longer take part" in t and "abusive" in t for t in to_bob)
    assert told(harness, "U0ALICE") == []  # Alice was warned of nothing
    in_thread = [c for c in harness.slack.calls_to("chat.postMessage") if c.get("thread_ts")]
    assert not [c for c in in_thread if "Warning" in str(c.get("blocks"))]
    assert not [c for c in in_thread if "has ended" in str(c.get("text"))]
    logged = [c for c in harness.slack.calls_to("chat.postMessage") if c["channel"] == "C0MODLOG"]
    assert len(logged) == 1 and "<@U0BOB> was shut out" in logged[0]["text"]

    conversation = await harness.runtime.engine.find(thread_key("C0GENERAL", THREAD))
    assert conversation is not None and conversation.state == "active"
    assert conversation.ladder.redirects == 0 and not conversation.ladder.warned

    harness.claude.add(text("Lisbon is lovely."))
    alice = message("anyway: Lisbon or Porto?", ts="1700000300.000010", thread_ts=THREAD)
    await harness.send.event(event_callback(alice))
    await harness.settle()
    assert "Lisbon is lovely." in str(harness.slack.calls)
    asked = len(harness.claude.requests)
    await bob_says(harness, "let me back in", 5)
    assert len(harness.claude.requests) == asked  # never reaches the model
    assert "won't reply to you here" in told(harness, "U0BOB")[-1]

    engine = harness.runtime.engine
    assert await engine.may_start("slack", "U0ALICE")
    assert not await engine.may_start("slack", "U0BOB")


async def test_a_bystander_cannot_say_someone_elses_end_was_a_mistake(
    harness: SlackHarness,
) -> None:
    harness.claude.add(text("Hello."))
    await harness.send.event(event_callback(mention("hi", ts=THREAD)))
    await harness.settle()
    conversation = await harness.runtime.engine.find(thread_key("C0GENERAL", THREAD))
    assert conversation is not None
    value = action_value(conversation.id, Place.CHANNEL)
    pressed = button(MISTAKE, value, thread_ts=THREAD, user="U0BOB")
    await harness.send.interaction(pressed)
    await harness.settle()
    assert "Only the person whose conversation it was" in str(harness.slack.calls)
    _, events = await harness.runtime.engine.record(conversation.id)
    assert "feedback" not in [e.kind for e in events]
    await harness.send.interaction(button(MISTAKE, value, thread_ts=THREAD))  # Alice's own
    await harness.settle()
    _, events = await harness.runtime.engine.record(conversation.id)
    assert "feedback" in [e.kind for e in events]
