"""The core's ports on Discord: a conversation's place (a thread or a DM) and the mod-log.

The flows decide what happens; this only says how it happens on Discord. The one rule
that shapes it: the Discord client disables every non-link component on a message in a
locked thread, ephemeral ones included (discord-api-docs #6907, #7900). So nothing a
person must click is ever left in a thread that is about to be locked: controls meant
for after an end go to the person by DM (or as an ephemeral answer outside the thread).

Forum and media channels hold posts only: no plain message can be sent there, and a new
post must come with its first message (Start Thread in Forum or Media Channel).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import aiohttp
import discord

from bot.conversation import Attachment, Conversation, ConversationKey, FileRef
from bot.flows import OpenPlace
from bot.notices import Notice, NoticeKind
from bot.ports import ModLogEntry
from bot.settings import DiscordSettings
from bot.texts import DEFAULT_TEXTS, Texts
from platforms.discord import history, render, translate
from platforms.discord.attachments import read_files
from platforms.discord.permissions import NEEDED
from platforms.discord.reply import NO_MENTIONS, TYPING_DELAY, ChannelReply
from platforms.discord.stream import EDIT_INTERVAL
from platforms.discord.thread_cache import forget_thread
from platforms.recent import Recent

log = logging.getLogger(__name__)

THREAD_ARCHIVE_MINUTES: Literal[1440] = 1440
THREAD_EXISTS = 160004  # Discord: a thread was already created from this message
KNOWN_PLACES = 50_000
MENTION_USERS = discord.AllowedMentions(users=True, everyone=False, roles=False)


class Discord:
    """What every place shares: the client, the settings, and the thread operations.

    It is also the core's `Places`: `place(key)` reaches a conversation's place when no
    event is in flight there (a moderator reopening another thread).
    """

    def __init__(
        self,
        client: discord.Client,
        settings: DiscordSettings,
        *,
        edit_interval: float = EDIT_INTERVAL,
        typing_delay: float = TYPING_DELAY,
        forget_threads: bool = False,
    ) -> None:
        self.client = client
        self.settings = settings
        # Only on quitbot's own client: a host's bot (quitbot.discord.attach) owns its
        # cache, and its code may look quitbot's threads up there.
        self._forget_threads = forget_threads
        self.edit_interval = edit_interval
        self.typing_delay = typing_delay
        self._told_missing: set[tuple[int, str]] = set()
        # Threads being locked now: our own unarchive step fires a THREAD_UPDATE that
        # looks like someone reopening the thread; it must not start a second lock.
        self._locking: set[int] = set()
        # Channel ids of places known to hold a conversation (an int costs a third of a
        # key); one never goes away, so no invalidation.
        self._known = Recent[int](KNOWN_PLACES)

    def knows(self, key: ConversationKey) -> bool:
        """Whether `key` is known to hold a conversation (if not, ask the store)."""
        return translate.channel_id_of(key) in self._known

    def learn(self, key: ConversationKey) -> None:
        """Remember that `key` holds a conversation."""
        self._known.add(translate.channel_id_of(key))

    def let_go(self, key: ConversationKey) -> None:
        """Nothing is under way in `key`'s conversation: its thread leaves discord.py's
        cache (see thread_cache), to be fetched if something needs it later."""
        thread_id = translate.thread_id_of(key)
        if thread_id is not None and self._forget_threads:
            forget_thread(self.client, thread_id)

    def place(self, key: ConversationKey) -> DiscordPlace:
        thread_id, channel_id = translate.thread_id_of(key), translate.channel_id_of(key)
        found = self.client.get_channel(channel_id)
        if isinstance(found, discord.abc.Messageable):
            return DiscordPlace(self, found)
        kind = discord.ChannelType.public_thread if thread_id else discord.ChannelType.private
        partial = self.client.get_partial_messageable(channel_id, type=kind)
        return DiscordPlace(self, partial)

    async def read(self, files: Sequence[FileRef]) -> tuple[Attachment, ...]:
        """A message's files, read from the CDN as discord.py reads an attachment.

        Discord signs attachment addresses with an expiry time (their `ex` parameter,
        https://discord.com/developers/docs/reference#signed-attachment-cdn-urls; about a
        day in practice), and an expired one answers 404: a message kept over a long stop
        has its addresses refreshed (POST /attachments/refresh-urls, same page). A file
        that still cannot be read is only named."""
        fetch = self.client.http.get_from_cdn
        limit = self.settings.max_attachment_bytes
        return await read_files(files, fetch, limit, self._refreshed_url)

    async def _refreshed_url(self, url: str) -> str | None:
        route = discord.http.Route("POST", "/attachments/refresh-urls")
        try:
            answer = await self.client.http.request(route, json={"attachment_urls": [url]})
            renewed = [item["refreshed"] for item in answer["refreshed_urls"]]
        except (discord.HTTPException, aiohttp.ClientError, KeyError, TypeError) as exc:
            log.warning("could not refresh an attachment's address: %r", exc)
            return None
        return str(renewed[0]) if renewed else None

    def opener(
        self,
        parent: object,
        name: str,
        interaction: discord.Interaction,
        *,
        in_dm: bool,
        words: Texts = DEFAULT_TEXTS,
    ) -> OpenPlace:
        """How the flows open a place for a new conversation: a thread in `parent`, or,
        in a DM, the DM itself (where the first notice answers the deferred interaction)."""

        async def open_place() -> tuple[ConversationKey, DiscordPlace] | None:
            channel = interaction.channel
            if in_dm and isinstance(channel, discord.abc.Messageable):
                here = DiscordPlace(self, channel, answering=interaction)
                return translate.key_for(channel), here
            opening = render.opening(str(interaction.user.id), words)
            thread = await self.new_thread(parent, name, opening)
            if thread is None:
                return None
            return translate.thread_key(thread.id), DiscordPlace(self, thread)

        return open_place

    async def channel(self, channel_id: int) -> object | None:
        """A channel from the cache, or fetched: a server on another shard (or process) is
        not in this one's cache, yet a button pressed in a DM (shard 0) may name it."""
        cached = self.client.get_channel(channel_id)
        if cached is not None:
            return cached
        try:
            return await self.client.fetch_channel(channel_id)
        except discord.HTTPException as exc:
            log.warning("could not fetch channel %s: %s", channel_id, exc)
            return None

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

    async def lock(self, thread_id: int) -> None:
        """Archive and lock an ended conversation's thread so members cannot post in it."""
        if thread_id in self._locking:
            return
        self._locking.add(thread_id)
        try:
            await self._lock(thread_id)
        finally:
            self._locking.discard(thread_id)

    async def _lock(self, thread_id: int) -> None:
        thread = await self.thread(thread_id)
        if thread is None or (thread.archived and thread.locked):
            return
        me = thread.guild.me
        if me and thread.parent and not thread.permissions_for(me).manage_threads:
            self.missing_permission(thread.guild, "Manage Threads")
            return
        try:
            if thread.archived:
                # An archived thread takes no edit but unarchiving (50083 "Thread is
                # archived"; discord.js #8680): unarchive, then archive and lock together.
                thread = await thread.edit(archived=False, reason="quitbot: to lock it")
            await thread.edit(archived=True, locked=True, reason="quitbot: conversation ended")
        except discord.Forbidden:
            self.missing_permission(thread.guild, "Manage Threads")
            return
        log.info("thread %s archived and locked: its conversation ended", thread_id)

    async def unlock(self, thread_id: int) -> str:
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

    async def thread_from(self, message: discord.Message, name: str) -> discord.Thread | None:
        """A public thread started from `message` (it gets the message's id)."""
        try:
            return await message.create_thread(
                name=name, auto_archive_duration=THREAD_ARCHIVE_MINUTES
            )
        except discord.HTTPException as exc:
            if exc.code == THREAD_EXISTS:
                return await self.thread(message.id)
            if isinstance(exc, discord.Forbidden) and message.guild is not None:
                self.missing_permission(message.guild, "Create Public Threads")
            log.warning("could not open a thread from message %s: %s", message.id, exc)
            return None

    async def new_thread(
        self, parent: object, name: str, opening: render.Rendered
    ) -> discord.Thread | None:
        """A fresh public thread in `parent` (a text channel; for a thread, its parent): in
        a forum or media channel a post, which needs its first message: `opening`."""
        if isinstance(parent, discord.Thread):
            parent = parent.parent
        if isinstance(parent, discord.ForumChannel):
            return await self.open_post(parent, name, opening)
        if not isinstance(parent, discord.TextChannel):
            return None
        try:
            return await parent.create_thread(
                name=name,
                type=discord.ChannelType.public_thread,
                auto_archive_duration=THREAD_ARCHIVE_MINUTES,
            )
        except discord.HTTPException as exc:
            if isinstance(exc, discord.Forbidden):
                self.missing_permission(parent.guild, "Create Public Threads")
            log.warning("could not create a thread in %s: %s", parent.id, exc)
            return None

    async def open_post(
        self, forum: discord.ForumChannel, name: str, first: render.Rendered, **extra: Any
    ) -> discord.Thread | None:
        """A new post in a forum or media channel, `first` its first message. A forum that
        requires a tag gets its first one that anyone may set (quitbot's posts are about
        whatever people ask, so no tag fits better than another)."""
        tags = forum.available_tags
        if forum.flags.require_tag and tags:
            usable = [tag for tag in tags if not tag.moderated] or tags
            extra = {"applied_tags": usable[:1], **extra}
        try:
            created = await forum.create_thread(
                name=name,
                auto_archive_duration=THREAD_ARCHIVE_MINUTES,
                **message_of(first, **extra),
            )
        except discord.HTTPException as exc:
            # A post needs Send Messages; Create Public Threads is ignored there (docs).
            if isinstance(exc, discord.Forbidden):
                self.missing_permission(forum.guild, "Send Messages")
            log.warning("could not open a post in forum %s: %s", forum.id, exc)
            return None
        return created.thread

    def missing_permission(self, guild: discord.Guild, permission: str) -> None:
        """Say once per server which permission is missing (operators read the logs)."""
        if (guild.id, permission) in self._told_missing:
            return
        self._told_missing.add((guild.id, permission))
        why = NEEDED.get(permission.lower().replace(" ", "_"), "work here")
        log.warning(
            "missing permission %r in server %s (%s): I need it to %s. Grant it to the bot's "
            "role (see `quitbot doctor`).", permission, guild.name, guild.id, why,
        )  # fmt: skip

    async def send(
        self, channel: discord.abc.Messageable, rendered: render.Rendered, **extra: Any
    ) -> discord.Message | None:
        try:
            return await channel.send(**message_of(rendered, **extra))
        except discord.HTTPException as exc:
            log.warning("could not post in %s: %s", getattr(channel, "id", "?"), exc)
            return None

    async def replace(
        self, channel: discord.abc.Messageable, message_id: str, rendered: render.Rendered
    ) -> discord.Message | None:
        """Show `rendered` in place of an earlier message of ours, without its buttons
        unless `rendered` has its own."""
        try:
            earlier = discord.PartialMessage(channel=channel, id=int(message_id))  # type: ignore[arg-type]
            return await earlier.edit(**message_of(rendered, view=None))
        except (TypeError, ValueError, discord.HTTPException) as exc:
            log.warning("could not edit message %s: %s", message_id, exc)
            return None

    async def direct(self, user_id: str, rendered: render.Rendered) -> bool:
        """Send to a person's DMs; False if they do not take DMs from the bot."""
        try:
            channel = await self.client.create_dm(discord.Object(int(user_id)))
            await channel.send(**message_of(rendered))
        except discord.HTTPException as exc:
            log.info("could not DM user %s: %s", user_id, exc)
            return False
        return True


class DiscordPlace:
    """One conversation's place: a thread, or a DM. `interaction` is the one being answered,
    if the event came from one (its follow-ups can reach the person privately).
    `answering` is a deferred interaction that the first notice posted here answers."""

    def __init__(
        self,
        discord_: Discord,
        channel: discord.abc.Messageable,
        interaction: discord.Interaction | None = None,
        *,
        answering: discord.Interaction | None = None,
    ) -> None:
        self._d = discord_
        self.channel = channel
        self._interaction = interaction or answering
        self._answering = answering
        self.in_dm = translate.is_dm(channel)
        # Where the person can start again in the server: the thread's parent channel.
        self._origin = None if self.in_dm else getattr(channel, "parent_id", None)

    def reply(self) -> ChannelReply:
        return ChannelReply(
            self.channel,
            self._d.client.http,
            interval=self._d.edit_interval,
            typing_delay=self._d.typing_delay,
        )

    def _render(self, notice: Notice, conversation: Conversation | None) -> render.Rendered:
        return render.notice(
            notice, in_dm=self.in_dm, conversation=conversation, origin=self._origin
        )

    async def _thread_itself(self) -> None:
        """A thread that left discord.py's cache (see thread_cache) is a bare channel here:
        fetched once, only when what is said depends on the thread itself (its parent
        channel, where "Start a new conversation" leads; its name; its lock)."""
        if self.in_dm or not isinstance(self.channel, discord.PartialMessageable):
            return
        thread = await self._d.thread(self.channel.id)
        if thread is not None:
            self.channel, self._origin = thread, thread.parent_id

    async def post(self, notice: Notice, conversation: Conversation | None) -> str:
        if notice.kind in render.LEADS_BACK:
            await self._thread_itself()
        rendered = self._render(notice, conversation)
        if notice.replaces:
            sent = await self._d.replace(self.channel, notice.replaces, rendered)
        elif self._answering is not None:  # the deferred interaction's answer ("thinking...")
            interaction, self._answering = self._answering, None
            sent = await answer(interaction, rendered, ephemeral=False)
        else:
            sent = await self._d.send(self.channel, rendered, allowed_mentions=MENTION_USERS)
        return str(sent.id) if sent is not None else ""

    async def tell(self, user_id: str, notice: Notice, conversation: Conversation | None) -> None:
        if notice.kind in render.LEADS_BACK:
            await self._thread_itself()
        rendered = self._render(notice, conversation)
        interaction = self._interaction
        if (
            interaction is not None
            and str(interaction.user.id) == user_id
            and (self.in_dm or not rendered.buttons)  # buttons in a thread die with its lock
            and not interaction.is_expired()
        ):
            await answer(interaction, rendered)
        elif self.in_dm:
            await self._d.send(self.channel, rendered)
        elif not await self._d.direct(user_id, rendered):
            await self._thread_itself()
            await self._tell_in_origin(user_id, notice, rendered)

    async def _tell_in_origin(
        self, user_id: str, notice: Notice, rendered: render.Rendered
    ) -> None:
        """Their DMs are closed: say it where they can act on it, addressed to them (less
        private, but the end was public anyway): in the unlocked parent channel. A forum
        takes no plain message: there the offer after an end (once per end, its buttons
        needing a place that stays open) is a post of its own; anything else is said in
        this post while it is open, rather than a new post each time."""
        parent = self._d.client.get_channel(self._origin or 0)
        addressed = rendered.addressed(user_id)
        if not isinstance(parent, discord.ForumChannel):
            if isinstance(parent, discord.abc.Messageable):
                await self._d.send(parent, addressed, allowed_mentions=MENTION_USERS)
        elif notice.kind is NoticeKind.AFTER_END:
            name = translate.offer_post_name(getattr(self.channel, "name", None), notice.words)
            await self._d.open_post(parent, name, addressed, allowed_mentions=MENTION_USERS)
        elif isinstance(self.channel, discord.Thread) and not self.channel.locked:
            await self._d.send(self.channel, addressed, allowed_mentions=MENTION_USERS)
        else:
            log.info("could not tell user %s (DMs closed, post locked): %s", user_id, notice.kind)

    async def close(self, conversation: Conversation) -> None:
        thread_id = translate.thread_id_of(conversation.key)
        if thread_id is not None:
            await self._d.lock(thread_id)

    async def reopen(self, conversation: Conversation) -> str:
        thread_id = translate.thread_id_of(conversation.key)
        return "" if thread_id is None else await self._d.unlock(thread_id)

    async def reply_after(self, message_id: str, reply_id: str) -> str | None:
        parts = await history.reply_parts(self.channel, message_id, reply_id)
        return "".join(part.content for part in parts) or None

    async def marked_reply(self, message_id: str) -> tuple[str, str] | None:
        return None  # a Discord message keeps no mark of ours that the history returns

    async def cut_short(self, message_id: str, reply_id: str) -> None:
        await history.cut_short(self.channel, message_id, reply_id)


async def answer(
    interaction: discord.Interaction, shown: render.Rendered | str, *, ephemeral: bool = True
) -> discord.Message | None:
    """Answer an interaction (privately by default), or follow it up if already answered.

    After a deferral the first follow-up replaces the "thinking..." message and keeps the
    deferral's visibility.
    """
    rendered = render.Rendered(shown) if isinstance(shown, str) else shown
    try:
        if interaction.response.is_done():
            return await interaction.followup.send(
                **message_of(rendered), ephemeral=ephemeral, wait=True
            )
        await interaction.response.send_message(**message_of(rendered), ephemeral=ephemeral)
    except discord.HTTPException as exc:
        log.warning("could not answer interaction %s: %s", interaction.id, exc)
    return None


def message_of(rendered: render.Rendered, **extra: Any) -> dict[str, Any]:
    """discord.py's keyword arguments for `rendered`, pinging nobody unless `extra` says."""
    return {"allowed_mentions": NO_MENTIONS, **rendered.kwargs(), **extra}


class DiscordModLog:
    """The moderators' log channel (QUITBOT_DISCORD_MODLOG_CHANNEL_ID), if one is set."""

    def __init__(self, discord_: Discord) -> None:
        self._d = discord_

    async def write(self, entry: ModLogEntry) -> None:
        channel_id = self._d.settings.modlog_channel_id
        if not channel_id:
            return
        # Fetched when not cached: a process without the gateway (the dashboard) writes too.
        channel = await self._d.channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            log.warning("mod-log channel %s is not a text channel I can see", channel_id)
            return
        guild = getattr(channel, "guild", None)
        embed = render.modlog(entry, guild.id if guild else None)
        await self._d.send(channel, render.Rendered(embed=embed))
