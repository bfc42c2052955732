"""The gateway listeners: messages, thread changes, and quitbot's buttons and forms."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord.ext import commands

from platforms.discord import translate
from platforms.discord.buttons import Buttons
from platforms.discord.conversations import Conversations

log = logging.getLogger(__name__)


class ConversationCog(commands.Cog):
    """Turns gateway events into engine calls through `Conversations`."""

    def __init__(self, conversations: Conversations) -> None:
        self.conversations = conversations
        self.buttons = Buttons(conversations)

    @property
    def _bot_id(self) -> int:
        user = self.conversations.client.user
        return user.id if user else 0

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        match translate.route(message, self._bot_id):
            case translate.StartThread(text):
                await self.conversations.start_from_message(message, text)
            case translate.Converse(key, text, known_only):
                if known_only and not await self.conversations.is_conversation(key):
                    return
                await self.conversations.converse_message(message.channel, message, key, text)
            case translate.Ignore():
                return

    @commands.Cog.listener()
    async def on_raw_thread_update(self, payload: discord.RawThreadUpdateEvent) -> None:
        """Someone unlocked an ended conversation's thread: archive and lock it again.

        Only an unlock is acted on here; a post in a still-locked thread (a moderator's)
        comes through on_message, which answers it and closes the thread again.
        """
        if payload.data.get("thread_metadata", {}).get("locked", False):
            return
        conversation = await self.conversations.engine.find(translate.thread_key(payload.thread_id))
        if conversation is not None and conversation.ladder.ended:
            log.info(
                "ended conversation's thread %s was unlocked; locking it again", payload.thread_id
            )
            await self.conversations.close_thread(payload.thread_id)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type not in (
            discord.InteractionType.component,
            discord.InteractionType.modal_submit,
        ):
            return
        data: dict[str, Any] = dict(interaction.data or {})
        action = translate.parse_custom_id(str(data.get("custom_id", "")))
        if action is not None:
            await self.buttons.handle(interaction, action)
