"""discord.py's HTTP client: nothing kept per thread once it is quiet, and no more
connections than REST_CONNECTIONS."""

from __future__ import annotations

import asyncio

import aiohttp
from discord.http import HTTPClient, Ratelimit

from platforms.discord.app import REST_CONNECTIONS, QuitBot
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
        "recent": bucket(now - IDLE_SECONDS / 2),  # used a moment ago
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


async def test_discord_py_keeps_at_most_rest_connections_open_to_discord(bot: QuitBot) -> None:
    """Its own connector had no limit: as many connections kept as were ever in flight."""
    connector = bot.http.connector
    assert isinstance(connector, aiohttp.TCPConnector)
    assert connector.limit_per_host == REST_CONNECTIONS and connector.limit == 0
