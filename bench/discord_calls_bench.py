"""discord.py's own work per reply and per echoed message, without the network (issue 22).

Prints figures, not pass/fail:

    .venv/bin/python bench/discord_calls_bench.py

- posting a reply: `Messageable.send` (what quitbot did, and the minimal bot does) against
  `ChannelReply`'s way (discord.py's message parameters and `HTTPClient.send_message`),
  with discord.py's `HTTPClient.request` answering at once with a real message payload;
- the gateway's MESSAGE_CREATE of a bot's message (quitbot's own reply, echoed): parsed
  into a `discord.Message` and dispatched to an `on_message` task, against dropped by
  quitbot's parser before discord.py reads it.
Each figure is the best of 5 rounds, in µs a call.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # discord.py imports audioop
    import discord
from discord.http import handle_message_parameters

from quitbot.testing import discord_payloads as p

CALLS = 20_000
ROUNDS = 5
NO_MENTIONS = discord.AllowedMentions.none()
WORDS = "Sure, here is a short answer to that."


async def _best(run: Callable[[], Awaitable[None]]) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        await run()
        times.append(time.perf_counter() - start)
    return min(times) / CALLS * 1e6


async def main() -> None:
    client = discord.Client(
        intents=discord.Intents(guild_messages=True, message_content=True),
        allowed_mentions=NO_MENTIONS,
        max_messages=None,
    )
    channel = {"id": str(p.snowflake()), "type": 11, "guild_id": str(p.snowflake())}
    bot = p.user(p.snowflake(), "quitbot", bot=True)
    echoed = p.message(p.snowflake(), channel, bot, WORDS)

    async def answered(route: Any, **_: Any) -> Any:
        return echoed

    client.http.request = answered  # type: ignore[method-assign]
    messageable = client.get_partial_messageable(int(channel["id"]))

    async def via_send() -> None:
        for _ in range(CALLS):
            await messageable.send(WORDS, allowed_mentions=NO_MENTIONS)

    async def via_http() -> None:
        for _ in range(CALLS):
            nonce = random.getrandbits(64)
            posted = handle_message_parameters(
                WORDS, nonce=nonce, allowed_mentions=NO_MENTIONS, view=None
            )
            with posted as params:
                sent = await client.http.send_message(messageable.id, params=params)
            int(sent["id"])

    parse = client._connection.parsers["MESSAGE_CREATE"]

    async def on_message(message: discord.Message) -> None:
        return None

    client.on_message = on_message  # type: ignore[attr-defined]

    async def parsed() -> None:
        for _ in range(CALLS):
            parse(echoed)
            await asyncio.sleep(0)  # the on_message task runs

    async def dropped() -> None:
        for _ in range(CALLS):
            author = echoed.get("author")
            if isinstance(author, dict) and author.get("bot"):
                continue
            parse(echoed)

    async with client:  # discord.py's event loop hooks, no connection
        print(f"a reply through Messageable.send:      {await _best(via_send):6.1f} µs")
        print(f"a reply through discord.py's HTTP:     {await _best(via_http):6.1f} µs")
        print(f"a bot's message parsed, on_message:    {await _best(parsed):6.1f} µs")
        print(f"a bot's message dropped:               {await _best(dropped):6.1f} µs")


if __name__ == "__main__":
    asyncio.run(main())
