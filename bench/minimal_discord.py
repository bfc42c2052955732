"""The minimal Claude bot on discord.py that quitbot is measured against (see bench/README.md).

One AsyncAnthropic client, history in a dict, messages.stream, one reply per message; no
database, rules or streaming edits. ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL are read by the
SDK; MINIMAL_TRANSPORT=aiohttp puts it on the SDK's aiohttp transport.
"""

import os

import discord
import yarl
from anthropic import AsyncAnthropic, DefaultAioHttpClient

# Harness plumbing, not part of the bot: point discord.py at the loopback fake.
discord.http.Route.BASE = os.environ["BENCH_DISCORD_API_BASE"]
discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["BENCH_DISCORD_GATEWAY"])

aiohttp_transport = os.environ.get("MINIMAL_TRANSPORT") == "aiohttp"
claude = AsyncAnthropic(http_client=DefaultAioHttpClient() if aiohttp_transport else None)
history: dict[int, list[dict[str, str]]] = {}
# Only the events it reads, and no cache of recent messages: it never looks one up again.
intents = discord.Intents(guilds=True, guild_messages=True, dm_messages=True, message_content=True)
client = discord.Client(intents=intents, max_messages=None)


@client.event
async def on_message(message: discord.Message) -> None:
    if message.author.bot:
        return
    turns = history.setdefault(message.channel.id, [])
    turns.append({"role": "user", "content": message.content})
    async with claude.messages.stream(
        model=os.environ.get("MODEL", "claude-sonnet-4-5"), max_tokens=1024, messages=turns
    ) as stream:
        text = await stream.get_final_text()
    turns.append({"role": "assistant", "content": text})
    await message.channel.send(text[:2000])


client.run(os.environ["DISCORD_TOKEN"], log_handler=None)
