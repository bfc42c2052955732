"""`/quitbot` in a channel the app is not in: chat.postEphemeral is refused there
(not_in_channel, or channel_not_found in a DM or private channel; python-slack-sdk#734), so
every answer goes through the command's response_url, and the buttons on an answer shown
that way work through their clicks' response_urls."""

from __future__ import annotations

from typing import Any

import pytest

from platforms.slack.render import END_CANCEL, END_CONFIRM
from tests.fakes.slack import RESPONSE_URL_USES
from tests.fakes.slack_requests import button, command
from tests.platforms.slack.conftest import SlackHarness
from tests.platforms.slack.test_commands import LINK, THREAD, started

OUTSIDE = ["C0RANDOM", "G0PRIVATE", "D0BOBCAROL"]  # public, private, a DM between two people
MODERATOR = pytest.mark.parametrize("slack_overrides", [{"admin_user_ids": ["U0ALICE"]}])


async def run(harness: SlackHarness, words: str, channel: str) -> dict[str, Any]:
    """`/quitbot words` in `channel`, where the app is not: the one answer the person got."""
    harness.slack.outside.add(channel)
    sent = await harness.send.command(command(words, channel=channel))
    assert sent.status == 200
    await harness.settle()
    refused = harness.slack.results_of("chat.postEphemeral")[-1]
    assert refused["error"] == ("not_in_channel" if channel[0] == "C" else "channel_not_found")
    [answer] = harness.slack.posted_to(sent.response_url)
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    return answer


@MODERATOR
@pytest.mark.parametrize("channel", OUTSIDE)
async def test_status_review_and_settings_answer_through_the_response_url(
    harness: SlackHarness, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    conversation_id = (await started(harness)).id
    assert "State: *active*" in (await run(harness, f"status {LINK}", channel))["text"]
    assert "Nothing awaits review" in (await run(harness, "review", channel))["text"]
    assert "settings" in (await run(harness, "settings", channel))["text"]
    assert conversation_id in (await run(harness, f"audit {conversation_id}", channel))["text"]
    assert "/quitbot end" in (await run(harness, "", channel))["text"]
    # Expected, and answered another way: not worth a warning each time.
    assert not [r for r in caplog.records if "postEphemeral" in r.getMessage()]


@pytest.mark.parametrize("channel", OUTSIDE)
async def test_end_by_link_from_outside_asks_and_its_buttons_work(
    harness: SlackHarness, channel: str
) -> None:
    conversation_id = (await started(harness)).id
    confirm = await run(harness, f"end <{LINK}>", channel)
    actions = next(b for b in confirm["blocks"] if b["type"] == "actions")
    values = {e["action_id"]: e["value"] for e in actions["elements"]}

    click = button(END_CONFIRM, values[END_CONFIRM], channel=channel, ephemeral=True)
    sent = await harness.send.interaction(click)
    await harness.settle()
    after = await harness.runtime.engine.get(conversation_id)
    assert after is not None and after.state == "ended"
    final = harness.slack.calls_to("chat.postMessage")[-1]
    assert final["channel"] == "C0GENERAL" and final["thread_ts"] == THREAD
    [done] = harness.slack.posted_to(sent.response_url)
    assert done["replace_original"] is True and done["text"] == "The conversation was ended."


async def test_keep_talking_from_outside(harness: SlackHarness) -> None:
    await started(harness)
    confirm = await run(harness, f"end <{LINK}>", "C0RANDOM")
    value = next(b for b in confirm["blocks"] if b["type"] == "actions")["elements"][1]["value"]
    click = button(END_CANCEL, value, channel="C0RANDOM", ephemeral=True)
    sent = await harness.send.interaction(click)
    await harness.settle()
    [kept] = harness.slack.posted_to(sent.response_url)
    assert kept["replace_original"] is True and "goes on" in kept["text"]


async def test_inside_a_channel_the_answer_stays_an_ephemeral_message(
    harness: SlackHarness,
) -> None:
    await started(harness)
    sent = await harness.send.command(command(f"end <{LINK}>"))
    await harness.settle()
    assert harness.slack.calls_to("chat.postEphemeral")[-1]["channel"] == "C0GENERAL"
    assert harness.slack.posted_to(sent.response_url) == []


async def test_a_spent_response_url_is_logged_not_raised(
    harness: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack takes 5 posts to one response_url; the sixth is refused, and said so in one line."""
    harness.slack.outside.add("C0RANDOM")
    fields = command("", channel="C0RANDOM")
    fields["response_url"] = url = harness.slack.response_url()
    for _ in range(RESPONSE_URL_USES + 1):
        await harness.send.command(fields)
        await harness.settle()
    assert len(harness.slack.posted_to(url)) == RESPONSE_URL_USES
    assert harness.slack.hooks[url].refused == ["used_url"]
    [line] = [r for r in caplog.records if "response_url" in r.getMessage()]
    assert line.levelname == "WARNING" and "404" in line.getMessage() and not line.exc_info
