"""Streaming a reply into a thread: Slack's streaming, the edited-message fallback, 429s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from bot.settings import Settings, SlackSettings
from platforms.slack.client import build_client
from platforms.slack.place import Deps, SlackPlace
from platforms.slack.render import MESSAGE_LIMIT
from platforms.slack.stream import FIRST_RENDER_CHARS, SlackReply, StreamingSupport
from platforms.slack.translate import Place
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, FakeSlack
from tests.platforms.slack.conftest import Clock

# Where a reply goes (a SlackPlace's channel, thread_ts, kind, user_id, team_id).
TARGET = ("C0GENERAL", "1700000100.000100", Place.CHANNEL, "U0ALICE", "T0FAKE")


class Waits:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


def reply_to(
    fake: FakeSlack,
    session: aiohttp.ClientSession,
    clock: Clock,
    support: StreamingSupport | None = None,
    waits: Waits | None = None,
    target: tuple[Any, ...] = TARGET,
) -> SlackReply:
    settings = SlackSettings(  # type: ignore[call-arg]
        _env_file=None, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_APP_TOKEN=APP_TOKEN, api_url=fake.base_url
    )
    client = build_client(settings, session, sleep=waits or Waits())
    whole = Settings.model_construct(slack=settings)
    deps = Deps(whole, client, session, clock, 1.0, support or StreamingSupport())
    return SlackReply(SlackPlace(deps, *target))


def chunks(fake: FakeSlack, method: str) -> list[str]:
    return ["".join(c["text"] for c in call.get("chunks", [])) for call in fake.calls_to(method)]


async def test_streams_at_the_throttled_pace(session: aiohttp.ClientSession) -> None:
    clock = Clock()
    async with FakeSlack() as fake:
        reply = reply_to(fake, session, clock)
        await reply.thinking()
        await reply.text("Hel")
        await reply.text("lo")
        clock.now += 0.5
        await reply.text(" wor")
        clock.now += 0.5
        await reply.text("ld")  # one interval after the first text: shown
        await reply.text("!")
        clock.now += 1
        await reply.text(" Bye")
        await reply.text(".")
        ts = await reply.done()
    assert chunks(fake, "chat.startStream") == ["Hello world"]
    assert chunks(fake, "chat.appendStream") == ["! Bye"]
    assert chunks(fake, "chat.stopStream") == ["."]
    assert ts == fake.calls_to("chat.stopStream")[0]["ts"]
    assert fake.calls_to("assistant.threads.setStatus") == []  # only in assistant threads
    assert not fake.unexpected


async def test_enough_text_is_shown_before_the_first_interval(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeSlack() as fake:
        reply = reply_to(fake, session, Clock())
        await reply.text("a" * (FIRST_RENDER_CHARS - 1))
        assert fake.calls == []
        await reply.text("b")
        assert chunks(fake, "chat.startStream") == ["a" * (FIRST_RENDER_CHARS - 1) + "b"]
        await reply.done()


async def test_a_reply_done_before_its_first_render_is_one_message(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeSlack() as fake:
        reply = reply_to(fake, session, Clock())
        await reply.text("**Short**")
        ts = await reply.done()
    assert fake.methods() == ["chat.postMessage"]
    [post] = fake.calls_to("chat.postMessage")
    assert (
        post["markdown_text"] == "**Short**" and ts == fake.results_of("chat.postMessage")[0]["ts"]
    )


async def test_falls_back_to_one_edited_message(session: aiohttp.ClientSession) -> None:
    clock, support = Clock(), StreamingSupport()
    async with FakeSlack(streaming=False) as fake:
        reply = reply_to(fake, session, clock, support)
        await reply.text("**Bold** start")
        clock.now += 1
        await reply.text(", more")
        await reply.text(" and [a link](https://example.com)")
        ts = await reply.done()
        assert support.enabled is False
        [post] = fake.calls_to("chat.postMessage")
        assert post["text"] == "*Bold* start, more" and post["thread_ts"] == TARGET[1]
        updates = [u["text"] for u in fake.calls_to("chat.update")]
        assert updates == ["*Bold* start, more and <https://example.com|a link>"]
        assert ts == fake.calls_to("chat.update")[0]["ts"]

        second = reply_to(fake, session, clock, support)
        await second.text("again")
        await second.done()
        assert len(fake.calls_to("chat.startStream")) == 1  # learnt once, not asked again
        assert fake.calls_to("chat.postMessage")[-1]["text"] == "again"
        assert not fake.unexpected


async def test_a_long_reply_is_split_into_messages(session: aiohttp.ClientSession) -> None:
    clock = Clock()
    paragraphs = [f"Paragraph {n}. " + "word " * 150 for n in range(12)]
    async with FakeSlack(streaming=False) as fake:
        reply = reply_to(fake, session, clock)
        for paragraph in paragraphs:
            await reply.text(paragraph.strip() + "\n\n")
        first = await reply.done()
    posts = fake.calls_to("chat.postMessage")
    assert len(posts) >= 3
    posted = fake.results_of("chat.postMessage")
    final = {r["ts"]: p["text"] for p, r in zip(posts, posted, strict=True)}
    for update in fake.calls_to("chat.update"):
        final[update["ts"]] = update["text"]
    assert all(len(t) <= MESSAGE_LIMIT for t in final.values())
    assert all(t.startswith("Paragraph") for t in final.values())
    assert "".join(final.values()).count("Paragraph") == 12
    assert first == min(final)


async def test_a_stream_that_breaks_midway_is_finished_by_editing(
    session: aiohttp.ClientSession,
) -> None:
    clock = Clock()
    async with FakeSlack() as fake:
        fake.fail("chat.appendStream", "message_not_in_streaming_state")
        reply = reply_to(fake, session, clock)
        await reply.text("one ")
        clock.now += 1
        await reply.text("two")
        clock.now += 1
        await reply.text(" three")
        ts = await reply.done()
    [started] = fake.results_of("chat.startStream")
    [update] = fake.calls_to("chat.update")
    assert update["text"] == "one two three" and update["ts"] == ts == started["ts"]
    assert fake.calls_to("chat.postMessage") == []


async def test_an_empty_reply_posts_nothing_and_clears_the_status(
    session: aiohttp.ClientSession,
) -> None:
    assistant = ("D0ALICE", "1700000300.000100", Place.ASSISTANT, "U0ALICE", "T0FAKE")
    async with FakeSlack() as fake:
        reply = reply_to(fake, session, Clock(), target=assistant)
        await reply.thinking()
        assert await reply.done() == ""
    assert [c["status"] for c in fake.calls_to("assistant.threads.setStatus")] == [
        "is thinking...",
        "",
    ]
    assert fake.methods() == ["assistant.threads.setStatus"] * 2


async def test_slack_429_is_retried_after_the_time_it_asks(
    session: aiohttp.ClientSession,
) -> None:
    waits = Waits()
    async with FakeSlack(streaming=False) as fake:
        fake.rate_limit("chat.postMessage", times=2, retry_after=3)
        reply = reply_to(fake, session, Clock(), waits=waits)
        await reply.text("hello")
        ts = await reply.done()
    assert waits.seconds == [3.0, 3.0]
    assert fake.methods().count("chat.postMessage:429") == 2
    assert len(fake.calls_to("chat.postMessage")) == 1 and ts


async def test_a_transient_start_failure_falls_back_for_that_reply_only(
    session: aiohttp.ClientSession,
) -> None:
    clock, support = Clock(), StreamingSupport()
    async with FakeSlack() as fake:
        fake.fail("chat.startStream", "internal_error", times=1)
        first = reply_to(fake, session, clock, support)
        await first.text("a" * FIRST_RENDER_CHARS)
        await first.done()
        assert support.enabled is True
        assert fake.calls_to("chat.postMessage")[0]["text"] == "a" * FIRST_RENDER_CHARS

        second = reply_to(fake, session, clock, support)
        await second.text("b" * FIRST_RENDER_CHARS)
        await second.done()
        assert len(fake.calls_to("chat.startStream")) == 2  # the second reply streams again
        assert fake.results_of("chat.startStream")[-1]["ok"] is True
        assert not fake.unexpected


@pytest.mark.parametrize(
    ("error", "switched_off"),
    [
        ("unknown_method", True),
        ("missing_scope", True),
        ("not_allowed_token_type", True),
        ("internal_error", False),
        ("ratelimited", False),
        ("channel_not_found", False),
        ("is_archived", False),
    ],
)
async def test_only_method_not_available_switches_streaming_off(
    session: aiohttp.ClientSession, error: str, switched_off: bool
) -> None:
    support = StreamingSupport()
    async with FakeSlack() as fake:
        fake.fail("chat.startStream", error, times=1)
        reply = reply_to(fake, session, Clock(), support)
        await reply.text("x" * FIRST_RENDER_CHARS)
        await reply.done()
    assert support.enabled is not switched_off
