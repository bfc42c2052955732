"""Odd gateway payloads (issue 9): MESSAGE_CREATE and INTERACTION_CREATE in shapes Discord
should never send (wrong JSON types, missing fields, files that are not objects, lone UTF-16
surrogates), dispatched through the fake gateway to the real discord.py and the bot. Nothing
may end in an unhandled exception, and the bot still answers a good message afterwards.

Hypothesis draws the payloads (a bounded number, so this runs in seconds); they are then
dispatched in one go, because the bot and the fakes live on the test's event loop.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platforms.discord import translate
from platforms.discord.app import QuitBot
from tests.fakes import discord_payloads as p
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.helpers import mention, opened_thread, wait_bot_message

Json = dict[str, Any]
MESSAGES = 100
INTERACTIONS = 60

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
LONE_SURROGATE = st.integers(0xD800, 0xDFFF).map(chr)
ODD_TEXT = st.lists(st.characters() | LONE_SURROGATE, max_size=40).map("".join)
MESSAGE_KEYS = [
    "id", "channel_id", "author", "content", "attachments", "mentions", "type", "guild_id",
    "member", "embeds", "timestamp", "flags", "message_reference", "components",
]  # fmt: skip
ATTACHMENT_KEYS = ["id", "filename", "size", "url", "proxy_url", "content_type"]
INTERACTION_KEYS = [
    "id", "type", "data", "channel_id", "channel", "token", "member", "user", "guild_id",
    "message", "application_id", "version", "app_permissions", "context",
]  # fmt: skip
CUSTOM_IDS = st.sampled_from(
    ["quitbot:new", "quitbot:end", "quitbot:keep", "quitbot:new:", "quitbot:new:x1",
     "quitbot:mistake:", "quitbot:mistake:nope", "quitbot:feedback:nope", "other:thing"]
) | ODD_TEXT  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, base: Json, keys: list[str]) -> Json:
    """`base` with some fields dropped or given a value of any JSON type."""
    payload = copy.deepcopy(base)
    for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)):
        if draw(st.booleans()):
            payload.pop(key, None)
        else:
            payload[key] = draw(JSON_VALUES)
    return payload


@st.composite
def odd_attachment(draw: st.DrawFn, good: Json) -> Any:
    if draw(st.booleans()):
        return draw(JSON_VALUES)  # not an object at all, often
    return draw(mutated(good, ATTACHMENT_KEYS))


@st.composite
def odd_message(draw: st.DrawFn, bases: list[Json], file: Json) -> Json:
    payload = draw(mutated(draw(st.sampled_from(bases)), MESSAGE_KEYS))
    if draw(st.booleans()):
        mention_ = draw(st.sampled_from(["", f"<@{bases[0]['_bot']}> "]))
        payload["content"] = mention_ + draw(ODD_TEXT)
    if draw(st.booleans()):
        payload["attachments"] = draw(st.lists(odd_attachment(file), max_size=3))
    payload.pop("_bot", None)
    return payload


@st.composite
def odd_interaction(draw: st.DrawFn, bases: list[Json]) -> Json:
    payload = copy.deepcopy(draw(st.sampled_from(bases)))
    payload["type"] = draw(st.sampled_from([2, 3, 4, 5]) | JSON_VALUES)
    data = payload.get("data")
    if isinstance(data, dict) and draw(st.booleans()):
        data["custom_id"] = draw(CUSTOM_IDS)
    if isinstance(data, dict) and draw(st.booleans()):
        data["components"] = draw(JSON_VALUES)
    if isinstance(data, dict) and draw(st.booleans()):
        data["name"] = draw(st.sampled_from(["chat", "new", "end", "quitbot", "gone"]) | ODD_TEXT)
        data["options"] = draw(JSON_VALUES)
    return draw(mutated(payload, INTERACTION_KEYS))


def draw_all(strategy: st.SearchStrategy[Json], count: int) -> list[Json]:
    """`count` examples of `strategy`, drawn by Hypothesis (no shrinking needed: nothing
    fails while drawing)."""
    drawn: list[Json] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(payload: Json) -> None:
        drawn.append(payload)

    collect()
    return drawn


def _findable(payload: Json) -> bool:
    """Whether the fake can keep `payload` among its messages (and read it back)."""
    author = payload.get("author")
    return (
        isinstance(payload.get("id"), str)
        and payload["id"].isdigit()
        and isinstance(payload.get("channel_id"), str)
        and isinstance(author, dict)
        and "id" in author
        and isinstance(payload.get("content"), str)
    )


def ours(record: logging.LogRecord) -> bool:
    """An error logged by quitbot, or an exception discord.py caught from our handlers."""
    return record.levelno >= logging.ERROR or (
        record.exc_info is not None and record.name.startswith(("bot", "platforms", "discord"))
    )


async def test_odd_payloads_end_in_no_unhandled_exception_and_the_bot_answers_after(
    bot: QuitBot,
    fake_discord: FakeDiscord,
    fake_anthropic: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = fake_discord
    caplog.set_level(logging.INFO)
    thread_id = await opened_thread(fake, fake_anthropic)
    fake_anthropic.responder = lambda body: text("Fine.")
    dm = fake.dm_channel_of(fake.alice)
    file = fake.add_file("notes.txt", "text/plain", b"some notes")
    bases = []
    for channel_id in (int(thread_id), fake.channel_id, int(dm["id"])):
        good = p.message(
            p.snowflake(),
            fake.channels[channel_id],
            fake.alice,
            f"<@{fake.bot_id}> hello",
            mentions=[fake.bot],
            attachments=[file],
        )
        bases.append(good | {"_bot": fake.bot_id})
    slash = await fake.slash("status", channel_id=int(thread_id), author=fake.alice)
    await fake.response(slash)
    # A real interaction's shape (a slash command), and a button press and a form like it.
    press = slash | {"type": 3, "data": {"custom_id": "quitbot:keep", "component_type": 2}}
    modal = slash | {"type": 5, "data": {"custom_id": "quitbot:feedback:x", "components": []}}
    interaction_bases = [slash, press, modal]

    messages = draw_all(odd_message(bases, file), MESSAGES)
    interactions = draw_all(odd_interaction(interaction_bases), INTERACTIONS)
    base_ids = {base["id"] for base in bases}
    for payload in messages:
        if isinstance(payload.get("id"), str) and payload["id"] in base_ids:  # its own id
            payload["id"] = str(p.snowflake())
        if _findable(payload):  # so that a thread can be opened from it
            fake.messages[int(payload["id"])] = payload
        await fake.dispatch("MESSAGE_CREATE", payload)
    for payload in interactions:
        payload = payload | {"id": str(p.snowflake())}
        payload["token"] = f"token-{payload['id']}"
        await fake.dispatch_interaction(payload, int(thread_id), str(fake.alice["id"]))

    # A good message afterwards is answered (the connection and the bot are still up).
    fake_anthropic.responder = lambda body: text(
        "Still answering." if "are you still there?" in str(body["messages"][-1]) else "Fine."
    )
    good = await mention(fake, "are you still there? \ud83d")  # half an emoji, too
    await wait_bot_message(fake, good["id"], lambda m: m["content"] == "Still answering.")
    await bot.flows.drain(60)  # and whatever the odd ones started has finished
    conversation = await bot.flows.engine.find(translate.thread_key(int(good["id"])))
    assert conversation is not None
    stored, _ = await bot.flows.engine.record(conversation.id)
    assert stored[0].text == "are you still there? \ufffd"  # made safe to store

    problems = [r for r in caplog.records if ours(r)]
    print(
        f"fuzz test: {len(messages)} messages and {len(interactions)} interactions dispatched, "
        f"{len(fake_anthropic.requests)} model calls, {len(problems)} errors logged"
    )
    assert problems == [], "\n".join(
        f"{r.name}: {r.getMessage()}" + (f" ({r.exc_info[1]!r})" if r.exc_info else "")
        for r in problems
    )


async def test_a_file_with_fields_of_the_wrong_type_never_drops_the_message(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    """Found by the fuzz test: a file whose url is not a string made the download raise
    TypeError, and the message, already kept, went unanswered; a size that is not a number
    failed the turn."""
    fake = fake_discord
    odd = fake.add_file("notes.txt", "text/plain", b"never read")
    odd["url"] = odd["proxy_url"] = 12345
    sized = fake.add_file("sized.txt", "text/plain", b"never read")
    sized["size"] = {"bytes": 10}
    fake_anthropic.add(text("Answered anyway."))
    opening = await fake.post(
        fake.channel_id, fake.alice, f"<@{fake.bot_id}> read this", mention_bot=True,
        attachments=[odd, sized],
    )  # fmt: skip
    await wait_bot_message(fake, opening["id"], lambda m: m["content"] == "Answered anyway.")
    assert "notes.txt" in str(fake_anthropic.requests[0]["messages"][-1]["content"])


@pytest.mark.parametrize("guild_id", [[], {}])
async def test_an_interaction_whose_server_id_is_an_empty_list_or_object_is_answered(
    bot: QuitBot,
    fake_discord: FakeDiscord,
    fake_anthropic: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
    guild_id: object,
) -> None:
    # discord.py keeps a falsy guild_id as it came (`value and int(value)`), and looking
    # the server up by it then raises "unhashable type": found by the test above.
    fake = fake_discord
    thread_id = await opened_thread(fake, fake_anthropic)
    slash = await fake.slash("status", channel_id=int(thread_id), author=fake.alice)
    await fake.response(slash)
    odd = slash | {"id": str(p.snowflake()), "guild_id": guild_id}
    odd["token"] = f"token-{odd['id']}"
    await fake.dispatch_interaction(odd, int(thread_id), str(fake.alice["id"]))
    await fake.response(odd, ok_only=False)
    problems = [r for r in caplog.records if ours(r)]
    assert problems == [], [r.getMessage() for r in problems]
