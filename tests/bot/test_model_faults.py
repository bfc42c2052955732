"""Every way a reply stream can fail mid-way, through the real SDK, on both transports.

Each failure must reach the caller as `ModelUnavailable` (so the person gets the "try
again" notice) and be logged at WARNING with its traceback for the operator. Faults the
shared FakeAnthropic can script (events it serialises itself) use it; faults below the
JSON level (a broken `data:` line, bytes that are not UTF-8) come from a tiny SSE server
here, which writes exactly the bytes it is given.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from anthropic import AsyncAnthropic, DefaultAioHttpClient

from bot.model import ClaudeModel, build_client
from bot.ports import ModelUnavailable
from bot.settings import Settings
from tests.fakes.anthropic import FakeAnthropic, hold, raw, stream_drop, stream_error, text
from tests.fakes.loopback import Loopback

KEY = "sk-ant-test-0123456789abcdef"
MODEL = "claude-test-1"
HELLO: list[dict[str, Any]] = [{"role": "user", "content": "Hello!"}]
TRANSPORTS = ["aiohttp", "httpx2"]

Event = tuple[str, Any]

_START: Event = (
    "message_start",
    {
        "type": "message_start",
        "message": {
            "id": "msg_fake_faults",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 1},
        },
    },
)


def _text_start(index: int = 0) -> Event:
    block = {"type": "text", "text": ""}
    return (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def _delta(index: Any, delta: dict[str, Any]) -> Event:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def _said(index: int, words: str) -> Event:
    return _delta(index, {"type": "text_delta", "text": words})


_TOOL_START: Event = (
    "content_block_start",
    {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "tool_use", "id": "toolu_x", "name": "note_concern", "input": {}},
    },
)

_STOP_0: Event = ("content_block_stop", {"type": "content_block_stop", "index": 0})
_TOOL_END: Event = (
    "message_delta",
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
)
_MESSAGE_STOP: Event = ("message_stop", {"type": "message_stop"})

# Each raises inside the SDK or in assembling the reply (IndexError, TypeError,
# AttributeError, ValueError...): the point is that none of these escapes as itself.
MALFORMED: dict[str, list[Event]] = {
    # IndexError: a delta for a content block that was never started (issue 9, item 3).
    "delta_for_a_missing_block": [_START, _text_start(0), _said(0, "Hi "), _said(3, "there")],
    # Content before message_start (the SDK's own helper asserted on this).
    "block_before_message_start": [_text_start(0), _said(0, "Hi")],
    # TypeError: an index that is not a number.
    "index_not_a_number": [_START, _text_start(0), _said("first", "Hi")],
    # TypeError: an event body that is not an object.
    "event_not_an_object": [_START, ("content_block_delta", [1, 2])],
    # AttributeError: message_start without its message.
    "message_start_without_message": [("message_start", {"type": "message_start"})],
    # AttributeError: message_delta without its delta.
    "message_delta_without_delta": [
        _START,
        _text_start(0),
        _said(0, "Hi"),
        _STOP_0,
        ("message_delta", {"type": "message_delta", "usage": {"output_tokens": 3}}),
        _MESSAGE_STOP,
    ],
    # ValueError: tool input that is not JSON.
    "tool_input_not_json": [
        _START,
        _TOOL_START,
        _delta(0, {"type": "input_json_delta", "partial_json": "}}{{"}),
        _STOP_0,
        _TOOL_END,
        _MESSAGE_STOP,
    ],
    # A tool input that is JSON but not an object.
    "tool_input_not_an_object": [
        _START,
        _TOOL_START,
        _delta(0, {"type": "input_json_delta", "partial_json": "[1, 2]"}),
        _STOP_0,
        _TOOL_END,
        _MESSAGE_STOP,
    ],
    # A block that skips an index: later deltas would land in the wrong block.
    "block_out_of_order": [_START, _text_start(1), _said(1, "Hi")],
}

RAW_BYTES: dict[str, bytes] = {
    # json.JSONDecodeError (a ValueError): a data line cut in half.
    "data_not_json": b'event: content_block_start\ndata: {"type": "content_blo\n\n',
    # UnicodeDecodeError (a ValueError): bytes that are not UTF-8.
    "bytes_not_utf8": (
        b"event: content_block_start\ndata: "
        b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":"\xff"}}'
        b"\n\n"
    ),
    # APIStatusError: an error event whose body is not the documented shape.
    "error_event_not_json": b"event: error\ndata: oops\n\n",
}


def _client(base_url: str, transport: str, **options: Any) -> AsyncAnthropic:
    options = {"max_retries": 0, "timeout": 5.0, **options}
    if transport == "aiohttp":
        options["http_client"] = DefaultAioHttpClient()
    return AsyncAnthropic(api_key=KEY, base_url=base_url, **options)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        yield server
        assert not server.unexpected, server.unexpected
        assert server.pending == 0


class RawSse(Loopback):
    """POST /v1/messages answers 200 with `body`, byte for byte, as an event stream."""

    def __init__(self) -> None:
        self.body = b""

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(self.body)
        await response.write_eof()
        return response


def _sse(event: Event) -> bytes:
    name, data = event
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


class Sink:
    def __init__(self) -> None:
        self.deltas: list[str] = []

    async def __call__(self, delta: str) -> None:
        self.deltas.append(delta)


def _logged_with_traceback(caplog: pytest.LogCaptureFixture) -> bool:
    """One plain WARNING line; the traceback only at DEBUG (the test sets that level)."""
    mine = [r for r in caplog.records if r.name == "bot.model"]
    warned = [r for r in mine if r.levelno == logging.WARNING]
    return (
        len(warned) == 1
        and warned[0].exc_info is None
        and any(r.levelno == logging.DEBUG and r.exc_info is not None for r in mine)
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_a_malformed_stream_makes_the_model_unavailable(
    fake: FakeAnthropic, caplog: pytest.LogCaptureFixture, transport: str, case: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.model")
    fake.add(raw(events=MALFORMED[case]))
    async with _client(fake.base_url, transport) as sdk:
        with pytest.raises(ModelUnavailable, match="could not be read"):
            await ClaudeModel(sdk, MODEL).reply(HELLO, Sink())
    assert _logged_with_traceback(caplog)


@pytest.mark.parametrize("value", [float("nan"), {1, 2}, b"bytes"])
async def test_a_context_json_cannot_carry_is_not_sent(fake: FakeAnthropic, value: object) -> None:
    # The body is encoded by ClaudeModel itself; what JSON cannot carry (NaN, a set, bytes)
    # fails as the SDK's own encoding would, as ModelUnavailable, before anything is sent.
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": "note_concern", "input": {"x": value}}
    history = [*HELLO, {"role": "assistant", "content": [tool_use]}]
    async with _client(fake.base_url, "aiohttp") as sdk:
        with pytest.raises(ModelUnavailable, match="JSON cannot carry"):
            await ClaudeModel(sdk, MODEL).reply(history, Sink())
    assert fake.requests == []


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("case", sorted(RAW_BYTES))
async def test_unreadable_bytes_make_the_model_unavailable(
    caplog: pytest.LogCaptureFixture, transport: str, case: str
) -> None:
    async with RawSse() as server:
        server.body = _sse(_START) + RAW_BYTES[case]
        async with _client(server.base_url, transport) as sdk:
            with pytest.raises(ModelUnavailable):
                await ClaudeModel(sdk, MODEL).reply(HELLO, Sink())
    assert any(r.levelno == logging.WARNING for r in caplog.records)


async def test_the_missing_block_case_is_an_index_error_in_the_sdk(fake: FakeAnthropic) -> None:
    # Guards the test above against an SDK that stops raising: the original bug's type.
    fake.add(raw(events=MALFORMED["delta_for_a_missing_block"]))
    async with _client(fake.base_url, "aiohttp") as sdk:
        with pytest.raises(ModelUnavailable) as caught:
            await ClaudeModel(sdk, MODEL).reply(HELLO, Sink())
    assert isinstance(caught.value.__cause__, IndexError)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_error_event_mid_stream(fake: FakeAnthropic, transport: str) -> None:
    fake.add(stream_error(text="Partial", kind="api_error"))
    sink = Sink()
    async with _client(fake.base_url, transport) as sdk:
        with pytest.raises(ModelUnavailable, match="broke off"):
            await ClaudeModel(sdk, MODEL).reply(HELLO, sink)
    assert "".join(sink.deltas) == "Partial"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_connection_dropped_mid_stream(
    fake: FakeAnthropic, caplog: pytest.LogCaptureFixture, transport: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.model")
    fake.add(stream_drop(text="Half an"))
    async with _client(fake.base_url, transport) as sdk:
        with pytest.raises(ModelUnavailable, match="connection to the Anthropic API broke off"):
            await ClaudeModel(sdk, MODEL).reply(HELLO, Sink())
    assert _logged_with_traceback(caplog)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_stream_stalls_mid_reply(fake: FakeAnthropic, transport: str) -> None:
    stalled = asyncio.Event()  # never set: the server stops after the first delta
    fake.add(hold(text("one two three"), midway=stalled))
    sink = Sink()
    try:
        async with _client(fake.base_url, transport, timeout=0.2) as sdk:
            with pytest.raises(ModelUnavailable, match="stopped sending"):
                await ClaudeModel(sdk, MODEL).reply(HELLO, sink)
    finally:
        stalled.set()
    assert sink.deltas == ["one "]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_failing_sink_is_not_the_models_fault(fake: FakeAnthropic, transport: str) -> None:
    class Broken(RuntimeError):
        pass

    async def on_text(delta: str) -> None:
        raise Broken("the platform could not show it")

    fake.add(text("hello there"))
    async with _client(fake.base_url, transport) as sdk:
        with pytest.raises(Broken):
            await ClaudeModel(sdk, MODEL).reply(HELLO, on_text)


async def test_cancellation_passes_through(fake: FakeAnthropic) -> None:
    midway = asyncio.Event()
    first = asyncio.Event()
    fake.add(hold(text("one two three"), midway=midway))

    async def on_text(delta: str) -> None:
        first.set()

    async with _client(fake.base_url, "aiohttp") as sdk:
        task = asyncio.create_task(ClaudeModel(sdk, MODEL).reply(HELLO, on_text))
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    midway.set()


async def test_build_client_uses_the_aiohttp_transport_and_keeps_the_sdk_settings(
    fake: FakeAnthropic,
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        anthropic_api_key=KEY,
        anthropic_base_url=fake.base_url,
        model_max_retries=3,
        model_timeout_seconds=9.0,
    )
    fake.add(text("ok"))
    async with build_client(settings) as sdk:
        assert isinstance(sdk._client, DefaultAioHttpClient)
        assert (sdk.max_retries, sdk.timeout) == (3, 9.0)
        answer = await ClaudeModel(sdk, MODEL).reply(HELLO, Sink())
    assert answer.content == [{"type": "text", "text": "ok"}]


async def test_a_stream_cut_before_message_stop_is_incomplete(fake: FakeAnthropic) -> None:
    fake.add(raw(events=[_START, _text_start(0), _said(0, "Hi"), _STOP_0, _TOOL_END]))
    async with _client(fake.base_url, "aiohttp") as sdk:
        with pytest.raises(ModelUnavailable, match="before the reply was complete"):
            await ClaudeModel(sdk, MODEL).reply(HELLO, Sink())


async def test_blocks_and_events_we_do_not_use_are_passed_over(fake: FakeAnthropic) -> None:
    thinking = {"type": "thinking", "thinking": "", "signature": ""}
    fake.add(
        raw(
            events=[
                _START,
                ("ping", {"type": "ping"}),
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": thinking},
                ),
                _delta(0, {"type": "thinking_delta", "thinking": "hmm"}),
                _STOP_0,
                _text_start(1),
                _said(1, "Hello"),
                ("content_block_stop", {"type": "content_block_stop", "index": 1}),
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn"},
                        "usage": {"output_tokens": 2},
                    },
                ),
                _MESSAGE_STOP,
            ]
        )
    )
    sink = Sink()
    async with _client(fake.base_url, "aiohttp") as sdk:
        answer = await ClaudeModel(sdk, MODEL).reply(HELLO, sink)
    assert answer.content == [{"type": "text", "text": "Hello"}]
    assert sink.deltas == ["Hello"]
