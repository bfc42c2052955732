"""The HTTP edge refuses requests that slack_sdk's signature check would crash on: a missing,
empty or non-numeric `X-Slack-Request-Timestamp`, a signature that is not ASCII, a body that
is not UTF-8. Each is answered 401 or 400 with one WARNING line, no traceback, nothing kept;
a good request right after is still answered."""

from __future__ import annotations

import json
import logging

import pytest

from tests.fakes.anthropic import text
from tests.fakes.slack_requests import event_callback, mention, sign
from tests.platforms.slack.conftest import SlackHarness

THREAD = "1700000100.000100"
BODY = json.dumps(event_callback(mention("hi", ts=THREAD))).encode()
SIGNED = sign(BODY.decode())


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"X-Slack-Signature": SIGNED["X-Slack-Signature"]}, BODY, 401),
        ({**SIGNED, "X-Slack-Request-Timestamp": ""}, BODY, 401),
        ({**SIGNED, "X-Slack-Request-Timestamp": "soon"}, BODY, 401),
        ({**SIGNED, "X-Slack-Request-Timestamp": "-1"}, BODY, 401),
        ({**SIGNED, "X-Slack-Request-Timestamp": "1e9"}, BODY, 401),
        ({**SIGNED, "X-Slack-Request-Timestamp": "9" * 5000}, BODY, 401),
        ({"X-Slack-Request-Timestamp": SIGNED["X-Slack-Request-Timestamp"]}, BODY, 401),
        ({**SIGNED, "X-Slack-Signature": ""}, BODY, 401),
        ({**SIGNED, "X-Slack-Signature": "v0=\u00e9" * 8}, BODY, 401),
        ({**SIGNED, "X-Slack-Signature": "v0=" + "0" * 64}, BODY, 401),
        (SIGNED, b'{"type": "event_callback", "text": "\xff\xfe"}', 400),
        (SIGNED, b"\xc3\x28", 400),
    ],
    ids=[
        "no timestamp",
        "empty timestamp",
        "word timestamp",
        "negative timestamp",
        "float timestamp",
        "5000-digit timestamp",
        "no signature",
        "empty signature",
        "non-ASCII signature",
        "wrong signature",
        "latin-1 body",
        "invalid UTF-8 body",
    ],
)
async def test_a_request_slack_never_signed_is_refused_in_one_line(
    harness: SlackHarness,
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
    body: bytes,
    status: int,
) -> None:
    sent = {"Content-Type": "application/json", **headers}
    async with harness.send.session.post(harness.send.url, data=body, headers=sent) as response:
        assert response.status == status
    await harness.settle()
    [line] = warnings(caplog)
    assert line.levelname == "WARNING" and line.exc_info is None
    assert line.name == "platforms.slack.edge" and f"({status})" in line.getMessage()
    assert await harness.runtime.store.list_conversations() == []
    assert harness.slack.calls == [] and harness.claude.requests == []

    harness.claude.add(text("Hello!"))
    good = await harness.send.event(event_callback(mention("still there?", ts=THREAD)))
    await harness.settle()
    assert good.status == 200 and len(harness.claude.requests) == 1
    assert len(warnings(caplog)) == 1
