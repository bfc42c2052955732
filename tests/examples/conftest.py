"""The Discord tests' fixtures, for the examples that embed quitbot in a discord.py bot."""

from tests.platforms.discord.conftest import (  # noqa: F401 -- fixtures, found by name
    _restore_discord_endpoints,
    fake_discord,
    settings,
)
