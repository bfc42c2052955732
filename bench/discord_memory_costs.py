"""What one thread, one known place and one pooled connection cost the Discord bot, measured
(issue 22, target 4): tracemalloc for the Python objects, RSS for a connection.

    .venv/bin/python bench/discord_memory_costs.py [--threads 20000] [--connections 200]

- a thread in discord.py's cache: THREAD_CREATE payloads, as Discord sends them, parsed by
  discord.py's own ConnectionState into a server's `_threads`;
- a known place (platforms.recent.Recent, 50,000 at most): as a ConversationKey, as before,
  and as a channel id, as now;
- a connection an aiohttp session keeps (discord.py's, the model client's): `--connections`
  requests at once to a server in another process, each kept open afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import aiohttp
import discord

from bot.conversation import ConversationKey
from platforms.recent import Recent
from quitbot.testing import discord_payloads as p

SERVER = """
import asyncio, sys
from aiohttp import web
async def main():
    async def answer(request):
        await asyncio.sleep(0.5)
        return web.json_response({"id": "1" * 19, "content": "x" * 300})
    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def traced(make: Callable[[], object], count: int) -> float:
    """Bytes per item that `make()` leaves allocated (kept alive until measured)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = make()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    del kept
    return sum(s.size_diff for s in after.compare_to(before, "filename")) / count


def threads(count: int) -> float:
    client = discord.Client(intents=discord.Intents(guilds=True))
    state = client._connection
    state.dispatch = lambda *args, **kwargs: None  # type: ignore[method-assign]
    guild_id, channel_id = p.snowflake(), p.snowflake()
    data = p.guild(
        guild_id,
        "server",
        owner_id=1,
        roles=[p.role(guild_id, "@everyone", 0)],
        channels=[p.text_channel(channel_id, guild_id, "general")],
        threads=[],
        members=[],
    )
    guild = discord.Guild(data=data, state=state)  # type: ignore[arg-type]
    state._add_guild(guild)
    payloads = [
        p.thread(p.snowflake(), guild_id, channel_id, 1, f"alice: topic {n}")
        | {"newly_created": True}
        for n in range(count)
    ]

    def parse() -> object:
        for payload in payloads:
            state.parse_thread_create(payload)  # type: ignore[arg-type]
        return guild

    return traced(parse, count)


def known(count: int, as_key: bool) -> float:
    ids = [p.snowflake() for _ in range(count)]

    def remember() -> object:
        places: Recent[object] = Recent(50_000)
        for channel_id in ids:
            places.add(ConversationKey("discord", str(channel_id)) if as_key else channel_id)
        return places

    return traced(remember, count)


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def connections(url: str, count: int) -> tuple[float, float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> None:
            async with session.get(url) as response:
                await response.read()

        await asyncio.gather(*(one() for _ in range(4)))  # the session's own start-up
        gc.collect()
        start, _ = rss_kb(), tracemalloc.start()
        before = tracemalloc.take_snapshot()
        await asyncio.gather(*(one() for _ in range(count)))
        gc.collect()
        after, grown = tracemalloc.take_snapshot(), rss_kb() - start
        tracemalloc.stop()
        kept = sum(len(c) for c in session.connector._conns.values())  # type: ignore[union-attr]
        objects = sum(s.size_diff for s in after.compare_to(before, "filename"))
        return objects / kept, grown * 1024 / kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--threads", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=200)
    args = parser.parse_args()
    # Connections first: what the other measures free would be reused and hide their RSS.
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}/"
        objects, rss = asyncio.run(connections(url, args.connections))
    finally:
        server.terminate()
    print(f"a kept connection: {objects / 1024:.1f} KiB of objects, {rss / 1024:.1f} KiB of RSS")
    print(f"a thread in discord.py's cache: {threads(args.threads):.0f} B (tracemalloc)")
    print(f"a known place as a ConversationKey: {known(args.threads, True):.0f} B")
    print(f"a known place as a channel id: {known(args.threads, False):.0f} B")


if __name__ == "__main__":
    main()
