"""A second pass over the same conversations keeps nothing more per thread than the first
left (issue 22, target 4), and the heap is given back only once every line ran dry: never
while a message is under way, never from inside a turn, and only after discord.py's
rate-limit buckets went. Structures, not timings."""

from __future__ import annotations

import asyncio

from bot.heap import Quiet
from platforms.discord.app import QuitBot
from platforms.discord.parts import quiet_give_back
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.discord import WAIT_SECONDS, FakeDiscord
from tests.platforms.discord.helpers import mention
from tests.platforms.discord.test_thread_cache import cached_threads, conversations, quiet

CONVERSATIONS = 30
REPLIES = r"/channels/\d+/messages"


def kept_per_thread(bot: QuitBot) -> dict[str, int]:
    """What the Discord side keeps that grows with threads."""
    cog = conversations(bot)
    return {
        "lines": len(cog._arrivals) + len(cog._answers) + len(cog._no_threads),
        "cached threads": len(cached_threads(bot)),
        "known places": len(bot.discord._known),
        "rate-limit buckets": len(bot.http._buckets),
    }


class Trim:
    """Stands for glibc's trim; records, at each: the replies posted so far, whether any
    line held a message, the task it ran in (None: the loop's own timer), and what was
    kept per thread by then."""

    def __init__(self, bot: QuitBot, fake: FakeDiscord) -> None:
        self.bot, self.fake = bot, fake
        self.seen: list[tuple[int, bool, asyncio.Task[object] | None, dict[str, int]]] = []
        self._next = asyncio.Event()

    def __call__(self) -> None:
        replies = len(self.fake.calls_to("POST", REPLIES))
        busy = conversations(self.bot)._busy()
        self.seen.append((replies, busy, asyncio.current_task(), kept_per_thread(self.bot)))
        self._next.set()

    async def after(self, replies: int) -> dict[str, int]:
        """What was kept when the heap was trimmed once `replies` replies were posted
        (failing loudly, as the fake's own waits do, if it never is)."""
        async with asyncio.timeout(WAIT_SECONDS):
            while not (kept := [seen[3] for seen in self.seen if seen[0] == replies]):
                self._next.clear()
                await self._next.wait()
        return kept[-1]


async def test_a_second_pass_keeps_nothing_more_and_gives_the_heap_back_when_quiet(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake, cog = fake_discord, conversations(bot)
    trim = Trim(bot, fake)
    cog.quiet = Quiet(cog._busy, quiet_give_back(bot, trim), after=0)
    fake_anthropic.add(*[text(f"reply {n}") for n in range(2 * CONVERSATIONS)])
    threads = [(await mention(fake, f"topic {n}"))["id"] for n in range(CONVERSATIONS)]
    await fake.wait_call("POST", REPLIES, count=CONVERSATIONS)
    await quiet(bot)
    first = await trim.after(CONVERSATIONS)
    assert first == {
        "lines": 0,
        "cached threads": 0,
        "known places": CONVERSATIONS,
        "rate-limit buckets": 0,
    }
    for thread_id in threads:
        await fake.post(int(thread_id), fake.alice, "and again")
    await fake.wait_call("POST", REPLIES, count=2 * CONVERSATIONS)
    await quiet(bot)
    assert await trim.after(2 * CONVERSATIONS) == first
    assert all(not busy and task is None for _, busy, task, _ in trim.seen)
