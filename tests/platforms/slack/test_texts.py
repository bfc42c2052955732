"""The operator's own words on Slack, end to end: the end confirmation's buttons, the final
notice with its header, buttons and way back, and a workspace's own words over them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.communities import CommunitySettings
from bot.texts import TextKey, Texts
from platforms.slack.render import (
    BRANCH,
    END_CONFIRM,
    NEW_CONVERSATION,
    action_value,
    escape,
    how_to_start_again,
)
from platforms.slack.translate import Place
from tests.fakes.anthropic import text, tool
from tests.fakes.slack import TEAM_ID, permalink
from tests.fakes.slack_requests import button, event_callback, mention, message_shortcut
from tests.platforms.slack.conftest import SlackHarness
from tests.platforms.slack.test_assistant import STARTED
from tests.platforms.slack.test_commands import ended
from tests.platforms.slack.test_review import MODERATOR, run

THREAD = "1700000100.000100"
ASKED = {"reason": "user_requested", "explanation": "they asked to stop"}
WORDS = """
end_user_requested = "Done: you wanted to stop here."
refused.not_found = "No conversation of mine by that name."
refused.not_moderator = "Moderators only, sorry."
[slack]
greeting = "Hello from your workplace helper."
prompt_1_title = "Ask about leave"
prompt_1 = "How many days of leave do I have left?"
branched = "{person} took a branch from <{link}|here>."
new_channel = "{person} starts afresh."
end_title = "Finished"
button_end = "Yes, stop it"
button_keep = "No, go on"
button_new = "Begin again"
start_again_channel = "Say hello to {bot} in the channel to begin again."
"""


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "texts.toml"
    path.write_text(WORDS, encoding="utf-8")
    return {"texts": path}


def labels(message: dict[str, Any]) -> list[str]:
    return [
        e["text"]["text"]
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]


async def proposal(harness: SlackHarness) -> dict[str, Any]:
    """Alice asks in words; the model proposes the end; the proposal posted in the thread."""
    harness.claude.add(tool("end_conversation", ASKED, text="Okay."), text("Confirm above."))
    await harness.send.event(event_callback(mention("please end this", ts=THREAD)))
    await harness.settle()
    return next(c for c in harness.slack.calls_to("chat.postMessage") if "blocks" in c)


async def test_the_operator_s_words_show_in_the_end_and_on_the_buttons(
    harness: SlackHarness,
) -> None:
    asked = await proposal(harness)
    assert labels(asked) == ["Yes, stop it", "No, go on"]
    [actions] = [b for b in asked["blocks"] if b["type"] == "actions"]
    value = actions["elements"][0]["value"]
    await harness.send.interaction(button(END_CONFIRM, value, thread_ts=THREAD))
    await harness.settle()
    final = harness.slack.calls_to("chat.postMessage")[-1]
    assert final["blocks"][0]["text"]["text"] == "Finished"
    assert final["blocks"][1]["text"]["text"] == "Done: you wanted to stop here."
    again = f"Say hello to <@{harness.bot.deps.bot_user_id}> in the channel to begin again."
    assert final["text"] == f"Done: you wanted to stop here. {again}"
    assert labels(final) == ["Begin again", "This was a mistake"]


async def test_a_workspace_s_own_label_beats_the_operator_s(harness: SlackHarness) -> None:
    own = CommunitySettings(texts={"slack.button_end": "Stop for good"})
    flows = harness.bot.flows
    saved = await flows.set_community_settings(TEAM_ID, own, "mod", is_moderator=True)
    assert saved.ok
    assert labels(await proposal(harness)) == ["Stop for good", "No, go on"]


@MODERATOR
async def test_moderators_set_and_reset_one_text_and_a_bad_one_is_refused(
    harness: SlackHarness,
) -> None:
    saved = await run(harness, "settings set texts.slack.button_end Stop & go")
    assert saved.startswith("Saved.")
    refused = await run(harness, "settings set texts.warning Careful, {name}.")
    assert "warning: unknown placeholder {name}" in refused
    assert "Name one text" in await run(harness, "settings set texts")
    own = await harness.runtime.engine.community_settings("slack", TEAM_ID)
    assert own.texts == {"slack.button_end": "Stop & go"}  # as typed; nothing else was kept
    assert labels(await proposal(harness)) == ["Stop & go", "No, go on"]
    assert (await run(harness, "settings reset texts.slack.button_end")).startswith("Reset.")
    own = await harness.runtime.engine.community_settings("slack", TEAM_ID)
    assert own.texts is None


async def test_a_refusal_is_in_the_operator_s_words(harness: SlackHarness) -> None:
    assert await run(harness, "status C0GENERAL", user="U0MEMBER") == "Moderators only, sorry."
    assert (
        await run(harness, "end nosuch", user="U0ALICE") == "No conversation of mine by that name."
    )


async def test_a_workspace_s_refusal_beats_the_operator_s_there_only(
    harness: SlackHarness,
) -> None:
    own = CommunitySettings(texts={"refused.not_found": "Not one of this workspace's."})
    flows = harness.bot.flows
    assert (await flows.set_community_settings(TEAM_ID, own, "mod", is_moderator=True)).ok
    assert await run(harness, "end nosuch", user="U0ALICE") == "Not one of this workspace's."
    elsewhere = await run(harness, "end nosuch", user="U0ALICE", team="T0OTHER")
    assert elsewhere == "No conversation of mine by that name."


async def test_the_assistant_pane_greets_in_the_operator_s_words(harness: SlackHarness) -> None:
    await harness.send.event(event_callback(STARTED))
    await harness.settle()
    [greeting] = harness.slack.calls_to("chat.postMessage")
    assert greeting["text"] == "Hello from your workplace helper."
    [prompts] = harness.slack.calls_to("assistant.threads.setSuggestedPrompts")
    first, second, _ = prompts["prompts"]
    assert first == {
        "title": "Ask about leave",
        "message": "How many days of leave do I have left?",
    }
    assert second["title"] == "Help me write"  # not overridden: the bot's own


async def test_a_branch_and_a_fresh_start_open_their_threads_in_the_operator_s_words(
    harness: SlackHarness,
) -> None:
    conversation = await ended(harness)
    await harness.send.interaction(message_shortcut(BRANCH, ts=THREAD, thread_ts=THREAD))
    await harness.settle()
    root, _ = harness.slack.calls_to("chat.postMessage")[-2:]
    assert root["text"] == f"<@U0ALICE> took a branch from <{permalink('C0GENERAL', THREAD)}|here>."
    value = action_value(conversation.id, Place.CHANNEL)
    await harness.send.interaction(button(NEW_CONVERSATION, value))
    await harness.settle()
    root, _ = harness.slack.calls_to("chat.postMessage")[-2:]
    assert root["text"] == "<@U0ALICE> starts afresh."


def test_a_value_in_a_template_stays_plain_and_only_the_bot_s_mention_is_markup() -> None:
    words = Texts({"slack.start_again_channel": "Ask {bot} again."})
    assert how_to_start_again(Place.CHANNEL, "U1", words) == "Ask <@U1> again."
    hostile = "<!channel> & {bot}"
    shown = words.get(TextKey.SLACK_START_AGAIN_CHANNEL, escape, bot=hostile)
    assert shown == "Ask &lt;!channel&gt; &amp; {bot} again."
