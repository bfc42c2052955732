"""Recorded Slack payloads -> the core's types (pure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.conversation import ConversationKey
from platforms.slack.translate import (
    Command,
    Place,
    key_from_link,
    parse_command,
    plain_text,
    translate_assistant_thread,
    translate_event,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "slack"
BOT = "U0QUITBOT"


def load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return payload


def event(name: str) -> dict[str, Any]:
    inner: dict[str, Any] = load(name)["event"]
    return inner


def test_a_mention_starts_a_thread_under_the_message() -> None:
    message = translate_event(event("app_mention"), BOT)
    assert message is not None
    assert message.mentioned and not message.threaded
    assert message.place is Place.CHANNEL
    assert message.key == ConversationKey("slack", "C0GENERAL:1700000100.000100")
    assert message.text == "what is a <div> & why this?"
    assert message.team_id == "T0FAKE"


def test_the_workspace_serving_a_message_is_its_community() -> None:
    """Whose settings apply: the team Bolt's context names (the install), else the event's;
    not `user_team`, the writer's own team in a Slack Connect channel."""
    shared = {**event("app_mention"), "user_team": "T0GUEST"}
    served = translate_event(shared, BOT, "T0HOST")
    assert served is not None and served.inbound().community == "T0HOST"
    alone = translate_event(event("app_mention"), BOT)
    assert alone is not None and alone.inbound().community == "T0FAKE"


def test_a_mention_and_its_message_event_are_one_inbound_event() -> None:
    mention = translate_event(event("app_mention"), BOT)
    also = translate_event(event("message_with_mention"), BOT)
    assert mention is not None and also is not None
    assert mention.inbound() == also.inbound()
    assert also.mentioned


def test_a_thread_reply_continues_the_thread() -> None:
    message = translate_event(event("message_thread_reply"), BOT)
    assert message is not None
    assert message.threaded and not message.mentioned
    assert message.key == ConversationKey("slack", "C0GENERAL:1700000100.000100")
    inbound = message.inbound()
    assert inbound.event_id == "C0GENERAL:1700000100.000300"
    assert inbound.message_id == "1700000100.000300"
    assert inbound.user_id == "U0ALICE"


def test_chatter_in_a_channel_is_translated_but_not_mentioned() -> None:
    message = translate_event(event("message_top_level"), BOT)
    assert message is not None
    assert not message.mentioned and not message.threaded


def test_a_direct_message_is_a_dm() -> None:
    message = translate_event(event("message_im"), BOT)
    assert message is not None
    assert message.place is Place.DM
    assert message.key.place == "D0ALICE:1700000200.000100"


def test_an_assistant_thread_message() -> None:
    message = translate_event(event("message_assistant_thread"), BOT)
    assert message is not None
    assert message.place is Place.ASSISTANT
    assert message.key.place == "D0ALICE:1700000300.000100"


def test_an_assistant_thread_is_recognised_by_its_root_without_the_marker() -> None:
    raw = dict(event("message_assistant_thread"))
    raw.pop("assistant_thread")
    message = translate_event(raw, BOT)
    assert message is not None and message.place is Place.ASSISTANT


@pytest.mark.parametrize(
    "name", ["message_changed", "message_deleted", "channel_join", "bot_message", "own_message"]
)
def test_ignored(name: str) -> None:
    assert translate_event(event(name), BOT) is None


def test_other_event_types_are_ignored() -> None:
    assert translate_event(event("assistant_thread_started"), BOT) is None


def test_shared_files_are_kept_and_tombstones_dropped() -> None:
    message = translate_event(event("file_share"), BOT)
    assert message is not None
    assert [f.name for f in message.files] == ["notes.txt"]
    assert message.files[0].media_type == "text/plain"
    assert message.files[0].locator.endswith("/download/notes.txt")
    assert message.files[0].size == 11


def test_assistant_thread_started() -> None:
    thread = translate_assistant_thread(event("assistant_thread_started"))
    assert thread is not None
    assert thread.key == ConversationKey("slack", "D0ALICE:1700000300.000100")
    assert thread.user_id == "U0ALICE"


def test_plain_text_unwraps_markup() -> None:
    assert plain_text("<https://a.example>") == "https://a.example"
    assert plain_text("<!here> hi &amp; bye") == "@here hi & bye"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Command("help")),
        ("END", Command("end")),
        ("reopen abc123 they apologised", Command("reopen", "abc123", "they apologised")),
        (
            "audit <https://x.slack.com/archives/C1/p1700000000000100>",
            Command("audit", "https://x.slack.com/archives/C1/p1700000000000100"),
        ),
    ],
)
def test_parse_command(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


def test_key_from_links() -> None:
    top = "https://fake.slack.com/archives/C0GENERAL/p1700000100000100"
    reply = (
        "https://fake.slack.com/archives/C0GENERAL/p1700000100000300"
        "?thread_ts=1700000100.000100&cid=C0GENERAL"
    )
    expected = ConversationKey("slack", "C0GENERAL:1700000100.000100")
    assert key_from_link(top) == expected
    assert key_from_link(reply) == expected
    assert key_from_link("0f9a8b7c") is None
