"""A second pass over the same conversations keeps nothing more per thread than the first
left (issue 22, target 4), and the heap is given back only once every line ran dry: never
while a message is under way, never from inside a turn. Structures, not timings."""

from __future__ import annotations

import asyncio

from bot.heap import Quiet
from platforms.discord.app import QuitBot
from platforms.discord.buckets import IDLE_SECONDS, forget_idle_buckets
from platforms.discord.cog import ConversationCog
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.discord import WAIT_SECONDS, FakeDiscord
from tests.platforms.discord.helpers import mention
from tests.platforms.discord.test_thread_cache import cached_threads, conversations, quiet

CONVERSATIONS = 30
REPLIES = r"/channels/\d+/messages"


class GiveBack:
    """Records, at each give-back: the replies posted so far, whether any line held a
    message, and the task it ran in (None: the loop's own timer)."""

    def __init__(self, cog: ConversationCog, fake: FakeDiscord) -> None:
        self.cog, self.fake = cog, fake
        self.seen: list[tuple[int, bool, asyncio.Task[object] | None]] = []
        self._next = asyncio.Event()

    def __call__(self) -> None:
        replies = len(self.fake.calls_to("POST", REPLIES))
        self.seen.append((replies, self.cog._busy(), asyncio.current_task()))
        self._next.set()

    async def after(self, replies: int) -> None:
        """Until the heap was given back once `replies` replies were posted (failing
        loudly, as the fake's own waits do, if it never is)."""
        async with asyncio.timeout(WAIT_SECONDS):
            while not any(seen[0] == replies for seen in self.seen):
                self._next.clear()
                await self._next.wait()


def kept_per_thread(bot: QuitBot) -> dict[str, int]:
    """What the Discord side keeps that grows with threads, once the rate-limit buckets
    idle past IDLE_SECONDS were swept (the bot sweeps them every IDLE_SECONDS)."""
    cog = conversations(bot)
    now = asyncio.get_running_loop().time() + IDLE_SECONDS + 1
    forget_idle_buckets(bot.http, now)
    return {
        "lines": len(cog._arrivals) + len(cog._answers) + len(cog._no_threads),
        "cached threads": len(cached_threads(bot)),
        "known places": len(bot.discord._known),
        "rate-limit buckets": len(bot.http._buckets),
    }


async def test_a_second_pass_keeps_nothing_more_and_gives_the_heap_back_when_quiet(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake, cog = fake_discord, conversations(bot)
    give_back = GiveBack(cog, fake)
    cog.quiet = Quiet(cog._busy, give_back, after=0)
    fake_anthropic.add(*[text(f"reply {n}") for n in range(2 * CONVERSATIONS)])
    threads = [(await mention(fake, f"topic {n}"))["id"] for n in range(CONVERSATIONS)]
    await fake.wait_call("POST", REPLIES, count=CONVERSATIONS)
    await quiet(bot)
    await give_back.after(CONVERSATIONS)
    first = kept_per_thread(bot)
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
    await give_back.after(2 * CONVERSATIONS)
    assert kept_per_thread(bot) == first
    assert all(not busy and task is None for _, busy, task in give_back.seen)
