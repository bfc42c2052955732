"""quitbot's listeners on a Bolt `AsyncApp`: quitbot's own app, or one a host already runs.

Bolt for Python runs only the first listener that matches a request, in the order they were
registered (slack_bolt 1.30 `AsyncApp.async_dispatch`, app/async_app.py: it returns the first
matching listener's response; bolt-python#786, #789, #239). A listener middleware that does
not call `next()` and returns nothing hands the request on to the next listener (the same
function: "the listener is not for this incoming request"), which is how `app.message("ping")`
lets other text pass. quitbot's message listeners work that way: a message that is not
quitbot's (channel chatter, a reply in a thread holding no conversation, an edit, a bot's
post) goes on to the app's other listeners, whether registered before or after quitbot's.

Listener middleware is also awaited inside the dispatch, before the response, whatever
`process_before_response` says (the listener runner acknowledges first and starts the
listener in the background when it is off: listener/asyncio_runner.py). So keeping a message
there makes Slack's acknowledgement mean "kept" on any app, and a database outage can be
answered 503 (unacknowledged, so Slack delivers it again) without the app's error handler.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from functools import partial
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.engine import Engine
from bot.flows import Flows
from bot.ports import DatabaseUnavailable
from bot.settings import Settings
from platforms.slack.edge import problem
from platforms.slack.inbox import Inbox
from platforms.slack.interact import Interactions
from platforms.slack.place import Deps, SlackModLog, SlackPlaces
from platforms.slack.render import BRANCH, END, END_CANCEL, END_CONFIRM, MISTAKE, NEW_CONVERSATION
from platforms.slack.scopes import COMMAND
from platforms.slack.stream import DEFAULT_INTERVAL, Clock
from platforms.slack.translate import PLATFORM, translate_assistant_thread, translate_event

log = logging.getLogger(__name__)

Work = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]
Next = Callable[[], Awaitable[None]]
Middleware = Callable[..., Awaitable[BoltResponse | None]]

ACTIONS = (NEW_CONVERSATION, MISTAKE, END_CONFIRM, END_CANCEL)
SHORTCUTS = (BRANCH, END)


class SlackListeners:
    """quitbot on Slack over one Web API client: the core's flows over Slack's ports, the
    listeners that feed them, and the work started after acknowledging Slack."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        client: AsyncWebClient,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Clock = time.monotonic,
        interval: float = DEFAULT_INTERVAL,
        checked_at_edge: bool = False,
    ) -> None:
        words_of = partial(engine.words, PLATFORM)
        self.deps = Deps(settings, client, session, clock, interval, words_of=words_of)
        self.places = SlackPlaces(self.deps)
        self.flows = Flows(engine, PLATFORM, self.places, SlackModLog(self.deps))
        self.inbox = Inbox(self.deps, self.flows, self.places)
        self.interactions = Interactions(self.deps, self.flows, self.places)
        # quitbot's own HTTP and Socket Mode edges drop malformed bodies before Bolt; a host's
        # app has no such edge, so its bodies are checked here.
        self._checked_at_edge = checked_at_edge

    def attach(self, app: AsyncApp, *, checks: Sequence[Middleware] = ()) -> None:
        """Add quitbot's listeners to `app`, after those it already has; `checks` run first
        on each request for quitbot's command, shortcuts and buttons."""
        keep, later = [self._keep], self._later
        app.event("app_mention", middleware=keep)(_taken)
        app.event("message", middleware=keep)(_taken)
        app.event("assistant_thread_started")(self._on_assistant_thread)
        # Subscribed to (the assistant pane sends it), acknowledged, nothing else to do.
        app.event("assistant_thread_context_changed")(self._learn)
        act, mw = self.interactions, list(checks)
        app.command(COMMAND, middleware=mw)(later(act.command, "command"))
        app.action(NEW_CONVERSATION, middleware=mw)(later(act.start_new, "new conversation"))
        app.action(MISTAKE, middleware=mw)(later(act.mistake, "feedback"))
        app.action(END_CONFIRM, middleware=mw)(later(act.confirm_end, "end"))
        app.action(END_CANCEL, middleware=mw)(later(act.keep_going, "keep talking"))
        app.shortcut(BRANCH, middleware=mw)(later(act.branch, "branch"))
        app.shortcut(END, middleware=mw)(later(act.end_shortcut, "end shortcut"))

    async def drain(self, grace: float | None = None) -> None:
        """Let replies already under way finish, for up to `grace` seconds (then, or if
        this is cancelled, cut them short: the core records them as interrupted)."""
        await self.deps.tasks.drain(grace)

    async def _keep(
        self, body: dict[str, Any], context: AsyncBoltContext, next_: Next
    ) -> BoltResponse | None:
        """Listener middleware: a message that is quitbot's is kept (the inbox) before Slack
        is acknowledged and goes on to the listener; any other is handed on to the app's
        next listener. With the database away it is answered 503 (Slack sends it again)."""
        await self._learn(context)
        if not self._checked_at_edge and (found := problem(body)) is not None:
            log.warning("passed on a malformed Slack event: %s", found)
            return None
        event = body["event"]
        message = translate_event(event, self.deps.bot_user_id, str(context.team_id or ""))
        if message is None:
            return None
        try:
            taken = await self.inbox.receive(message)
        except DatabaseUnavailable:
            return BoltResponse(status=503, body="")
        if taken:
            await next_()
        return None

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
            if not self._checked_at_edge and (found := problem(body)) is not None:
                log.warning("dropped a malformed Slack %s: %s", name, found)
                return
            self.deps.tasks.spawn(work(body), name)

        return listener


async def _taken() -> None:
    """The message listener: its middleware (`SlackListeners._keep`) did the work."""
