"""quitbot on Slack: `run` serves it (Socket Mode or HTTP), `doctor` checks its setup."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from slack_bolt.request.internals import extract_team_id
from slack_sdk.errors import SlackApiError

from bot.engine import Engine, reception_anywhere
from bot.ports import PlatformUnavailable, PlatformUnreachable
from bot.settings import Settings, SlackSettings
from platforms.slack.app import SlackBot
from platforms.slack.client import build_client
from platforms.slack.connection import PING_SECONDS, ReportingSocketClient
from platforms.slack.edge import HttpEdge, SocketEdge
from platforms.slack.inbox import Door
from platforms.slack.listener import Listener, prompt_switches
from platforms.slack.place import Deps, SlackModLog, SlackPlaces
from platforms.slack.scopes import missing_scopes
from platforms.slack.translate import PLATFORM, translate_event

__all__ = ["Serving", "SlackAdapter", "SlackBot", "adapter", "doctor", "run", "start_http"]

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
SHUTDOWN_GRACE_SECONDS = 10.0  # replies under way get this long to finish on shutdown


async def run(engine: Engine, settings: Settings, *, ping_interval: float = PING_SECONDS) -> None:
    """Serve Slack until cancelled; then stop taking requests, finish replies, close all.
    In Socket Mode a connection that drops is noticed within `ping_interval` seconds."""
    async with aiohttp.ClientSession() as session:
        bot = SlackBot(engine, settings, build_client(settings.slack, session), session=session)
        await _check_token(bot)
        # What a killed run received but never answered goes first in its thread's queue.
        if resumed := await bot.inbox.resume():
            log.info("Slack: answering %d message(s) received before a restart", resumed)
        try:
            if settings.slack.mode == "http":
                await _serve_http(bot, settings.slack.http_host, settings.slack.http_port)
            else:
                await _serve_socket_mode(bot, settings.slack, ping_interval)
        finally:
            await bot.drain(SHUTDOWN_GRACE_SECONDS)


async def _check_token(bot: SlackBot) -> None:
    """Fail at start-up, in plain words, when Slack refuses the bot token or is unreachable."""
    try:
        response = await bot.deps.client.auth_test()
    except SlackApiError as exc:
        raise PlatformUnavailable(
            f"Slack refused SLACK_BOT_TOKEN ({exc.response.get('error')}): copy the Bot User "
            "OAuth Token (xoxb-...) from your app's OAuth & Permissions page"
        ) from exc
    except aiohttp.ClientError as exc:
        raise PlatformUnreachable(f"could not reach Slack: {exc}") from exc
    bot.deps.bot_user_id = str(response.get("user_id") or "")
    bot.deps.team_id = str(response.get("team_id") or "")


async def _serve_http(bot: SlackBot, host: str, port: int) -> None:
    try:
        runner = await start_http(bot, host, port)
    except OSError as exc:
        raise PlatformUnavailable(
            f"Slack HTTP mode cannot listen on port {port} ({exc.strerror}); "
            "set QUITBOT_SLACK_HTTP_PORT to a free port"
        ) from exc
    where = f"{host}:{port}{EVENTS_PATH}"
    log.info("Slack: listening for events, commands and interactivity on %s", where)
    try:
        # Only here, in quitbot's own run: `start_http` may serve from someone else's process.
        with prompt_switches(isinstance(runner, Listener)):
            await _ready(bot)
    finally:
        await runner.cleanup()


class Serving(Protocol):
    """What `start_http` started: where it listens; `cleanup` stops it."""

    @property
    def addresses(self) -> list[Any]: ...

    async def cleanup(self) -> None: ...


async def start_http(bot: SlackBot, host: str, port: int) -> Serving:
    """Serve the app's single endpoint; the caller cleans it up. Where the store can keep
    messages from another thread's loop, the endpoint is served from a thread of its own
    (platforms/slack/listener.py), so Slack's acknowledgements never wait for the turns."""
    signing_secret = bot.deps.settings.slack.signing_secret
    secret = signing_secret.get_secret_value() if signing_secret else ""
    reception = reception_anywhere(bot.flows.engine)
    if reception is None:
        edge = HttpEdge(bot.app, secret, partial(_message, bot.deps, bot.inbox.door))
        runner = web.AppRunner(edge.web_app(EVENTS_PATH), handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        return runner
    door = bot.inbox.listen_elsewhere(reception)
    listener = Listener(bot.app, secret, partial(_message, bot.deps, door), EVENTS_PATH)
    await listener.start(host, port)
    return listener


async def _message(deps: Deps, door: Door, body: dict[str, Any]) -> bool:
    """A person's message, checked at the edge, straight to a door of the inbox as Bolt's
    listener would hand it over; until Bolt has learnt the bot's user id (with the first
    event, or at start-up), Bolt takes it."""
    if not deps.bot_user_id:
        return False
    team_id = str(extract_team_id(body) or "")  # Bolt's own reading of the workspace
    message = translate_event(body["event"], deps.bot_user_id, team_id)
    if message is not None:
        await door.receive(message)
    return True


async def _serve_socket_mode(bot: SlackBot, slack: SlackSettings, ping_interval: float) -> None:
    if slack.app_token is None:
        raise PlatformUnavailable(
            "SLACK_APP_TOKEN is needed for Socket Mode (or set QUITBOT_SLACK_MODE=http)"
        )
    readiness = bot.flows.engine.readiness
    client = ReportingSocketClient(
        slack.app_token.get_secret_value(),
        bot.deps.client,
        lambda connected: readiness.set(PLATFORM, connected),
        ping_interval=ping_interval,
        logger=bot.app.logger,
    )
    handler = SocketEdge(bot.app, client)
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        # The SDK keeps a connection (and reports it) until cancelled.
        await asyncio.Event().wait()
    except SlackApiError as exc:
        raise PlatformUnavailable(
            f"Slack refused SLACK_APP_TOKEN ({exc.response.get('error')}): generate an "
            "app-level token with connections:write under Basic Information"
        ) from exc
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
        readiness.set(PLATFORM, False)


async def _ready(bot: SlackBot) -> None:  # HTTP mode: ready while it listens, for /readyz
    try:
        bot.flows.engine.readiness.set(PLATFORM, True)
        await asyncio.Event().wait()
    finally:
        bot.flows.engine.readiness.set(PLATFORM, False)


async def doctor(settings: Settings) -> list[tuple[bool, str]]:
    """Check the token, its scopes and the chosen mode's settings, in plain words."""
    slack = settings.slack
    if not slack.enabled:
        return [(True, "Slack: off (SLACK_BOT_TOKEN is not set)")]
    lines = [_mode_check(slack)]
    async with aiohttp.ClientSession() as session:
        client = build_client(slack, session)
        try:
            response = await client.auth_test()
        except SlackApiError as exc:
            return [*lines, (False, f"Slack: the bot token was refused ({exc.response['error']})")]
        except aiohttp.ClientError as exc:
            return [*lines, (False, f"Slack: could not reach {client.base_url} ({exc})")]
    team, user = response.get("team"), response.get("user")
    lines.append((True, f"Slack: token works for workspace {team} as @{user}"))
    headers = {k.lower(): v for k, v in response.headers.items()}
    missing = missing_scopes(str(headers.get("x-oauth-scopes") or ""))
    if not missing:
        return [*lines, (True, "Slack: every needed scope is granted")]
    add = "add them to the app (see deploy/slack-manifest.yml) and reinstall it"
    return [*lines, (False, f"Slack: missing scopes {', '.join(missing)}; {add}")]


def _mode_check(slack: SlackSettings) -> tuple[bool, str]:
    if slack.mode == "http":
        if slack.signing_secret is None or not slack.signing_secret.get_secret_value():
            return False, "Slack: HTTP mode needs SLACK_SIGNING_SECRET"
        return True, f"Slack: HTTP mode on port {slack.http_port}, path {EVENTS_PATH}"
    token = slack.app_token.get_secret_value() if slack.app_token else ""
    if not token:
        return False, "Slack: Socket Mode needs SLACK_APP_TOKEN (or set QUITBOT_SLACK_MODE=http)"
    if not token.startswith("xapp-"):
        return False, "Slack: SLACK_APP_TOKEN should be an app-level token starting with xapp-"
    return True, "Slack: Socket Mode with an app-level token"


class SlackAdapter:
    """quitbot's Slack platform, as the core finds it (entry point `quitbot.platforms`)."""

    name = "slack"
    run, doctor = staticmethod(run), staticmethod(doctor)

    def configured(self, settings: Settings) -> bool:
        return settings.slack.enabled

    async def setup_help(self, settings: Settings) -> str:
        return SETUP_HELP

    @asynccontextmanager
    async def reach(self, settings: Settings) -> AsyncIterator[tuple[SlackPlaces, SlackModLog]]:
        """Slack's Web API alone, with the bot's token and no events: for a process that
        acts on threads without serving them (the dashboard)."""
        async with aiohttp.ClientSession() as session:
            deps = Deps(settings, build_client(settings.slack, session), session)
            try:
                me, error = await deps.attempt("auth_test")
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise PlatformUnreachable(f"could not reach Slack: {exc}") from exc
            if error in {"invalid_auth", "not_authed", "account_inactive", "token_revoked"}:
                raise PlatformUnavailable(f"Slack refused SLACK_BOT_TOKEN ({error})")
            if error:
                raise PlatformUnreachable(f"could not reach Slack ({error})")
            deps.bot_user_id, deps.team_id = str(me.get("user_id", "")), str(me.get("team_id", ""))
            yield SlackPlaces(deps), SlackModLog(deps)

    reopened_elsewhere = (
        "On Slack quitbot answers in its thread again (Slack cannot lock a thread), but "
        "nobody there is told; a reopen from Slack (/quitbot reopen or review resolve) "
        "says so in the thread."
    )


SETUP_HELP = (
    "Create the Slack app from deploy/slack-manifest.yml (api.slack.com/apps -> Create New "
    "App -> From a manifest), install it, then set SLACK_BOT_TOKEN and SLACK_APP_TOKEN "
    "(Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode). Walkthrough: deploy/slack.md"
)
adapter = SlackAdapter()
