"""quitbot registered on a Bolt app someone already runs (`quitbot.slack.register`).

The host owns the app: its client and token, its signing, its connection (HTTP or Socket
Mode), its error handler and its own listeners. quitbot adds its listeners and owns its
conversations. Bolt would silently let a listener registered earlier shadow a later one for
the same command, shortcut or action (only the first match runs), so a clash with quitbot's
is refused here, before anything is added.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.listener.async_listener import AsyncListener
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError

from bot.app import Runtime
from platforms.slack import SHUTDOWN_GRACE_SECONDS
from platforms.slack.listeners import ACTIONS, SHORTCUTS, Middleware, Next, SlackListeners
from platforms.slack.scopes import COMMAND

log = logging.getLogger(__name__)


class ListenerCollision(ValueError):
    """The app already has a listener that would take a request meant for quitbot's."""


class SlackRegistration:
    """quitbot's part of a host's Bolt app, as `register` returns it."""

    def __init__(self, listeners: SlackListeners) -> None:
        self._listeners = listeners

    async def drain(self, grace: float | None = None) -> None:
        """Wait until the replies under way are finished, for up to `grace` seconds; then
        they are cut short (and recorded as interrupted)."""
        await self._listeners.drain(grace)

    async def close(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """On the host's shutdown, once it takes no more requests: replies under way get
        `grace` seconds to finish. What was kept but not answered is answered after the next
        `register` (in this process or another sharing the database)."""
        await self._listeners.drain(grace)


async def register(app: AsyncApp, runtime: Runtime) -> SlackRegistration:
    """Add quitbot's listeners to `app` (after the ones it has), on the app's own client.

    quitbot takes mentions of the app, direct messages and assistant threads with it, the
    replies in threads holding one of its conversations, its `/quitbot` command, its message
    shortcuts and its buttons; every other message goes on to the app's other listeners. A
    listener of the app registered *before* quitbot's and matching one of those messages
    takes it instead (Bolt runs the first that matches).

    Raises ListenerCollision if the app already takes quitbot's command, shortcuts, buttons
    or every message; ValueError if its client has no token. Learns the bot user and team
    from `auth.test`, then queues what a previous run kept but never answered.
    """
    client = app.client
    if not client.token:
        raise ValueError(
            "quitbot needs the app's bot token on app.client (AsyncApp(token=...) or "
            "client=AsyncWebClient(token=...)); apps installed on many workspaces through "
            "OAuth are not supported"
        )
    clashes = [clash async for clash in _collisions(list(app._async_listeners))]
    if clashes:
        raise ListenerCollision(
            "the Bolt app already has listeners that would take quitbot's requests: "
            + "; ".join(clashes)
            + ". Give yours another name, or register quitbot before a catch-all listener"
        )
    listeners = SlackListeners(runtime.engine, runtime.settings, client, session=client.session)
    try:
        me = await client.auth_test()
    except SlackApiError as exc:
        raise ValueError(f"Slack refused the app's token ({exc.response.get('error')})") from exc
    listeners.deps.bot_user_id = str(me.get("user_id") or "")
    listeners.deps.team_id = str(me.get("team_id") or "")
    known = {id(listener) for listener in app._async_listeners}
    listeners.attach(app, checks=[_later_clashes(app, known)])
    known |= {id(listener) for listener in app._async_listeners}
    if resumed := await listeners.inbox.resume():
        log.info("Slack: answering %d message(s) received before a restart", resumed)
    return SlackRegistration(listeners)


# --- what would shadow quitbot ------------------------------------------------------------


def _probes(messages: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    """One request of each kind quitbot listens to, as Bolt's matchers read it (`messages`:
    with a message and a mention matched only by a listener for every one)."""
    yield f"the command {COMMAND}", {"command": COMMAND, "text": "", "user_id": "U0PROBE"}
    for callback_id in SHORTCUTS:
        yield f"the shortcut {callback_id}", {"type": "message_action", "callback_id": callback_id}
    for action_id in ACTIONS:
        actions = [{"action_id": action_id, "block_id": "quitbot", "type": "button"}]
        yield f"the button {action_id}", {"type": "block_actions", "actions": actions}
    for kind in ("message", "app_mention") if messages else ():
        # No text: only a listener for every message (or a pattern matching nothing) takes it.
        event = {"type": kind, "user": "U0PROBE", "text": "", "ts": "1.000001"}
        yield f"every {kind} event", {"type": "event_callback", "event": event}


def _later_clashes(app: AsyncApp, known: set[int]) -> Middleware:
    """Listener middleware for quitbot's command, shortcuts and buttons: on the first of
    them, listeners the app got after quitbot's that they shadow are named in an error."""
    checked = False

    async def check(next_: Next) -> None:
        nonlocal checked
        if not checked:
            checked = True
            later = [each for each in app._async_listeners if id(each) not in known]
            # A message listener added later is not shadowed: quitbot's hand others on.
            async for clash in _collisions(later, messages=False):
                log.error("%s, added after quitbot's, never runs", clash)
        await next_()

    return check


async def _collisions(
    existing: list[AsyncListener], *, messages: bool = True
) -> AsyncIterator[str]:
    """Each probe one of `existing` matches, named with that listener.

    Only each listener's primary matcher (the command, callback id, action id or event type
    it was registered for) is asked: custom matchers are the app's own code, not run here.
    An app's listeners are Bolt's private `_async_listeners` (slack_bolt 1.30,
    app/async_app.py): Bolt offers no public way to see them.
    """
    for what, body in _probes(messages):
        request = AsyncBoltRequest(body=body, mode="socket_mode")
        for listener in existing:
            if await listener.matchers[0].async_matches(req=request, resp=BoltResponse(status=200)):
                yield f"{what} by {getattr(listener.ack_function, '__name__', 'a listener')}"
                break
