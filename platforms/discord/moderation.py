"""/quitbot reopen | status | audit: moderators' tools, all answered ephemerally."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.conversation import Conversation
from platforms.discord import render, translate
from platforms.discord.conversations import Conversations

REFUSED = "Only moderators (Manage Threads, or the moderator role) can use this."
NO_THREAD = "Run this inside a conversation's thread, or name one with the `thread` option."
NO_CONVERSATION = "No conversation with me lives in that thread."
REOPENED_NOTICE = "A moderator reopened this conversation. You can continue here."
ThreadOption = app_commands.AppCommandThread | None


@app_commands.guild_only()
class Moderation(commands.GroupCog, group_name="quitbot", group_description="Moderator tools"):
    def __init__(self, conversations: Conversations) -> None:
        self.conversations = conversations
        super().__init__()

    @app_commands.command(description="Reopen an ended conversation and unlock its thread")
    @app_commands.describe(thread="The conversation's thread (default: this one)", note="Why")
    async def reopen(
        self, interaction: discord.Interaction, thread: ThreadOption = None, note: str = ""
    ) -> None:
        found = await self._conversation(interaction, thread)
        if found is None:
            return
        thread_id, conversation = found
        if not conversation.ladder.ended:
            await _answer(interaction, "That conversation is active; there is nothing to reopen.")
            return
        moderator = str(interaction.user.id)
        reopened = await self.conversations.engine.reopen(conversation.id, moderator, note)
        problem = await self.conversations.open_thread(thread_id)
        if not problem:
            target = await self.conversations.thread(thread_id)
            if target is not None:
                await target.send(REOPENED_NOTICE)
        await _answer(interaction, f"Reopened <#{thread_id}>. {problem}".strip())
        await self.conversations.modlog(
            "Conversation reopened", reopened, moderator=f"<@{moderator}>", note=note
        )

    @app_commands.command(description="Show a conversation's state")
    @app_commands.describe(thread="The conversation's thread (default: this one)")
    async def status(self, interaction: discord.Interaction, thread: ThreadOption = None) -> None:
        found = await self._conversation(interaction, thread)
        if found is not None:
            await _answer(interaction, render.status(found[1]))

    @app_commands.command(description="Show a conversation's audit trail")
    @app_commands.describe(thread="The conversation's thread (default: this one)")
    async def audit(self, interaction: discord.Interaction, thread: ThreadOption = None) -> None:
        found = await self._conversation(interaction, thread)
        if found is not None:
            _, events = await self.conversations.engine.record(found[1].id)
            await _answer(interaction, render.audit(events))

    async def _conversation(
        self, interaction: discord.Interaction, thread: ThreadOption
    ) -> tuple[int, Conversation] | None:
        """The conversation the command acts on, or None once the moderator was told why."""
        if not self._is_moderator(interaction):
            await _answer(interaction, REFUSED)
            return None
        channel = interaction.channel
        thread_id = thread.id if thread is not None else None
        if thread_id is None and isinstance(channel, discord.Thread):
            thread_id = channel.id
        if thread_id is None:
            await _answer(interaction, NO_THREAD)
            return None
        conversation = await self.conversations.engine.find(translate.thread_key(thread_id))
        if conversation is None:
            await _answer(interaction, NO_CONVERSATION)
            return None
        return thread_id, conversation

    def _is_moderator(self, interaction: discord.Interaction) -> bool:
        permissions = interaction.permissions
        if permissions.manage_threads or permissions.administrator:
            return True
        role_id = self.conversations.settings.moderator_role_id
        user = interaction.user
        return (
            role_id is not None
            and isinstance(user, discord.Member)
            and any(role.id == role_id for role in user.roles)
        )


async def _answer(interaction: discord.Interaction, text: str) -> None:
    await interaction.response.send_message(text, ephemeral=True)
