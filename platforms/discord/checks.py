"""`quitbot doctor` for Discord: the token, the message-content intent, the permissions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import discord

from bot.adapters import Check
from bot.ports import PlatformUnavailable
from bot.settings import Settings
from platforms.discord.app import configure_endpoints
from platforms.discord.permissions import missing

# Without Manage Threads quitbot works, with less (ended threads stay open): a warning.
OPTIONAL = frozenset({"Manage Threads"})

REJECTED = (
    "DISCORD_TOKEN was rejected; copy the bot token again from the Developer Portal "
    "(Bot -> Reset Token)"
)

INTENT_OFF = (
    "discord: the Message Content intent is off. It is a privileged intent: without it I "
    "only see mentions and DMs, so I cannot follow a conversation's thread. Turn on "
    "'Message Content Intent' at https://discord.com/developers/applications/{app}/bot "
    "(bots in 100 or more servers need Discord's approval for it)."
)


@asynccontextmanager
async def _logged_in(settings: Settings) -> AsyncIterator[tuple[discord.http.HTTPClient, Any]]:
    configure_endpoints(settings.discord)
    token = settings.discord.token
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    try:
        me = await http.static_login(token.get_secret_value() if token else "")
        yield http, me
    finally:
        await http.close()


async def application_id(settings: Settings) -> int:
    try:
        async with _logged_in(settings) as (http, _):
            return int((await http.application_info())["id"])
    except discord.LoginFailure as exc:
        raise PlatformUnavailable(REJECTED) from exc
    except (discord.HTTPException, OSError) as exc:
        raise PlatformUnavailable(f"could not reach Discord ({exc})") from exc


async def run_checks(settings: Settings) -> list[Check]:
    try:
        async with _logged_in(settings) as (http, me):
            checks: list[Check] = [
                (True, f"discord: the token works (logged in as {me['username']})")
            ]
            app = await http.application_info()
            checks.append(_intent(dict(app)))
            checks += _permissions([dict(guild) for guild in await http.get_guilds(200)])
            return checks
    except discord.LoginFailure:
        return [(False, f"discord: {REJECTED}")]
    except (discord.HTTPException, OSError) as exc:
        return [(False, f"discord: could not reach Discord ({exc})")]


def _intent(app: dict[str, Any]) -> Check:
    flags = discord.ApplicationFlags._from_value(int(app.get("flags") or 0))
    if flags.gateway_message_content or flags.gateway_message_content_limited:
        return True, "discord: the Message Content intent is on"
    return False, INTENT_OFF.format(app=app["id"])


def _permissions(guilds: list[dict[str, Any]]) -> list[Check]:
    if not guilds:
        return [(True, "discord: not in any server yet; add it with `quitbot discord invite-url`")]
    checks: list[Check] = []
    for guild in guilds:
        lacking = missing(discord.Permissions(int(guild.get("permissions") or 0)))
        name = guild.get("name", guild["id"])
        required = ", ".join(p for p in lacking if p not in OPTIONAL)
        if required:
            checks.append((False, f"discord: in server {name!r} I am missing {required}; "
                                  "grant them to my role or re-invite me with the URL from "
                                  "`quitbot discord invite-url`"))  # fmt: skip
        if OPTIONAL.intersection(lacking):
            checks.append(("warn", f"discord: in server {name!r} I am missing Manage Threads: "
                                   "ended conversations still end, but their threads stay open "
                                   "and moderators cannot reopen them from Discord"))  # fmt: skip
        if not lacking:
            checks.append((True, f"discord: in server {name!r} I have every permission I need"))
    return checks
