"""What the Discord adapter does with conversations: start them, stream turns, close threads.

Every policy decision is the engine's; this turns its outcomes into Discord calls.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import discord

from bot.conversation import Conversation, ConversationKey, Inbound
from bot.engine import Engine
from bot.notices import Notice, Outcome
from bot.settings import DiscordSettings
from platforms.discord import render, translate
from platforms.discord.attachments import read_attachments
from platforms.discord.reply import TYPING_DELAY, ChannelReply
from platforms.discord.stream import EDIT_INTERVAL
from platforms.recent import Recent

log = logging.getLogger(__name__)

THREAD_EXISTS = 160004  # Discord: a thread was already created from this message
THREAD_ARCHIVE_MINUTES: Literal[1440] = 1440
KNOWN_PLACES = 50_000
MENTION_USERS = discord.AllowedMentions(users=True, everyone=False, roles=False)


class Conversations:
    """The adapter's operations, shared by the message listener, buttons and commands."""

    def __init__(
        self,
        client: discord.Client,
        engine: Engine,
        settings: DiscordSettings,
        *,
        edit_interval: float = EDIT_INTERVAL,
        typing_delay: float = TYPING_DELAY,
    ) -> None:
        self.client = client
        self._typing_delay = typing_delay
        self.engine = engine
        self.settings = settings
        self._edit_interval = edit_interval
        self._told_missing: set[tuple[int, str]] = set()
        # Places known to hold a conversation; one never goes away, so no invalidation.
        self._known = Recent[ConversationKey](KNOWN_PLACES)
        self._turns: set[asyncio.Task[Any]] = set()

    # --- turns ----------------------------------------------------------------------------

    async def start_from_message(self, message: discord.Message, text: str) -> None:
        """A mention in a channel: a public thread from that message, answered inside it."""
        known = await self._thread_from(message)
        if known is not None:  # the same mention again (a gateway replay): the engine dedupes
            await self.converse_message(known, message, translate.thread_key(message.id), text)
            return
        name = translate.thread_name(text, message.author.display_name)
        try:
            thread = await message.create_thread(
                name=name, auto_archive_duration=THREAD_ARCHIVE_MINUTES
            )
        except discord.HTTPException as exc:
            existing = await self._existing_thread(message, exc)
            if existing is None:
                return
            thread = existing  # the same message again: the engine will see a duplicate
        await self.converse_message(thread, message, translate.thread_key(thread.id), text)

    async def _thread_from(self, message: discord.Message) -> discord.abc.Messageable | None:
        """The thread already opened from `message`, known without asking Discord.

        A thread started from a message has that message's id, so after a RESUME replays a
        mention, the cache or the record of conversations tells us it exists.
        """
        cached = self.client.get_channel(message.id)
        if isinstance(cached, discord.Thread):
            return cached
        if not await self.is_conversation(translate.thread_key(message.id)):
            return None
        return self.client.get_partial_messageable(
            message.id, guild_id=message.guild.id if message.guild else None,
            type=discord.ChannelType.public_thread,
        )  # fmt: skip

    async def _existing_thread(
        self, message: discord.Message, exc: discord.HTTPException
    ) -> discord.Thread | None:
        if exc.code == THREAD_EXISTS:
            return await self.thread(message.id)
        if isinstance(exc, discord.Forbidden) and message.guild is not None:
            self.missing_permission(message.guild, "Create Public Threads")
        else:
            log.warning("could not open a thread from message %s: %s", message.id, exc)
        return None

    async def converse_message(
        self,
        channel: discord.abc.Messageable,
        message: discord.Message,
        key: ConversationKey,
        text: str,
    ) -> Outcome:
        attachments = await read_attachments(
            message.attachments, self.settings.max_attachment_bytes
        )
        return await self.converse(channel, translate.inbound(message, key, text, attachments))

    async def converse(self, channel: discord.abc.Messageable, inbound: Inbound) -> Outcome:
        """One turn: the reply streamed into `channel`, then notices, then any closing."""
        reply = ChannelReply(channel, interval=self._edit_interval, typing_delay=self._typing_delay)
        task = asyncio.current_task()
        if task is not None:
            self._turns.add(task)
        try:
            outcome = await self.engine.handle(inbound, reply)
        finally:
            self._turns.discard(task)
            await reply.close()
        self._known.add(inbound.key)
        if outcome.duplicate:
            return outcome
        await self.show(channel, outcome.notices, outcome.conversation)
        if outcome.just_ended or outcome.blocked:
            await self.after_end(inbound.key, outcome)
        return outcome

    async def drain(self, grace: float) -> None:
        """On shutdown: let replies under way finish for up to `grace` seconds, then cut
        them short (the engine records them as interrupted and says so in the reply)."""
        if not self._turns:
            return
        log.info("waiting up to %ss for %d replies under way", grace, len(self._turns))
        _, late = await asyncio.wait(set(self._turns), timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    async def show(
        self,
        channel: discord.abc.Messageable,
        notices: tuple[Notice, ...],
        conversation: Conversation | None,
    ) -> None:
        in_dm = translate.is_dm(channel)
        conversation_id = conversation.id if conversation else ""
        for notice in notices:
            rendered = render.notice(notice, in_dm=in_dm, conversation_id=conversation_id)
            await self.send(channel, rendered)

    async def send(
        self, channel: discord.abc.Messageable, rendered: render.Rendered, **extra: Any
    ) -> discord.Message | None:
        kwargs: dict[str, Any] = {"content": rendered.content, "embed": rendered.embed, **extra}
        view = render.view(rendered.buttons)
        if view is not None:
            kwargs["view"] = view
        try:
            return await channel.send(**kwargs)
        except discord.HTTPException as exc:
            log.warning("could not post in %s: %s", getattr(channel, "id", "?"), exc)
            return None

    async def after_end(self, key: ConversationKey, outcome: Outcome) -> None:
        """After the final notice (posting unarchives a thread): archive and lock."""
        thread_id = translate.thread_id_of(key)
        if thread_id is not None:
            await self.close_thread(thread_id)
        if outcome.just_ended and outcome.conversation is not None:
            reason = outcome.conversation.ladder.ended_reason
            await self.modlog(
                "Conversation ended",
                outcome.conversation,
                reason=reason.value if reason else "",
                ended_by=outcome.conversation.ladder.ended_by or "",
            )

    async def is_conversation(self, key: ConversationKey) -> bool:
        """Whether a conversation lives at `key` (threads are only answered if so)."""
        if key in self._known:
            return True
        if await self.engine.find(key) is None:
            return False
        self._known.add(key)
        return True

    # --- threads --------------------------------------------------------------------------

    async def thread(self, thread_id: int) -> discord.Thread | None:
        """A thread from the cache, or fetched (archived threads leave the cache)."""
        cached = self.client.get_channel(thread_id)
        if isinstance(cached, discord.Thread):
            return cached
        try:
            fetched = await self.client.fetch_channel(thread_id)
        except discord.HTTPException as exc:
            log.warning("could not fetch thread %s: %s", thread_id, exc)
            return None
        return fetched if isinstance(fetched, discord.Thread) else None

    async def close_thread(self, thread_id: int) -> bool:
        """Archive and lock an ended conversation's thread so members cannot post in it."""
        thread = await self.thread(thread_id)
        if thread is None or (thread.archived and thread.locked):
            return thread is not None
        if not self.can_manage_threads(thread):
            self.missing_permission(thread.guild, "Manage Threads")
            return False
        try:
            if thread.archived:
                # An archived thread takes no edit but unarchiving (50083 "Thread is
                # archived"; discord.js #8680): unarchive, then archive and lock together.
                thread = await thread.edit(archived=False, reason="quitbot: to lock it")
            await thread.edit(archived=True, locked=True, reason="quitbot: conversation ended")
        except discord.Forbidden:
            self.missing_permission(thread.guild, "Manage Threads")
            return False
        except discord.HTTPException as exc:
            log.warning("could not archive and lock thread %s: %s", thread_id, exc)
            return False
        log.info("thread %s archived and locked: its conversation ended", thread_id)
        return True

    async def open_thread(self, thread_id: int) -> str:
        """Unlock and unarchive a reopened conversation's thread; "" or what went wrong."""
        thread = await self.thread(thread_id)
        if thread is None:
            return "I could not find that thread."
        try:
            await thread.edit(archived=False, locked=False, reason="quitbot: reopened")
        except discord.Forbidden:
            self.missing_permission(thread.guild, "Manage Threads")
            return "I could not unlock the thread: I need the Manage Threads permission."
        except discord.HTTPException as exc:
            return f"I could not unlock the thread: {exc.text or exc.status}"
        return ""

    def can_manage_threads(self, thread: discord.Thread) -> bool:
        me = thread.guild.me
        if me is None or thread.parent is None:
            return True  # cannot tell from the cache; Discord will answer
        return thread.permissions_for(me).manage_threads

    def missing_permission(self, guild: discord.Guild, permission: str) -> None:
        """Say once per server which permission is missing (operators read the logs)."""
        if (guild.id, permission) in self._told_missing:
            return
        self._told_missing.add((guild.id, permission))
        log.warning(
            "missing permission %r in server %s (%s): %s. Grant it to the bot's role "
            "(see `quitbot doctor`).",
            permission,
            guild.name,
            guild.id,
            _CONSEQUENCE.get(permission, "some actions fail"),
        )

    # --- new conversations and the mod log ------------------------------------------------

    async def new_thread(
        self, channel: discord.abc.GuildChannel | discord.Thread, user: discord.abc.User, name: str
    ) -> discord.Thread | None:
        """A fresh public thread next to `channel` (in its parent, for a thread)."""
        parent = channel.parent if isinstance(channel, discord.Thread) else channel
        if not isinstance(parent, discord.TextChannel):
            return None
        try:
            return await parent.create_thread(
                name=translate.thread_name(name, user.display_name),
                type=discord.ChannelType.public_thread,
                auto_archive_duration=THREAD_ARCHIVE_MINUTES,
            )
        except discord.HTTPException as exc:
            if isinstance(exc, discord.Forbidden):
                self.missing_permission(parent.guild, "Create Public Threads")
            log.warning("could not create a thread in %s: %s", parent.id, exc)
            return None

    async def modlog(self, title: str, conversation: Conversation, **fields: object) -> None:
        channel_id = self.settings.modlog_channel_id
        if not channel_id:
            return
        channel = self.client.get_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            log.warning("mod-log channel %s is not a text channel I can see", channel_id)
            return
        guild = getattr(channel, "guild", None)
        embed = render.modlog(
            title,
            conversation,
            place_link(conversation.key, conversation.user_id, guild.id if guild else None),
            **{name: str(value) for name, value in fields.items()},
        )
        try:
            await channel.send(embed=embed)
        except discord.HTTPException as exc:
            log.warning("could not post to the mod-log channel %s: %s", channel_id, exc)


_CONSEQUENCE = {
    "Manage Threads": (
        "ended conversations still end (I never reply in them), but their threads cannot be "
        "archived and locked, and moderators cannot reopen them"
    ),
    "Create Public Threads": "mentions and /chat cannot open a conversation thread",
}


def place_link(key: ConversationKey, user_id: str, guild_id: int | None) -> str:
    thread_id = translate.thread_id_of(key)
    if thread_id is None:
        return f"A direct message with <@{user_id}>"
    if guild_id is None:
        return f"<#{thread_id}>"
    return f"<#{thread_id}> · https://discord.com/channels/{guild_id}/{thread_id}"
