"""The gateway listeners: messages, thread changes, and quitbot's buttons and forms."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import discord
from discord.ext import commands

from bot.conversation import ConversationKey, Inbound
from bot.flows import Flows, Refusal
from bot.heap import Quiet
from bot.texts import DEFAULT_TEXTS, TextKey
from platforms.discord import render, translate
from platforms.discord.commands import start_new
from platforms.discord.errors import words_at
from platforms.discord.places import Discord, DiscordPlace, answer
from platforms.discord.reply import NO_MENTIONS
from platforms.lines import Lines
from platforms.recent import Recent

log = logging.getLogger(__name__)


# What reading a payload of the wrong shape raises (Discord never sends one; see
# `app.drop_malformed_events` for those discord.py cannot parse at all).
MALFORMED = (AttributeError, KeyError, TypeError, ValueError)
# Mentions answered where no conversation can be held: nothing is kept for them in the
# core, so this is what tells a mention the gateway replays after a RESUME.
TOLD_NO_THREADS = 10_000
_OURS = (discord.InteractionType.component, discord.InteractionType.modal_submit)


@dataclass(frozen=True, slots=True)
class Arrived:
    """A message for a conversation, waiting to be kept: what keeping it needs."""

    inbound: Inbound
    channel: discord.abc.Messageable
    known_only: bool  # a thread message: answered only if the thread holds a conversation
    start: discord.Message | None  # a mention that opens a thread from itself


@dataclass(frozen=True, slots=True)
class Kept:
    """A kept message waiting for its turn: what answering it needs, and no more."""

    inbound: Inbound
    place: DiscordPlace


class ConversationCog(commands.Cog, name="quitbot.conversations"):
    """Turns gateway events into calls on the core's flows."""

    def __init__(
        self, discord_: Discord, flows: Flows, give_back: Callable[[], object] | None = None
    ) -> None:
        """`give_back` returns freed memory to the system (parts.quiet_give_back), once
        every line ran dry and stayed so for a moment: never while a message is under way."""
        self.d, self.flows = discord_, flows
        # Two lines per place: one keeps messages (`receive`) as they arrive, never waiting
        # for an answer, so a crash loses none that were kept; the other answers them.
        self._arrivals = Lines[Arrived](self._keep, "keeping a message", idle=self._idle)
        self._answers = Lines[Kept](self._answer, "answering a message", idle=self._idle)
        self._no_threads = Lines[discord.Message](self._say_no_threads, "saying why not here")
        self._told_no_threads = Recent[int](TOLD_NO_THREADS)
        self.quiet = Quiet(self._busy, give_back)
        # What closes once quitbot is detached from a bot (a runtime the extension opened).
        self.on_removal = AsyncExitStack()

    async def heard(self, message: discord.Message) -> None:
        """A message, as a listener in a bot that is not quitbot's own: one that runs a
        prefix command of that bot is the bot's, not a conversation's."""
        client = self.d.client
        if isinstance(client, commands.Bot) and (await client.get_context(message)).valid:
            return
        self.arrive(message)

    def arrive(self, message: discord.Message) -> None:
        """A message from the gateway: put in its conversation's line, nothing awaited (the
        bot's `on_message` calls this, so a message costs one task, and only for a moment)."""
        user = self.d.client.user
        try:
            routed = translate.route(message, user.id if user else 0)
        except MALFORMED as exc:  # discord.py let through a message missing a field
            log.warning("dropped a malformed message %s: %r", message.id, exc)
            return
        start: discord.Message | None = None
        match routed:
            case translate.StartThread(text):
                key, known_only, start = translate.thread_key(message.id), False, message
            case translate.Converse(key, text, known_only):
                pass
            case translate.NoThreads():
                if self._told_no_threads.add(message.id):
                    self._no_threads.add(translate.thread_key(message.channel.id), message)
                return
            case translate.Ignore():
                return
        # In line at once, nothing awaited: a conversation's messages are kept, then
        # answered, in the order Discord sent them, however slow an earlier one's lookup.
        # Only a mention that opens a thread holds on to its discord.Message.
        inbound = translate.inbound(message, key, text)
        arrived = Arrived(inbound, message.channel, known_only, start)
        self._arrivals.add(key, arrived)

    async def _say_no_threads(self, message: discord.Message) -> None:
        """A mention where no thread can be opened: say so plainly, in reply, rather than
        leave it unanswered (no conversation is kept, so the core is not asked)."""
        words = await self.flows.engine.words(translate.PLATFORM, translate.community_of(message))
        shown = render.Rendered(words.get(TextKey.DISCORD_NO_THREADS_HERE))
        await self.d.send(message.channel, shown, reference=message, mention_author=False)

    async def _keep(self, arrived: Arrived) -> None:
        """Keep a message for the core, then put it in line to be answered; not if it is
        not for us, or a replay (seen before)."""
        place = await self._place(arrived)
        if place is None or not await self.flows.receive(arrived.inbound):
            return
        key = arrived.inbound.key
        if arrived.start is not None:  # its thread holds a conversation from now on
            self.d.learn(key)
        self._answers.add(key, Kept(arrived.inbound, place))

    async def _answer(self, kept: Kept) -> None:
        """A kept message's turn: its files read, then the core's answer."""
        await self.flows.converse(await self.flows.recall(kept.inbound), kept.place)
        self.d.learn(kept.inbound.key)  # answered here once: later messages need no mention

    def _idle(self, key: ConversationKey) -> None:
        """A line ran dry: once neither line holds `key`'s messages, nothing here waits on
        its conversation's thread, which leaves discord.py's cache (only a conversation's:
        any other thread's messages are the server's business)."""
        if not (self._arrivals.waiting(key) or self._answers.waiting(key)) and self.d.knows(key):
            self.d.let_go(key)
        if not self._busy():
            self.quiet.settled()

    def _busy(self) -> bool:
        """Whether any message is under way: kept, answered, or told it has no thread."""
        return bool(len(self._arrivals) or len(self._answers) or len(self._no_threads))

    async def cog_unload(self) -> None:
        self.quiet.close()

    async def _place(self, arrived: Arrived) -> DiscordPlace | None:
        """Where to answer, or None if the message is not for us. A mention in a channel
        opens a thread from the message; that thread has the message's id, so a mention the
        gateway replays after a RESUME finds it (cache, then the record) without a second
        thread-create call."""
        key, message = arrived.inbound.key, arrived.start
        if message is None:
            if arrived.known_only and not await self._is_conversation(key):
                return None
            return DiscordPlace(self.d, arrived.channel)
        thread = self.d.client.get_channel(message.id)
        if not isinstance(thread, discord.Thread) and not await self._is_conversation(key):
            text, author = arrived.inbound.text, message.author.display_name
            # Only a thread with no words to be named after is named in the server's words.
            words = await words_at(self.flows, message) if not text.split() else DEFAULT_TEXTS
            name = translate.thread_name(text, author, words)
            if (thread := await self.d.thread_from(message, name)) is None:
                return None
        return (
            DiscordPlace(self.d, thread)
            if isinstance(thread, discord.Thread)
            else self.d.place(key)
        )

    async def _is_conversation(self, key: ConversationKey) -> bool:
        """Whether a conversation lives at `key` (threads are only answered if so)."""
        if not self.d.knows(key) and await self.flows.find(key) is not None:
            self.d.learn(key)
        return self.d.knows(key)

    # Connection state for /readyz: ready once READY (or a RESUME) came, not while away.
    @commands.Cog.listener()
    async def on_ready(self) -> None:
        self.flows.engine.readiness.set(translate.PLATFORM, True)

    @commands.Cog.listener()
    async def on_resumed(self) -> None:
        self.flows.engine.readiness.set(translate.PLATFORM, True)

    @commands.Cog.listener()
    async def on_disconnect(self) -> None:
        self.flows.engine.readiness.set(translate.PLATFORM, False)

    @commands.Cog.listener()
    async def on_raw_thread_update(self, payload: discord.RawThreadUpdateEvent) -> None:
        """Someone unlocked an ended conversation's thread: archive and lock it again.

        Only an unlock is acted on here; a post in a still-locked thread (a moderator's)
        arrives as a message: it is answered, and the thread closed again.
        """
        if payload.data.get("thread_metadata", {}).get("locked", False):
            return
        key = translate.thread_key(payload.thread_id)
        conversation = await self.flows.find(key)
        if conversation is not None and conversation.ladder.ended:
            log.info("ended conversation's thread %s was unlocked; locking it again", key.place)
            await self.d.place(key).close(conversation)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type not in _OURS:  # slash commands go to the command tree
            return
        data = translate.payload_data(interaction.data)
        action = translate.parse_custom_id(str(data.get("custom_id", "")))
        if action is None:
            return
        if not isinstance(interaction.user, discord.User | discord.Member):
            log.warning("dropped a malformed interaction %s: it has no user", interaction.id)
            return
        await self._act(interaction, action)

    async def _act(self, interaction: discord.Interaction, action: translate.Action) -> None:
        channel, user_id = interaction.channel, str(interaction.user.id)
        if channel is None:
            return
        key = translate.key_for(channel)
        words = await self.flows.engine.words(translate.PLATFORM, translate.community_of(channel))
        match action.name:
            case "new":
                origin = int(action.target) if action.target else None
                await start_new(self.d, self.flows, interaction, origin)
            case "end":
                # Refusals first (a read), so the buttons stay for the starter if someone
                # else pressed; then the buttons go, before the thread is locked.
                proposal = translate.answers_proposal(interaction.message)
                asked = await self.flows.ask_to_end(key, user_id, proposal=proposal)
                if asked.refusal is Refusal.NOT_ASKED:
                    # Left from a proposal whose withdrawal failed: withdraw it now.
                    lapsed = words.get(TextKey.END_LAPSED)
                    await interaction.response.edit_message(
                        content=lapsed, view=None, allowed_mentions=NO_MENTIONS
                    )
                if not asked.ok:
                    await answer(interaction, asked.said(words))
                    return
                ended_here = words.get(TextKey.DISCORD_ENDED_HERE)
                await interaction.response.edit_message(
                    content=ended_here, view=None, allowed_mentions=NO_MENTIONS
                )
                place = DiscordPlace(self.d, channel, interaction)  # type: ignore[arg-type]
                ended = await self.flows.confirm_end(key, user_id, place, proposal=proposal)
                if not ended.ok:
                    await answer(interaction, ended.said(words))
            case "keep":
                kept = await self.flows.keep_going(key, user_id)
                if not kept.ok:
                    await answer(interaction, kept.said(words))
                    return
                kept_on = words.get(TextKey.KEEP_GOING)
                await interaction.response.edit_message(
                    content=kept_on, view=None, allowed_mentions=NO_MENTIONS
                )
            case "mistake":
                await interaction.response.send_modal(render.feedback_form(action.target, words))
            case "feedback":
                await interaction.response.defer(ephemeral=True, thinking=True)
                data = translate.payload_data(interaction.data)
                written = translate.modal_text(data.get("components"))
                text = f"{render.MISTAKE}: {written}" if written else render.MISTAKE
                result = await self.flows.feedback(action.target, user_id, text)
                thanks = words.get(TextKey.FEEDBACK_THANKS)
                await answer(interaction, thanks if result.ok else result.said(words))
