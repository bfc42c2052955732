"""quitbot's buttons and forms: start a new conversation, confirm an end, "this was a mistake"."""

from __future__ import annotations

from typing import Any

import discord

from bot.flows import Flows
from bot.notices import FEEDBACK_THANKS, KEEP_GOING_TEXT
from platforms.discord import translate
from platforms.discord.places import Discord, DiscordPlace, answer

MISTAKE = "This was a mistake"
ENDED_HERE = "This conversation was ended by the person who started it."


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
    def __init__(self, discord_: Discord, flows: Flows) -> None:
        self.d, self.flows = discord_, flows

    async def handle(self, interaction: discord.Interaction, action: translate.Action) -> None:
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
                await interaction.response.send_modal(FeedbackForm(action.target))
            case "feedback":
                await interaction.response.defer(ephemeral=True, thinking=True)
                data: dict[str, Any] = dict(interaction.data or {})
                written = translate.modal_text(list(data.get("components", [])))
                text = f"{MISTAKE}: {written}" if written else MISTAKE
                result = await self.flows.feedback(action.target, user_id, text)
                await answer(interaction, FEEDBACK_THANKS if result.ok else result.text)


async def start_new(
    d: Discord, flows: Flows, interaction: discord.Interaction, origin: int | None = None
) -> None:
    """/new and "Start a new conversation": a fresh thread (in `origin`, the channel an
    ended server conversation started from, when given), or a clean slate in a DM.

    Opening a thread and writing the record can outlast Discord's 3-second deadline for
    answering, so the interaction is deferred first and answered by follow-up.
    """
    channel, user = interaction.channel, interaction.user
    in_dm = origin is None and translate.is_dm(channel)
    parent = d.client.get_channel(origin) if origin is not None else channel
    await interaction.response.defer(ephemeral=not in_dm, thinking=True)
    open_place = d.opener(
        parent, translate.thread_name("", user.display_name), interaction, in_dm=in_dm
    )
    result = await flows.start_new(translate.PLATFORM, str(user.id), open_place)
    if not result.ok or result.conversation is None:
        await answer(interaction, result.text)
    elif not in_dm:
        where = result.conversation.key.place
        await answer(interaction, f"Your new conversation is in <#{where}>.")
