"""What quitbot adds to a discord.py bot, whoever owns the bot: its cogs, its message
command and, in someone else's bot, a message listener.

quitbot's own bot (`app.QuitBot`) and a bot quitbot is embedded in (`quitbot.discord`) add
and remove these the same way; only the owner of the bot decides about the gateway, the
command tree's error handler and when commands are synced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import discord
from discord import app_commands
from discord.ext import commands

from bot.engine import Engine
from bot.flows import Flows
from bot.heap import glibc_trim
from bot.settings import DiscordSettings
from platforms.discord.buckets import forget_idle_buckets
from platforms.discord.cog import ConversationCog
from platforms.discord.commands import ChatCommands, Moderation
from platforms.discord.errors import command_failed, words_at
from platforms.discord.places import Discord, DiscordModLog
from platforms.discord.reply import TYPING_DELAY
from platforms.discord.stream import EDIT_INTERVAL
from platforms.discord.translate import PLATFORM

log = logging.getLogger(__name__)

BRANCH = "Branch from here"
# The gateway intents quitbot cannot follow a conversation without (see app.intents).
NEEDED_INTENTS = ("guilds", "guild_messages", "message_content")


class MissingIntents(RuntimeError):
    """The bot's client was built without an intent quitbot needs."""


class CommandClash(RuntimeError):
    """The bot already has a command or cog under a name quitbot uses."""


def check_intents(intents: discord.Intents) -> None:
    missing = [name for name in NEEDED_INTENTS if not getattr(intents, name)]
    if missing:
        raise MissingIntents(
            f"quitbot needs the {', '.join(missing)} intent(s), and this bot's client was "
            f"built without {'it' if len(missing) == 1 else 'them'}: pass e.g. "
            "intents = discord.Intents.default(); intents.message_content = True; to your "
            "Bot(...), and turn on 'Message Content Intent' in the Developer Portal (Bot tab)"
        )
    if not intents.dm_messages:
        log.warning("the dm_messages intent is off: quitbot will not hear conversations in DMs")


def quiet_give_back(bot: commands.Bot, trim: Callable[[], object] | None) -> Callable[[], object]:
    """What runs once the conversations went quiet: discord.py's rate-limit buckets that
    hold nothing back are forgotten, then the heap is trimmed.

    The buckets go first: a burst leaves one or two (~1 KB each) for every thread answered
    in the last moments, and the periodic sweep (app.QuitBot) may free them only after the
    trim, leaving their space in the heap (bench/README.md, "Issue 22, fourth round"). No idle
    time is waited for here: with nothing under way, a bucket that holds nothing back is
    worth no more than a new one (platforms/discord/buckets.py)."""

    def give_back() -> None:
        forget_idle_buckets(bot.http, asyncio.get_running_loop().time(), idle=0)
        if trim is not None:
            trim()

    return give_back


class Parts:
    """quitbot on one discord.py bot: the conversations, the commands, the menu."""

    def __init__(
        self,
        bot: commands.Bot,
        engine: Engine,
        settings: DiscordSettings,
        *,
        edit_interval: float = EDIT_INTERVAL,
        typing_delay: float = TYPING_DELAY,
        own_client: bool = False,
    ) -> None:
        self.discord = Discord(
            bot,
            settings,
            edit_interval=edit_interval,
            typing_delay=typing_delay,
            forget_threads=own_client,
        )
        self.flows = Flows(engine, PLATFORM, self.discord, DiscordModLog(self.discord))
        # Only a process that is quitbot's own: a host bot's heap is its own business.
        give_back = quiet_give_back(bot, glibc_trim()) if own_client else None
        self.conversations = ConversationCog(self.discord, self.flows, give_back)
        self._chat = ChatCommands(self.discord, self.flows)
        self._moderation = Moderation(self.discord, self.flows)
        self._branch = app_commands.ContextMenu(name=BRANCH, callback=self._chat.branch)
        self._branch.error(self._branch_failed)

    async def _branch_failed(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await command_failed(interaction, error, await words_at(self.flows, interaction))

    def clashes(self, bot: commands.Bot) -> list[str]:
        """What of quitbot's the bot already has (adding it would fail half-way)."""
        cogs = [self.conversations, self._chat, self._moderation]
        found = [f"cog {c.qualified_name!r}" for c in cogs if bot.get_cog(c.qualified_name)]
        ours = [c.name for cog in (self._chat, self._moderation) for c in cog.get_app_commands()]
        found += [f"/{name}" for name in ours if bot.tree.get_command(name) is not None]
        menu = bot.tree.get_command(BRANCH, type=discord.AppCommandType.message)
        return found + ([f"message command {BRANCH!r}"] if menu is not None else [])

    async def add_to(self, bot: commands.Bot, *, listen: bool) -> None:
        """Add the cogs and the menu; with `listen`, hear messages through a listener (a
        bot that is not quitbot's own keeps its `on_message` for itself)."""
        if bot.get_cog(self.conversations.qualified_name) is not None:
            raise CommandClash("quitbot is already attached to this bot; detach it first")
        clashes = self.clashes(bot)
        if clashes:
            raise CommandClash(
                f"this bot already has {', '.join(clashes)}: quitbot's would replace "
                "them; rename yours or remove them before attaching quitbot"
            )
        for cog in (self.conversations, self._chat, self._moderation):
            await bot.add_cog(cog)
        bot.tree.add_command(self._branch)
        if listen:
            bot.add_listener(self.conversations.heard, "on_message")
        if bot.is_ready():  # attached to a bot already connected: no on_ready comes
            self.flows.engine.readiness.set(PLATFORM, True)


async def remove_from(bot: commands.Bot) -> ConversationCog | None:
    """Take quitbot's cogs, menu and listener off `bot`; its conversations cog (None if
    quitbot was not on it)."""
    conversations = bot.get_cog(ConversationCog.__cog_name__)
    if not isinstance(conversations, ConversationCog):
        return None
    bot.remove_listener(conversations.heard, "on_message")
    bot.tree.remove_command(BRANCH, type=discord.AppCommandType.message)
    for name in (Moderation.__cog_name__, ChatCommands.__cog_name__, ConversationCog.__cog_name__):
        await bot.remove_cog(name)
    conversations.flows.engine.readiness.set(PLATFORM, False)
    return conversations
