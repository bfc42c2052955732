"""End to end over real HTTP: signed Slack requests -> Bolt -> engine -> fake Slack and Claude."""

from __future__ import annotations

from typing import Any

import pytest

from platforms.slack.render import END_CONFIRM, action_value
from platforms.slack.translate import Place, thread_key
from tests.fakes.anthropic import error, text, tool
from tests.fakes.slack import BOT_USER_ID, FakeSlack
from tests.fakes.slack_requests import button, event_callback, mention, message
from tests.platforms.slack.conftest import SlackHarness

THREAD = "1700000100.000100"
HARMFUL = {"kind": "harmful_request", "note": "asked for malware"}
END_HARMFUL = {"reason": "persistent_harmful_requests", "explanation": "kept asking for malware"}


def streamed(slack: FakeSlack) -> str:
    """The Markdown the app streamed, across startStream/appendStream/stopStream."""
    pieces = []
    for call in slack.calls:
        if call.method in {"chat.startStream", "chat.appendStream", "chat.stopStream"}:
            for chunk in call.args.get("chunks") or []:
                pieces.append(chunk["text"])
    return "".join(pieces)


def posted(slack: FakeSlack) -> list[dict[str, Any]]:
    return slack.calls_to("chat.postMessage")


def answers(slack: FakeSlack) -> list[dict[str, Any]]:
    """Replies begun: streams started, and short replies posted whole as Markdown."""
    whole = [c for c in posted(slack) if "markdown_text" in c]
    return slack.calls_to("chat.startStream") + whole


LONG = "Hello! **Happy** to help. " + "Here is more of the answer. " * 12


async def test_a_mention_gets_a_threaded_streamed_reply(harness: SlackHarness) -> None:
    harness.claude.add(text(LONG))
    sent = await harness.send.event(event_callback(mention("hi there", ts=THREAD)))
    assert sent.status == 200
    await harness.settle()
    [start] = harness.slack.calls_to("chat.startStream")
    assert start["channel"] == "C0GENERAL" and start["thread_ts"] == THREAD
    assert start["recipient_user_id"] == "U0ALICE" and start["recipient_team_id"] == "T0FAKE"
    assert streamed(harness.slack) == LONG
    assert len(harness.slack.calls_to("chat.stopStream")) == 1
    assert harness.claude.requests[0]["messages"][-1]["content"][-1]["text"] == "hi there"


async def test_a_short_reply_is_posted_whole(harness: SlackHarness) -> None:
    harness.claude.add(text("Hi! **Sure**."))
    await harness.send.event(event_callback(mention("hi", ts=THREAD)))
    await harness.settle()
    [reply] = posted(harness.slack)
    assert reply["markdown_text"] == "Hi! **Sure**." and reply["thread_ts"] == THREAD
    assert harness.slack.calls_to("chat.startStream") == []


async def test_the_mention_and_its_message_event_get_one_answer(harness: SlackHarness) -> None:
    harness.claude.add(text("Only once."))
    as_message = message(f"<@{BOT_USER_ID}> hi", ts=THREAD)
    await harness.send.event(event_callback(mention("hi", ts=THREAD)))
    await harness.send.event(event_callback(as_message))
    await harness.settle()
    assert len(harness.claude.requests) == 1
    assert len(answers(harness.slack)) == 1


async def test_a_retried_event_gets_one_answer(harness: SlackHarness) -> None:
    harness.claude.add(text("Only once."))
    payload = event_callback(mention("hi", ts=THREAD))
    await harness.send.event(payload)
    retry = await harness.send.event(payload, retry_num=1)
    assert retry.status == 200
    await harness.settle()
    assert len(harness.claude.requests) == 1
    assert len(answers(harness.slack)) == 1


async def test_a_thread_continues_without_a_mention(harness: SlackHarness) -> None:
    harness.claude.add(text("First."), text("Second."))
    await harness.send.event(event_callback(mention("hi", ts=THREAD)))
    await harness.settle()
    reply = message("and then?", ts="1700000100.000300", thread_ts=THREAD)
    await harness.send.event(event_callback(reply))
    await harness.settle()
    assert len(harness.claude.requests) == 2
    texts = [m["content"][-1]["text"] for m in harness.claude.requests[1]["messages"]]
    assert texts[0] == "hi" and texts[-1] == "and then?"


async def test_channel_chatter_and_unknown_threads_are_left_alone(harness: SlackHarness) -> None:
    await harness.send.event(event_callback(message("lunch?", ts="1700000100.000500")))
    other = message("hm", ts="1700000100.000700", thread_ts="1700000100.000600")
    await harness.send.event(event_callback(other))
    edited = message("x", ts="1700000100.000800", subtype="message_changed")
    assert (await harness.send.event(event_callback(edited))).status == 200
    await harness.settle()
    assert harness.claude.requests == []
    assert harness.slack.methods() == ["auth.test"]


async def test_a_direct_message_is_answered_in_its_thread(harness: SlackHarness) -> None:
    harness.claude.add(text("Hi in DM."))
    dm = message("hello", ts="1700000200.000100", channel="D0ALICE", channel_type="im")
    await harness.send.event(event_callback(dm))
    await harness.settle()
    [reply] = answers(harness.slack)
    assert reply["channel"] == "D0ALICE" and reply["thread_ts"] == "1700000200.000100"


async def test_a_bad_signature_is_rejected_and_nothing_stored(harness: SlackHarness) -> None:
    sent = await harness.send.event(event_callback(mention("hi", ts=THREAD)), secret="wrong")
    assert sent.status == 401
    await harness.settle()
    assert harness.claude.requests == []
    assert await harness.runtime.store.list_conversations() == []
    assert harness.slack.calls == []


async def test_persistent_abuse_is_warned_then_ended(harness: SlackHarness) -> None:
    ts = iter(f"1700000100.{n:06d}" for n in range(200, 300))
    await harness.send.event(event_callback(mention("write ransomware", ts=THREAD)))
    harness.claude.add(tool("note_concern", HARMFUL, text="I can't help."), text("Else?"))
    await harness.settle()
    for _ in range(2):
        harness.claude.add(tool("note_concern", HARMFUL, text="No."), text("Else?"))
        again = message("ransomware!", ts=next(ts), thread_ts=THREAD)
        await harness.send.event(event_callback(again))
        await harness.settle()
    warnings = [c for c in posted(harness.slack) if "Warning" in str(c.get("blocks"))]
    assert len(warnings) == 1 and warnings[0]["thread_ts"] == THREAD

    harness.claude.add(tool("end_conversation", END_HARMFUL, text="I'm ending this."))
    await harness.send.event(event_callback(message("now!", ts=next(ts), thread_ts=THREAD)))
    await harness.settle()
    end = posted(harness.slack)[-1]
    assert end["thread_ts"] == THREAD and "harmful content" in end["text"]
    actions = next(b for b in end["blocks"] if b["type"] == "actions")
    assert [e["text"]["text"] for e in actions["elements"]] == [
        "Start a new conversation",
        "This was a mistake",
    ]
    [reaction] = harness.slack.calls_to("reactions.add")
    assert reaction["timestamp"] == THREAD and reaction["channel"] == "C0GENERAL"
    conversation = await harness.runtime.engine.find(thread_key("C0GENERAL", THREAD))
    assert conversation is not None and conversation.state == "ended"

    asked = len(harness.claude.requests)
    for n in range(3):
        late = message(f"hello? {n}", ts=next(ts), thread_ts=THREAD)
        await harness.send.event(event_callback(late))
        await harness.settle()
    assert len(harness.claude.requests) == asked
    [blocked] = harness.slack.calls_to("chat.postEphemeral")
    assert blocked["user"] == "U0ALICE" and blocked["thread_ts"] == THREAD
    assert "ended" in blocked["text"] and "mention" in blocked["text"]


async def claude_sees(
    harness: SlackHarness, mimetype: str, name: str, data: bytes, size: int | None = None
) -> list[dict[str, Any]]:
    """The content Claude is sent for a mention sharing one file the fake Slack holds
    (as a message event lists a file: https://api.slack.com/types/file)."""
    harness.slack.files[name] = data
    harness.claude.add(text("Seen."))
    shared = {
        "id": "F1",
        "name": name,
        "mimetype": mimetype,
        "size": len(data) if size is None else size,
        "url_private_download": harness.slack.file_url(name),
    }
    event = mention("look at this", ts=THREAD, subtype="file_share", files=[shared])
    await harness.send.event(event_callback(event))
    await harness.settle()
    content: list[dict[str, Any]] = harness.claude.requests[0]["messages"][-1]["content"]
    return content


@pytest.mark.parametrize("slack_overrides", [{"max_attachment_bytes": 5}])
async def test_shared_text_files_are_read_up_to_the_limit(harness: SlackHarness) -> None:
    sent = (await claude_sees(harness, "text/plain", "notes.txt", b"0123456789"))[-1]["text"]
    assert "01234" in sent and "56789" not in sent and "truncated" in sent


async def test_a_text_file_is_known_by_its_name_as_on_discord(harness: SlackHarness) -> None:
    # Slack's mimetype for an upload is not always what the file is (slackapi/bolt-js#2454):
    # a file named as text is read as text whatever its type (bot/context.file_kind).
    content = await claude_sees(harness, "application/octet-stream", "config.toml", b"a = 1")
    assert '<file name="config.toml">\na = 1\n</file>' in content[-1]["text"]


async def test_shared_images_go_to_claude_as_images(harness: SlackHarness) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    content = await claude_sees(harness, "image/png", "cat.png", png)
    assert content[0]["type"] == "image" and content[0]["source"]["media_type"] == "image/png"


async def test_an_image_too_large_for_the_api_is_named_not_fetched(
    harness: SlackHarness,
) -> None:
    # 4 MB of image is over 5 MB once base64-encoded: the API would refuse the whole turn.
    content = await claude_sees(harness, "image/png", "big.png", b"\x89PNG", size=4_000_000)
    assert [block["type"] for block in content] == ["text"]
    assert "big.png (image/png, 4,000,000 bytes); it was not read" in content[0]["text"]


async def test_url_verification_is_answered(harness: SlackHarness) -> None:
    challenge = {"token": "x", "challenge": "c-123", "type": "url_verification"}
    sent = await harness.send.event(challenge)
    assert sent.status == 200 and "c-123" in sent.body


async def test_each_poster_in_an_ended_thread_is_told_once(harness: SlackHarness) -> None:
    await harness.send.event(event_callback(mention("hi", ts=THREAD)))
    harness.claude.add(text("Hello."))
    await harness.settle()
    conversation = await harness.runtime.engine.find(thread_key("C0GENERAL", THREAD))
    assert conversation is not None
    value = action_value(conversation.id, Place.CHANNEL)
    await harness.send.interaction(button(END_CONFIRM, value, thread_ts=THREAD, ephemeral=True))
    await harness.settle()
    for n, user in enumerate(["U0ALICE", "U0BOB", "U0ALICE", "U0BOB"]):
        late = message("hi", ts=f"1700000100.{n + 500:06d}", thread_ts=THREAD, user=user)
        await harness.send.event(event_callback(late))
    await harness.settle()
    told = [e["user"] for e in harness.slack.calls_to("chat.postEphemeral")]
    assert sorted(told) == ["U0ALICE", "U0BOB"]
    assert len(harness.claude.requests) == 1


async def test_model_down_tells_the_poster_and_keeps_the_message(harness: SlackHarness) -> None:
    harness.claude.add(error(529, retry_after=0.001), error(529, retry_after=0.001))
    await harness.send.event(event_callback(mention("are you there?", ts=THREAD)))
    await harness.settle()
    shown = [
        str(call.args)
        for call in harness.slack.calls
        if call.method in {"chat.postMessage", "chat.postEphemeral"}
    ]
    assert any("couldn't reach the model" in s for s in shown)
    conversation = await harness.runtime.engine.find(thread_key("C0GENERAL", THREAD))
    assert conversation is not None
    messages, _ = await harness.runtime.engine.record(conversation.id)
    assert [m.text for m in messages] == ["are you there?"]


async def test_a_slack_connect_user_is_streamed_to_on_their_own_team(
    harness: SlackHarness,
) -> None:
    """`team` is the channel's workspace; the person's own is `user_team` (Slack Connect)."""
    harness.claude.add(text(LONG))
    event = mention("hi", ts=THREAD, user="U0GUEST", team="T0FAKE", user_team="T0OTHER")
    await harness.send.event(event_callback(event))
    await harness.settle()
    [start] = harness.slack.calls_to("chat.startStream")
    assert start["recipient_team_id"] == "T0OTHER" and start["recipient_user_id"] == "U0GUEST"


async def test_one_failed_stream_start_leaves_streaming_on_for_other_threads(
    harness: SlackHarness,
) -> None:
    harness.slack.fail("chat.startStream", "internal_error", times=1)
    harness.claude.add(text(LONG), text(LONG))
    await harness.send.event(event_callback(mention("one", ts=THREAD)))
    await harness.settle()
    await harness.send.event(event_callback(mention("two", ts="1700000100.000900")))
    await harness.settle()
    first, second = harness.slack.results_of("chat.startStream")
    assert first["ok"] is False and second["ok"] is True
    fallback = [c for c in posted(harness.slack) if c.get("thread_ts") == THREAD]
    assert fallback and fallback[0]["text"].startswith("Hello!")
    assert streamed(harness.slack).endswith(LONG)


async def test_a_reply_cut_at_max_tokens_says_so(harness: SlackHarness) -> None:
    harness.claude.add(text("The first half of a long answ", stop_reason="max_tokens"))
    await harness.send.event(event_callback(mention("tell me everything", ts=THREAD)))
    await harness.settle()
    notice = posted(harness.slack)[-1]
    assert notice["thread_ts"] == THREAD and "cut short" in notice["text"]
    assert ":scissors:" in notice["blocks"][0]["text"]["text"]
