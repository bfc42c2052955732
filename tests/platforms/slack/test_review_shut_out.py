"""A disputed shut-out in a workspace's review queue, end to end against the fake Slack:
Bob, shut out of Alice's thread, presses "This was a mistake"; a moderator sees whose
shut-out it is and upholds it, and Bob stays out."""

from __future__ import annotations

import pytest

from platforms.slack.render import MISTAKE, action_value
from platforms.slack.translate import Place, thread_key
from tests.fakes.anthropic import text, tool
from tests.fakes.slack_requests import button, event_callback, mention
from tests.platforms.slack.conftest import SlackHarness
from tests.platforms.slack.test_review import run
from tests.platforms.slack.test_shared_place import ABUSE, END_ABUSE, THREAD, bob_says

MODERATOR = pytest.mark.parametrize("slack_overrides", [{"admin_user_ids": ["U0MOD"]}])


async def bob_shut_out(harness: SlackHarness) -> str:
    harness.claude.add(text("Hello Alice."))
    await harness.send.event(event_callback(mention("help me plan a trip", ts=THREAD)))
    await harness.settle()
    for n in (1, 2, 3):
        harness.claude.add(tool("note_concern", ABUSE, text="Let's keep it civil."), text("OK?"))
        await bob_says(harness, "you are useless", n)
    harness.claude.add(tool("end_conversation", END_ABUSE, text="Enough."))
    await bob_says(harness, "idiot idiot", 4)
    conversation = await harness.runtime.engine.find(thread_key("C0GENERAL", THREAD))
    assert conversation is not None
    return conversation.id


@MODERATOR
async def test_a_disputed_shut_out_is_listed_and_upholding_keeps_him_out(
    harness: SlackHarness,
) -> None:
    conversation_id = await bob_shut_out(harness)
    assert "Nothing awaits review" in await run(harness, "review")  # undisputed
    value = action_value(conversation_id, Place.CHANNEL)
    await harness.send.interaction(button(MISTAKE, value, thread_ts=THREAD, user="U0BOB"))
    await harness.settle()

    queue = await run(harness, "review")
    assert conversation_id in queue and "*Shut out:* <@U0BOB> (persistent_abuse)" in queue
    assert "kept insulting after a warning" in queue and "> user: idiot idiot" in queue
    assert f"review resolve {conversation_id} readmit|uphold" in queue

    done = await run(harness, f"review resolve {conversation_id} uphold it was abuse")
    assert done.startswith("Upheld the shut-out in"), done
    _, events = await harness.runtime.engine.record(conversation_id)
    assert events[-1].kind == "review" and events[-1].detail["decision"] == "upheld"
    assert events[-1].detail["moderator_id"] == "U0MOD"
    assert "Nothing awaits review" in await run(harness, "review")
    asked = len(harness.claude.requests)
    await bob_says(harness, "let me back in", 5)
    assert len(harness.claude.requests) == asked  # still shut out
