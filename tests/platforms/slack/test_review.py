"""/quitbot review and /quitbot settings: the moderators' review queue and a workspace's own
settings, end to end against the fake Slack (a slash command never carries thread_ts)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bot.communities import CommunitySettings
from bot.conversation import Conversation, StoredMessage
from bot.review import Feedback, review_queue
from platforms.slack.render import MESSAGE_LIMIT, MISTAKE, action_value
from platforms.slack.translate import Place, thread_key
from tests.fakes.anthropic import text, tool
from tests.fakes.slack import TEAM_ID
from tests.fakes.slack_requests import button, command, event_callback, mention, message
from tests.platforms.slack.conftest import SlackHarness
from tests.platforms.slack.test_commands import LINK, THREAD, ended, ephemerals

MODERATOR = pytest.mark.parametrize("slack_overrides", [{"admin_user_ids": ["U0MOD"]}])
HARMFUL = {"kind": "harmful_request", "note": "asked for malware"}


def told(harness: SlackHarness, user: str = "U0MOD") -> list[str]:
    return [e["text"] for e in ephemerals(harness) if e["user"] == user]


async def run(harness: SlackHarness, words: str, user: str = "U0MOD", team: str = TEAM_ID) -> str:
    await harness.send.command({**command(words, user=user), "team_id": team})
    await harness.settle()
    return told(harness, user)[-1]


async def called_a_mistake(harness: SlackHarness) -> Conversation:
    conversation = await ended(harness)
    value = action_value(conversation.id, Place.CHANNEL)
    await harness.send.interaction(button(MISTAKE, value, thread_ts=THREAD))
    await harness.settle()
    return conversation


def in_team(payload: dict[str, Any], team: str) -> dict[str, Any]:
    payload["team_id"] = payload["event"]["team"] = team
    payload["authorizations"][0]["team_id"] = team
    return payload


@MODERATOR
async def test_a_mistake_waits_in_the_queue_and_a_reopen_tells_the_thread(
    harness: SlackHarness,
) -> None:
    conversation = await called_a_mistake(harness)
    assert conversation.community == TEAM_ID
    queue = await run(harness, "review")
    assert conversation.id in queue and "fake.slack.com/archives" in queue
    assert "This was a mistake" in queue and "<@U0ALICE>" in queue and "redirects: 0" in queue
    assert "> user: hi" in queue and "> assistant: Hello!" in queue
    assert "Nothing awaits review" in await run(harness, "review", team="T0OTHER")

    answer = await run(harness, f"review resolve <{LINK}> reopen they were right")
    assert answer == f"Reopened `{conversation.id}`."
    after = await harness.runtime.engine.get(conversation.id)
    assert after is not None and after.state == "active"
    assert "reopened" in harness.slack.calls_to("chat.postMessage")[-1]["text"]
    assert harness.slack.calls_to("chat.postMessage")[-1]["thread_ts"] == THREAD
    assert harness.slack.calls_to("reactions.remove")[0]["timestamp"] == THREAD
    assert "Nothing awaits review" in await run(harness, "review")


@MODERATOR
async def test_uphold_records_the_decision_only(harness: SlackHarness) -> None:
    conversation = await called_a_mistake(harness)
    posts = len(harness.slack.calls_to("chat.postMessage"))
    answer = await run(harness, f"review resolve {conversation.id} Uphold rules are rules")
    assert answer == f"Upheld the end of `{conversation.id}`."
    after = await harness.runtime.engine.get(conversation.id)
    assert after is not None and after.state == "ended"
    assert len(harness.slack.calls_to("chat.postMessage")) == posts
    assert harness.slack.calls_to("reactions.remove") == []
    _, events = await harness.runtime.engine.record(conversation.id)
    [review] = [e for e in events if e.kind == "review"]
    assert "rules are rules" in str(review.detail)
    assert "Nothing awaits review" in await run(harness, "review")


@MODERATOR
async def test_another_workspace_cannot_decide(harness: SlackHarness) -> None:
    conversation = await called_a_mistake(harness)
    answer = await run(harness, f"review resolve {conversation.id} reopen", team="T0OTHER")
    assert "no conversation" in answer
    assert (await harness.runtime.engine.get(conversation.id)).state == "ended"  # type: ignore[union-attr]


async def test_members_are_refused(harness: SlackHarness) -> None:
    conversation = await called_a_mistake(harness)
    for words in (
        "review",
        f"review resolve {conversation.id} reopen",
        "settings",
        "settings set redirects_before_warning 1",
        "settings reset all",
    ):
        assert "Only moderators" in await run(harness, words, user="U0MEMBER")
    assert (await harness.runtime.engine.get(conversation.id)).state == "ended"  # type: ignore[union-attr]
    harness.slack.admins.add("U0ADMIN")  # a workspace admin (users.info) is a moderator
    assert "`redirects_before_warning`: (unset)" in await run(harness, "settings", "U0ADMIN")


@MODERATOR
async def test_settings_show_set_and_refuse(harness: SlackHarness) -> None:
    shown = await run(harness, "settings")
    assert "`redirects_before_warning`: (unset)" in shown and "`crisis_message`" in shown
    saved = await run(harness, "settings set crisis_message Call 116 123, any time.")
    assert saved.startswith("Saved.") and "Call 116 123, any time." in saved
    assert "must be at least" in await run(harness, "settings set redirects_before_end 1")
    assert "whole number" in await run(harness, "settings set redirects_before_end many")
    assert "no setting" in await run(harness, "settings set colour blue")
    assert "settings set &lt;name&gt; &lt;value&gt;" in await run(harness, "settings frobnicate")
    assert "review resolve &lt;link or id&gt;" in await run(harness, "review resolve x maybe")
    own = await harness.runtime.engine.community_settings("slack", TEAM_ID)
    assert own.crisis_message == "Call 116 123, any time." and own.redirects_before_end is None
    assert "enforcement is end or alert" in await run(harness, "settings set enforcement maybe")
    alert = await run(harness, "settings set enforcement alert")
    assert alert.startswith("Saved.") and "`enforcement`: alert" in alert
    own = await harness.runtime.engine.community_settings("slack", TEAM_ID)
    assert own.enforcement == "alert"
    tools = await run(harness, "settings set tools faq")
    own = await harness.runtime.engine.community_settings("slack", TEAM_ID)
    assert own.tools in {None, ("faq",)}, tools


@MODERATOR
async def test_settings_reset_one_or_all(harness: SlackHarness) -> None:
    for words in ("redirects_before_end 5", "redirects_before_warning 4", "crisis_message Hi"):
        assert "Saved." in await run(harness, f"settings set {words}")
    # The default (3) would end before this workspace's warning (4): refused, unchanged.
    assert "must be at least" in await run(harness, "settings reset redirects_before_end")
    one = await run(harness, "settings reset redirects_before_warning")
    assert one.startswith("Reset.") and "`redirects_before_warning`: (unset)" in one
    assert "`redirects_before_end`: 5" in one and "`crisis_message`: Hi" in one
    assert "There is no setting 'colour'" in await run(harness, "settings reset colour")
    assert "settings reset &lt;name&gt;" in await run(harness, "settings reset")
    every = await run(harness, "settings reset all")
    assert every.startswith("Reset.") and "`crisis_message`: (unset)" in every
    own = await harness.runtime.engine.community_settings("slack", TEAM_ID)
    assert own == CommunitySettings()


async def redirected_once(harness: SlackHarness, team: str, thread: str) -> bool:
    """A conversation in `team` with one redirect: whether it was warned."""
    harness.claude.add(tool("note_concern", HARMFUL, text="I can't help."), text("Else?"))
    await harness.send.event(in_team(event_callback(mention("ransomware", ts=thread)), team))
    await harness.settle()
    conversation = await harness.runtime.engine.find(thread_key("C0GENERAL", thread))
    assert conversation is not None and conversation.community == team
    assert conversation.ladder.redirects == 1
    warned = [c for c in harness.slack.calls_to("chat.postMessage") if c.get("thread_ts") == thread]
    return any("Warning" in str(c.get("blocks")) for c in warned)


@MODERATOR
async def test_a_workspaces_threshold_applies_there_only(harness: SlackHarness) -> None:
    assert "Saved." in await run(harness, "settings set redirects_before_warning 1", team="T1")
    assert await redirected_once(harness, "T1", "1700000300.000100")
    assert not await redirected_once(harness, "T2", "1700000400.000100")
    assert not await redirected_once(harness, TEAM_ID, "1700000500.000100")
    # A reply in the thread keeps the workspace's settings.
    harness.claude.add(text("Sure."))
    reply = message("ok", ts="1700000300.000200", thread_ts="1700000300.000100")
    await harness.send.event(in_team(event_callback(reply), "T1"))
    await harness.settle()
    assert len(harness.claude.requests) == 7


async def test_a_long_queue_stays_within_slacks_advised_length(harness: SlackHarness) -> None:
    """Slack advises at most 4,000 characters a message (chat.postEphemeral's `text`)."""
    conversation = await called_a_mistake(harness)
    [item] = await review_queue(harness.runtime.engine, platform="slack")
    long = StoredMessage(9, "user", "x " * 3000, [], item.last_messages[0].at)
    feedback = Feedback("U0ALICE", "y" * 5000, item.feedback[0].at)
    big = replace(item, feedback=(feedback,), stated_reason="z" * 5000, last_messages=(long,))
    shown = await harness.bot.listeners.interactions._queue_text([big] * 12)
    assert len(shown) <= MESSAGE_LIMIT and shown.count(conversation.id) < 12 * 2
    assert shown.endswith("more: decide these first.")


@MODERATOR
async def test_the_queue_shows_the_models_reason_for_an_end(harness: SlackHarness) -> None:
    """In a workspace that ends after one redirect, the model ends it; the person objects."""
    await run(harness, "settings set redirects_before_warning 1", team="T1")
    await run(harness, "settings set redirects_before_end 1", team="T1")
    thread = "1700000600.000100"
    assert await redirected_once(harness, "T1", thread)
    end = {"reason": "persistent_harmful_requests", "explanation": "kept asking for malware"}
    harness.claude.add(tool("end_conversation", end, text="I'm ending this."))
    again = message("ransomware!", ts="1700000600.000200", thread_ts=thread)
    await harness.send.event(in_team(event_callback(again), "T1"))
    await harness.settle()
    conversation = await harness.runtime.engine.find(thread_key("C0GENERAL", thread))
    assert conversation is not None and conversation.state == "ended"
    value = action_value(conversation.id, Place.CHANNEL)
    await harness.send.interaction(button(MISTAKE, value, thread_ts=thread))
    await harness.settle()
    queue = await run(harness, "review", team="T1")
    assert "The model's reason: kept asking for malware" in queue and "redirects: 1" in queue
    assert "Nothing awaits review" in await run(harness, "review")  # another workspace's
