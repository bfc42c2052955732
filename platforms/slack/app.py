"""quitbot's own Bolt app, for `quitbot run`: its listeners (platforms/slack/listeners.py, the
same a host's app gets) and an acknowledgement for the messages none of them takes."""

from __future__ import annotations

import logging
import time

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.engine import Engine
from bot.settings import Settings
from platforms.slack.client import build_client
from platforms.slack.listeners import SlackListeners
from platforms.slack.quiet import without_token_warning
from platforms.slack.stream import DEFAULT_INTERVAL, Clock


class SlackBot:
    """quitbot on Slack as an app of its own: the Bolt app and quitbot's listeners on it."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        client: AsyncWebClient | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Clock = time.monotonic,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        client = client or build_client(settings.slack, session)
        self.listeners = SlackListeners(
            engine,
            settings,
            client,
            session=session,
            clock=clock,
            interval=interval,
            checked_at_edge=True,
        )
        self.deps, self.places = self.listeners.deps, self.listeners.places
        self.flows, self.inbox = self.listeners.flows, self.listeners.inbox
        self.app = self._build_app()

    async def drain(self, grace: float | None = None) -> None:
        """Let replies already under way finish, for up to `grace` seconds (then, or if
        this is cancelled, cut them short: the core records them as interrupted)."""
        await self.listeners.drain(grace)

    def _build_app(self) -> AsyncApp:
        slack = self.deps.settings.slack
        http = slack.mode == "http"
        secret = slack.signing_secret.get_secret_value() if slack.signing_secret else ""
        logger = logging.getLogger("platforms.slack.bolt")
        with without_token_warning(logger):
            app = AsyncApp(
                client=self.deps.client,
                signing_secret=secret if http else "unused-in-socket-mode",
                request_verification_enabled=http,
                # quitbot's listeners keep a message before it is acknowledged whatever this
                # says; running before the response also keeps the work they start tracked
                # (`deps.tasks`): none is left to Bolt's background futures.
                process_before_response=True,
                logger=logger,
            )
        self.listeners.attach(app)
        # What quitbot's listeners hand on (chatter, edits, bots' posts) is nobody's here:
        # acknowledged, or Bolt would answer 404 and Slack send it again.
        app.event("message")(_nobodys)
        app.event("app_mention")(_nobodys)
        return app


async def _nobodys() -> None:
    """An event no listener took, acknowledged."""
