"""A dashboard served on 127.0.0.1 over a real store, signing in with a fake Discord."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest_asyncio

from bot.app import Runtime, UnconfiguredModel, build_runtime
from bot.conversation import Actor, AuditEvent, ConversationKey
from bot.dashboard.app import Dashboard
from bot.dashboard.serve import build_app, dashboard_for
from bot.health import serving
from bot.ports import NewMessage
from bot.settings import DashboardSettings, DiscordSettings, Settings, SlackSettings
from tests.bot.storekit import ENDED
from tests.conftest import make_settings
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_oauth import (
    CLIENT_ID,
    CLIENT_SECRET,
    MANAGE_THREADS,
    SEND_MESSAGES,
    FakeDiscordOAuth,
)
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, FakeSlack
from tests.fakes.slack import TEAM_ID as SLACK_TEAM
from tests.fakes.slack_oidc import CLIENT_ID as SLACK_CLIENT_ID
from tests.fakes.slack_oidc import CLIENT_SECRET as SLACK_CLIENT_SECRET
from tests.fakes.slack_oidc import FakeSlackOIDC

SECRET = "dashboard-session-secret-0123456789-abcdefghij"
GUILD_A, GUILD_B = "111", "222"
MOD_A, MOD_B, MEMBER = "9001", "9002", "9003"
SLACK_ADMIN, SLACK_MEMBER, SLACK_STRANGER = "UADMIN", "UMEMBER", "USTRANGER"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script><b onmouseover="alert(1)">bold</b>'


@dataclass
class Dash:
    url: str
    oauth: FakeDiscordOAuth
    runtime: Runtime
    dashboard: Dashboard
    settings: Settings
    discord: FakeDiscord
    slack: FakeSlack
    slack_oidc: FakeSlackOIDC

    async def seed(self, community: str, *, text: str = "hello") -> str:
        """An ended conversation in `community` that its person called a mistake, in a
        thread that Discord has archived and locked."""
        thread = self.discord.add_thread("a conversation")
        thread["thread_metadata"].update(archived=True, locked=True)
        store = self.runtime.store
        key = ConversationKey("discord", thread["id"])
        created = await store.create(key, "alice", T0, community=community)
        api = [{"role": "user", "content": [{"type": "text", "text": text}]}]
        detail = {"reason": "persistent_abuse", "explanation": text}
        end = AuditEvent("end", T0, Actor.MODEL, detail)
        said = NewMessage("user", text, api, T0, user_id="alice")
        await store.commit_turn(created.id, ENDED, T0, [said], [end])
        said_so = {"user_id": "alice", "text": f"mistake: {text}"}
        feedback = AuditEvent("feedback", T0, Actor.USER, said_so)
        await store.add_feedback(created.id, "alice", said_so["text"], T0, (feedback,))
        return created.id


def dashboard_settings(
    tmp_path: Path,
    fake: FakeAnthropic,
    oauth: FakeDiscordOAuth,
    discord: FakeDiscord | None,
    slack: tuple[FakeSlack, FakeSlackOIDC],
) -> Settings:
    reaching = {"token": discord.token, "api_base": discord.api_base} if discord else {}
    section = DiscordSettings(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, oauth_base=oauth.base_url, **reaching
    )
    slack_section = SlackSettings(
        client_id=SLACK_CLIENT_ID,
        client_secret=SLACK_CLIENT_SECRET,
        oauth_base=slack[1].base_url,
        api_url=slack[0].base_url,
        bot_token=BOT_TOKEN,
        app_token=APP_TOKEN,
    )
    dashboard = DashboardSettings(url="http://127.0.0.1", secret=SECRET)  # type: ignore[arg-type]
    return make_settings(tmp_path, fake, discord=section, slack=slack_section, dashboard=dashboard)


@asynccontextmanager
async def serving_dashboard(
    tmp_path: Path, fake_anthropic: FakeAnthropic, *, reach_discord: bool
) -> AsyncIterator[Dash]:
    """The dashboard, reaching the fake Discord's REST API (or not, as with no token)."""
    async with (
        FakeDiscordOAuth() as oauth,
        FakeDiscord() as discord,
        FakeSlack() as slack,
        FakeSlackOIDC() as slack_oidc,
    ):
        oauth.add_user(MOD_A, "Mod A", {GUILD_A: MANAGE_THREADS})
        oauth.add_user(MOD_B, "Mod B", {GUILD_B: MANAGE_THREADS, GUILD_A: SEND_MESSAGES})
        oauth.add_user(MEMBER, "Member", {GUILD_A: SEND_MESSAGES})
        slack.admins.add(SLACK_ADMIN)
        slack_oidc.add_user(SLACK_ADMIN, "Slack Admin", team=SLACK_TEAM)
        slack_oidc.add_user(SLACK_MEMBER, "Slack Member", team=SLACK_TEAM)
        slack_oidc.add_user(SLACK_STRANGER, "Stranger", team="TOTHER")
        reached = discord if reach_discord else None
        fakes = (slack, slack_oidc)
        settings = dashboard_settings(tmp_path, fake_anthropic, oauth, reached, fakes)
        async with (
            build_runtime(settings, model=UnconfiguredModel()) as runtime,
            dashboard_for(settings, runtime.engine) as dashboard,
            serving(build_app(dashboard), "127.0.0.1", 0) as port,
        ):
            dashboard.base_url = f"http://127.0.0.1:{port}"
            oauth.redirect_uris.add(f"{dashboard.base_url}/signin/discord/callback")
            slack_oidc.redirect_uris.add(f"{dashboard.base_url}/signin/slack/callback")
            yield Dash(dashboard.base_url, oauth, runtime, dashboard, settings, discord, *fakes)


@pytest_asyncio.fixture
async def dash(tmp_path: Path, fake_anthropic: FakeAnthropic) -> AsyncIterator[Dash]:
    async with serving_dashboard(tmp_path, fake_anthropic, reach_discord=True) as served:
        yield served


@pytest_asyncio.fixture
async def offline_dash(tmp_path: Path, fake_anthropic: FakeAnthropic) -> AsyncIterator[Dash]:
    async with serving_dashboard(tmp_path, fake_anthropic, reach_discord=False) as served:
        yield served


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe: keep cookies for an IP address (127.0.0.1), as a browser does.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def sign_in(
    http: aiohttp.ClientSession,
    dash: Dash,
    user_id: str,
    next_path: str = "/",
    provider: str = "discord",
) -> str:
    """Sign in as `user_id` through the fake Discord (or Slack); the page it lands on."""
    dash.oauth.acting = dash.slack_oidc.acting = user_id
    signing_in = f"{dash.url}/signin/{provider}"
    async with http.get(signing_in, params={"next": next_path}) as response:
        assert response.status == 200, await response.text()
        return await response.text()


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)
