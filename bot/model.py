"""Claude behind the `Model` port: streaming, the two tools, prompt caching, plain errors.

One `AsyncAnthropic` client is built at start-up (`build_client`) and shared: building one
per message costs tens of milliseconds. It runs on the SDK's aiohttp transport, which costs
far less CPU per streamed reply than the default httpx2 pool once many replies stream at
once (see bench/README.md). The SDK retries 408/409/429/5xx/529 itself; whatever else goes
wrong while a reply streams (the API, the transport, or a stream the SDK cannot parse)
becomes `ModelUnavailable` with a message fit for a log line, so the person is always told.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import anthropic
import httpx2
from anthropic import AsyncAnthropic, DefaultAioHttpClient
from anthropic._models import FinalRequestOptions

from bot.context import Context
from bot.model_request import EventStream, with_prebuilt_requests
from bot.ports import ModelReply, ModelUnavailable, TextSink, Usage
from bot.prompt import system_prompt
from bot.settings import Settings
from bot.tools import END_CONVERSATION, TOOLS

log = logging.getLogger(__name__)

_CACHE = {"type": "ephemeral"}
# The SDK's own encoding (`anthropic._utils._json.openapi_dumps`): UTF-8, compact, no NaN.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_CACHE_FIELD = f'"cache_control":{_ENCODER.encode(_CACHE)}'  # as _with_breakpoint adds it


def build_client(settings: Settings) -> AsyncAnthropic:
    """The one client for the process; without a key the SDK looks for other credentials.

    The SDK's own timeout and retries stay in charge; only the transport underneath is
    aiohttp's (its session is opened on the first request, inside the running loop).
    """
    key = settings.anthropic_api_key
    try:
        return AsyncAnthropic(
            api_key=key.get_secret_value() if key is not None else None,
            base_url=settings.anthropic_base_url,
            max_retries=settings.model_max_retries,
            timeout=settings.model_timeout_seconds,
            http_client=DefaultAioHttpClient(),
        )
    except anthropic.AnthropicError as exc:  # e.g. a broken credentials profile on disk
        raise ModelUnavailable(f"no usable Anthropic credentials: {exc}") from exc


class ClaudeModel:
    """Implements `bot.ports.Model` with the Messages API."""

    def __init__(
        self,
        client: AsyncAnthropic,
        model: str,
        *,
        max_tokens: int = 1024,
        system: str | None = None,
        tools: Sequence[dict[str, Any]] = TOOLS,
    ) -> None:
        self._client = client
        self._model = model
        self._max_tokens = max_tokens
        self._system = system if system is not None else system_prompt()
        # Built once: they are the same in every request (and the cached part of it).
        self._system_blocks = [{"type": "text", "text": self._system, "cache_control": _CACHE}]
        self._tool_blocks = _cache_last_tool(list(tools))
        # The body up to its messages, encoded once: `encoded` adds the messages after it.
        head = {k: v for k, v in self.request(()).items() if k != "messages"}
        self._body_head = _ENCODER.encode(head)[:-1] + ',"messages":['
        # What `client.post` builds for every request, built once: its construction
        # deep-copies every default of the options model, which cost as much as encoding
        # the body (bench/README.md, issue 22). Each request copies it with its own body.
        self._options = FinalRequestOptions.construct(method="post", url="/v1/messages")
        # The same request every time but for its body: built from the previous one
        # (bot/model_request.py). `check` and everyone else use the client as it was given.
        self._posting = with_prebuilt_requests(client)

    @classmethod
    def from_settings(
        cls,
        client: AsyncAnthropic,
        settings: Settings,
        tools: Sequence[dict[str, Any]] = TOOLS,
    ) -> ClaudeModel:
        return cls(
            client,
            settings.model,
            max_tokens=settings.max_tokens,
            system=system_prompt(settings.system_prompt_extra),
            tools=tools,
        )

    async def reply(self, messages: Sequence[dict[str, Any]], on_text: TextSink) -> ModelReply:
        """Stream one response; text after an `end_conversation` call is neither passed on
        nor returned, because after an end the model says nothing more."""
        self._require_credentials()
        try:
            body = self.encoded(messages)
        except (TypeError, ValueError) as exc:
            # Our fault, not the API's: nothing was sent. Still ModelUnavailable, as it was
            # when the SDK encoded the body, so the turn is recorded and the person told.
            log.warning("the context could not be encoded", exc_info=exc)
            raise ModelUnavailable(
                f"the conversation holds what JSON cannot carry ({type(exc).__name__}: {exc})"
            ) from exc
        collector = _Collector(on_text)
        connected = False
        try:
            # The raw event stream, not the SDK's `messages.stream` helper: the helper
            # rebuilds a snapshot of the whole message and a pydantic event for every delta,
            # which doubled the CPU cost of a streamed reply (bench/README.md). Each event
            # stays the JSON object it arrived as (`object`: the SDK builds no model of it),
            # which spared ~5% of the bot's CPU in a burst; the collector checks its shape.
            # `EventStream` reads them off the body with fewer layers in between.
            stream = await self._posting.request(
                anthropic.types.Message,
                self._options.model_copy(update={"content": body}),
                stream=True,
                stream_cls=EventStream,
            )
            connected = True
            async with stream:
                return await collector.collect(stream)
        except _SinkFailed as failed:
            # The adapter could not show the text: not the model's fault, so not hidden
            # behind "try again".
            raise failed.error from None
        except ModelUnavailable as exc:  # the stream ended early: said plainly already
            log.warning("model unavailable: %s", exc)
            raise
        except Exception as exc:
            # Anything else the stream raises: the API's errors, the transport's (httpx2 or
            # aiohttp), and IndexError/KeyError/TypeError/ValueError/AttributeError from an
            # event that cannot be applied. Cancellation is a BaseException and passes through.
            raise self._unavailable(exc, _Progress(connected, collector.began)) from exc

    def request(self, messages: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The Messages API request body (without `stream`), with up to four cache
        breakpoints: the system prompt, the last tool (caching all tools), and two in the
        conversation (see `_cache_prefix`)."""
        return {
            "model": self._model,
            "max_tokens": self._max_tokens,
            "system": self._system_blocks,
            "tools": self._tool_blocks,
            "messages": _cache_prefix(messages),
        }

    def encoded(self, messages: Sequence[dict[str, Any]]) -> bytes:
        """The streaming request's body as sent, encoded as the SDK encodes it.

        Encoded here and posted through the SDK's client (its retries, errors and stream
        stay in charge) rather than through `messages.create`, which deep-copies the whole
        body before encoding it and keeps that copy for as long as the reply streams
        (`AsyncStream._options`). With a hundred replies under way that copy was a third of
        what each one held, and the copying a tenth of the CPU (bench/README.md).
        """
        context = messages if isinstance(messages, Context) else Context(messages)
        items = context.json_items(_ENCODER.encode)  # stored text as it is (see Context)
        for index in _breakpoints(len(items)):
            marked = context.marked_json(index, _CACHE_FIELD)
            items[index] = marked or _ENCODER.encode(_with_breakpoint(context[index]))
        return (self._body_head + ",".join(items) + '],"stream":true}').encode()

    async def check(self) -> str:
        """Prove the key and the model id work with one cheap call (no tokens spent)."""
        self._require_credentials()
        try:
            info = await self._client.models.retrieve(self._model)
        except Exception as exc:
            raise self._unavailable(exc) from exc
        return f"Claude model {info.id} ({info.display_name}) answers with this key"

    def _require_credentials(self) -> None:
        # Without any credential the SDK raises a TypeError deep inside the request.
        client = self._client
        if not (client.api_key or client.auth_token or getattr(client, "credentials", None)):
            raise ModelUnavailable("no Anthropic API key is configured; set ANTHROPIC_API_KEY")

    def _unavailable(
        self, exc: BaseException, progress: _Progress | None = None
    ) -> ModelUnavailable:
        reason = _reason(exc, self._model, str(self._client.base_url), progress or _Progress())
        key = self._client.api_key
        if key and len(key) >= 8:
            reason = reason.replace(key, "[API key]")
        log.warning("model unavailable: %s", reason)
        # The traceback is for operators who ask for it: a malformed stream is only
        # diagnosable with it, and at WARNING it would bury the one line that matters.
        # API status errors are plain enough without one.
        if not isinstance(exc, anthropic.APIStatusError):
            log.debug("model unavailable, the cause:", exc_info=exc)
        return ModelUnavailable(reason)


# --- the stream --------------------------------------------------------------------------


class _Collector:
    """Assembles one response from the raw stream events, passing text on as it comes.

    Text after an `end_conversation` tool_use is neither passed on nor kept (the person
    never sees it), empty text blocks are dropped, and only text and tool_use blocks are
    kept: that is what goes back to the API next time.
    """

    def __init__(self, on_text: TextSink) -> None:
        self._on_text = on_text
        self._blocks: list[dict[str, Any] | None] = []  # None: a block type we do not keep
        self._parts: dict[int, list[str]] = {}  # text pieces or partial tool JSON, per block
        self._ending = False
        self._started = False
        self.began = False  # any event arrived: the reply had begun
        self._stop_reason: str | None = None
        self._stop_details: dict[str, Any] | None = None
        self._usage = Usage()

    async def collect(self, events: AsyncIterator[Any]) -> ModelReply:
        """`events`: the stream's events as decoded JSON; a field of the wrong type raises
        (KeyError, TypeError, AttributeError...), which the caller reports as the API's."""
        stopped = False
        async for event in events:
            self.began = True
            kind = event["type"]
            if kind == "content_block_delta":
                await self._delta(event["index"], event["delta"])
            elif kind == "content_block_start":
                self._require_start()
                self._start_block(event["index"], event["content_block"])
            elif kind == "message_start":
                if not isinstance(event.get("message"), dict) or self._started:
                    raise _Malformed("a message_start without a message, or a second one")
                self._started = True
                self._count(event["message"].get("usage"))
            elif kind == "message_delta":
                self._require_start()
                delta = event["delta"]
                self._stop_reason = _text_or_none(delta.get("stop_reason"))
                details = delta.get("stop_details")
                self._stop_details = dict(details) if details is not None else None
                self._count(event.get("usage"))
            elif kind == "message_stop":
                stopped = True
        if not stopped or self._stop_reason is None:
            raise ModelUnavailable("the reply stream ended before the reply was complete")
        return ModelReply(self._content(), self._stop_reason, self._stop_details, self._usage)

    def _count(self, usage: Any) -> None:
        """Token counts, for metrics: message_start has them all, message_delta the final
        output (and, from newer APIs, the rest again); a field left out keeps its value."""
        if usage is None:
            return
        old = self._usage

        def field(name: str, before: int) -> int:
            value = usage.get(name)
            return before if value is None else int(value)

        self._usage = Usage(
            field("input_tokens", old.input_tokens),
            field("output_tokens", old.output_tokens),
            field("cache_read_input_tokens", old.cache_read_tokens),
            field("cache_creation_input_tokens", old.cache_write_tokens),
        )

    def _require_start(self) -> None:
        if not self._started:
            raise _Malformed("content arrived before message_start")

    def _start_block(self, index: int, block: Any) -> None:
        if index != len(self._blocks):
            raise _Malformed(f"content block {index} started out of order")
        kept: dict[str, Any] | None = None
        kind = block["type"]
        if kind == "tool_use":
            kept = {
                "type": "tool_use",
                "id": _text(block["id"]),
                "name": _text(block["name"]),
                "input": block.get("input", {}),
            }
            self._ending = self._ending or block["name"] == END_CONVERSATION
        elif kind == "text" and not self._ending:
            kept = {"type": "text", "text": _text(block.get("text", ""))}
        self._blocks.append(kept)
        self._parts[index] = []

    async def _delta(self, index: int, delta: Any) -> None:
        block = self._blocks[index]
        if block is None:
            return
        kind = delta["type"]
        if kind == "text_delta" and block["type"] == "text":
            text = _text(delta["text"])
            self._parts[index].append(text)
            if text:
                try:
                    await self._on_text(text)
                except Exception as exc:
                    raise _SinkFailed(exc) from exc
        elif kind == "input_json_delta" and block["type"] == "tool_use":
            self._parts[index].append(_text(delta["partial_json"]))

    def _content(self) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        for index, block in enumerate(self._blocks):
            if block is None:
                continue
            parts = "".join(self._parts[index])
            if block["type"] == "text":
                text = block["text"] + parts
                if text:
                    content.append({"type": "text", "text": text})
                continue
            if parts:
                block["input"] = json.loads(parts)  # a ValueError is the API's fault
            if not isinstance(block["input"], dict):
                raise _Malformed(f"tool input that is not an object: {parts[:100]!r}")
            content.append(block)
        return content


def _text(value: Any) -> str:
    """A string field of an event; any other JSON type is the API's fault."""
    if not isinstance(value, str):
        raise _Malformed(f"a string field holds {type(value).__name__}")
    return value


def _text_or_none(value: Any) -> str | None:
    return None if value is None else _text(value)


# --- caching -----------------------------------------------------------------------------


def _cache_last_tool(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not tools:
        return []
    return [*tools[:-1], {**tools[-1], "cache_control": _CACHE}]


def _cache_prefix(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy with cache breakpoints on the newest message, which writes this request's
    prefix for the next one, and on the message three from the end, where the previous
    request ended (each request adds an assistant message and a user one), so that one is
    read even when a turn added more blocks than the API looks back over. The caller's
    messages are never changed (they are the stored conversation)."""
    copied = list(messages)
    for index in _breakpoints(len(copied)):
        copied[index] = _with_breakpoint(copied[index])
    return copied


def _breakpoints(count: int) -> set[int]:
    return {index for index in (count - 1, count - 3) if index >= 0}


def _with_breakpoint(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, str):
        blocks: list[dict[str, Any]] = [{"type": "text", "text": content}]
    elif isinstance(content, list) and content:
        blocks = list(content)
    else:
        return message
    blocks[-1] = {**blocks[-1], "cache_control": _CACHE}
    return {**message, "content": blocks}


# --- errors ------------------------------------------------------------------------------


class _Malformed(ValueError):
    """The stream's events do not make up a message."""


class _SinkFailed(Exception):
    """`on_text` raised: kept apart from the stream's own failures."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class _Progress:
    """How far a request had come when it failed: the failure is named from this, not from
    the exception's class (anthropic 2.17 raises its own APIConnectionError and
    APITimeoutError for a stream that breaks off midway; earlier versions let the
    transport's error through)."""

    connected: bool = False  # the API answered 200 and the stream opened
    midway: bool = False  # an event of the reply had arrived


_TIMEOUTS = (anthropic.APITimeoutError, httpx2.TimeoutException, TimeoutError)
_BROKEN_LINKS = (
    anthropic.APIConnectionError,
    httpx2.HTTPError,
    httpx2.StreamError,
    aiohttp.ClientError,
    OSError,
)


def _reason(exc: BaseException, model: str, base_url: str, progress: _Progress) -> str:
    if isinstance(exc, _TIMEOUTS) and progress.midway:
        return f"the Anthropic API stopped sending in the middle of a reply ({base_url})"
    if isinstance(exc, _BROKEN_LINKS) and progress.connected and not isinstance(exc, _TIMEOUTS):
        return f"the connection to the Anthropic API broke off ({type(exc).__name__})"
    match exc:
        case anthropic.AuthenticationError():
            return "the Anthropic API rejected the API key (401); check ANTHROPIC_API_KEY"
        case anthropic.PermissionDeniedError():
            return f"this API key may not use {model} (403 permission denied)"
        case anthropic.NotFoundError():
            return f"the Anthropic API does not know the model {model!r} (404); check QUITBOT_MODEL"
        case anthropic.RateLimitError():
            return "the Anthropic API is rate limiting us (429), even after retrying"
        case anthropic.APIStatusError(status_code=200):
            # An SSE error event: the stream had started, so the SDK did not retry.
            return f"the reply stream broke off ({exc.type or 'error'}: {exc.api_message or ''})"
        case anthropic.APIStatusError(status_code=529):
            return "the Anthropic API is overloaded (529), even after retrying"
        case anthropic.APIStatusError() if exc.status_code >= 500:
            return f"the Anthropic API failed ({exc.status_code}), even after retrying"
        case anthropic.APIStatusError():
            detail = exc.api_message or exc.type or "no detail"
            return f"the Anthropic API refused the request ({exc.status_code}): {detail}"
        case _ if isinstance(exc, _TIMEOUTS):
            return f"the Anthropic API did not answer in time ({base_url})"
        case _ if isinstance(exc, _BROKEN_LINKS):
            return f"could not connect to the Anthropic API at {base_url}"
        case anthropic.AnthropicError():
            return f"the Anthropic API could not be used: {type(exc).__name__}: {exc}"
    # The SDK could not apply an event of the stream to the reply (IndexError, KeyError,
    # TypeError, ValueError, AttributeError, AssertionError...): the API's fault, not ours.
    detail = str(exc)[:200]
    return f"the Anthropic API sent a reply that could not be read ({type(exc).__name__}: {detail})"
