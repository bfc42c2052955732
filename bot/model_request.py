"""The Messages API request as the SDK builds it, built once per retry count and reused,
and its event stream split into events in C.

The anthropic SDK builds every request from nothing (`BaseClient._build_request`): it merges
its header layers, then httpx2 merges them with the client's into `Headers` and again into
the `Request`, and the URL is parsed twice: ~150 µs a request, about 6% of a Discord burst's
CPU per message (bench/README.md, "Issue 22, third round"). For quitbot's one request only
the body and the retry count ever change, so the SDK's own request is kept as a template and
each later one is that template with its own body. The SDK's retries, timeouts, errors, auth
and stream are untouched: it still sends the request, it only gets it built faster.

The SDK's SSE decoder joins the stream line by line in Python and parses each line; nearly
every event of a reply is two lines, `event:` and `data:`, so whole events are split out
with `bytes.split` and those two lines read directly; anything else is the SDK's decoder's.
`EventStream` reads those events straight off the response's body: the SDK's stream passes
every chunk up through four async generators and every event through three more.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
from anthropic import AnthropicError, AsyncAnthropic, AsyncStream, NotGiven
from anthropic._base_client import AsyncAPIClient, BaseClient
from anthropic._constants import RAW_RESPONSE_HEADER
from anthropic._models import FinalRequestOptions
from anthropic._streaming import ServerSentEvent, SSEDecoder
from anthropic.types import Message

_SDK_LOG = logging.getLogger("anthropic._base_client")  # the one that logs each request
_SDK_HOOKS = (BaseClient._build_request, BaseClient._make_sse_decoder)


def with_prebuilt_requests(client: AsyncAnthropic) -> AsyncAnthropic:
    """A copy of `client` (sharing its connection pool, credentials and settings) that
    builds a request shaped like the one before it from that one, decodes plain events
    without the SDK's line-by-line decoder, and opens an `EventStream` on a reply directly.

    Private hooks: the SDK has no public way to build its request, decode its stream or
    open it differently, so the copy's `_build_request`, `_make_sse_decoder` and
    `_process_response` are replaced (tests/bot/test_model.py fails if the SDK stops calling
    any of them, or if what they make differs from what the SDK makes). The shared client
    stays as it is for every other caller.
    """
    kind = type(client)
    if (kind._build_request, kind._make_sse_decoder) != _SDK_HOOKS:
        return client  # one that builds or decodes its own way (Bedrock's event stream) keeps it
    prebuilt = copy.copy(client)
    # An attribute of the instance shadows the SDK's method, for this copy alone.
    setattr(prebuilt, "_build_request", _Builder(prebuilt))  # noqa: B010
    setattr(prebuilt, "_make_sse_decoder", _events)  # noqa: B010
    if kind._process_response is AsyncAPIClient._process_response:
        setattr(prebuilt, "_process_response", _Opening(prebuilt))  # noqa: B010
    if client._idempotency_header is None:
        # The SDK makes a uuid4 key for every request even when no header carries it (the
        # Messages API client has none): 2 µs, and a release of the GIL that hands it to
        # the listener's or the store's thread mid-request (5.6% of the main thread's
        # samples in a Slack burst). A key that is never sent need not be unique.
        setattr(prebuilt, "_idempotency_key", _unsent_key)  # noqa: B010
    return prebuilt


def _unsent_key() -> str:
    return "unsent"


class _Opening:
    """Stands in for the SDK's `_process_response` on one client copy: a streamed reply
    asked for as `EventStream` is opened as one at once. The SDK gets there through an
    `AsyncAPIResponse`, its parse cache and a look at `stream_cls`'s type argument (12 µs
    against 1; bench/README.md, issue 22, sixth round); anything else is the SDK's."""

    def __init__(self, client: AsyncAnthropic) -> None:
        self._client = client
        self._process = client._process_response  # the SDK's own, bound before it is shadowed
        self.opened = 0  # streams opened here (tests read it)

    async def __call__(self, **asked: Any) -> Any:
        options: FinalRequestOptions = asked["options"]
        response: httpx2.Response = asked["response"]
        if (
            asked["stream"]
            and asked["stream_cls"] is EventStream
            and asked["cast_to"] is Message
            and isinstance(options.post_parser, NotGiven)
            and not response.request.headers.get(RAW_RESPONSE_HEADER)
        ):
            self.opened += 1
            return EventStream(
                cast_to=object, response=response, client=self._client, options=options
            )
        return await self._process(**asked)


@dataclass(frozen=True)
class _Template:
    """A request the SDK built, without its body."""

    method: str
    url: httpx2.URL
    headers: httpx2.Headers  # as sent, less Content-Length
    # Worked out once: httpx2 works it out for every request's headers, decoding each of
    # them, and Content-Length's digits do not change it.
    encoding: str
    extensions: dict[str, Any]

    @classmethod
    def of(cls, request: httpx2.Request) -> _Template:
        raw = [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"]
        headers = httpx2.Headers(raw)
        return cls(request.method, request.url, headers, headers.encoding, request.extensions)

    def request(self, body: bytes) -> httpx2.Request:
        # `stream=` skips httpx2 encoding the body and merging the defaults again; the
        # Content-Length it would add is added here, last, where httpx2 puts it.
        request = httpx2.Request(
            self.method,
            self.url,
            headers=self.headers,  # copied as they are, not taken apart and put together
            stream=httpx2.ByteStream(body),
            extensions=self.extensions,
        )
        request.headers.encoding = self.encoding
        request.headers["Content-Length"] = str(len(body))
        request.read()  # as httpx2 does for a body given whole: a retry can send it again
        return request


class _Builder:
    """Stands in for the SDK's `_build_request` on one client copy."""

    def __init__(self, client: AsyncAnthropic) -> None:
        self._client = client
        self._build = client._build_request  # the SDK's own, bound before it is shadowed
        # Per retry count (it is a header): the options the template was built from, less
        # their body, and the template. At most max_retries + 1 entries.
        self._templates: dict[int, tuple[dict[str, Any], _Template]] = {}
        self.reused = 0  # requests built from a template (tests read it)

    def __call__(self, options: FinalRequestOptions, *, retries_taken: int = 0) -> httpx2.Request:
        body = options.content
        if (
            type(body) is not bytes
            or self._client._idempotency_header
            or _SDK_LOG.isEnabledFor(logging.DEBUG)  # the SDK logs each request's options
        ):
            return self._build(options, retries_taken=retries_taken)
        shape = _shape(options)
        known = self._templates.get(retries_taken)
        if known is None or known[0] != shape:
            request = self._build(options, retries_taken=retries_taken)
            self._templates[retries_taken] = (shape, _Template.of(request))
            return request
        self.reused += 1
        return known[1].request(body)


def _shape(options: FinalRequestOptions) -> dict[str, Any]:
    """Everything of the options that goes into the request but the body (the idempotency
    key goes in only with an idempotency header, which the builder does not prebuild).
    Each copy of the options may hold its own `NotGiven()`, which equals no other."""
    shape = {k: NotGiven if isinstance(v, NotGiven) else v for k, v in vars(options).items()}
    shape["content"] = shape["idempotency_key"] = None
    return shape


def _events(options: FinalRequestOptions | None = None) -> _Events:
    return _Events()


class _Events:
    """An SSE decoder for one stream (the SDK's `SSEBytesDecoder`), decoding as the SDK's
    `SSEDecoder` does: whole events are split out in C, and an event of exactly an `event:`
    and a `data:` line becomes a `ServerSentEvent` without the decoder's field-by-field
    state machine. Anything else (comments, ids, retries, several data lines) goes through
    the SDK's decoder, which from then on decodes every event, as an `id` it saw lasts; a
    carriage return, which the spec allows as a line end too, hands the rest of the stream
    to the SDK's decoder whole."""

    def __init__(self) -> None:
        self._sdk = SSEDecoder()
        self._plain = True  # every event so far was two plain lines: no id or retry is set
        self.plain = 0  # events read without the SDK's decoder (tests read it)

    def iter_bytes(self, iterator: Iterator[bytes]) -> Iterator[ServerSentEvent]:
        return self._sdk.iter_bytes(iterator)

    async def aiter_bytes(self, iterator: AsyncIterator[bytes]) -> AsyncIterator[ServerSentEvent]:
        buffer = b""
        async for chunk in iterator:
            if b"\r" in chunk:
                async for sse in self._sdk.aiter_bytes(_after(buffer + chunk, iterator)):
                    yield sse
                return
            buffer += chunk
            if b"\n\n" not in buffer:
                continue
            *blocks, buffer = buffer.split(b"\n\n")
            for block in blocks:
                text = block.decode()
                fields = self.plain_fields(text)
                if fields is not None:
                    yield ServerSentEvent(event=fields[0], data=fields[1], raw=text.split("\n"))
                elif (event := self.sdk_event(text.split("\n"))) is not None:
                    yield event

    def plain_fields(self, text: str) -> tuple[str | None, str] | None:
        """The name and data of an event's text of exactly an `event:` and a `data:` line,
        while every event so far was such (counted in `plain`); else None."""
        if self._plain:
            head, _, data = text.partition("\n")
            if "\n" not in data and head.startswith("event: ") and data.startswith("data: "):
                self.plain += 1
                return head[7:], data[6:]
        return None

    def sdk_event(self, lines: list[str]) -> ServerSentEvent | None:
        """An event's lines through the SDK's decoder, which decodes every later one too."""
        self._plain = False
        for line in lines:
            self._sdk.decode(line)
        return self._sdk.decode("")  # the blank line that ends an event


async def _after(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


class EventStream(AsyncStream[object]):
    """A streamed reply's events as decoded JSON, as `AsyncStream[object]` gives them.

    The SDK's stream hands each chunk of the body up through `aiter_raw`, `aiter_bytes` (a
    content decoder and a chunker that pass it on as it is when the body is not compressed),
    its own error mapping and the decoder, and each event up through two more generators, a
    check for a tracing observer and a cast to `object`: a sixth of a model call's CPU when
    each event arrives in a chunk of its own (bench/README.md, issue 22, sixth round). Here
    one generator reads the body's chunks and yields the events, with the SDK's rules: pings
    and nameless events are skipped, an `error` event raises the SDK's error, a failed read
    its connection or timeout error, and the response is closed at the end. A compressed
    body, a traced response or another decoder than `_Events` is read by the SDK's own stream.
    """

    def __aiter__(self) -> AsyncIterator[object]:
        if self._observer is not None:
            return super().__aiter__()  # it tells the observer of every event
        return self._iterator

    async def __stream__(self) -> AsyncIterator[object]:
        response, decoder = self.response, self._decoder
        if not isinstance(decoder, _Events) or self._observer is not None or _compressed(response):
            async for item in super().__stream__():
                yield item
            return
        client, raw = self._client, response.aiter_raw()
        try:
            buffer = b""
            while True:
                # The read alone, mapped as the SDK maps it (`async_iter_response_bytes`).
                try:
                    chunk = await raw.__anext__()
                except StopAsyncIteration:
                    break
                except AnthropicError:
                    raise
                except Exception as err:
                    raise _unreadable(client, response, err) from err
                if b"\r" in chunk:
                    rest = _after(buffer + chunk, _body(response, client, raw))
                    async for event in decoder._sdk.aiter_bytes(rest):
                        if (item := self._item(event.event, event.data)) is not _SKIP:
                            yield item
                    return
                buffer += chunk
                if b"\n\n" not in buffer:
                    continue
                *blocks, buffer = buffer.split(b"\n\n")
                for block in blocks:
                    text = block.decode()
                    fields = decoder.plain_fields(text)
                    if fields is None:
                        sse = decoder.sdk_event(text.split("\n"))
                        if sse is None:
                            continue
                        fields = (sse.event, sse.data)
                    if (item := self._item(*fields)) is not _SKIP:
                        yield item
        finally:
            if sys.is_finalizing():
                response.is_closed = True  # as the SDK's stream: closing then can crash CPython
            else:
                await response.aclose()

    def _item(self, name: str | None, data: str) -> object:
        """An event's decoded data, `_SKIP` for one that carries none; raises for an error."""
        if name == "ping" or name is None:
            return _SKIP
        if name == "error":
            body: object = data
            try:
                body = json.loads(data)
                message = f"{body}"
            except Exception:
                message = data or f"Error code: {self.response.status_code}"
            raise self._client._make_status_error(message, body=body, response=self.response)
        if not data:
            return _SKIP
        return json.loads(data)


_SKIP = object()


def _compressed(response: httpx2.Response) -> bool:
    encodings = response.headers.get_list("content-encoding", split_commas=True)
    return any(value.strip().lower() != "identity" for value in encodings)


async def _body(
    response: httpx2.Response, client: Any, raw: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """The rest of the body's chunks; a failed read raises as the SDK's stream raises it."""
    while True:
        try:
            chunk = await anext(raw, None)
        except AnthropicError:
            raise
        except Exception as err:
            raise _unreadable(client, response, err) from err
        if chunk is None:
            return
        yield chunk


def _unreadable(client: Any, response: httpx2.Response, err: Exception) -> Exception:
    """The SDK's error for a body that could not be read (`async_iter_response_bytes`)."""
    if isinstance(err, httpx2.TimeoutException):
        return client._make_timeout_error(response.request, err)  # type: ignore[no-any-return]
    return client._make_connection_error(response.request, err)  # type: ignore[no-any-return]
