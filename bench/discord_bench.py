"""Discord adapter under load, next to a bare discord.py echo bot on the same fake Discord.

    .venv/bin/python bench/discord_bench.py [threads] [messages_per_thread]

Both bots are the real discord.py client connected to FakeDiscord (REST + gateway on
127.0.0.1). quitbot answers through the real engine, SQLite store and streaming reply, with
a zero-latency in-process model; the bare bot echoes each message with `channel.send`.
Figures: latency from MESSAGE_CREATE sent by the gateway to the first REST call of the
reply (quitbot: its typing call, and its reply message), and messages per second with
every thread busy at once. Prints figures, not pass/fail.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # discord.py imports audioop
    import discord

from bot.app import build_runtime
from bot.conversation import Inbound
from bot.engine import Engine
from bot.notices import Outcome
from bot.ports import ModelReply, ReplyStream, TextSink
from bot.settings import DiscordSettings, Settings
from platforms.discord.app import build_bot, configure_endpoints
from tests.fakes.discord import FakeDiscord

Json = dict[str, Any]


class InstantModel:
    """Answers at once, in a few streamed pieces like the real client."""

    async def reply(self, messages: Sequence[dict[str, Any]], on_text: TextSink) -> ModelReply:
        for piece in ("Sure, ", "here is ", "an answer."):
            await on_text(piece)
        return ModelReply([{"type": "text", "text": "Sure, here is an answer."}], "end_turn")


class InstantEngine:
    """Replaces the engine to isolate the adapter's own cost: streams a reply, stores nothing."""

    async def receive(self, inbound: Inbound) -> bool:
        return True  # nothing kept: every message is new

    async def pending(self) -> list[Inbound]:
        return []

    async def handle(self, inbound: Inbound, reply: ReplyStream) -> Outcome:
        await reply.thinking()
        await reply.text("Sure, here is an answer.")
        await reply.done()
        return Outcome(None, reply="Sure, here is an answer.")


class EchoBot(discord.Client):
    async def on_message(self, message: discord.Message) -> None:
        if not message.author.bot:
            await message.channel.send(message.content)


def first_call_after(fake: FakeDiscord, start: int, prefix: str) -> float:
    return next(c.at for c in fake.calls[start:] if c.path.startswith(prefix))


async def latency(
    fake: FakeDiscord, threads: list[Json], rounds: int
) -> tuple[list[float], list[float]]:
    """One message at a time; ms to the first reply call of any kind, and to the message."""
    to_first: list[float] = []
    to_message: list[float] = []
    for n in range(rounds):
        thread = threads[n % len(threads)]
        path = f"/channels/{thread['id']}/messages"
        start = len(fake.calls)
        sent = time.perf_counter()
        await fake.post(int(thread["id"]), fake.alice, f"question {n}")
        await fake.wait_call("POST", path, count=_posts(fake, path, start) + 1)
        to_message.append((first_call_after(fake, start, path) - sent) * 1000)
        to_first.append((first_call_after(fake, start, f"/channels/{thread['id']}/") - sent) * 1000)
    return to_first, to_message


def _posts(fake: FakeDiscord, path: str, start: int) -> int:
    return sum(1 for c in fake.calls[:start] if c.method == "POST" and c.path == path)


async def throughput(fake: FakeDiscord, threads: list[Json], per_thread: int) -> float:
    """Every thread busy at once: messages per second until every reply is posted."""
    before = len(fake.calls_to("POST", r"/channels/\d+/messages"))
    total = len(threads) * per_thread
    started = time.perf_counter()
    for n in range(per_thread):
        for thread in threads:
            await fake.post(int(thread["id"]), fake.alice, f"busy {n}")
    await fake.wait_call("POST", r"/channels/\d+/messages", count=before + total)
    return total / (time.perf_counter() - started)


async def run_quitbot(thread_count: int, per_thread: int, *, stub: bool = False) -> dict[str, Any]:
    async with FakeDiscord() as fake:
        threads = [fake.add_thread(f"bench {n}") for n in range(thread_count)]
        with tempfile.TemporaryDirectory() as tmp:
            section = DiscordSettings(  # type: ignore[call-arg]
                _env_file=None,
                DISCORD_TOKEN=fake.token,
                api_base=fake.api_base,
                gateway_url=fake.gateway_url,
            )
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None, database_url=f"sqlite:///{tmp}/bench.db", discord=section
            )
            async with build_runtime(settings, model=InstantModel()) as runtime:
                configure_endpoints(section)
                engine = cast(Engine, InstantEngine()) if stub else runtime.engine
                bot = build_bot(engine, settings)

                async def warm() -> None:
                    for thread in threads:  # a mention makes each thread a conversation
                        await fake.post(
                            int(thread["id"]), fake.alice, f"<@{fake.bot_id}> hi", mention_bot=True
                        )
                    await fake.wait_call("POST", r"/channels/\d+/messages", count=thread_count)

                return await _measure(fake, bot, threads, per_thread, warm)


async def run_echo(thread_count: int, per_thread: int) -> dict[str, Any]:
    async with FakeDiscord() as fake:
        threads = [fake.add_thread(f"bench {n}") for n in range(thread_count)]
        configure_endpoints(
            DiscordSettings.model_construct(api_base=fake.api_base, gateway_url=fake.gateway_url)
        )
        intents = discord.Intents.none()
        intents.guilds = intents.guild_messages = intents.message_content = True
        bot = EchoBot(intents=intents)

        async def warm() -> None:
            return None

        return await _measure(fake, bot, threads, per_thread, warm)


async def _measure(
    fake: FakeDiscord,
    bot: discord.Client,
    threads: list[Json],
    per_thread: int,
    warm: Callable[[], Awaitable[None]],
) -> dict[str, Any]:
    async with bot:
        task = asyncio.create_task(bot.start(fake.token))
        try:
            await fake.guild_ready.wait()
            await warm()
            to_first, to_message = await latency(fake, threads, 300)
            rate = throughput(fake, threads, per_thread)
            typing = len(fake.calls_to("POST", r"/channels/\d+/typing"))
            return {"first": to_first, "message": to_message, "rate": await rate, "typing": typing}
        finally:
            await bot.close()
            await task


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def show(name: str, figures: dict[str, Any]) -> None:
    message = figures["message"]
    first = figures["first"]
    print(
        f"{name:<10} MESSAGE_CREATE -> reply message p50 {statistics.median(message):5.2f} ms"
        f"  p99 {pct(message, 0.99):5.2f} ms  | -> first REST call p50 "
        f"{statistics.median(first):5.2f} ms  p99 {pct(first, 0.99):5.2f} ms"
    )
    print(
        f"{'':<10} throughput {figures['rate']:7.0f} messages/s"
        f"  (typing calls: {figures['typing']})"
    )


async def main() -> None:
    thread_count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    per_thread = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    logging.basicConfig(level=logging.ERROR)
    print(
        f"{thread_count} threads, {per_thread} messages each for throughput; "
        "latency: 300 one at a time"
    )
    echo = await run_echo(thread_count, per_thread)
    quitbot = await run_quitbot(thread_count, per_thread)
    adapter = await run_quitbot(thread_count, per_thread, stub=True)
    show("bare echo", echo)
    show("quitbot", quitbot)
    show("adapter", adapter)
    print("  (adapter: quitbot with the engine replaced by an instant stub, to isolate its cost)")
    added = statistics.median(quitbot["message"]) - statistics.median(echo["message"])
    added99 = pct(quitbot["message"], 0.99) - pct(echo["message"], 0.99)
    print(f"added latency to the reply message: p50 {added:+.2f} ms, p99 {added99:+.2f} ms")
    print(f"throughput ratio quitbot/bare: {quitbot['rate'] / echo['rate']:.2f} (target >= 0.5)")
    print(f"throughput ratio adapter-only/bare: {adapter['rate'] / echo['rate']:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
