"""discord.py's rate-limit buckets: nothing kept per thread once it is quiet (no network)."""

from __future__ import annotations

import asyncio

from discord.http import HTTPClient, Ratelimit

from platforms.discord.buckets import IDLE_SECONDS, forget_idle_buckets


def bucket(last_request: float, **state: object) -> Ratelimit:
    made = Ratelimit(None)
    made._last_request = last_request
    for name, value in state.items():
        setattr(made, name, value)
    return made


async def test_a_bucket_per_thread_goes_once_idle_and_one_holding_back_stays() -> None:
    http = HTTPClient(asyncio.get_running_loop())
    now = asyncio.get_running_loop().time()
    idle = now - IDLE_SECONDS - 1
    threads = {f"hash:{n}": bucket(idle) for n in range(2000)}  # answered in, long ago
    kept = {
        "recent": bucket(now - 1),  # used a moment ago
        "sending": bucket(idle, outgoing=1),  # a request under way
        "used up": bucket(idle, remaining=0, expires=now + 5),  # its window not over yet
    }
    http._buckets.update(threads | kept)
    assert forget_idle_buckets(http, now) == len(threads)
    assert set(http._buckets) == set(kept)
    over = now + 10  # the used-up window ended and everyone went quiet
    http._buckets["sending"].outgoing = 0
    assert forget_idle_buckets(http, over + IDLE_SECONDS) == len(kept)
    assert http._buckets == {}
    await http.close()
