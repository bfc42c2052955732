"""The dashboard built from settings and a running core, and served."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from aiohttp import web

from bot.adapters import reachable
from bot.dashboard import pages, settings_page, signing
from bot.dashboard.app import DASHBOARD, HERE, Dashboard, plain_errors
from bot.dashboard.discord_signin import DiscordSignIn
from bot.dashboard.offline import OfflinePlaces
from bot.dashboard.security import strict_headers
from bot.dashboard.sessions import Sessions, Signer
from bot.dashboard.signin import SignIn, oauth_client
from bot.dashboard.slack_signin import SlackSignIn
from bot.engine import Engine
from bot.flows import Flows, NoModLog
from bot.health import serving
from bot.settings import Settings


def build_app(dashboard: Dashboard) -> web.Application:
    app = web.Application(middlewares=[strict_headers, plain_errors])
    app[DASHBOARD] = dashboard
    signing.add_routes(app)
    pages.add_routes(app)
    settings_page.add_routes(app)
    app.router.add_static("/static", HERE / "static")
    return app


def sign_ins(settings: Settings) -> dict[str, SignIn]:
    """The platforms people can sign in with: those whose OAuth client is configured."""
    found: dict[str, SignIn] = {}
    discord, slack = settings.discord, settings.slack
    discord_client, slack_client = oauth_client(discord), oauth_client(slack)
    if discord_client is not None:
        found["discord"] = DiscordSignIn(discord_client, discord.moderator_role_id)
    if slack_client is not None:
        found["slack"] = SlackSignIn(
            slack_client,
            api_url=slack.api_url or "https://slack.com/api/",
            bot_token=slack.bot_token.get_secret_value() if slack.bot_token else None,
            admin_ids=slack.admin_user_ids,
        )
    return found


@asynccontextmanager
async def dashboard_for(settings: Settings, engine: Engine) -> AsyncIterator[Dashboard]:
    """The dashboard's state: a sign-in per configured OAuth client, and per platform the
    flows, which reach the platform's API (no gateway) where its token is set, so that a
    reopen unlocks the thread and tells the people there. Settings must have passed
    `DashboardSettings.problem()`."""
    secret = settings.dashboard.secret
    assert secret is not None
    providers = sign_ins(settings)
    async with AsyncExitStack() as reached:
        flows = {}
        for name in providers:
            platform = reachable(name, settings)
            places, modlog = (
                await reached.enter_async_context(platform.reach(settings))
                if platform is not None
                else (OfflinePlaces(), NoModLog())
            )
            flows[name] = Flows(engine, name, places, modlog)
        yield Dashboard(
            base_url=settings.dashboard.url.rstrip("/"),
            engine=engine,
            flows=flows,
            sign_ins=providers,
            sessions=Sessions(Signer(secret.get_secret_value().encode())),
        )


# `quitbot dashboard` on its own listens here when QUITBOT_DASHBOARD_PORT is not set.
DEFAULT_PORT = 8080


@asynccontextmanager
async def serve_dashboard(settings: Settings, engine: Engine) -> AsyncIterator[int]:
    """Serve the dashboard on QUITBOT_DASHBOARD_HOST/_PORT until the block ends; the port."""
    where = settings.dashboard
    port = where.port or DEFAULT_PORT
    setting = "QUITBOT_DASHBOARD_PORT"
    async with (
        dashboard_for(settings, engine) as dashboard,
        serving(
            build_app(dashboard),
            where.host,
            port,
            what="the dashboard",
            setting=setting,
            paths=where.url,
        ) as bound,
    ):
        yield bound
