"""Embed quitbot in your own discord.py bot: its conversations, buttons and commands beside
yours, on your client and your gateway connection.

Either bring the runtime (store, model, settings, hooks) yourself:

    async with quitbot.build_runtime(quitbot.load_settings()) as runtime:
        bot = MyBot(runtime)  # in its setup_hook: await quitbot.discord.attach(self, runtime)
        await bot.start(token)

or load quitbot as an extension, which builds its own runtime from the environment
(`quitbot.load_settings()`) and closes it when unloaded:

    await bot.load_extension("quitbot.discord")

Your bot keeps its own `on_message`, prefix commands, cogs, buttons and tree error handler;
quitbot hears messages through a listener, answers only its own buttons (custom ids
`quitbot:...`) and its own commands' failures, and never syncs commands unless told.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

try:
    from discord.ext import commands
except ModuleNotFoundError as exc:  # a Slack-only install
    raise ModuleNotFoundError(
        "quitbot.discord needs discord.py: pip install 'quitbot[discord]'", name=exc.name
    ) from exc

from bot.app import Runtime, build_runtime
from bot.settings import Settings, load_settings
from platforms.discord.app import configure_endpoints as _configure_endpoints
from platforms.discord.app import sync_commands
from platforms.discord.parts import CommandClash, MissingIntents, Parts, check_intents, remove_from

__all__ = [
    "CommandClash",
    "MissingIntents",
    "attach",
    "configure_endpoints",
    "detach",
    "setup",
    "teardown",
]

log = logging.getLogger(__name__)

DETACH_GRACE_SECONDS = 10.0


def configure_endpoints(
    settings: Settings | None = None,
    *,
    api_base: str | None = None,
    gateway_url: str | None = None,
) -> None:
    """Point discord.py, for every client in this process, at another REST base (e.g.
    `http://127.0.0.1:8080/api/v10`) and gateway (`ws://127.0.0.1:8080/gateway`): a proxy,
    or `quitbot.testing.FakeDiscord`'s `api_base` and `gateway_url` in a test. Call it before
    `bot.start` (login is the first REST call).

    `api_base` and `gateway_url` win; otherwise `settings`' QUITBOT_DISCORD_API_BASE and
    QUITBOT_DISCORD_GATEWAY_URL are used, and neither set changes nothing. ValueError for
    an address that is not http(s):// or ws(s):// with a host.
    """
    _configure_endpoints(
        settings.discord if settings else None, api_base=api_base, gateway_url=gateway_url
    )


async def attach(bot: commands.Bot, runtime: Runtime, *, sync: bool = False) -> None:
    """Add quitbot to `bot`: the conversations (a listener on messages), its buttons, the
    commands /chat, /new, /end, /quitbot and the "Branch from here" message command.

    Call it in your bot's `setup_hook`, before the gateway connects: messages a previous
    run kept but never answered are answered here, and answered later they could race new
    ones. Commands are synced only with `sync=True` (to QUITBOT_DISCORD_DEV_GUILD_ID's
    server if set, else globally; a sync sends your tree's commands too); otherwise sync
    your tree as you do for your own commands.

    Raises MissingIntents if the bot's client lacks guilds, guild_messages or
    message_content, and CommandClash if the bot already has a command or cog by one of
    quitbot's names; nothing is added then.
    """
    await _attach(bot, runtime, sync=sync)


async def _attach(bot: commands.Bot, runtime: Runtime, *, sync: bool) -> Parts:
    check_intents(bot.intents)
    parts = Parts(bot, runtime.engine, runtime.settings.discord)
    await parts.add_to(bot, listen=True)
    if sync:
        await sync_commands(bot, runtime.settings.discord)
    answered = await parts.flows.answer_pending()
    if answered:
        log.info("answered %d messages a previous run had received", answered)
    return parts


async def detach(bot: commands.Bot, *, grace: float = DETACH_GRACE_SECONDS) -> bool:
    """Take quitbot off `bot`: its listener, cogs and commands (sync your tree afterwards
    for Discord to stop showing them). Replies under way get `grace` seconds to finish;
    a runtime the extension opened is closed. False if quitbot was not attached."""
    conversations = await remove_from(bot)
    if conversations is None:
        return False
    await conversations.flows.drain(grace)
    await conversations.on_removal.aclose()
    return True


async def setup(bot: commands.Bot) -> None:
    """`await bot.load_extension("quitbot.discord")`: quitbot with a runtime of its own,
    from the environment and .env as `quitbot run` reads them (webhooks delivered too)."""
    owned = AsyncExitStack()
    runtime = await owned.enter_async_context(build_runtime(load_settings(), deliver_webhooks=True))
    try:
        parts = await _attach(bot, runtime, sync=False)
    except BaseException:
        await owned.aclose()
        raise
    parts.conversations.on_removal.push_async_exit(owned)


async def teardown(bot: commands.Bot) -> None:
    """`await bot.unload_extension("quitbot.discord")`."""
    await detach(bot)
