"""/chat, /new, /end and the "Branch from here" message command."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.conversation import Inbound
from bot.engine import LimitReached, may_end
from bot.notices import LIMIT_TEXT
from platforms.discord import render, translate
from platforms.discord.buttons import start_new
from platforms.discord.conversations import MENTION_USERS, Conversations

log = logging.getLogger(__name__)

NOT_IN_CONVERSATION = "There is no active conversation with me here."
NOT_YOURS = "Only the person who started this conversation can end it."
PICK_A_MESSAGE = (
    "Pick one of this conversation's messages (for a reply in several parts, its first part)."
)


class ChatCommands(commands.Cog):
    def __init__(
        self, tree: app_commands.CommandTree[discord.Client], conversations: Conversations
    ) -> None:
        self.conversations = conversations
        self._tree = tree
        self._branch_menu = app_commands.ContextMenu(name="Branch from here", callback=self.branch)

    async def cog_load(self) -> None:
        self._tree.add_command(self._branch_menu)

    async def cog_unload(self) -> None:
        self._tree.remove_command(self._branch_menu.name, type=self._branch_menu.type)

    @app_commands.command(name="chat", description="Talk to the assistant: opens a thread here")
    @app_commands.describe(prompt="What you want to say")
    async def chat(
        self, interaction: discord.Interaction, prompt: app_commands.Range[str, 1, 4000]
    ) -> None:
        channel = interaction.channel
        if not isinstance(channel, discord.abc.Messageable):
            return
        response = await interaction.response.send_message(
            **render.echo(interaction.user.display_name, prompt)
        )
        message = response.resource
        place: discord.abc.Messageable = channel
        if isinstance(channel, discord.TextChannel) and isinstance(message, discord.Message):
            thread = await self._thread_for(message, prompt)
            if thread is None:
                return
            place = thread
        inbound = Inbound(
            key=translate.key_for(place),  # type: ignore[arg-type]
            event_id=translate.interaction_event_id(interaction.id),
            user_id=str(interaction.user.id),
            text=prompt,
            message_id=str(message.id) if isinstance(message, discord.Message) else "",
        )
        await self.conversations.converse(place, inbound)

    async def _thread_for(self, message: discord.Message, prompt: str) -> discord.Thread | None:
        try:
            return await message.create_thread(
                name=translate.thread_name(prompt, message.author.display_name)
            )
        except discord.HTTPException as exc:
            if isinstance(exc, discord.Forbidden) and message.guild is not None:
                self.conversations.missing_permission(message.guild, "Create Public Threads")
            log.warning("could not open a thread for /chat: %s", exc)
            return None

    @app_commands.command(name="new", description="Start a fresh conversation")
    async def new(self, interaction: discord.Interaction) -> None:
        await start_new(self.conversations, interaction)

    @app_commands.command(name="end", description="End this conversation (asks to confirm)")
    async def end(self, interaction: discord.Interaction) -> None:
        if interaction.channel is None:
            return
        key = translate.key_for(interaction.channel)
        conversation = await self.conversations.engine.find(key)
        if conversation is None or conversation.ladder.ended:
            await interaction.response.send_message(NOT_IN_CONVERSATION, ephemeral=True)
            return
        if not may_end(conversation, str(interaction.user.id)):
            await interaction.response.send_message(NOT_YOURS, ephemeral=True)
            return
        confirm = render.confirm_end()
        view = render.view(confirm.buttons)
        assert view is not None
        await interaction.response.send_message(confirm.content, view=view, ephemeral=True)

    async def branch(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """A new conversation carrying the history up to `message` (included).

        Opening a thread and writing the record can outlast Discord's 3-second deadline
        for answering, so the interaction is deferred first and answered by follow-up.
        """
        channel, engine = interaction.channel, self.conversations.engine
        await interaction.response.defer(
            ephemeral=channel is None or not translate.is_dm(channel), thinking=True
        )
        conversation = await engine.find(translate.key_for(channel)) if channel else None
        if channel is None or conversation is None:
            await interaction.followup.send(
                "That message is not part of a conversation with me.", ephemeral=True
            )
            return
        messages, _ = await engine.record(conversation.id)
        if str(message.id) not in {m.platform_message_id for m in messages}:
            await interaction.followup.send(PICK_A_MESSAGE, ephemeral=True)
            return
        if translate.is_dm(channel):
            await self._branch_here(interaction, conversation.id, message)
        elif isinstance(channel, discord.Thread):
            await self._branch_to_thread(interaction, channel, conversation.id, message)

    async def _branch_here(
        self, interaction: discord.Interaction, conversation_id: str, message: discord.Message
    ) -> None:
        assert interaction.channel is not None
        key = translate.key_for(interaction.channel)
        try:
            await self.conversations.engine.branch(
                conversation_id,
                key,
                str(interaction.user.id),
                upto_platform_message_id=str(message.id),
            )
        except LimitReached:
            await interaction.followup.send(LIMIT_TEXT, ephemeral=True)
            return
        await interaction.followup.send(
            f"A new conversation starts here, carrying everything up to {message.jump_url}. "
            "Carry on from there."
        )

    async def _branch_to_thread(
        self,
        interaction: discord.Interaction,
        thread: discord.Thread,
        conversation_id: str,
        message: discord.Message,
    ) -> None:
        user = interaction.user
        new = await self.conversations.new_thread(thread, user, f"Branch: {thread.name}")
        if new is None:
            await interaction.followup.send("I couldn't open a new thread here.", ephemeral=True)
            return
        try:
            await self.conversations.engine.branch(
                conversation_id,
                translate.thread_key(new.id),
                str(user.id),
                upto_platform_message_id=str(message.id),
            )
        except LimitReached:
            await interaction.followup.send(LIMIT_TEXT, ephemeral=True)
            await new.delete()
            return
        await interaction.followup.send(f"Your branch is in {new.mention}.", ephemeral=True)
        await new.send(
            f"{user.mention}, this conversation carries {thread.mention} up to {message.jump_url}. "
            "Take it from there.",
            allowed_mentions=MENTION_USERS,
        )
