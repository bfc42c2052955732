"""Alert-only mode on Slack, end to end over signed HTTP: where the ladder would end,
nothing is closed, the mod-log gets an alert, and `would_end` is on the record."""

from __future__ import annotations

from typing import Any

import pytest

from platforms.slack.translate import thread_key
from tests.fakes.anthropic import text, tool
from tests.fakes.slack_requests import event_callback, mention, message
from tests.platforms.slack.conftest import SlackHarness
from tests.platforms.slack.test_shared_place import ABUSE, END_ABUSE

THREAD = "1700000400.000100"


@pytest.fixture
def slack_overrides() -> dict[str, Any]:
    return {"modlog_channel": "C0MODLOG"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"enforcement": "alert"}


async def test_where_it_would_end_the_mod_log_is_alerted_and_the_thread_goes_on(
    harness: SlackHarness,
) -> None:
    harness.claude.add(tool("note_concern", ABUSE, text="Let's keep it civil."), text("OK?"))
    await harness.send.event(event_callback(mention("you are useless", ts=THREAD)))
    await harness.settle()
    for n in (1, 2):
        harness.claude.add(tool("note_concern", ABUSE, text="Let's keep it civil."), text("OK?"))
        said = message("useless!", ts=f"1700000400.{n:06d}", thread_ts=THREAD)
        await harness.send.event(event_callback(said))
        await harness.settle()
    harness.claude.add(tool("end_conversation", END_ABUSE), text("Shall we move on?"))
    await harness.send.event(
        event_callback(message("idiot", ts="1700000400.000009", thread_ts=THREAD))
    )
    await harness.settle()

    posted = harness.slack.calls_to("chat.postMessage")
    [alert] = [c for c in posted if c["channel"] == "C0MODLOG"]
    assert "would have ended" in alert["text"] and "persistent_abuse" in alert["text"]
    in_thread = [c for c in posted if c.get("thread_ts") == THREAD]
    assert not [c for c in in_thread if "has ended" in str(c.get("text"))]
    [warning] = [c for c in in_thread if "Warning" in str(c.get("blocks"))]
    assert "end" not in str(warning["blocks"])  # nobody is told it will end
    assert harness.slack.calls_to("reactions.add") == []  # no "ended" mark on the thread
    conversation = await harness.runtime.engine.find(thread_key("C0GENERAL", THREAD))
    assert conversation is not None and conversation.state == "active"
    _, events = await harness.runtime.engine.record(conversation.id)
    kinds = [e.kind for e in events]
    assert "would_end" in kinds and "end" not in kinds
