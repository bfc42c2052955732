"""The payload shapes the edge lets in (pure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from platforms.slack.edge import problem
from platforms.slack.render import BRANCH, END_CONFIRM
from tests.fakes.slack_requests import button, command, event_callback, mention, message_shortcut

FIXTURES = Path(__file__).parents[2] / "fixtures" / "slack"


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_every_recorded_payload_is_let_in(path: Path) -> None:
    assert problem(json.loads(path.read_text())) is None


def test_what_the_fakes_send_is_let_in() -> None:
    assert problem(command("end")) is None
    assert problem(button(END_CONFIRM, "x|channel", thread_ts="1.2")) is None
    assert problem(message_shortcut(BRANCH, ts="1.2", thread_ts=None)) is None
    assert problem({"type": "url_verification", "challenge": "c", "token": "t"}) is None


def _event(**changes: Any) -> dict[str, Any]:
    body = event_callback(mention("hi", ts="1700000100.000100"))
    body["event"].update(changes)
    return body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([], "the body is not a JSON object"),
        (_event(files=["not an object"]), "event.files[0] should be an object, not str"),
        (_event(files=[{"size": "big"}]), "event.files[0].size should be int, not str"),
        (_event(files=[{"size": True}]), "event.files[0].size should be int, not bool"),
        (_event(channel={"id": "C1"}), "event.channel should be str, not dict"),
        (_event(text=5), "event.text should be str, not int"),
        ({**_event(), "event": "hi"}, "event should be an object, not str"),
        ({**_event(), "event_id": None}, "event_id is missing"),
        ({"type": "block_actions", "user": {"id": "U1"}, "actions": []}, "actions should"),
        ({"type": "message_action", "callback_id": "x", "user": {"id": "U"}}, "channel is missing"),
        ({"command": "/quitbot", "user_id": "U1"}, "channel_id is missing"),
        (message_shortcut(BRANCH, ts="1.2", thread_ts=None, channel="C\udfff"), "channel.id holds"),
        (_event(ts="1.\ud800"), "event.ts holds a lone UTF-16 surrogate"),
        # Bolt reads the user inside `event` and `message` whatever the body's type.
        ({"event": {"user": False}}, "event.user should be str, not bool"),
        ({"type": "whatever", "message": {"user": False}}, "message.user should be str"),
        ({"previous_message": {"channel": 1}}, "previous_message.channel should be str"),
        # Bolt reads `body.get("event", {}).get(...)`: null, unlike absent, breaks it.
        ({"type": None, "event": None}, "event should be an object, not null"),
        ({"type": "view_submission", "view": None}, "view should be an object, not null"),
    ],
)
def test_a_mismatch_is_named(body: Any, expected: str) -> None:
    found = problem(body)
    assert found is not None and found.startswith(expected)
