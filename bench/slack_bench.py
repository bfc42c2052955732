"""Slack adapter under load: acknowledgement time and replies per second, next to a bare app.

    .venv/bin/python bench/slack_bench.py [threads] [messages_per_thread]

Both apps run in HTTP mode on 127.0.0.1, each in its own process (as beside a remote Slack),
against the same fake Slack Web API, which runs with the load generator in this process; both
receive the same signed Events API requests: a mention starting each thread, then replies.
quitbot answers through the real engine, store (SQLite file) and streaming reply, with a
zero-latency in-process model; the bare slack-bolt app echoes each message with `say`.
Prints figures, not pass/fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import build_runtime
from bot.conversation import ConversationKey, Inbound
from bot.notices import Outcome
from bot.ports import ModelReply, ReplyStream, TextSink
from bot.settings import Settings, SlackSettings
from platforms.slack import SlackBot, start_http
from platforms.slack.client import build_client
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.fakes.slack_requests import SlackSender, event_callback, mention, message

LOADS = (100, 10)  # requests in flight at once: a burst on every thread, then a steadier load


class InstantModel:
    """A Model that answers at once: what is measured is the adapter, engine and store.

    `padding` lengthens each answer (in 20-character deltas) so that it is streamed; the
    benchmark passes -1 to stand in a StubEngine for the engine.
    """

    def __init__(self, padding: int = 0) -> None:
        self._padding = padding

    async def reply(self, messages: Sequence[dict[str, Any]], on_text: TextSink) -> ModelReply:
        answer = "You said: " + _last_text(messages) + " " + "x" * max(0, self._padding)
        for at in range(0, len(answer), 20):
            await on_text(answer[at : at + 20])
        return ModelReply([{"type": "text", "text": answer}], "end_turn")


class StubEngine:
    """No engine at all (no store, no ladder): what the Slack adapter alone costs."""

    async def find(self, key: ConversationKey) -> object:
        return key  # every thread holds a conversation

    async def handle(self, inbound: Inbound, reply: ReplyStream) -> Outcome:
        await reply.thinking()
        await reply.text("You said: " + inbound.text)
        await reply.done()
        return Outcome(None)


def _last_text(messages: Sequence[dict[str, Any]]) -> str:
    content = messages[-1]["content"]
    return str(content[-1]["text"]) if isinstance(content, list) else str(content)


def rounds(threads: int, per_thread: int) -> list[list[dict[str, Any]]]:
    """Round 0 mentions start every thread; each later round is one reply in each thread."""
    out = []
    for n in range(per_thread):
        batch = []
        for t in range(threads):
            root = f"1700001000.{t:06d}"
            if n == 0:
                batch.append(event_callback(mention(f"hello {t}", ts=root)))
            else:
                ts = f"17000{n + 10:05d}.{t:06d}"
                batch.append(event_callback(message(f"more {n}", ts=ts, thread_ts=root)))
        out.append(batch)
    return out


Figures = tuple[list[float], float, int]  # acknowledgement times, elapsed seconds, replies


async def drive(
    url: str, fake: FakeSlack, method: str, batches: list[list[dict[str, Any]]], in_flight: int
) -> Figures:
    """Send each round, `in_flight` requests at a time, and wait for its replies; time it all."""
    acks: list[float] = []
    gate = asyncio.Semaphore(in_flight)
    async with aiohttp.ClientSession() as session:
        sender = SlackSender(url, session)

        async def send(payload: dict[str, Any]) -> None:
            async with gate:
                start = time.perf_counter()
                sent = await sender.event(payload)
                acks.append(time.perf_counter() - start)
                assert sent.status == 200, sent

        expected = 0
        start = time.perf_counter()
        for batch in batches:
            expected += len(batch)
            await asyncio.gather(*(send(payload) for payload in batch))
            await fake.wait_for(method, expected, within=120)
        elapsed = time.perf_counter() - start
    return acks, elapsed, expected


async def serve_quitbot(base_url: str, padding: int, ready: Callable[[str], None]) -> None:
    """quitbot's Slack app over the real engine and a SQLite file, until cancelled."""
    async with aiohttp.ClientSession() as session:
        with tempfile.TemporaryDirectory() as tmp:
            slack = SlackSettings(  # type: ignore[call-arg]
                _env_file=None,
                SLACK_BOT_TOKEN=BOT_TOKEN,
                SLACK_SIGNING_SECRET=SIGNING_SECRET,
                mode="http",
                api_url=base_url,
            )
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None, database_url=f"sqlite:///{tmp}/bench.db", slack=slack
            )
            async with build_runtime(settings, model=InstantModel(padding)) as runtime:
                client = build_client(settings.slack, session)
                engine = runtime.engine if padding >= 0 else StubEngine()
                bot = SlackBot(engine, settings, client, session=session)  # type: ignore[arg-type]
                runner = await start_http(bot, "127.0.0.1", 0)
                try:
                    ready(f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events")
                    await asyncio.Event().wait()
                finally:
                    await runner.cleanup()
                    await bot.drain()


async def serve_bare(base_url: str, padding: int, ready: Callable[[str], None]) -> None:
    """The baseline: a bare slack-bolt app that echoes each message with `say`."""
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=base_url, session=session)
        app = AsyncApp(client=client, signing_secret=SIGNING_SECRET)

        @app.event("app_mention")
        async def on_mention(event: dict[str, Any], say: Any) -> None:
            await say(text=event["text"], thread_ts=event.get("thread_ts") or event["ts"])

        @app.event("message")
        async def on_message(event: dict[str, Any], say: Any) -> None:
            if event.get("thread_ts") and not event.get("bot_id"):
                await say(text=event["text"], thread_ts=event["thread_ts"])

        runner = web.AppRunner(app.web_app(path="/slack/events"), handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            ready(f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events")
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()


SERVERS = {"quitbot": serve_quitbot, "bare": serve_bare}


def app_process(kind: str, base_url: str, padding: int, conn: Connection) -> None:
    """The app under test runs in its own process, as it would beside a remote Slack."""
    logging.basicConfig(level=logging.ERROR)

    async def serve() -> None:
        task = asyncio.create_task(SERVERS[kind](base_url, padding, conn.send))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "stop"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    profile = os.environ.get("SLACK_BENCH_PROFILE")  # a file to write the app's profile to
    if profile and kind == "quitbot":
        cProfile.runctx("asyncio.run(serve())", globals(), locals(), profile)
    else:
        asyncio.run(serve())


async def bench(
    kind: str, batches: list[list[dict[str, Any]]], in_flight: int, padding: int = 0
) -> Figures:
    async with FakeSlack() as fake:
        ours, theirs = multiprocessing.get_context("spawn").Pipe()
        process = multiprocessing.get_context("spawn").Process(
            target=app_process, args=(kind, fake.base_url, padding, theirs)
        )
        process.start()
        loop = asyncio.get_running_loop()
        try:
            url = await loop.run_in_executor(None, ours.recv)
            # A short reply is one chat.postMessage; a streamed one ends with stopStream.
            done = "chat.stopStream" if padding > 0 else "chat.postMessage"
            return await drive(url, fake, done, batches, in_flight)
        finally:
            ours.send("stop")
            await loop.run_in_executor(None, process.join)


def report(name: str, acks: list[float], elapsed: float, replies: int) -> float:
    ms = sorted(a * 1000 for a in acks)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    rate = replies / elapsed
    print(
        f"{name:<27} ack p50 {statistics.median(ms):6.1f} ms   p99 {p99:6.1f} ms   "
        f"max {ms[-1]:6.1f} ms   {rate:7.1f} replies/s   ({replies} replies in {elapsed:.2f} s)"
    )
    return rate


async def main(threads: int, per_thread: int) -> None:
    logging.basicConfig(level=logging.ERROR)
    batches = rounds(threads, per_thread)
    for in_flight in LOADS:
        print(f"\n{threads} threads x {per_thread} messages, {in_flight} requests in flight")
        bare = report("bare slack-bolt echo", *await bench("bare", batches, in_flight))
        short = report("quitbot, short replies", *await bench("quitbot", batches, in_flight))
        long = await bench("quitbot", batches, in_flight, padding=600)
        streamed = report("quitbot, streamed 600 ch", *long)
        report("adapter alone (no engine)", *await bench("quitbot", batches, in_flight, -1))
        print(
            f"quitbot throughput: {short / bare:.0%} of the bare app's with short replies, "
            f"{streamed / bare:.0%} with streamed ones"
        )


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(args + [100, 5][len(args) :])))
