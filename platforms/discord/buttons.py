"""quitbot's buttons and forms: start a new conversation, confirm an end, "this was a mistake"."""

from __future__ import annotations

import logging
from typing import Any

import discord

from bot.engine import NotTheStarter
from bot.notices import Notice, NoticeKind
from platforms.discord import translate
from platforms.discord.conversations import MENTION_USERS, Conversations

log = logging.getLogger(__name__)

MISTAKE = "This was a mistake"


class FeedbackForm(discord.ui.Modal):
    """Asks why an end was a mistake; answered by custom id in `Buttons`, even after a restart."""

    def __init__(self, conversation_id: str) -> None:
        super().__init__(
            title=MISTAKE, custom_id=translate.feedback_modal_id(conversation_id), timeout=600
        )
        self.add_item(
            discord.ui.TextInput(
                label="What went wrong? (optional)",
                custom_id=translate.FEEDBACK_FIELD,
                style=discord.TextStyle.paragraph,
                required=False,
                max_length=1000,
            )
        )


class Buttons:
    def __init__(self, conversations: Conversations) -> None:
        self.conversations = conversations

    async def handle(self, interaction: discord.Interaction, action: translate.Action) -> None:
        match action.name:
            case "new":
                await start_new(self.conversations, interaction)
            case "end":
                await self._end(interaction)
            case "keep":
                await interaction.response.edit_message(
                    content="Okay, the conversation goes on.", view=None
                )
            case "mistake":
                await interaction.response.send_modal(FeedbackForm(action.conversation_id))
            case "feedback":
                await self._feedback(interaction, action.conversation_id)

    async def _end(self, interaction: discord.Interaction) -> None:
        channel = interaction.channel
        if channel is None:
            return
        key = translate.key_for(channel)
        engine = self.conversations.engine
        conversation = await engine.find(key)
        if conversation is None or conversation.ladder.ended:
            await interaction.response.edit_message(
                content="This conversation has already ended.", view=None
            )
            return
        try:
            outcome = await engine.end_by_user(key, str(interaction.user.id))
        except NotTheStarter:
            await interaction.response.send_message(
                "Only the person who started this conversation can end it.", ephemeral=True
            )
            return
        await interaction.response.edit_message(content="You ended this conversation.", view=None)
        if isinstance(channel, discord.abc.Messageable):
            await self.conversations.show(channel, outcome.notices, outcome.conversation)
        await self.conversations.after_end(key, outcome)

    async def _feedback(self, interaction: discord.Interaction, conversation_id: str) -> None:
        engine = self.conversations.engine
        conversation = await engine.get(conversation_id)
        if conversation is None:
            await interaction.response.send_message(
                "I couldn't find that conversation.", ephemeral=True
            )
            return
        data: dict[str, Any] = dict(interaction.data or {})
        written = translate.modal_text(list(data.get("components", [])))
        text = f"{MISTAKE}: {written}" if written else MISTAKE
        await engine.feedback(conversation_id, str(interaction.user.id), text)
        await interaction.response.send_message(
            "Thank you. Your feedback is on the record, and moderators can review it.",
            ephemeral=True,
        )
        await self.conversations.modlog(
            "Feedback on an ended conversation",
            conversation,
            feedback=text,
            sent_by=f"<@{interaction.user.id}>",
        )


async def start_new(conversations: Conversations, interaction: discord.Interaction) -> None:
    """/new and the "Start a new conversation" button: a fresh DM conversation or thread.

    Opening a thread and writing the record can outlast Discord's 3-second deadline for
    answering, so the interaction is deferred first and answered by follow-up.
    """
    channel, user = interaction.channel, interaction.user
    engine = conversations.engine
    if channel is None:
        return
    in_dm = translate.is_dm(channel)
    if not in_dm and not isinstance(channel, discord.abc.GuildChannel | discord.Thread):
        return
    await interaction.response.defer(ephemeral=not in_dm, thinking=True)
    if in_dm:
        outcome = await engine.start_new(translate.dm_key(channel.id), str(user.id))
        text = _limit_text(outcome.notices) or "Started a new conversation. What's on your mind?"
        await interaction.followup.send(text)
        return
    assert isinstance(channel, discord.abc.GuildChannel | discord.Thread)
    thread = await conversations.new_thread(channel, user, "")
    if thread is None:
        await interaction.followup.send(
            "I couldn't open a new thread here. Try mentioning me in a channel.", ephemeral=True
        )
        return
    outcome = await engine.start_new(translate.thread_key(thread.id), str(user.id))
    limit = _limit_text(outcome.notices)
    if limit:
        await interaction.followup.send(limit, ephemeral=True)
        await _delete(thread)
        return
    await interaction.followup.send(
        f"Your new conversation is in {thread.mention}.", ephemeral=True
    )
    await thread.send(
        f"{user.mention}, this is your new conversation. What would you like to talk about?",
        allowed_mentions=MENTION_USERS,
    )


def _limit_text(notices: tuple[Notice, ...]) -> str:
    return next((n.text for n in notices if n.kind is NoticeKind.LIMIT), "")


async def _delete(thread: discord.Thread) -> None:
    try:
        await thread.delete()
    except discord.HTTPException as exc:
        log.warning("could not delete unused thread %s: %s", thread.id, exc)
