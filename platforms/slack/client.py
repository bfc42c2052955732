"""The one Slack Web API client: shared HTTP session, the configured base URL, 429 handling."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

import aiohttp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web import deprecation
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.web.internal_utils import _build_req_args, _get_url

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


class SlackWebClient(AsyncWebClient):
    """slack_sdk's Web API client without two costs its `api_call` pays on every call.

    slack_sdk joins the base URL and the method's name with `urljoin`, and checks the name
    against its deprecated methods (an environment read and three list comprehensions), on
    every call: together ~1.5% of the turns' loop in a Slack burst (bench/README.md, issue
    22, sixth round). Here the URL is joined once per base URL and method, and the check
    made once per method: a deprecated one, or a call with `auth`, goes through slack_sdk's
    own `api_call`, which warns as it always did. Everything else is that `api_call`'s.
    """

    async def api_call(
        self,
        api_method: str,
        *,
        http_verb: str = "POST",
        files: dict[str, Any] | None = None,
        data: Any = None,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> AsyncSlackResponse:
        if auth is not None or deprecated(api_method):
            return await super().api_call(
                api_method,
                http_verb=http_verb,
                files=files,
                data=data,
                params=params,
                json=json,
                headers=headers,
                auth=auth,
            )
        headers = headers or {}
        headers.update(self.headers)
        arguments = _build_req_args(
            token=self.token,
            http_verb=http_verb,
            files=files,  # type: ignore[arg-type]
            data=data,
            default_params=self.default_params,
            params=params,  # type: ignore[arg-type]
            json=json,  # type: ignore[arg-type]
            headers=headers,
            auth=auth,  # type: ignore[arg-type]
            ssl=self.ssl,
            proxy=self.proxy,
        )
        url = method_url(self.base_url, api_method)
        return await self._send(http_verb=http_verb, api_url=url, req_args=arguments)


# slack_sdk's lists of deprecated methods' prefixes (`show_deprecation_warning_if_any`);
# tests/platforms/slack/test_client.py fails if it gains or loses one.
DEPRECATED_PREFIXES = (
    *deprecation.deprecated_method_prefixes_2020_01,
    *deprecation.deprecated_method_prefixes_2023_07,
    *deprecation.deprecated_method_prefixes_2024_09,
)


# Both are pure and bounded by the methods a process calls.
method_url = cache(_get_url)


@cache
def deprecated(api_method: str) -> bool:
    """Whether slack_sdk would warn that `api_method` is deprecated."""
    return api_method.startswith(DEPRECATED_PREFIXES)


def build_client(
    settings: SlackSettings, session: aiohttp.ClientSession | None, *, sleep: Sleep = asyncio.sleep
) -> AsyncWebClient:
    """The bot-token client; without `api_url`, slack_sdk's default base is left alone."""
    token = settings.bot_token.get_secret_value() if settings.bot_token else None
    return SlackWebClient(
        token=token,
        session=session,
        retry_handlers=[AsyncConnectionErrorRetryHandler(), RetryAfter(sleep=sleep)],
        base_url=settings.api_url or AsyncWebClient.BASE_URL,
        logger=SdkLog(logging.getLogger("slack_sdk.web.async_base_client")),  # type: ignore[arg-type]
    )
