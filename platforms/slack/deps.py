"""What every part of the Slack adapter shares: the client, its work, and a few learnt facts."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings
from platforms.slack.render import Blocks
from platforms.slack.stream import DEFAULT_INTERVAL, Clock, StreamingSupport

log = logging.getLogger(__name__)


class Tasks:
    """Work started after Slack was acknowledged; drained on shutdown so nothing is cut off."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(self._logged(work, name), name=name)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    @staticmethod
    async def _logged(work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Slack %s failed", name)

    async def drain(self, grace: float | None = None) -> None:
        """Wait for running work, for at most `grace` seconds; then, or if this wait is
        itself cancelled, cancel what is left (a cut-short reply is recorded as such)."""
        try:
            async with asyncio.timeout(grace):
                while self._running:
                    await asyncio.gather(*self._running, return_exceptions=True)
        except (TimeoutError, asyncio.CancelledError):
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise


@dataclass
class Deps:
    settings: Settings
    client: AsyncWebClient
    session: aiohttp.ClientSession | None = None
    clock: Clock = time.monotonic
    interval: float = DEFAULT_INTERVAL
    support: StreamingSupport = field(default_factory=StreamingSupport)
    tasks: Tasks = field(default_factory=Tasks)
    bot_user_id: str = ""  # learnt from Bolt's context (auth.test) with the first event
    team_id: str = ""  # the app's workspace: a stream's recipient team when no event says

    @property
    def token(self) -> str:
        return str(self.client.token or "")

    async def ephemeral(
        self, channel: str, user: str, text: str, blocks: Blocks | None = None, thread_ts: str = ""
    ) -> None:
        """Tell one person something; logged, not raised, if Slack will not show it."""
        try:
            await self.client.chat_postEphemeral(
                channel=channel, user=user, text=text, blocks=blocks, thread_ts=thread_ts or None
            )
        except SlackApiError as exc:
            log.warning("could not show %s a notice in %s: %s", user, channel, _error(exc))

    async def permalink(self, channel: str, ts: str) -> str:
        try:
            response = await self.client.chat_getPermalink(channel=channel, message_ts=ts)
        except SlackApiError as exc:
            log.info("no permalink for %s/%s: %s", channel, ts, _error(exc))
            return ""
        return str(response.get("permalink") or "")


def _error(exc: SlackApiError) -> str:
    return str(exc.response.get("error") if exc.response is not None else exc)
