"""ClaudeModel through the real anthropic SDK against the loopback FakeAnthropic."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
import pytest_asyncio
from anthropic import AsyncAnthropic, AsyncStream, DefaultAioHttpClient
from anthropic._base_client import BaseClient
from anthropic._models import FinalRequestOptions
from anthropic._streaming import SSEDecoder
from anthropic._utils._json import openapi_dumps
from hypothesis import given
from hypothesis import strategies as st

from bot.context import build_context
from bot.conversation import ContextEntry
from bot.model import ClaudeModel, build_client
from bot.model_request import EventStream, _Events, with_prebuilt_requests
from bot.ports import Model, ModelUnavailable
from bot.prompt import system_prompt
from bot.settings import Settings
from bot.store.rows import encode_json
from bot.tools import TOOLS
from tests.fakes.anthropic import (
    FakeAnthropic,
    blocks,
    error,
    hold,
    raw,
    refusal,
    stream_drop,
    stream_error,
    text,
    tool,
    tool_id,
    tools,
)

KEY = "sk-ant-test-0123456789abcdef"
MODEL = "claude-test-1"
HELLO: list[dict[str, Any]] = [{"role": "user", "content": "Hello!"}]


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        yield server
        assert not server.unexpected, server.unexpected
        assert server.pending == 0, "scripted responses were left unused"


def _client(fake: FakeAnthropic, transport: str = "aiohttp", **options: Any) -> AsyncAnthropic:
    options = {"max_retries": 2, "timeout": 5.0, **options}
    if transport == "aiohttp":
        options["http_client"] = DefaultAioHttpClient()
    return AsyncAnthropic(api_key=KEY, base_url=fake.base_url, **options)


# Production runs on the aiohttp transport (build_client); the SDK's default httpx2 one
# must behave the same, so every test here runs on both.
@pytest_asyncio.fixture(params=["aiohttp", "httpx2"])
async def client(
    fake: FakeAnthropic, request: pytest.FixtureRequest
) -> AsyncIterator[AsyncAnthropic]:
    async with _client(fake, request.param) as sdk:
        yield sdk


@pytest.fixture
def model(client: AsyncAnthropic) -> ClaudeModel:
    return ClaudeModel(client, MODEL, max_tokens=321)


class Sink:
    """Collects the text deltas the model passes on."""

    def __init__(self) -> None:
        self.deltas: list[str] = []

    async def __call__(self, delta: str) -> None:
        self.deltas.append(delta)

    @property
    def text(self) -> str:
        return "".join(self.deltas)


def _breakpoints(value: Any) -> int:
    if isinstance(value, dict):
        own = 1 if "cache_control" in value else 0
        return own + sum(_breakpoints(v) for v in value.values())
    if isinstance(value, list):
        return sum(_breakpoints(v) for v in value)
    return 0


def test_claude_model_is_a_model(model: ClaudeModel) -> None:
    port: Model = model  # mypy checks the protocol; this line keeps the check honest
    assert port is model


# --- streaming and assembly --------------------------------------------------------------


async def test_text_is_streamed_in_pieces(fake: FakeAnthropic, model: ClaudeModel) -> None:
    fake.add(text("Hello there, how can I help you today?"))
    sink = Sink()
    answer = await model.reply(HELLO, sink)
    assert len(sink.deltas) > 1
    assert sink.text == "Hello there, how can I help you today?"
    assert answer.content == [{"type": "text", "text": "Hello there, how can I help you today?"}]
    assert answer.stop_reason == "end_turn"
    assert not answer.refused
    assert answer.tool_uses == []


async def test_body_is_encoded_as_the_sdk_encodes_it(
    fake: FakeAnthropic, model: ClaudeModel
) -> None:
    # The model posts its own encoding (`ClaudeModel.encoded`): it must be the SDK's byte
    # for byte (UTF-8 kept, compact), or a prompt cache keyed on the request would miss.
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": 'Grüße, 日本 🙂 "quoted"'}]}
    ]
    fake.add(text("hi"))
    await model.reply(messages, Sink())
    expected = openapi_dumps({**model.request(messages), "stream": True})
    assert model.encoded(messages) == expected
    assert fake.requests[0] == json.loads(expected)
    assert fake.request_headers[0]["content-type"] == "application/json"


async def test_stored_text_is_sent_as_the_sdk_would_encode_it(
    fake: FakeAnthropic, model: ClaudeModel
) -> None:
    # A context of stored text (bot/context.Context), tool results of the turn after it,
    # cache breakpoints on two of its messages: still the SDK's encoding, byte for byte.
    apis = [
        [{"role": "user", "content": [{"type": "text", "text": 'Grüße "x"\n\\'}]}],
        [{"role": "assistant", "content": [{"type": "text", "text": "日本 🙂"}]}],
        [{"role": "user", "content": [{"type": "text", "text": "go on"}]}],
    ]
    stored = [ContextEntry(n + 1, api[0]["role"], encode_json(api)) for n, api in enumerate(apis)]
    use = {"type": "tool_use", "id": "t1", "name": "note_concern", "input": {}}
    context = build_context(stored, 10_000).plus(
        [
            {"role": "assistant", "content": [use]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
        ]
    )
    fake.add(text("hi"))
    await model.reply(context, Sink())
    expected = openapi_dumps({**model.request(list(context)), "stream": True})
    assert model.encoded(context) == expected
    assert fake.requests[0] == json.loads(expected)
    marked = [m for m in fake.requests[0]["messages"] if "cache_control" in m["content"][-1]]
    assert len(marked) == 2


@given(st.lists(st.text(), min_size=1, max_size=6))
def test_breakpoints_on_stored_text_are_the_sdks_encoding(texts: list[str]) -> None:
    # Both breakpoints on stored plain messages, whatever their text: marked without being
    # decoded, and still exactly what encoding the decoded messages gives.
    apis = [
        [{"role": "user" if n % 2 == 0 else "assistant", "content": [{"type": "text", "text": t}]}]
        for n, t in enumerate(texts)
    ]
    stored = [ContextEntry(n + 1, api[0]["role"], encode_json(api)) for n, api in enumerate(apis)]
    context = build_context(stored, 1_000_000)
    assert all(context.marked_json(i, '"x":1') is not None for i in range(len(context)))
    model = _OFFLINE_MODEL
    assert model.encoded(context) == openapi_dumps({**model.request(list(context)), "stream": True})


# Built once: a client costs tens of milliseconds, and it is never asked anything here.
_OFFLINE_MODEL = ClaudeModel(AsyncAnthropic(api_key="k", base_url="http://127.0.0.1:9"), MODEL)


async def test_request_is_streamed_with_model_tools_and_system(
    fake: FakeAnthropic, model: ClaudeModel
) -> None:
    fake.add(text("hi"))
    await model.reply(HELLO, Sink())
    body = fake.requests[0]
    assert body["stream"] is True
    assert body["model"] == MODEL
    assert body["max_tokens"] == 321
    assert [t["name"] for t in body["tools"]] == ["note_concern", "end_conversation"]
    assert body["system"][0]["text"] == system_prompt()


async def test_tool_use_is_assembled(fake: FakeAnthropic, model: ClaudeModel) -> None:
    call_id = tool_id()
    concern = {"kind": "harmful_request", "note": "asked for a weapon recipe"}
    fake.add(tool("note_concern", concern, text="I can't help with that.", id=call_id))
    sink = Sink()
    answer = await model.reply(HELLO, sink)
    assert sink.text == "I can't help with that."
    assert answer.stop_reason == "tool_use"
    assert answer.content == [
        {"type": "text", "text": "I can't help with that."},
        {"type": "tool_use", "id": call_id, "name": "note_concern", "input": concern},
    ]
    assert answer.tool_uses == [answer.content[1]]


async def test_several_tool_uses(fake: FakeAnthropic, model: ClaudeModel) -> None:
    fake.add(
        tools(
            [
                ("note_concern", {"kind": "abuse", "note": "insults"}),
                ("note_concern", {"kind": "self_harm_risk", "note": "mentions hurting self"}),
            ]
        )
    )
    answer = await model.reply(HELLO, Sink())
    kinds = [use["input"]["kind"] for use in answer.tool_uses]
    assert kinds == ["abuse", "self_harm_risk"]
    assert len({use["id"] for use in answer.tool_uses}) == 2


async def test_assembled_content_can_be_sent_back(fake: FakeAnthropic, model: ClaudeModel) -> None:
    # The fake validates the tool loop as the real API does: a broken round trip is a 400.
    fake.add(tool("note_concern", {"kind": "abuse", "note": "n"}, text="Let's move on."))
    fake.add(text("Sure, what else?"))
    answer = await model.reply(HELLO, Sink())
    results = [
        {"type": "tool_result", "tool_use_id": use["id"], "content": "Noted."}
        for use in answer.tool_uses
    ]
    history = [*HELLO, {"role": "assistant", "content": answer.content}]
    second = await model.reply([*history, {"role": "user", "content": results}], Sink())
    assert second.content == [{"type": "text", "text": "Sure, what else?"}]
    assert fake.requests[1]["messages"][1]["content"] == answer.content


async def test_refusal_is_returned_not_raised(fake: FakeAnthropic, model: ClaudeModel) -> None:
    fake.add(refusal(explanation="Refused for safety.", category="cyber"))
    sink = Sink()
    answer = await model.reply(HELLO, sink)
    assert answer.refused
    assert answer.stop_reason == "refusal"
    assert answer.content == []
    assert answer.stop_details is not None
    assert answer.stop_details["category"] == "cyber"
    assert answer.stop_details["explanation"] == "Refused for safety."
    assert sink.deltas == []


async def test_text_after_end_conversation_is_suppressed(
    fake: FakeAnthropic, model: ClaudeModel
) -> None:
    end: dict[str, Any] = {"type": "tool_use", "id": tool_id(), "name": "end_conversation"}
    end["input"] = {"reason": "persistent_abuse", "explanation": "kept insulting after warning"}
    fake.add(
        blocks(
            [
                {"type": "text", "text": "I'm going to end this conversation."},
                end,
                {"type": "text", "text": "Anything after the end must not be shown."},
            ],
            stop_reason="tool_use",
        )
    )
    sink = Sink()
    answer = await model.reply(HELLO, sink)
    assert sink.text == "I'm going to end this conversation."
    assert answer.content == [{"type": "text", "text": "I'm going to end this conversation."}, end]


async def test_text_after_note_concern_is_passed_on(
    fake: FakeAnthropic, model: ClaudeModel
) -> None:
    note: dict[str, Any] = {"type": "tool_use", "id": tool_id(), "name": "note_concern"}
    note["input"] = {"kind": "abuse", "note": "n"}
    fake.add(blocks([note, {"type": "text", "text": "Still here to help."}], "tool_use"))
    sink = Sink()
    answer = await model.reply(HELLO, sink)
    assert sink.text == "Still here to help."
    assert answer.content[-1] == {"type": "text", "text": "Still here to help."}


async def test_empty_text_blocks_are_dropped(fake: FakeAnthropic, model: ClaudeModel) -> None:
    use: dict[str, Any] = {"type": "tool_use", "id": tool_id(), "name": "note_concern"}
    use["input"] = {"kind": "abuse", "note": "n"}
    fake.add(blocks([{"type": "text", "text": ""}, use], "tool_use"))
    sink = Sink()
    answer = await model.reply(HELLO, sink)
    assert answer.content == [use]
    assert sink.deltas == []


async def test_empty_reply(fake: FakeAnthropic, model: ClaudeModel) -> None:
    fake.add(text(""))
    answer = await model.reply(HELLO, Sink())
    assert answer.content == []
    assert answer.stop_reason == "end_turn"


async def test_text_arrives_while_the_reply_is_still_streaming(
    fake: FakeAnthropic, model: ClaudeModel
) -> None:
    midway = asyncio.Event()
    first = asyncio.Event()
    fake.add(hold(text("one two three"), midway=midway))
    seen: list[str] = []

    async def on_text(delta: str) -> None:
        seen.append(delta)
        first.set()

    task = asyncio.create_task(model.reply(HELLO, on_text))
    async with asyncio.timeout(5):
        await first.wait()
    assert seen == ["one "]
    assert not task.done()
    midway.set()
    answer = await task
    assert "".join(seen) == "one two three"
    assert answer.content == [{"type": "text", "text": "one two three"}]


# --- prompt caching and the caller's messages --------------------------------------------


async def test_cache_breakpoints(fake: FakeAnthropic, model: ClaudeModel) -> None:
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": [{"type": "text", "text": "answer"}]},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    ]
    fake.add(text("ok"))
    await model.reply(history, Sink())
    body = fake.requests[0]
    ephemeral = {"type": "ephemeral"}
    assert body["system"][0]["cache_control"] == ephemeral
    assert body["tools"][-1]["cache_control"] == ephemeral
    assert all("cache_control" not in t for t in body["tools"][:-1])
    assert body["messages"][-1]["content"][-1]["cache_control"] == ephemeral
    assert "cache_control" not in body["messages"][-1]["content"][0]
    # Where the previous request ended, so its cached prefix is read.
    assert body["messages"][0]["content"][-1]["cache_control"] == ephemeral
    assert _breakpoints(body["messages"][1]) == 0
    assert _breakpoints(body) == 4


async def test_breakpoints_follow_the_conversation(fake: FakeAnthropic, model: ClaudeModel) -> None:
    # Each request's newest message is marked, and the next request marks it again.
    history: list[dict[str, Any]] = [{"role": "user", "content": "one"}]
    fake.add(text("first"), text("second"))
    answer = await model.reply(history, Sink())
    history += [
        {"role": "assistant", "content": answer.content},
        {"role": "user", "content": "two"},
    ]
    await model.reply(history, Sink())
    first, second = (body["messages"] for body in fake.requests)
    assert second[: len(first)] == first
    assert _breakpoints(second) == 2


async def test_string_content_gets_a_breakpoint(fake: FakeAnthropic, model: ClaudeModel) -> None:
    fake.add(text("ok"))
    await model.reply(HELLO, Sink())
    assert fake.requests[0]["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hello!", "cache_control": {"type": "ephemeral"}}],
        }
    ]


async def test_callers_messages_are_not_mutated(fake: FakeAnthropic, model: ClaudeModel) -> None:
    use_id = tool_id()
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let's talk about something else."},
                {"type": "tool_use", "id": use_id, "name": "note_concern", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use_id, "content": "Noted."}],
        },
    ]
    before = copy.deepcopy(history)
    fake.add(text("one"), text("two"))
    await model.reply(history, Sink())
    await model.reply(history, Sink())
    assert history == before
    assert all("cache_control" not in t for t in TOOLS)
    assert fake.requests[0] == fake.requests[1]


# --- the request built from the previous one (bot/model_request.py) ----------------------
# It replaces the SDK's private `_build_request` on a copy of the client: these fail if the
# SDK stops calling that hook, or if a request it builds differs from the template's.


def _post(body: bytes, **options: Any) -> FinalRequestOptions:
    return FinalRequestOptions.construct(method="post", url="/v1/messages", content=body, **options)


@pytest.mark.parametrize("retries_taken", [0, 1, 2])
def test_a_request_from_the_template_is_the_one_the_sdk_builds(
    client: AsyncAnthropic, retries_taken: int
) -> None:
    prebuilt = with_prebuilt_requests(client)
    prebuilt._build_request(_post(b'{"first":1}'), retries_taken=retries_taken)
    body = b'{"second":"\xc3\xa9t\xc3\xa9"}'
    ours = prebuilt._build_request(_post(body), retries_taken=retries_taken)
    sdks = client._build_request(_post(body), retries_taken=retries_taken)
    assert prebuilt._build_request.reused == 1  # type: ignore[attr-defined]
    assert (ours.method, ours.url, ours.headers.raw) == (sdks.method, sdks.url, sdks.headers.raw)
    assert ours.content == sdks.content == body
    assert ours.extensions == sdks.extensions
    assert ours.headers["x-stainless-retry-count"] == str(retries_taken)


def test_a_request_of_another_shape_is_built_by_the_sdk(client: AsyncAnthropic) -> None:
    prebuilt = with_prebuilt_requests(client)
    prebuilt._build_request(_post(b"{}"))
    other = prebuilt._build_request(_post(b"{}", headers={"anthropic-beta": "x"}))
    streamed = prebuilt._build_request(_post(iter([b"{}"])))  # type: ignore[arg-type]
    assert prebuilt._build_request.reused == 0  # type: ignore[attr-defined]
    assert other.headers["anthropic-beta"] == "x"
    assert "anthropic-beta" not in streamed.headers
    assert client._build_request.__self__ is client  # the shared client keeps the SDK's own


def test_a_client_that_builds_or_decodes_its_own_way_is_left_alone(client: AsyncAnthropic) -> None:
    class Decoding(AsyncAnthropic):
        def _make_sse_decoder(self, options: FinalRequestOptions | None = None) -> SSEDecoder:
            return SSEDecoder()

    own = Decoding(api_key=KEY, base_url=client.base_url)
    assert with_prebuilt_requests(own) is own
    assert with_prebuilt_requests(client) is not client


async def _through_the_sdks_own(client: AsyncAnthropic, body: bytes) -> None:
    """One streamed request built by the SDK itself on the shared client."""
    stream = await client.request(
        anthropic.types.Message, _post(body), stream=True, stream_cls=AsyncStream[object]
    )
    async with stream:
        async for _event in stream:
            pass


async def test_a_reply_is_opened_as_the_sdk_opens_it(client: AsyncAnthropic) -> None:
    # `_process_response` on the copy: a streamed Message asked for as an EventStream is
    # opened directly, as the SDK would open it; anything else is the SDK's.
    prebuilt = with_prebuilt_requests(client)
    options = _post(b"{}")
    request = client._build_request(options)
    response = httpx2.Response(200, request=request)

    async def opened(by: AsyncAnthropic, **asked: Any) -> Any:
        asked = {"cast_to": anthropic.types.Message, "stream_cls": EventStream, **asked}
        return await by._process_response(options=options, response=response, stream=True, **asked)

    ours, sdks = await opened(prebuilt), await opened(client)
    assert type(ours) is type(sdks) is EventStream
    assert (ours._cast_to, ours.response, ours._options) == (object, response, options)
    assert (sdks._cast_to, sdks.response, sdks._options) == (object, response, options)
    assert ours._client is prebuilt and prebuilt._process_response.opened == 1  # type: ignore[attr-defined]
    other = await opened(prebuilt, stream_cls=AsyncStream[object])
    assert type(other) is AsyncStream and prebuilt._process_response.opened == 1  # type: ignore[attr-defined]


async def test_the_idempotency_key_is_never_sent_so_none_is_made(
    fake: FakeAnthropic, client: AsyncAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fails if the SDK starts sending the key without an idempotency header (then it must
    # be unique again), or stops asking the client's hook for it.
    assert client._idempotency_header is None
    one = client._build_request(_post(b"{}", idempotency_key="one"))
    two = client._build_request(_post(b"{}", idempotency_key="two"))
    assert one.headers.raw == two.headers.raw
    made: list[str] = []
    sdks = BaseClient._idempotency_key
    monkeypatch.setattr(BaseClient, "_idempotency_key", lambda c: made.append(sdks(c)) or made[-1])
    model = ClaudeModel(client, "claude-test-1")
    fake.add(error(529, retry_after=0.001), text("one"))
    await model.reply(HELLO, Sink())
    assert len(fake.requests) == 2 and made == []
    fake.add(text("two"))
    await _through_the_sdks_own(client, model.encoded(HELLO))
    assert len(made) == 1  # the SDK's own client still makes one


async def test_the_sdk_sends_what_the_template_builds(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    # Through the SDK's request loop: a retry (its own retry count), then requests built
    # from the templates, header for header what the SDK sends itself.
    model = ClaudeModel(client, "claude-test-1")
    fake.add(error(529, retry_after=0.001), text("one"), text("two"), text("three"))
    for _ in range(3):
        await model.reply(HELLO, Sink())
    assert model._posting._build_request.reused == 2  # type: ignore[attr-defined]
    assert model._posting._process_response.opened == 3  # type: ignore[attr-defined]
    fake.add(text("the SDK's own"))
    await _through_the_sdks_own(client, model.encoded(HELLO))
    first, retried, *later, sdks = fake.request_headers
    assert [retried["x-stainless-retry-count"], *(h["x-stainless-retry-count"] for h in later)] == [
        "1",
        "0",
        "0",
    ]
    assert all(headers == sdks for headers in [first, *later])
    assert fake.requests[1:4] == [fake.requests[4]] * 3


async def test_the_sdk_reads_the_stream_with_the_plain_events_decoder(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.add(text("Hello there, how can I help you today?"))
    body = ClaudeModel(client, MODEL).encoded(HELLO)
    stream = await with_prebuilt_requests(client).request(
        anthropic.types.Message, _post(body), stream=True, stream_cls=AsyncStream[object]
    )
    async with stream:
        events = [event async for event in stream]
    assert isinstance(stream._decoder, _Events)
    assert stream._decoder.plain >= len(events) > 5


SSE_STREAMS = [
    b'event: message_start\ndata: {"a":1}\n\nevent: ping\ndata: {}\n\n',
    b": a comment\nevent: x\ndata: one\ndata: two\n\nevent: y\ndata: three\n\n",
    b"id: 7\nevent: x\ndata: a\n\nevent: y\ndata: b\n\nretry: 5\ndata: c\n\n",
    b"event: x\ndata: a\n\nid: 9\nevent: x\ndata: b\n\nevent: y\ndata: c\n\n",
    b"event: x\r\ndata: a\r\n\r\nevent: y\rdata: b\r\r",
    b"event: x\ndata: a\n\nevent: y\ndata: b\r\n\r\nevent: z\ndata: c\n\n",
    b"event: x\ndata: caf\xc3\xa9 \xf0\x9f\x99\x82\n\n\n\nevent:tight\ndata:z\n\n"
    b"event: cut\ndata: of",
    b"data: no event name\n\nevent: e\n\nevent: \ndata: \n\nevent:  two spaces\ndata: d\n\n",
]


@pytest.mark.parametrize("stream", SSE_STREAMS)
async def test_events_are_decoded_as_the_sdk_decodes_them(stream: bytes) -> None:
    cuts = [[stream], [stream[i : i + 1] for i in range(len(stream))]]
    cuts += [[stream[:i], stream[i:]] for i in range(1, len(stream))]
    for chunks in cuts:
        assert await _decoded(_Events(), chunks) == await _decoded(SSEDecoder(), chunks)


async def test_plain_events_skip_the_sdks_decoder() -> None:
    decoder = _Events()
    assert len(await _decoded(decoder, [SSE_STREAMS[0]])) == decoder.plain == 2


async def _decoded(decoder: _Events | SSEDecoder, chunks: list[bytes]) -> list[tuple[Any, ...]]:
    async def arriving() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    return [
        (sse.event, sse.data, sse.id, sse.retry, sse.raw)
        async for sse in decoder.aiter_bytes(arriving())
    ]


# What `EventStream` yields, or raises, is what the SDK's `AsyncStream[object]` does with
# the SDK's own decoder: whatever the chunks, pings, nameless events, errors and a carriage
# return that hands the rest to the SDK's decoder.
EVENT_STREAMS = [
    *SSE_STREAMS,
    b'event: message_start\ndata: {"type":"message_start"}\n\nevent: ping\ndata: {}\n\n'
    b'event: x\ndata: null\n\nevent: y\ndata: [1,"\xc3\xa9"]\n\nevent: z\ndata: \n\n',
    b'event: a\ndata: {"n":1}\n\nevent: error\ndata: {"type":"error","error":{"type":"o"}}\n\n'
    b'event: b\ndata: {"n":2}\n\n',
    b'event: a\ndata: {"n":1}\n\nevent: error\ndata: not json\n\n',
    b'event: a\ndata: {"n":1}\n\nevent: error\ndata: \n\n',
    b'event: a\ndata: {"n":1}\n\ndata: {"nameless":1}\n\n: c\nevent: b\ndata: 2\n\n',
    b'event: a\ndata: {"n":1}\r\n\r\nevent: b\ndata: {"n":2}\n\nevent: error\ndata: {}\n\n',
]


class _Chunks(httpx2.AsyncByteStream):
    def __init__(self, chunks: list[bytes], fail: Exception | None = None) -> None:
        self._chunks, self._fail = chunks, fail

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk
        if self._fail is not None:
            raise self._fail


async def _streamed(
    kind: type[AsyncStream[object]], client: AsyncAnthropic, chunks: list[bytes], **extra: Any
) -> tuple[list[Any], Any, bool]:
    """What a stream of `kind` yields, what it raised (type and text), and whether it closed
    the response."""
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/messages")
    response = httpx2.Response(
        200, stream=_Chunks(chunks, **extra), request=request, headers={"x": "y"}
    )
    stream = kind(cast_to=object, response=response, client=client)
    items: list[Any] = []
    raised: Any = None
    try:
        async for item in stream:
            items.append(item)
    except Exception as exc:
        raised = (type(exc), str(exc), getattr(exc, "body", None))
    return items, raised, response.is_closed


@pytest.mark.parametrize("stream", EVENT_STREAMS)
async def test_the_event_stream_yields_what_the_sdks_stream_yields(stream: bytes) -> None:
    async with AsyncAnthropic(api_key=KEY, base_url="http://127.0.0.1:9") as sdk:
        prebuilt = with_prebuilt_requests(sdk)
        cuts = [[stream], [stream[i : i + 1] for i in range(len(stream))]]
        cuts += [[stream[:i], stream[i:]] for i in range(1, len(stream), 7)]
        for chunks in cuts:
            ours = await _streamed(EventStream, prebuilt, chunks)
            assert ours == await _streamed(AsyncStream[object], sdk, chunks)
            assert ours[2]  # closed


@pytest.mark.parametrize("fail", [httpx2.ReadTimeout("slow"), httpx2.ReadError("gone")])
async def test_a_failed_read_raises_what_the_sdks_stream_raises(fail: Exception) -> None:
    async with AsyncAnthropic(api_key=KEY, base_url="http://127.0.0.1:9") as sdk:
        chunks = [b'event: a\ndata: {"n":1}\n\nevent: b\nda']
        ours = await _streamed(EventStream, with_prebuilt_requests(sdk), chunks, fail=fail)
        assert ours == await _streamed(AsyncStream[object], sdk, chunks, fail=fail)
        assert ours[1][0] in (anthropic.APITimeoutError, anthropic.APIConnectionError)


async def test_the_reply_is_read_by_the_event_stream(
    fake: FakeAnthropic, client: AsyncAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fails if the reply falls back to the SDK's own stream (say the SDK starts tracing or
    # asking for compressed bodies): its reading goes through `async_iter_response_bytes`.
    def unused(*args: Any) -> None:
        raise AssertionError("the SDK's stream read the reply")

    monkeypatch.setattr(anthropic._streaming, "async_iter_response_bytes", unused)
    fake.add(text("Hello there, how can I help you today?"))
    sink = Sink()
    await ClaudeModel(client, MODEL).reply(HELLO, sink)
    assert sink.text == "Hello there, how can I help you today?"


# --- retries and failures ----------------------------------------------------------------


async def test_overloaded_then_success(fake: FakeAnthropic, model: ClaudeModel) -> None:
    fake.add(error(529, retry_after=0.001), text("Back again."))
    sink = Sink()
    answer = await model.reply(HELLO, sink)
    assert sink.text == "Back again."
    assert answer.content == [{"type": "text", "text": "Back again."}]
    assert len(fake.requests) == 2
    assert [h["x-stainless-retry-count"] for h in fake.request_headers] == ["0", "1"]


async def test_rate_limited_with_retry_after(fake: FakeAnthropic, model: ClaudeModel) -> None:
    fake.add(error(429, retry_after=0.001, message="slow down"), text("ok"))
    answer = await model.reply(HELLO, Sink())
    assert answer.content == [{"type": "text", "text": "ok"}]
    assert len(fake.requests) == 2
    assert fake.requests[0] == fake.requests[1]


async def test_exhausted_retries_make_the_model_unavailable(
    fake: FakeAnthropic, model: ClaudeModel
) -> None:
    fake.add(*[error(529, retry_after=0.001)] * 3)
    with pytest.raises(ModelUnavailable, match="overloaded"):
        await model.reply(HELLO, Sink())
    assert len(fake.requests) == 3  # the first try and max_retries=2


async def test_exhausted_rate_limit(fake: FakeAnthropic, model: ClaudeModel) -> None:
    fake.add(*[error(429, retry_after=0.001)] * 3)
    with pytest.raises(ModelUnavailable, match="rate limit"):
        await model.reply(HELLO, Sink())


async def test_server_error_after_retries(fake: FakeAnthropic, model: ClaudeModel) -> None:
    fake.add(*[error(500, retry_after=0.001)] * 3)
    with pytest.raises(ModelUnavailable, match=r"failed \(500\)"):
        await model.reply(HELLO, Sink())


async def test_bad_key_is_not_retried_and_not_leaked(
    fake: FakeAnthropic, model: ClaudeModel
) -> None:
    fake.add(error(401, message=f"invalid x-api-key {KEY}"))
    with pytest.raises(ModelUnavailable) as caught:
        await model.reply(HELLO, Sink())
    assert "ANTHROPIC_API_KEY" in str(caught.value)
    assert KEY not in str(caught.value)
    assert len(fake.requests) == 1


async def test_key_checked_by_the_fake(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    fake.api_key = "another-key"
    with pytest.raises(ModelUnavailable, match="401"):
        await ClaudeModel(client, MODEL).reply(HELLO, Sink())


async def test_permission_denied(fake: FakeAnthropic, model: ClaudeModel) -> None:
    fake.add(error(403))
    with pytest.raises(ModelUnavailable, match="403"):
        await model.reply(HELLO, Sink())


async def test_unknown_model(fake: FakeAnthropic, model: ClaudeModel) -> None:
    fake.add(error(404, message="model: claude-test-1"))
    with pytest.raises(ModelUnavailable, match="QUITBOT_MODEL"):
        await model.reply(HELLO, Sink())


async def test_bad_request_names_the_api_message(fake: FakeAnthropic, model: ClaudeModel) -> None:
    fake.add(error(400, message="prompt is too long: 300000 tokens > 200000 maximum"))
    with pytest.raises(ModelUnavailable, match="prompt is too long"):
        await model.reply(HELLO, Sink())
    assert len(fake.requests) == 1


async def test_invalid_tool_loop_is_caught_by_the_fake(
    fake: FakeAnthropic, model: ClaudeModel
) -> None:
    dangling: list[dict[str, Any]] = [
        *HELLO,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": tool_id(), "name": "note_concern", "input": {}}],
        },
        {"role": "user", "content": "no tool_result here"},
    ]
    with pytest.raises(ModelUnavailable, match="400"):
        await model.reply(dangling, Sink())
    assert any("tool_result" in line for line in fake.unexpected)
    fake.unexpected.clear()


async def test_stream_breaking_off(fake: FakeAnthropic, model: ClaudeModel) -> None:
    fake.add(stream_error(text="Partial answer", kind="overloaded_error"))
    sink = Sink()
    with pytest.raises(ModelUnavailable, match="broke off"):
        await model.reply(HELLO, sink)
    assert sink.text == "Partial answer"
    assert len(fake.requests) == 1  # a started stream is not retried


async def test_connection_lost_mid_stream(fake: FakeAnthropic, model: ClaudeModel) -> None:
    fake.add(stream_drop(text="Half an"))
    sink = Sink()
    with pytest.raises(ModelUnavailable, match="connection to the Anthropic API broke off"):
        await model.reply(HELLO, sink)
    assert sink.text == "Half an"


async def test_stream_ending_without_a_stop_reason(fake: FakeAnthropic, model: ClaudeModel) -> None:
    broken = stream_error(text="Cut")
    assert broken.events is not None
    fake.add(raw(events=broken.events[:-1]))
    with pytest.raises(ModelUnavailable, match="before the reply was complete"):
        await model.reply(HELLO, Sink())


async def test_unreachable_api(fake: FakeAnthropic) -> None:
    closed = FakeAnthropic()
    await closed.start()
    url = closed.base_url
    await closed.close()
    async with AsyncAnthropic(api_key=KEY, base_url=url, max_retries=0) as sdk:
        with pytest.raises(ModelUnavailable, match="could not connect"):
            await ClaudeModel(sdk, MODEL).reply(HELLO, Sink())


async def test_timeout(fake: FakeAnthropic) -> None:
    never = asyncio.Event()
    fake.add(hold(text("too late"), before=never))
    try:
        async with _client(fake, timeout=0.05, max_retries=0) as sdk:
            with pytest.raises(ModelUnavailable, match="in time"):
                await ClaudeModel(sdk, MODEL).reply(HELLO, Sink())
    finally:
        never.set()


def _settings(fake: FakeAnthropic, **values: Any) -> Settings:
    values = {"anthropic_api_key": KEY, "anthropic_base_url": fake.base_url, **values}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _no_credentials_anywhere(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_PROFILE",
        "ANTHROPIC_CONFIG_DIR",
        "ANTHROPIC_IDENTITY_TOKEN",
        "ANTHROPIC_IDENTITY_TOKEN_FILE",
        "ANTHROPIC_FEDERATION_RULE_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))


async def test_no_credentials_at_all(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_credentials_anywhere(monkeypatch, tmp_path)
    async with build_client(_settings(fake, anthropic_api_key=None)) as sdk:
        model = ClaudeModel(sdk, MODEL)
        with pytest.raises(ModelUnavailable, match="ANTHROPIC_API_KEY"):
            await model.reply(HELLO, Sink())
        with pytest.raises(ModelUnavailable, match="ANTHROPIC_API_KEY"):
            await model.check()
    assert fake.requests == []


def test_broken_credentials_profile(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_credentials_anywhere(monkeypatch, tmp_path)
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path))  # holds no profile
    with pytest.raises(ModelUnavailable, match="no usable Anthropic credentials"):
        build_client(_settings(fake, anthropic_api_key=None))


# --- auth, settings, doctor --------------------------------------------------------------


async def test_auth_headers(fake: FakeAnthropic, model: ClaudeModel) -> None:
    fake.add(text("ok"))
    await model.reply(HELLO, Sink())
    headers = fake.request_headers[0]
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["anthropic-version"]


async def test_build_client_from_settings(fake: FakeAnthropic) -> None:
    settings = _settings(
        fake, model_max_retries=1, model_timeout_seconds=7.5, system_prompt_extra="Be brief."
    )
    async with build_client(settings) as sdk:
        assert sdk.max_retries == 1
        assert sdk.timeout == 7.5
        model = ClaudeModel.from_settings(sdk, settings)
        fake.add(error(529, retry_after=0.001), error(529, retry_after=0.001))
        with pytest.raises(ModelUnavailable):
            await model.reply(HELLO, Sink())
    assert len(fake.requests) == 2
    body = fake.requests[0]
    assert body["model"] == settings.model
    assert body["max_tokens"] == settings.max_tokens
    assert body["system"][0]["text"].endswith("Be brief.\n")
    assert fake.request_headers[0]["authorization"] == f"Bearer {KEY}"


async def test_check_proves_key_and_model(fake: FakeAnthropic, model: ClaudeModel) -> None:
    line = await model.check()
    assert MODEL in line
    assert fake.model_lookups == [MODEL]
    assert fake.requests == []  # no tokens spent


async def test_check_unknown_model(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    fake.models = {"claude-real"}
    with pytest.raises(ModelUnavailable, match="does not know the model 'claude-typo'"):
        await ClaudeModel(client, "claude-typo").check()


async def test_check_bad_key(fake: FakeAnthropic, model: ClaudeModel) -> None:
    fake.api_key = "the-right-key"
    with pytest.raises(ModelUnavailable, match="rejected the API key") as caught:
        await model.check()
    assert KEY not in str(caught.value)


# --- the system prompt ------------------------------------------------------------------


def test_system_prompt_teaches_the_quit_rules() -> None:
    prompt = system_prompt()
    for words in (
        "note_concern",
        "end_conversation",
        "harmful_request",
        "abuse",
        "self_harm_risk",
        "harm_to_others_risk",
        "user_requested",
        "last resort",
        "Err on the side of continuing",
        "Never end such a conversation",
        "tool result",
    ):
        assert words in prompt, words


def test_system_prompt_extra_comes_after_the_rules() -> None:
    prompt = system_prompt("  Answer only questions about gardening.  ")
    assert prompt.startswith(system_prompt())
    assert prompt.rstrip().endswith("Answer only questions about gardening.")
    assert system_prompt("   ") == system_prompt()
