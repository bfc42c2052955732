"""What a Slack thread already shows of a reply (issue #22): the reply stream says when its
first message is there and when all of it is; the place finds it again after a restart with
conversations.replies, and marks a half one as cut short."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio

from platforms.slack import history
from platforms.slack.place import SlackPlace
from platforms.slack.stream import FIRST_RENDER_CHARS, SlackReply
from tests.fakes.slack import BOT_ID, BOT_USER_ID, FakeSlack
from tests.platforms.slack.conftest import Clock
from tests.platforms.slack.test_stream import TARGET, reply_to

CHANNEL, ROOT = TARGET[0], TARGET[1]


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


def told(reply: SlackReply) -> list[tuple[str, bool]]:
    marks: list[tuple[str, bool]] = []

    async def shown(reply_id: str, complete: bool) -> None:
        marks.append((reply_id, complete))

    reply.track(ROOT, shown)
    return marks


def place_of(reply: SlackReply) -> SlackPlace:
    return reply._target  # the place the reply streams into


async def test_a_reply_posted_whole_needs_no_word_in_the_store(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeSlack() as fake:
        reply = reply_to(fake, session, Clock())
        marks = told(reply)
        await reply.text("Short.")
        await reply.done()
        assert marks == []  # its metadata says it all: no store write for a short reply


async def test_a_streamed_reply_is_told_at_its_start(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeSlack() as fake:
        reply = reply_to(fake, session, Clock())
        marks = told(reply)
        await reply.text("x" * FIRST_RENDER_CHARS)  # the stream starts at once
        assert fake.calls_to("chat.startStream")
        started = marks[:]
        await reply.text(" and more")
        ts = await reply.done()
        assert started == [(ts, False)]
        assert marks == [(ts, False)]  # one write; the stop's metadata says it is whole
        assert fake.calls_to("chat.stopStream")


async def test_the_reply_is_found_after_the_message_it_answers(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeSlack() as fake:
        fake.person_said(CHANNEL, ROOT, "question", "U0ALICE")
        reply = reply_to(fake, session, Clock())
        await reply.text("The answer.")
        ts = await reply.done()
        later = fake.next_ts()
        fake.person_said(CHANNEL, later, "thanks", "U0ALICE", thread_ts=ROOT)
        place = place_of(reply)
        assert await place.reply_after(ROOT, ts) == "The answer."
        assert await place.reply_after(ROOT, "1.000001") is None  # not there (deleted)
        asked = fake.calls_to("conversations.replies")[0]
        assert (asked["ts"], asked["oldest"]) == (ROOT, ROOT)


async def test_a_long_reply_is_read_with_its_later_parts_page_by_page(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeSlack() as fake:
        fake.person_said(CHANNEL, ROOT, "question", "U0ALICE")
        parts = [f"part {n}. " for n in range(history.PAGE + 5)]
        first = ""
        for part in parts:  # a reply posted as many messages, as the fallback does
            ts = (
                await place_of(reply_to(fake, session, Clock())).deps.client.chat_postMessage(
                    channel=CHANNEL, thread_ts=ROOT, text=part
                )
            )["ts"]
            first = first or str(ts)
        fake.person_said(CHANNEL, fake.next_ts(), "next question", "U0ALICE", thread_ts=ROOT)
        place = place_of(reply_to(fake, session, Clock()))
        assert await place.reply_after(ROOT, first) == "".join(parts)
        assert len(fake.calls_to("conversations.replies")) == 2  # two pages of 15


async def test_a_stream_left_open_is_stopped_with_the_cut_short_mark(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeSlack() as fake:
        fake.person_said(CHANNEL, ROOT, "question", "U0ALICE")
        reply = reply_to(fake, session, Clock())
        marks = told(reply)
        await reply.text("x" * FIRST_RENDER_CHARS)  # then the process dies: never stopped
        ts = marks[0][0]
        await place_of(reply).cut_short(ROOT, ts)
        kept = [m for m in fake.in_thread(CHANNEL, ROOT) if m.get("bot_id") == BOT_ID]
        assert kept[0]["text"] == "x" * FIRST_RENDER_CHARS + history.CUT_SHORT_MARK.strip()
        assert not kept[0]["streaming"]


async def test_a_stream_already_closed_is_edited_to_carry_the_mark(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeSlack() as fake:
        fake.person_said(CHANNEL, ROOT, "question", "U0ALICE")
        reply = reply_to(fake, session, Clock())
        await reply.text("x" * FIRST_RENDER_CHARS + " all of it")
        ts = await reply.done()  # stopped: Slack takes no more on that stream
        await place_of(reply).cut_short(ROOT, ts)
        assert fake.results_of("chat.stopStream")[-1]["error"] == history.NOT_STREAMING
        kept = [m for m in fake.in_thread(CHANNEL, ROOT) if m.get("bot_id") == BOT_ID]
        assert kept[0]["text"].endswith("all of it" + history.CUT_SHORT_MARK)


async def test_a_thread_slack_does_not_know_finds_nothing(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeSlack() as fake:
        place = place_of(reply_to(fake, session, Clock()))
        assert await place.reply_after(ROOT, "1700000200.000100") is None
        assert fake.results_of("conversations.replies")[0]["error"] == "thread_not_found"


async def test_the_message_completing_a_reply_carries_the_mark_of_whom_it_answers(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeSlack() as fake:
        fake.person_said(CHANNEL, ROOT, "question", "U0ALICE")
        whole = reply_to(fake, session, Clock())
        told(whole)
        await whole.text("Short.")
        await whole.done()
        streamed = reply_to(fake, session, Clock())
        told(streamed)
        await streamed.text("x" * FIRST_RENDER_CHARS)
        await streamed.text(" and the end")
        await streamed.done()
        mark = history.answer_mark(ROOT)
        assert [c.get("metadata") for c in fake.calls_to("chat.postMessage")] == [mark]
        assert "metadata" not in fake.calls_to("chat.startStream")[0]  # not whole yet
        assert fake.calls_to("chat.stopStream")[-1]["metadata"] == mark


async def test_a_marked_reply_is_found_with_no_word_from_the_store(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeSlack() as fake:
        fake.person_said(CHANNEL, ROOT, "question", "U0ALICE")
        client = place_of(reply_to(fake, session, Clock())).deps.client
        half = await client.chat_postMessage(
            channel=CHANNEL, thread_ts=ROOT, text="cut off" + history.CUT_SHORT_MARK
        )
        first = await client.chat_postMessage(channel=CHANNEL, thread_ts=ROOT, text="one, ")
        await client.chat_postMessage(
            channel=CHANNEL, thread_ts=ROOT, text="two.", metadata=history.answer_mark(ROOT)
        )
        place = place_of(reply_to(fake, session, Clock()))
        assert await place.marked_reply(ROOT) is None  # its own user id not known yet
        place.deps.bot_user_id = BOT_USER_ID
        assert await place.marked_reply(ROOT) == (first["ts"], "one, two.")
        assert await place.marked_reply("1700000100.000999") is None  # answers another
        assert half["ts"] < first["ts"]


async def test_a_reply_in_edited_messages_is_told_at_its_start_and_its_end(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeSlack(streaming=False) as fake:  # a workspace without chat streaming
        reply = reply_to(fake, session, Clock())
        marks = told(reply)
        await reply.text("x" * FIRST_RENDER_CHARS)  # posted at once, to be edited
        await reply.text(" and the end")
        ts = await reply.done()
        assert marks == [(ts, False), (ts, True)]  # no mark on an edit: the store says it


async def test_a_mark_in_another_apps_message_is_not_taken_for_ours(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeSlack() as fake:
        fake.person_said(CHANNEL, ROOT, "question", "U0ALICE")
        fake.said.append(
            {
                "channel": CHANNEL,
                "ts": fake.next_ts(),
                "thread_ts": ROOT,
                "text": "not ours",
                "user": "U0OTHERAPP",
                "bot_id": "B0OTHERAPP",
                "metadata": history.answer_mark(ROOT),
            }
        )
        place = place_of(reply_to(fake, session, Clock()))
        place.deps.bot_user_id = BOT_USER_ID
        assert await place.marked_reply(ROOT) is None
