"""A failed quitbot command answered in words instead of discord.py's logged traceback.

quitbot's cogs and its message command answer their own failures (`cog_app_command_error`,
the menu's `on_error`), so they are answered the same way whether quitbot runs alone or in
someone else's bot; a tree's `on_error` can tell from `ANSWERED` that one was answered.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from bot.flows import Flows
from bot.texts import TextKey, Texts
from platforms.discord import translate
from platforms.discord.places import answer

log = logging.getLogger(__name__)

# Set in `interaction.extras` once quitbot has answered a failure (discord.py calls the
# tree's on_error after the command's own handlers, for every command).
ANSWERED = "quitbot_answered_failure"


async def words_at(flows: Flows, source: object) -> Texts:
    """The words in force in the server `source` (an interaction, a channel) belongs to.
    Never raises: it answers failures too, and the operator's words stand in for a
    community's that cannot be read."""
    try:
        return await flows.engine.words(translate.PLATFORM, translate.community_of(source))
    except Exception:
        log.exception("the operator's words stand in for a server's")
        return flows.engine.texts


async def command_failed(
    interaction: discord.Interaction, error: app_commands.AppCommandError, words: Texts
) -> None:
    """An unknown or stale command (one Discord still shows after an update, before the new
    commands are synced everywhere) gets a short private note; our own errors are logged
    once, and the person is told, in `words` (the server's)."""
    interaction.extras[ANSWERED] = True
    data = translate.payload_data(interaction.data)
    if isinstance(error, app_commands.CommandNotFound | app_commands.CommandSignatureMismatch):
        log.info("stale or unknown command %r: %s", data.get("name"), error)
        await answer(interaction, words.get(TextKey.DISCORD_COMMAND_GONE))
    elif isinstance(error, app_commands.CommandInvokeError):  # raised in our own code
        log.error("command %r failed", data.get("name"), exc_info=error.__cause__ or error)
        await answer(interaction, words.get(TextKey.DISCORD_COMMAND_FAILED))
    else:  # refused before our code ran: a failed check, options discord.py cannot read
        log.warning("command %r refused: %s", data.get("name"), error)
        await answer(interaction, words.get(TextKey.DISCORD_COMMAND_REFUSED))
