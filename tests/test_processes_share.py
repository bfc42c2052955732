"""Two real `quitbot run` processes on one database, as behind a load balancer in Slack's
HTTP mode: each event is answered once, and a process killed mid-turn holds nothing up.

Runs on SQLite (two processes on one host) and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.anthropic import FakeAnthropic, Response, hold, text
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_requests import SlackSender, event_callback, mention, message
from tests.processes import clean_env, reaching_slack_http, start_quitbot

THREAD = "1700000000.000100"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def quitbot_http(
    tmp_path: Path, fake: FakeAnthropic, slack: FakeSlack, database_url: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """`quitbot run` in Slack HTTP mode; the process and its events URL, once it listens."""
    port = free_port()
    env = clean_env(
        tmp_path,
        fake,
        **reaching_slack_http(slack, port),
        QUITBOT_DATABASE_URL=database_url,
        QUITBOT_LOG_LEVEL="INFO",
    )
    process = await start_quitbot(tmp_path, env, "run")
    try:
        assert process.stderr is not None
        async with asyncio.timeout(60):
            while b"Slack: listening" not in (line := await process.stderr.readline()):
                assert line, "quitbot run ended before listening"
        yield process, f"http://127.0.0.1:{port}/slack/events"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await process.communicate()


async def test_two_processes_answer_an_event_once_and_outlive_a_killed_one(
    tmp_path: Path, fake_anthropic: FakeAnthropic, database_url: str
) -> None:
    async with (
        FakeSlack() as slack,
        aiohttp.ClientSession() as session,
        quitbot_http(tmp_path, fake_anthropic, slack, database_url) as (first, first_url),
        quitbot_http(tmp_path, fake_anthropic, slack, database_url) as (_, second_url),
    ):
        to_first = SlackSender(first_url, session)
        to_second = SlackSender(second_url, session)

        # One event, delivered to both processes at once and then retried to both.
        fake_anthropic.add(text("Hello once."))
        event = event_callback(mention("hi there", ts=THREAD), event_id="Ev0SHARED")
        sent = await asyncio.gather(to_first.event(event), to_second.event(event))
        sent += await asyncio.gather(
            to_first.event(event, retry_num=1), to_second.event(event, retry_num=1)
        )
        assert [s.status for s in sent] == [200] * 4
        [reply] = await slack.wait_for("chat.postMessage")
        assert "Hello once." in str(reply)
        assert len(fake_anthropic.requests) == 1

        # The first process dies in the middle of a turn in that thread...
        never = asyncio.Event()
        fake_anthropic.add(hold(text("never sent"), before=never))
        await to_first.event(
            event_callback(message("still there?", ts="1700000000.000200", thread_ts=THREAD))
        )
        await fake_anthropic.wait_requests(2)
        first.send_signal(signal.SIGKILL)
        await first.wait()

        # ...and the other, given the next message in it, answers the one the killed
        # process held first (the receipt order is the turn order), then the next.
        fake_anthropic.add(text("Yes, still there."), text("Still here."))
        await to_second.event(
            event_callback(message("hello?", ts="1700000000.000300", thread_ts=THREAD))
        )
        replies = await slack.wait_for("chat.postMessage", 3)
        assert "Yes, still there." in str(replies[-2]) and "Still here." in str(replies[-1])
        assert len(fake_anthropic.requests) == 4
        asked = [r["messages"][-1]["content"][-1]["text"] for r in fake_anthropic.requests[-2:]]
        assert asked == ["still there?", "hello?"]
        assert len(slack.calls_to("chat.postMessage")) == 3  # never one from the killed turn
        never.set()
    assert slack.unexpected == []


async def test_two_processes_keep_each_threads_order_with_deliveries_interleaved(
    tmp_path: Path, fake_anthropic: FakeAnthropic, database_url: str
) -> None:
    """Each message is sent once the previous one was acknowledged, alternately to the two
    processes: every thread is stored and answered in the order it was written."""
    threads = [f"1700000500.{n:06d}" for n in range(1, 4)]
    follow_ups = 6

    def echo(body: dict[str, Any]) -> Response:
        said = body["messages"][-1]["content"][-1]["text"]
        return text(f"re: {said.split()[-1]}")

    fake_anthropic.responder = echo
    async with (
        FakeSlack() as slack,
        aiohttp.ClientSession() as session,
        quitbot_http(tmp_path, fake_anthropic, slack, database_url) as (_, first_url),
        quitbot_http(tmp_path, fake_anthropic, slack, database_url) as (_, second_url),
    ):
        senders = [SlackSender(first_url, session), SlackSender(second_url, session)]
        for thread in threads:
            sent = await senders[0].event(event_callback(mention("start 0", ts=thread)))
            assert sent.status == 200
        turn = 0
        for n in range(1, follow_ups + 1):
            for thread in threads:
                said = message(f"say {n}", ts=f"1700000600.{turn:06d}", thread_ts=thread)
                assert (await senders[turn % 2].event(event_callback(said))).status == 200
                turn += 1
        expected = len(threads) * (follow_ups + 1)
        # Turns run behind the acknowledgements: a busy machine needs its time for 21.
        await slack.wait_for("chat.postMessage", expected, within=60)
        for thread in threads:
            answers = [
                str(c.get("markdown_text") or c.get("text"))
                for c in slack.calls_to("chat.postMessage")
                if c.get("thread_ts") == thread
            ]
            assert answers == [f"re: {n}" for n in range(follow_ups + 1)], thread
    assert slack.unexpected == []
