"""A failed quitbot command answered in words instead of discord.py's logged traceback.

quitbot's cogs and its message command answer their own failures (`cog_app_command_error`,
the menu's `on_error`), so they are answered the same way whether quitbot runs alone or in
someone else's bot; a tree's `on_error` can tell from `ANSWERED` that one was answered.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from platforms.discord import translate
from platforms.discord.places import answer

log = logging.getLogger(__name__)

# Set in `interaction.extras` once quitbot has answered a failure (discord.py calls the
# tree's on_error after the command's own handlers, for every command).
ANSWERED = "quitbot_answered_failure"
GONE = "This command is no longer available."


async def command_failed(
    interaction: discord.Interaction, error: app_commands.AppCommandError
) -> None:
    """An unknown or stale command (one Discord still shows after an update, before the new
    commands are synced everywhere) gets a short private note; our own errors are logged
    once, and the person is told."""
    interaction.extras[ANSWERED] = True
    data = translate.payload_data(interaction.data)
    if isinstance(error, app_commands.CommandNotFound | app_commands.CommandSignatureMismatch):
        log.info("stale or unknown command %r: %s", data.get("name"), error)
        await answer(interaction, GONE)
    elif isinstance(error, app_commands.CommandInvokeError):  # raised in our own code
        log.error("command %r failed", data.get("name"), exc_info=error.__cause__ or error)
        await answer(interaction, "Something went wrong on my side. Please try again.")
    else:  # refused before our code ran: a failed check, options discord.py cannot read
        log.warning("command %r refused: %s", data.get("name"), error)
        await answer(interaction, "This command cannot be used like that here.")
