"""quitbot on Discord, as the core finds it (entry point `quitbot.platforms`): run the bot,
`doctor` its set-up, and help set it up with the invite URL.

discord.py is imported lazily inside these methods so that `import platforms.discord`
costs nothing for a Slack-only deployment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.adapters import Check
    from bot.engine import Engine
    from bot.ports import ModLog, Places
    from bot.settings import Settings

__all__ = ["DiscordAdapter", "adapter", "doctor", "invite_url", "run"]

SHUTDOWN_GRACE_SECONDS = 10.0  # replies under way get this long to finish on shutdown


class DiscordAdapter:
    name = "discord"

    def configured(self, settings: Settings) -> bool:
        return settings.discord.enabled

    async def run(
        self, engine: Engine, settings: Settings, *, shutdown_grace: float = SHUTDOWN_GRACE_SECONDS
    ) -> None:
        """Run the bot until cancelled, then close everything; replies under way get
        `shutdown_grace` seconds to finish, and any still going are cut short and say so."""
        import discord

        from bot.ports import PlatformUnavailable, PlatformUnreachable
        from platforms.discord.app import build_bot, configure_endpoints, quiet_voice_warnings

        token = settings.discord.token
        if token is None or not token.get_secret_value():
            raise RuntimeError("DISCORD_TOKEN is not set")
        configure_endpoints(settings.discord)
        quiet_voice_warnings()
        bot = build_bot(engine, settings)
        async with bot:
            try:
                await bot.start(token.get_secret_value())
            except discord.LoginFailure as exc:
                raise PlatformUnavailable(
                    "Discord refused DISCORD_TOKEN: copy the bot's token from the Developer "
                    "Portal (Applications -> your app -> Bot -> Reset Token)"
                ) from exc
            except discord.PrivilegedIntentsRequired as exc:
                raise PlatformUnavailable(
                    "Discord: turn on the Message Content intent (Developer Portal -> your app "
                    "-> Bot -> Privileged Gateway Intents); quitbot needs it to follow threads"
                ) from exc
            except (discord.GatewayNotFound, OSError) as exc:
                raise PlatformUnreachable(f"could not connect to Discord: {exc}") from exc
            except discord.ConnectionClosed as exc:
                raise PlatformUnavailable(f"could not connect to Discord: {exc}") from exc
            finally:
                await bot.flows.drain(shutdown_grace)

    async def doctor(self, settings: Settings) -> list[Check]:
        """Token, Message Content intent, permissions, in plain words (a missing Manage
        Threads is only a warning: quitbot works without it, with less)."""
        from platforms.discord.checks import run_checks

        return await run_checks(settings)

    async def setup_help(self, settings: Settings) -> str:
        """The OAuth2 URL that adds the bot with exactly the permissions it needs."""
        from platforms.discord.checks import application_id
        from platforms.discord.permissions import invite_url_for

        return invite_url_for(await application_id(settings))

    @asynccontextmanager
    async def reach(self, settings: Settings) -> AsyncIterator[tuple[Places, ModLog]]:
        """Discord's REST API alone, logged in with the bot's token and no gateway: for
        a process that acts on threads without serving them (the dashboard)."""
        import discord

        from bot.ports import PlatformUnavailable, PlatformUnreachable
        from platforms.discord.app import configure_endpoints, intents, quiet_voice_warnings
        from platforms.discord.places import Discord, DiscordModLog

        token = settings.discord.token
        if token is None or not token.get_secret_value():
            raise RuntimeError("DISCORD_TOKEN is not set")
        configure_endpoints(settings.discord)
        quiet_voice_warnings()
        client = discord.Client(intents=intents())
        try:
            await client.login(token.get_secret_value())
        except discord.LoginFailure as exc:
            await client.close()
            raise PlatformUnavailable("Discord refused DISCORD_TOKEN") from exc
        except (discord.HTTPException, OSError) as exc:
            await client.close()
            raise PlatformUnreachable(f"could not reach Discord: {exc}") from exc
        try:
            places = Discord(client, settings.discord)
            yield places, DiscordModLog(places)
        finally:
            await client.close()

    reopened_elsewhere = (
        "Its Discord thread stays archived and locked, and nobody there is told: unlock "
        "it in Discord (the thread's menu, Unlock Thread). A reopen from Discord "
        "(/quitbot reopen or review-resolve) unlocks it and says so in the thread."
    )


adapter = DiscordAdapter()
run, doctor, invite_url = adapter.run, adapter.doctor, adapter.setup_help
