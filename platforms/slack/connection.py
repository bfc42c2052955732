"""Whether Slack can reach quitbot over Socket Mode, as slack_sdk's own client sees it.

Slack delivers events on a connection only after it sent `hello` on it, warns with a
`disconnect` message before it closes one, and replaces connections every few hours
(https://api.slack.com/apis/socket-mode). slack_sdk's aiohttp client reconnects by itself and
tells nobody; this client reports each of those moments, so /readyz follows the connection.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from logging import Logger
from typing import Any

from aiohttp import ClientError, WSMessage
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

# How often the SDK pings and checks its connection (Bolt's default): a connection that drops
# without a close frame is noticed, and replaced, at the next check.
PING_SECONDS = 10.0

Report = Callable[[bool], None]

# apps.connections.open errors worth retrying; any other means the app token is refused
# (invalid_auth, not_authed, not_allowed_token_type for a bot token, token_revoked, ...):
# https://docs.slack.dev/reference/methods/apps.connections.open
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class ReportingSocketClient(SocketModeClient):
    """slack_sdk's aiohttp Socket Mode client, which says whether it can receive events.

    Connected from Slack's `hello` on a connection until the SDK starts another one, Slack
    says `disconnect`, or the connection closes. A connection that just drops (no close
    frame) reaches none of the SDK's listeners; its monitor replaces it at the next ping,
    and every replacement starts by asking Slack for a new URL, so that is where it shows.
    """

    def __init__(
        self,
        app_token: str,
        web_client: AsyncWebClient,
        report: Report,
        *,
        ping_interval: float = PING_SECONDS,
        logger: Logger | None = None,
    ) -> None:
        super().__init__(
            app_token,
            logger=logger,
            web_client=web_client,
            ping_interval=ping_interval,
            on_message_listeners=[self._on_message],
            on_close_listeners=[self._on_lost],
            on_error_listeners=[self._on_lost],
        )
        self._report = report

    async def connect(self) -> None:
        """The SDK's connect, which retries every failure forever (a refused app token
        included, so it would never be said); here the first URL is asked for once first,
        and a refused token raises its SlackApiError."""
        if self.wss_uri is None and not self.closed:
            try:
                self.wss_uri = await self.issue_new_wss_url()
            except SlackApiError as exc:
                if exc.response.get("error") not in TRANSIENT_ERRORS:
                    raise
            except (ClientError, TimeoutError):
                pass  # Slack unreachable for now: the SDK's loop retries
        await super().connect()  # type: ignore[no-untyped-call]

    async def issue_new_wss_url(self) -> str:
        self._report(False)  # nothing is delivered until the new connection's hello
        return str(await super().issue_new_wss_url())

    async def _on_message(self, message: WSMessage) -> None:
        control = _control(message.data)
        if control.get("type") == "hello":
            count = control.get("num_connections")
            log.info("Slack: connected in Socket Mode (%s connection(s) open for the app)", count)
            self._report(True)
        elif control.get("type") == "disconnect":
            reason = control.get("reason")
            # link_disabled: Socket Mode was turned off in the app's settings; no new
            # connection will be granted until it is on again.
            level = logging.WARNING if reason == "link_disabled" else logging.INFO
            log.log(level, "Slack: closing this Socket Mode connection (%s)", reason)
            self._report(False)

    async def _on_lost(self, message: WSMessage) -> None:
        # The SDK runs these after its own reconnect: an open session is already the next
        # one, which reported itself when it asked for its URL.
        session = self.current_session
        if session is None or session.closed:
            log.warning("Slack: the Socket Mode connection was lost (%s)", message.type.name)
            self._report(False)


def _control(data: Any) -> dict[str, Any]:
    """A Socket Mode message as a JSON object; anything else as an empty one."""
    try:
        message = json.loads(data)
    except (TypeError, ValueError):
        return {}
    return message if isinstance(message, dict) else {}
