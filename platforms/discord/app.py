"""quitbot's own discord.py bot, with the engine injected; its parts are added in setup_hook."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands, tasks

from bot.engine import Engine
from bot.settings import (
    DISCORD_API_SCHEMES,
    DISCORD_GATEWAY_SCHEMES,
    DiscordSettings,
    Settings,
    endpoint,
)
from bot.texts import DEFAULT_TEXTS, TextKey, Texts
from platforms.discord.buckets import IDLE_SECONDS, forget_idle_buckets
from platforms.discord.errors import ANSWERED, command_failed, words_at
from platforms.discord.parts import Parts
from platforms.discord.places import answer
from platforms.discord.reply import TYPING_DELAY
from platforms.discord.stream import EDIT_INTERVAL

log = logging.getLogger(__name__)

# Connections to Discord's REST API kept at once, at most. discord.py's session has no limit,
# so it keeps open as many as were ever in flight together (20-30 KB of RSS each:
# bench/discord_memory_costs.py), while Discord takes 50 requests a second from a bot in all
# (Discord API docs, "Rate Limits", global rate limit): more than that in flight only wait on
# its limits anyway. The limit is per host, so gateway connections (gateway.discord.gg) never
# wait behind REST calls.
REST_CONNECTIONS = 50


def intents() -> discord.Intents:
    """The least that works: guilds, messages in servers and DMs, and message content.

    Message content is privileged: without it the bot only sees mentions and DMs, so it
    could not follow a conversation's thread (`quitbot doctor` explains how to turn it on).
    """
    return discord.Intents(guilds=True, guild_messages=True, dm_messages=True, message_content=True)


def configure_endpoints(
    settings: DiscordSettings | None = None,
    *,
    api_base: str | None = None,
    gateway_url: str | None = None,
) -> None:
    """Send REST and the gateway to a proxy (or a test's fake) when, and only when, set:
    `api_base` and `gateway_url` if given, else the settings' (QUITBOT_DISCORD_API_BASE,
    QUITBOT_DISCORD_GATEWAY_URL). ValueError for an address that is not http(s):// or
    ws(s):// respectively; nothing is changed then.

    discord.py reads these class attributes; changing them affects every client in the
    process, which is why this happens at start-up, before login, and not at import.
    """
    api = endpoint(api_base, DISCORD_API_SCHEMES) or (settings.api_base if settings else None)
    gateway = endpoint(gateway_url, DISCORD_GATEWAY_SCHEMES) or (
        settings.gateway_url if settings else None
    )
    if api:
        discord.http.Route.BASE = api.rstrip("/")
    if gateway:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)


def quiet_voice_warnings() -> None:
    """quitbot never joins voice, so discord.py's "voice will NOT be supported" warnings at
    start-up would only alarm operators."""
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False


def drop_malformed_events(client: discord.Client) -> None:
    """Refuse a gateway event discord.py cannot read, at the edge: logged once at WARNING
    and dropped.

    discord.py calls its parsers straight from the gateway loop, so a payload of the wrong
    shape (a field missing or of another JSON type) would raise out of `Client.start` and
    stop the whole bot. Discord does not send such payloads, but a proxy, a gateway
    replacement or a future API change could; one bad event must not cost every other.
    """
    parsers: dict[str, Callable[[Any], None]] = client._connection.parsers
    for event, parse in list(parsers.items()):
        parsers[event] = _dropping(event, parse)


def _dropping(event: str, parse: Callable[[Any], None]) -> Callable[[Any], None]:
    def parse_or_drop(data: Any) -> None:
        try:
            parse(data)
        except Exception as exc:
            found = data.get("id") if isinstance(data, dict) else None
            log.warning("dropped a malformed %s event (id %r): %r", event, found, exc)

    return parse_or_drop


class QuitBotTree(app_commands.CommandTree[discord.Client]):
    """Answers every failed command in words instead of discord.py's logged traceback
    (quitbot's own commands answer theirs: `errors.command_failed`); this tree adds the
    commands it cannot even find, stale or malformed."""

    async def _call(self, interaction: discord.Interaction[discord.Client]) -> None:
        """discord.py's own reading of a command's data lets a malformed one escape as a
        bare KeyError or TypeError (logged by asyncio as an unretrieved task exception):
        such a command is refused here, like an unknown one."""
        try:
            await super()._call(interaction)
        except app_commands.AppCommandError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            log.warning("dropped a malformed command interaction %s: %r", interaction.id, exc)
            words = await self._words(interaction)
            await answer(interaction, words.get(TextKey.DISCORD_COMMAND_GONE))

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError, /
    ) -> None:
        if not interaction.extras.get(ANSWERED):
            await command_failed(interaction, error, await self._words(interaction))

    async def _words(self, interaction: discord.Interaction) -> Texts:
        """The words of the server a command came from (the tree is quitbot's own bot's)."""
        client = self.client
        return (
            await words_at(client.flows, interaction)
            if isinstance(client, QuitBot)
            else DEFAULT_TEXTS
        )


class QuitBot(commands.Bot):
    """quitbot on Discord: one gateway connection, the bot quitbot's alone."""

    def __init__(
        self,
        engine: Engine,
        settings: DiscordSettings,
        *,
        edit_interval: float = EDIT_INTERVAL,
        typing_delay: float = TYPING_DELAY,
        **options: Any,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents(),
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            chunk_guilds_at_startup=False,
            # Nothing here reads discord.py's cache of recent messages (edits and deletes
            # are not acted on), and 1,000 cached messages grow the heap under a burst.
            max_messages=None,
            tree_cls=QuitBotTree,
            **options,
        )
        self._parts = Parts(
            self,
            engine,
            settings,
            edit_interval=edit_interval,
            typing_delay=typing_delay,
            own_client=True,
        )
        self.discord, self.flows = self._parts.discord, self._parts.flows
        drop_malformed_events(self)
        parsers = self._connection.parsers
        parsers["MESSAGE_CREATE"] = self._unless_from_a_bot(parsers["MESSAGE_CREATE"])

    def _unless_from_a_bot(self, parse: Callable[[Any], None]) -> Callable[[Any], None]:
        """A bot's message (quitbot's own replies, which Discord echoes, above all) is
        dropped before discord.py builds a `Message` of it: quitbot answers no bot
        (`translate.route`), so one per reply was built for nothing (issue 22). discord.py's
        cache then misses that message as the channel's last; nothing here reads it."""

        def parse_message_create(data: Any) -> None:
            author = data.get("author") if isinstance(data, dict) else None
            if isinstance(author, dict) and author.get("bot") and not self._heard_elsewhere():
                return
            parse(data)

        return parse_message_create

    def _heard_elsewhere(self) -> bool:
        """Whether anyone but quitbot waits on this bot's messages (`wait_for`, a listener)."""
        return bool(self._listeners.get("message") or self.extra_events.get("on_message"))

    async def login(self, token: str) -> None:
        connector = self.http.connector
        if connector is discord.utils.MISSING or connector.closed:  # none given, or closed
            self.http.connector = aiohttp.TCPConnector(limit=0, limit_per_host=REST_CONNECTIONS)
        await super().login(token)

    async def setup_hook(self) -> None:
        self._forget_idle_buckets.start()
        await self._parts.add_to(self, listen=False)
        await self.sync_commands()
        # What a previous run kept but never answered, in order, before the gateway brings
        # anything new: answered later, it would race the same messages still in flight.
        answered = await self.flows.answer_pending()
        if answered:
            log.info("answered %d messages a previous run had received", answered)

    async def sync_commands(self) -> None:
        await sync_commands(self, self.discord.settings)

    @tasks.loop(seconds=IDLE_SECONDS)
    async def _forget_idle_buckets(self) -> None:
        """What discord.py keeps per thread for its rate limits goes once the thread is
        quiet, not five minutes later (see platforms/discord/buckets.py)."""
        forget_idle_buckets(self.http, asyncio.get_running_loop().time())

    async def close(self) -> None:
        self._forget_idle_buckets.cancel()
        await super().close()

    def dispatch(self, event_name: str, /, *args: Any, **kwargs: Any) -> None:
        """A message goes into its conversation's line here, as discord.py parses it: its
        `dispatch` would start a task for `on_message` per message, the bot's own replies
        included (Discord echoes them), only for `arrive` to return at once. Anyone else
        waiting on messages (`wait_for`, a listener added to this bot) still hears them."""
        if event_name != "message":
            super().dispatch(event_name, *args, **kwargs)
            return
        self._parts.conversations.arrive(args[0])
        if self._heard_elsewhere():
            super().dispatch(event_name, *args, **kwargs)

    async def on_message(self, message: discord.Message, /) -> None:
        """No prefix commands: every message was taken by `dispatch` already (discord.py
        still calls this when someone else listens for messages too)."""


async def sync_commands(bot: commands.Bot, settings: DiscordSettings) -> None:
    """Sync the bot's commands: to QUITBOT_DISCORD_DEV_GUILD_ID's server if set (it sees
    them at once), else globally."""
    guild_id = settings.dev_guild_id
    guild = discord.Object(guild_id) if guild_id else None
    if guild is not None:
        bot.tree.copy_global_to(guild=guild)
    synced = await bot.tree.sync(guild=guild)
    where = f"to server {guild_id}" if guild else "globally (may take a while to appear)"
    log.info("synced %d commands %s", len(synced), where)


class ShardedQuitBot(QuitBot, commands.AutoShardedBot):
    """quitbot for large bots: discord.py's own auto-sharding."""


def build_bot(engine: Engine, settings: Settings, **options: Any) -> QuitBot:
    """The bot; auto-sharded when QUITBOT_DISCORD_SHARD_COUNT or _SHARD_IDS is set."""
    section = settings.discord
    if section.shard_count is None and section.shard_ids is None:
        return QuitBot(engine, section, **options)
    if section.shard_count is None:
        raise ValueError("QUITBOT_DISCORD_SHARD_IDS needs QUITBOT_DISCORD_SHARD_COUNT as well")
    return ShardedQuitBot(
        engine, section, shard_count=section.shard_count, shard_ids=section.shard_ids, **options
    )
