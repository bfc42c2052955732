"""A database outage under a running `quitbot run` (Slack, HTTP mode, on PostgreSQL).

The outage is simulated with a TCP proxy on 127.0.0.1 in front of the PostgreSQL server
(tests/tcp_proxy.py): the server is shared by other tests and people, so it is never stopped.
Cutting the proxy resets every open connection and refuses new ones, which is what quitbot
sees when the server stops. Meanwhile Slack's events get a 5xx (so Slack delivers them again),
`/readyz` says not ready, and the log has one line when the database goes away and one when
it is back, no traceback; once it is back, the events Slack sends again are answered.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.notices import FAILED_TEXT
from tests import postgres
from tests.fakes.anthropic import FakeAnthropic, hold, text
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_requests import SlackSender, event_callback, mention
from tests.processes import clean_env, reaching_slack_http, start_quitbot
from tests.tcp_proxy import TcpProxy
from tests.test_ops_run import free_port

pytestmark = pytest.mark.skipif(not postgres.enabled(), reason="QUITBOT_TEST_POSTGRES=0")

AWAY, BACK = "PostgreSQL went away", "PostgreSQL is back"


class Log:
    """A child process's stderr, line by line, as it arrives."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._stream, self._changed = stream, asyncio.Condition()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while line := (await self._stream.readline()).decode():
            async with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    async def wait_for(self, needle: str, within: float = 30) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: any(needle in line for line in self.lines))

    async def rest(self) -> str:
        await self._task
        return "".join(self.lines)


async def ready(http: aiohttp.ClientSession, port: int) -> tuple[int, dict[str, Any]]:
    async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
        return response.status, await response.json()


async def test_an_outage_is_two_lines_and_slack_delivers_again(
    tmp_path: Path,
    fake_anthropic: FakeAnthropic,
    proxied_database: tuple[str, TcpProxy],
) -> None:
    """The database goes while a reply is being written: that turn cannot be kept, and the
    person is told; two more messages arrive during the outage and get a 5xx; Slack's later
    retries, once the database is back, are answered."""
    database_url, proxy = proxied_database
    writing = asyncio.Event()
    fake_anthropic.add(hold(text("Hello!"), before=writing))
    fake_anthropic.default = text("Hello again!")
    slack_port, health_port = free_port(), free_port()
    async with FakeSlack() as slack, aiohttp.ClientSession() as http:
        env = clean_env(
            tmp_path,
            fake_anthropic,
            QUITBOT_DATABASE_URL=database_url,
            QUITBOT_HEALTH_PORT=str(health_port),
            **reaching_slack_http(slack, slack_port),
        )
        process = await start_quitbot(tmp_path, env, "run")
        assert process.stderr is not None
        log = Log(process.stderr)
        send = SlackSender(f"http://127.0.0.1:{slack_port}/slack/events", http)
        first, *later = [
            event_callback(mention("hi", ts=f"1700000{n}00.000100")) for n in range(1, 4)
        ]
        try:
            await log.wait_for("listening for events")
            assert (await ready(http, health_port))[0] == 200
            assert (await send.event(first)).status == 200  # kept before acknowledged
            await fake_anthropic.wait_requests(1)

            await proxy.cut()
            writing.set()
            # The reply was written, but could not be kept: the person hears it failed.
            reply, failed = await slack.wait_for("chat.postMessage", 2)
            assert reply["thread_ts"] == failed["thread_ts"] == first["event"]["ts"]
            assert failed["text"] == FAILED_TEXT
            for event in later:
                assert (await send.event(event)).status == 503
            await log.wait_for(AWAY)
            status, body = await ready(http, health_port)
            assert status == 503 and body["database"] is False and body["platforms"]["slack"]
            assert (await send.event(later[0], retry_num=1)).status == 503

            await proxy.restore()
            for event in later:  # Slack's next retries
                assert (await send.event(event, retry_num=2)).status == 200
            await log.wait_for(BACK)
            await slack.wait_for("chat.postMessage", 4)
            assert (await ready(http, health_port))[0] == 200
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()
        output = await log.rest()
    assert process.returncode == 0, output
    assert output.count(AWAY) == 1 and output.count(BACK) == 1, output
    assert "Traceback" not in output and "Failed to run listener" not in output, output
    replies = slack.calls_to("chat.postMessage")[2:]
    # Two threads, answered concurrently: each once, in whichever order they finish.
    assert sorted(c["thread_ts"] for c in replies) == sorted(e["event"]["ts"] for e in later)
    assert all(c["markdown_text"] == "Hello again!" for c in replies)
