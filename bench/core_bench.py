"""What the core adds to a message, with the model faked in-process at zero latency.

Prints figures; not a pass/fail test. Run: .venv/bin/python bench/core_bench.py [URL]
(URL: a QUITBOT_DATABASE_URL, e.g. postgresql://postgres@127.0.0.1/bench, whose database
must be empty; default a fresh SQLite file).
Targets (issue #2): p99 overhead < 5 ms; >= 1,000 messages/s on one core; a message to an
ended conversation < 1 ms p99 with zero model calls; memory flat as conversations accumulate.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bot.app import build_runtime
from bot.conversation import ConversationKey, Inbound
from bot.engine import Engine
from bot.ports import ModelReply, TextSink
from bot.settings import Settings


class InstantModel:
    """Answers at once, streaming the reply in a few pieces like the real client does."""

    def __init__(self) -> None:
        self.calls = 0

    async def reply(self, messages: Sequence[dict[str, Any]], on_text: TextSink) -> ModelReply:
        self.calls += 1
        for piece in ("Sure, ", "here is ", "an answer."):
            await on_text(piece)
        return ModelReply([{"type": "text", "text": "Sure, here is an answer."}], "end_turn")


# bot.ports.ReplyShown, spelt out so that this bench also runs on code from before it.
Shown = Callable[[str, bool], Awaitable[None]]


class NullReply:
    """Shows nothing, but tells the core what a platform would of a short reply: posted
    whole, at once (issue #22: the one store write a turn adds for it)."""

    def __init__(self) -> None:
        self._shown: Shown | None = None

    def track(self, answering: str, shown: Shown) -> None:
        self._shown = shown

    async def thinking(self) -> None:
        pass

    async def text(self, delta: str) -> None:
        pass

    async def done(self) -> str:
        if self._shown is not None:
            await self._shown("reply-1", True)
        return "reply-1"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Bench:
    def __init__(self, engine: Engine, model: InstantModel) -> None:
        self.engine = engine
        self.model = model
        self.n = 0

    def inbound(self, key: ConversationKey) -> Inbound:
        self.n += 1
        return Inbound(key, f"e{self.n}", "u1", "hello, how are you?", message_id=f"m{self.n}")

    async def message(self, key: ConversationKey) -> None:
        """One message as an adapter hands it over: kept first (acknowledged), then handled."""
        inbound = self.inbound(key)
        await self.engine.receive(inbound)
        await self.engine.handle(inbound, NullReply())

    async def latency(self, messages: int) -> list[float]:
        samples = []
        key = ConversationKey("bench", "latency")
        for _ in range(messages):
            start = time.perf_counter()
            await self.message(key)
            samples.append(time.perf_counter() - start)
        return samples

    async def throughput(self, conversations: int, per_conversation: int) -> tuple[float, float]:
        keys = [ConversationKey("bench", f"t{i}") for i in range(conversations)]

        async def talk(key: ConversationKey) -> None:
            for _ in range(per_conversation):
                await self.message(key)

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(talk(k) for k in keys))
        total = conversations * per_conversation
        return total / (time.perf_counter() - wall), (time.process_time() - cpu) / total * 1000

    async def ended(self, messages: int) -> tuple[list[float], int]:
        key = ConversationKey("bench", "ended")
        await self.engine.handle(self.inbound(key), NullReply())
        await self.engine.end_by_user(key, "u1")
        calls = self.model.calls
        samples = []
        for _ in range(messages):
            start = time.perf_counter()
            await self.engine.handle(self.inbound(key), NullReply())
            samples.append(time.perf_counter() - start)
        return samples, self.model.calls - calls

    async def memory(self, total: int, step: int) -> list[tuple[int, float]]:
        points = []
        for done in range(0, total, step):
            for i in range(done, done + step):
                await self.engine.handle(
                    self.inbound(ConversationKey("bench", f"mem{i}")), NullReply()
                )
            gc.collect()
            points.append((done + step, rss_mib()))
        return points


async def main(url: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            anthropic_api_key="unused",
            database_url=url or f"sqlite:///{folder}/bench.db",
        )
        model = InstantModel()
        async with build_runtime(settings, model=model) as runtime:
            bench = Bench(runtime.engine, model)
            await bench.latency(200)  # warm up
            samples = await bench.latency(2000)
            print(
                f"core overhead per message (model instant, incl. commit): "
                f"p50 {pct(samples, 0.5):.2f} ms  p99 {pct(samples, 0.99):.2f} ms"
            )
            long_thread = await bench.latency(500)
            print(
                f"  same thread after 2,700 messages: p50 {pct(long_thread, 0.5):.2f} ms  "
                f"p99 {pct(long_thread, 0.99):.2f} ms"
            )
            rate, cpu_ms = await bench.throughput(100, 20)
            print(
                f"100 concurrent conversations: {rate:,.0f} messages/s, "
                f"{cpu_ms:.2f} ms CPU per message"
            )
            ended, calls = await bench.ended(2000)
            print(
                f"message to an ended conversation: p50 {pct(ended, 0.5):.3f} ms  "
                f"p99 {pct(ended, 0.99):.3f} ms  model calls: {calls}"
            )
            points = await bench.memory(10_000, 2_500)
            print(
                "max RSS as conversations accumulate: "
                + ", ".join(f"{n:,}: {mib:.0f} MiB" for n, mib in points)
            )
            held = len(runtime.store._locks)  # type: ignore[attr-defined]
            print(f"conversation locks held after all turns: {held}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
