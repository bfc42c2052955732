"""The Bolt app: each Slack request translated and handed to the inbox or to one flow."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.engine import Engine
from bot.flows import Flows
from bot.ports import DatabaseUnavailable
from bot.settings import Settings
from platforms.slack.client import build_client
from platforms.slack.inbox import Inbox
from platforms.slack.interact import Interactions
from platforms.slack.place import Deps, SlackModLog, SlackPlaces
from platforms.slack.render import BRANCH, END, END_CANCEL, END_CONFIRM, MISTAKE, NEW_CONVERSATION
from platforms.slack.scopes import COMMAND
from platforms.slack.stream import DEFAULT_INTERVAL, Clock
from platforms.slack.translate import PLATFORM, translate_assistant_thread, translate_event

Work = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]


class _Without(logging.Filter):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.message


class SlackBot:
    """quitbot on Slack: the Bolt app, the core's flows over Slack's ports, and the work
    started after acknowledging Slack."""

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
        self.deps = Deps(settings, client, session, clock, interval)
        self.places = SlackPlaces(self.deps)
        self.flows = Flows(engine, PLATFORM, self.places, SlackModLog(self.deps))
        self.inbox = Inbox(self.deps, self.flows, self.places)
        self._interactions = Interactions(self.deps, self.flows, self.places)
        self.app = self._build_app()

    async def drain(self, grace: float | None = None) -> None:
        """Let replies already under way finish, for up to `grace` seconds (then, or if
        this is cancelled, cut them short: the core records them as interrupted)."""
        await self.deps.tasks.drain(grace)

    def _build_app(self) -> AsyncApp:
        slack = self.deps.settings.slack
        http = slack.mode == "http"
        secret = slack.signing_secret.get_secret_value() if slack.signing_secret else ""
        logger = logging.getLogger("platforms.slack.bolt")
        # Bolt reads SLACK_BOT_TOKEN from the environment itself and, given our client too,
        # warns on every start that it uses the client's token instead: the same token.
        same_token = warning_client_prioritized_and_token_skipped()
        quiet = _Without(same_token)
        logger.addFilter(quiet)
        try:
            app = AsyncApp(
                client=self.deps.client,
                signing_secret=secret if http else "unused-in-socket-mode",
                request_verification_enabled=http,
                # Listeners only translate, keep the message (the inbox) and hand work to
                # `deps.tasks`; running them before the response keeps "acknowledged" meaning
                # "kept", and the work is tracked: none is left to Bolt's background futures.
                process_before_response=True,
                logger=logger,
            )
        finally:
            logger.removeFilter(quiet)
        app.error(self._failed)
        app.event("app_mention")(self._on_message)
        app.event("message")(self._on_message)
        app.event("assistant_thread_started")(self._on_assistant_thread)
        # Subscribed to (the assistant pane sends it), acknowledged, nothing else to do.
        app.event("assistant_thread_context_changed")(self._learn)
        act = self._interactions
        app.command(COMMAND)(self._later(act.command, "command"))
        app.action(NEW_CONVERSATION)(self._later(act.start_new, "new conversation"))
        app.action(MISTAKE)(self._later(act.mistake, "feedback"))
        app.action(END_CONFIRM)(self._later(act.confirm_end, "end"))
        app.action(END_CANCEL)(self._later(act.keep_going, "keep talking"))
        app.shortcut(BRANCH)(self._later(act.branch, "branch"))
        app.shortcut(END)(self._later(act.end_shortcut, "end shortcut"))
        return app

    async def _failed(self, error: Exception) -> BoltResponse | None:
        """A listener raised. With the database away the request stays unacknowledged (a
        5xx), so Slack delivers it again later; the store has said once that it went away.
        Anything else is logged as Bolt's own handler does, with its traceback."""
        if isinstance(error, DatabaseUnavailable):
            return BoltResponse(status=503, body="")
        self.app.logger.error("Failed to run listener function (error: %s)", error, exc_info=error)
        return None

    async def _on_message(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        await self._learn(context)
        message = translate_event(event, self.deps.bot_user_id, str(context.team_id or ""))
        if message is not None:
            await self.inbox.receive(message)

    async def _on_assistant_thread(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        await self._learn(context)
        thread = translate_assistant_thread(event)
        if thread is not None:
            self.deps.tasks.spawn(self.inbox.greet(thread), f"greet {thread.thread_ts}")

    async def _learn(self, context: AsyncBoltContext) -> None:
        self.deps.bot_user_id = self.deps.bot_user_id or str(context.bot_user_id or "")
        self.deps.team_id = self.deps.team_id or str(context.team_id or "")

    def _later(self, work: Work, name: str) -> Callable[..., Awaitable[None]]:
        """A listener that acknowledges Slack first, then does `work` in the background."""

        async def listener(
            ack: Callable[[], Awaitable[None]], body: dict[str, Any], context: AsyncBoltContext
        ) -> None:
            await ack()
            await self._learn(context)
            self.deps.tasks.spawn(work(body), name)

        return listener
