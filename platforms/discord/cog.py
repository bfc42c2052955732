"""The gateway listeners: messages, thread changes, and quitbot's buttons and forms."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

import discord
from discord.ext import commands

from bot.conversation import ConversationKey, Inbound
from bot.flows import Flows
from bot.notices import FEEDBACK_THANKS, KEEP_GOING_TEXT
from platforms.discord import render, translate
from platforms.discord.attachments import read_attachments
from platforms.discord.commands import start_new
from platforms.discord.places import Discord, DiscordPlace, answer

log = logging.getLogger(__name__)
T = TypeVar("T")


class KeyedLocks:
    """One FIFO lock per conversation place (asyncio's locks are fair), dropped when idle."""

    def __init__(self) -> None:
        self._held: dict[ConversationKey, tuple[asyncio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, key: ConversationKey) -> AsyncIterator[None]:
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = (asyncio.Lock(), [0])
        lock, users = held
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._held[key]


class Lines(Generic[T]):
    """Per conversation place, kept messages answered one at a time in the order they were
    added, by one task per place that ends when its line is empty.

    A waiting message is only its item: not a task, nor the discord.Message with its
    member and payload. In a burst, thousands of delivered messages can wait at once, and
    each was kept already (a crash loses none), so what each costs in memory is what counts.
    """

    def __init__(self, answer: Callable[[T], Awaitable[None]]) -> None:
        self._answer = answer
        self._lines: dict[ConversationKey, deque[T]] = {}
        self._workers: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    def add(self, key: ConversationKey, item: T) -> None:
        """Put `item` last in `key`'s line (at once, nothing awaited)."""
        line = self._lines.get(key)
        if line is not None:
            line.append(item)
            return
        line = self._lines[key] = deque((item,))
        worker = asyncio.get_running_loop().create_task(
            self._work_through(key, line), name=f"line {key.place}"
        )
        self._workers.add(worker)
        worker.add_done_callback(self._workers.discard)

    async def _work_through(self, key: ConversationKey, line: deque[T]) -> None:
        try:
            while line:
                try:
                    await self._answer(line[0])
                except Exception:
                    log.exception("answering a message in %s failed", key.place)
                line.popleft()
        finally:
            # Cancelled (shutdown): those still in line stay kept in the store, for the next
            # run's `answer_pending`.
            del self._lines[key]


ENDED_HERE = "This conversation was ended by the person who started it."
# What reading a payload of the wrong shape raises (Discord never sends one; see
# `app.drop_malformed_events` for those discord.py cannot parse at all).
MALFORMED = (AttributeError, KeyError, TypeError, ValueError)
_OURS = (discord.InteractionType.component, discord.InteractionType.modal_submit)


@dataclass(frozen=True, slots=True)
class Kept:
    """A kept message waiting for its turn: what answering it needs, and no more."""

    inbound: Inbound
    place: DiscordPlace
    files: list[discord.Attachment]


class ConversationCog(commands.Cog):
    """Turns gateway events into calls on the core's flows."""

    def __init__(self, discord_: Discord, flows: Flows) -> None:
        self.d, self.flows = discord_, flows
        self._arriving = KeyedLocks()
        self._lines = Lines[Kept](self._answer)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        user = self.d.client.user
        try:
            routed = translate.route(message, user.id if user else 0)
        except MALFORMED as exc:  # discord.py let through a message missing a field
            log.warning("dropped a malformed message %s: %r", message.id, exc)
            return
        match routed:
            case translate.StartThread(text):
                key, known_only, starts = translate.thread_key(message.id), False, True
            case translate.Converse(key, text, known_only):
                starts = False
            case translate.Ignore():
                return
        # Kept (`receive`) under the place's lock, in the order Discord sent them, however
        # slow an earlier one's lookup; each waits in its line only once kept, so a crash at
        # any point loses none that were delivered, and they are answered in that order.
        async with self._arriving.hold(key):
            place = await self._place(message, key, text, starts=starts, known_only=known_only)
            inbound = translate.inbound(message, key, text)
            # A replay (seen before) stops here; a kept one survives a crash from now on.
            if place is None or not await self.flows.receive(inbound):
                return
            if starts:  # its thread holds a conversation from now on (kept, answered soon)
                self.d.known.add(key)
            self._lines.add(key, Kept(inbound, place, message.attachments))

    async def _answer(self, kept: Kept) -> None:
        """A kept message's turn: its files read, then the core's answer."""
        files = await read_attachments(kept.files, self.d.settings.max_attachment_bytes)
        await self.flows.converse(replace(kept.inbound, attachments=files), kept.place)
        self.d.known.add(kept.inbound.key)  # answered here once: later messages need no mention

    async def _place(
        self, message: discord.Message, key: ConversationKey, text: str, *, starts: bool,
        known_only: bool,
    ) -> DiscordPlace | None:  # fmt: skip
        """Where to answer, or None if the message is not for us. A mention in a channel
        opens a thread from the message; that thread has the message's id, so a mention the
        gateway replays after a RESUME finds it (cache, then the record) without a second
        thread-create call."""
        if not starts:
            if known_only and not await self._is_conversation(key):
                return None
            return DiscordPlace(self.d, message.channel)
        thread = self.d.client.get_channel(message.id)
        if not isinstance(thread, discord.Thread) and not await self._is_conversation(key):
            name = translate.thread_name(text, message.author.display_name)
            if (thread := await self.d.thread_from(message, name)) is None:
                return None
        return (
            DiscordPlace(self.d, thread)
            if isinstance(thread, discord.Thread)
            else self.d.place(key)
        )

    async def _is_conversation(self, key: ConversationKey) -> bool:
        """Whether a conversation lives at `key` (threads are only answered if so)."""
        if key not in self.d.known and await self.flows.find(key) is not None:
            self.d.known.add(key)
        return key in self.d.known

    @commands.Cog.listener()
    async def on_raw_thread_update(self, payload: discord.RawThreadUpdateEvent) -> None:
        """Someone unlocked an ended conversation's thread: archive and lock it again.

        Only an unlock is acted on here; a post in a still-locked thread (a moderator's)
        comes through on_message, which answers it and closes the thread again.
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
        match action.name:
            case "new":
                origin = int(action.target) if action.target else None
                await start_new(self.d, self.flows, interaction, origin)
            case "end":
                # Refusals first (a read), so the buttons stay for the starter if someone
                # else pressed; then the buttons go, before the thread is locked.
                asked = await self.flows.ask_to_end(key, user_id)
                if not asked.ok:
                    await answer(interaction, asked.text)
                    return
                await interaction.response.edit_message(content=ENDED_HERE, view=None)
                place = DiscordPlace(self.d, channel, interaction)  # type: ignore[arg-type]
                ended = await self.flows.confirm_end(key, user_id, place)
                if not ended.ok:
                    await answer(interaction, ended.text)
            case "keep":
                kept = await self.flows.keep_going(key, user_id)
                if not kept.ok:
                    await answer(interaction, kept.text)
                    return
                await interaction.response.edit_message(content=KEEP_GOING_TEXT, view=None)
            case "mistake":
                await interaction.response.send_modal(render.feedback_form(action.target))
            case "feedback":
                await interaction.response.defer(ephemeral=True, thinking=True)
                data = translate.payload_data(interaction.data)
                written = translate.modal_text(data.get("components"))
                text = f"{render.MISTAKE}: {written}" if written else render.MISTAKE
                result = await self.flows.feedback(action.target, user_id, text)
                await answer(interaction, FEEDBACK_THANKS if result.ok else result.text)
