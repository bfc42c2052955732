"""The one Slack Web API client: shared HTTP session, the configured base URL, 429 handling."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import SlackSettings

Sleep = Callable[[float], Awaitable[None]]


class RetryAfter(AsyncRateLimitErrorRetryHandler):
    """On 429, wait exactly as long as Slack's `Retry-After` says, then try again.

    slack_sdk's own handler adds up to a second of jitter; waiting what Slack asked keeps
    replies prompt, and the injected `sleep` lets tests run without waiting.
    """

    def __init__(self, max_retry_count: int = 3, sleep: Sleep = asyncio.sleep) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._sleep = sleep

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        headers = {k.lower(): v for k, v in (response.headers if response else {}).items()}
        wait = (headers.get("retry-after") or ["1"])[0]  # seconds, a whole number per RFC 9110
        await self._sleep(float(wait) if wait.isdigit() else 1.0)
        state.increment_current_attempt()


class SdkLog(logging.LoggerAdapter[logging.Logger]):
    """slack_sdk's logger as the client sees it, its `level` the effective one.

    slack_sdk decides whether to write its debug lines by the logger's own level
    (`logger.level <= logging.DEBUG`), which is NOTSET (0) unless someone set it: it then
    formats every request's parameters and headers and every response's headers into lines
    that are dropped, DEBUG being off (~1% of the turns' loop in a Slack burst; bench/README.md,
    issue 22, fifth round). The effective level is read each time, so DEBUG turned on later
    still shows them."""

    @property
    def level(self) -> int:
        return self.logger.getEffectiveLevel()


def build_client(
    settings: SlackSettings, session: aiohttp.ClientSession | None, *, sleep: Sleep = asyncio.sleep
) -> AsyncWebClient:
    """The bot-token client; without `api_url`, slack_sdk's default base is left alone."""
    token = settings.bot_token.get_secret_value() if settings.bot_token else None
    return AsyncWebClient(
        token=token,
        session=session,
        retry_handlers=[AsyncConnectionErrorRetryHandler(), RetryAfter(sleep=sleep)],
        base_url=settings.api_url or AsyncWebClient.BASE_URL,
        logger=SdkLog(logging.getLogger("slack_sdk.web.async_base_client")),  # type: ignore[arg-type]
    )
