"""Pure translation of Discord payloads (in Discord's documented v10 shape) to core types."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord
import pytest
import pytest_asyncio

from bot.context import file_kind
from bot.conversation import ConversationKey
from platforms.discord import translate

FIXTURES = Path(__file__).parents[2] / "fixtures" / "discord"
BOT_ID = 1380000000000000001


def payload(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


@pytest_asyncio.fixture
async def state() -> AsyncIterator[Any]:
    client = discord.Client(intents=discord.Intents.none())
    yield client._connection
    await client.close()


def message(state: Any, name: str) -> discord.Message:
    data = payload(name)
    guild_id = int(data["guild_id"]) if "guild_id" in data else None
    channel = discord.PartialMessageable(
        state=state,
        id=int(data["channel_id"]),
        guild_id=guild_id,
        type=discord.ChannelType(data["channel_type"]),
    )
    return discord.Message(state=state, channel=channel, data=data)  # type: ignore[arg-type]


async def test_a_mention_in_a_channel_opens_a_thread_without_the_mention(state: Any) -> None:
    routed = translate.route(message(state, "message_create_mention"), BOT_ID)
    assert isinstance(routed, translate.StartThread)
    assert routed.text.startswith("how do I   write a haiku")


async def test_a_thread_message_continues_only_a_known_conversation(state: Any) -> None:
    routed = translate.route(message(state, "message_create_thread"), BOT_ID)
    assert routed == translate.Converse(
        ConversationKey("discord", "1441050383112392704"), "and a second verse, please", True
    )


async def test_a_dm_is_always_a_conversation(state: Any) -> None:
    routed = translate.route(message(state, "message_create_dm"), BOT_ID)
    assert routed == translate.Converse(
        ConversationKey("discord", "dm:1400000000000000050"),
        "hey, can you help me plan a trip?",
        False,
    )


@pytest.mark.parametrize("kind", [discord.ChannelType.voice, discord.ChannelType.stage_voice])
async def test_a_mention_in_a_voice_chat_cannot_open_a_thread(
    state: Any, kind: discord.ChannelType
) -> None:
    """A voice (or stage) channel's text chat has no threads: the mention is told so."""
    data = payload("message_create_mention") | {"channel_type": kind.value}
    channel = discord.PartialMessageable(
        state=state, id=int(data["channel_id"]), guild_id=int(data["guild_id"]), type=kind
    )
    mention = discord.Message(state=state, channel=channel, data=data)  # type: ignore[arg-type]
    assert translate.route(mention, BOT_ID) == translate.NoThreads()
    unmentioned = discord.Message(
        state=state,
        channel=channel,
        data=data | {"mentions": []},  # type: ignore[arg-type]
    )
    assert translate.route(unmentioned, BOT_ID) == translate.Ignore()


@pytest.mark.parametrize("name", ["message_create_other_bot", "message_create_thread_starter"])
async def test_bots_and_system_messages_are_ignored(state: Any, name: str) -> None:
    assert translate.route(message(state, name), BOT_ID) == translate.Ignore()


async def test_its_own_messages_are_ignored(state: Any) -> None:
    routed = translate.route(message(state, "message_create_other_bot"), 1390000000000000002)
    assert routed == translate.Ignore()


async def test_inbound_carries_ids_for_dedupe_and_branching(state: Any) -> None:
    msg = message(state, "message_create_thread")
    key = translate.thread_key(msg.channel.id)
    inbound = translate.inbound(msg, key, "hi")
    assert inbound.event_id == "message:1441050794938515456"
    assert inbound.message_id == "1441050794938515456"
    assert inbound.user_id == "1200000000000000007"
    assert inbound.community == "1100000000000000001"  # the server's settings apply


async def test_a_dm_belongs_to_no_community(state: Any) -> None:
    msg = message(state, "message_create_dm")
    assert translate.inbound(msg, translate.key_for(msg.channel), "hi").community == ""


async def test_attachment_kinds(state: Any) -> None:
    msg = message(state, "message_create_mention")
    files = [translate.file_ref(a) for a in msg.attachments]
    kinds = {f.name: file_kind(f.name, f.media_type) for f in files}
    assert kinds == {
        "leaf.png": "image",
        "draft.py": "text",
        "notes.txt": "text",
        "song.mp3": "other",
    }
    assert translate.media_type(msg.attachments[2]) == "text/plain"


def test_thread_names_come_from_the_first_words() -> None:
    assert translate.thread_name("  what   is\na thread? ", "alice") == "what is a thread?"
    assert translate.thread_name("", "alice") == "Conversation with alice"
    long = translate.thread_name("word " * 40, "alice")
    assert len(long) <= 100 and long.endswith("…") and " wor…" not in long


def test_keys_and_places() -> None:
    assert translate.thread_id_of(translate.thread_key(42)) == 42
    assert translate.thread_id_of(translate.dm_key(42)) is None


def test_custom_ids_round_trip() -> None:
    assert translate.parse_custom_id(translate.NEW_CONVERSATION) == translate.Action("new")
    assert translate.parse_custom_id(translate.mistake_id("c1")) == translate.Action(
        "mistake", "c1"
    )
    feedback = translate.feedback_modal_id("c1")
    assert translate.parse_custom_id(feedback) == translate.Action("feedback", "c1")
    assert translate.parse_custom_id("quitbot:mistake:") is None
    assert translate.parse_custom_id("someone-elses-button") is None


def test_feedback_text_from_a_modal_with_labels_or_rows() -> None:
    labelled = payload("interaction_modal_submit")["data"]["components"]
    assert translate.modal_text(labelled) == "I was quoting a film"
    rows = [
        {
            "type": 1,
            "components": [{"type": 4, "custom_id": translate.FEEDBACK_FIELD, "value": "x"}],
        }
    ]
    assert translate.modal_text(rows) == "x"
    assert translate.modal_text([]) == ""


def test_a_moderator_names_a_conversation_by_id_or_by_its_thread() -> None:
    thread = ConversationKey("discord", "1300000000000000100")
    assert translate.conversation_target(" `cab12` ") == "cab12"
    for typed in (
        "<#1300000000000000100>",
        "1300000000000000100",
        "https://discord.com/channels/1100000000000000001/1300000000000000100",
    ):
        assert translate.conversation_target(typed) == thread


def test_odd_interaction_data_reads_as_nothing() -> None:
    """Shapes Discord never sends (found by the fuzz test) are read as empty, not raised."""
    assert translate.modal_text([[1, 2], "row", None, {"components": 5}]) == ""
    assert translate.modal_text({"components": []}) == ""
    assert translate.payload_data([("custom_id", "x")]) == {}
    assert translate.payload_data({"custom_id": "x"}) == {"custom_id": "x"}


@pytest.mark.parametrize("field", ["id", "channel_id"])
@pytest.mark.parametrize("bad", [-1, 0, 2**64])
async def test_ids_that_are_no_snowflake_are_refused(state: Any, field: str, bad: int) -> None:
    """Found by the fuzz test: discord.py reads any integer as an id, and a negative one
    made the bot open a thread at a path Discord does not have."""
    data = payload("message_create_mention") | {field: str(bad)}
    channel = discord.PartialMessageable(
        state=state, id=int(data["channel_id"]), type=discord.ChannelType.text
    )
    odd = discord.Message(state=state, channel=channel, data=data)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not snowflakes"):
        translate.route(odd, BOT_ID)


def test_the_offer_posts_title_names_the_ended_post_within_the_limit() -> None:
    assert translate.offer_post_name("help with my essay") == "Ended: help with my essay"
    assert len(translate.offer_post_name("x" * 100)) == 100
    assert translate.offer_post_name(None) == "An ended conversation"
