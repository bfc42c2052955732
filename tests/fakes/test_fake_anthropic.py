"""The fake Anthropic API: it must answer like the real one and fail loudly otherwise."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import pytest
import pytest_asyncio
from anthropic import AsyncAnthropic

from tests.fakes.anthropic import (
    FakeAnthropic,
    Response,
    hold,
    raw,
    text,
    tool,
    tool_id,
    validate,
)

HELLO: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        yield server


@pytest_asyncio.fixture
async def client(fake: FakeAnthropic) -> AsyncIterator[AsyncAnthropic]:
    async with AsyncAnthropic(api_key="test-key", base_url=fake.base_url, max_retries=0) as sdk:
        yield sdk


async def _create(client: AsyncAnthropic, messages: list[dict[str, Any]] = HELLO) -> Any:
    return await client.messages.create(
        model="claude-test",
        max_tokens=10,
        messages=messages,  # type: ignore[arg-type]
    )


async def test_fixture_serves_and_is_clean(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.add(text("hello"))
    async with AsyncAnthropic(api_key="k", base_url=fake_anthropic.base_url) as sdk:
        message = await _create(sdk)
    assert message.content[0].text == "hello"


async def test_non_streaming_reply(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    fake.add(tool("note_concern", {"kind": "abuse", "note": "n"}, text="No."))
    message = await _create(client)
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.model == "claude-test"
    assert fake.requests[0]["messages"] == HELLO


async def test_no_script_is_a_loud_500(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    with pytest.raises(anthropic.InternalServerError, match="no scripted response"):
        await _create(client)
    assert len(fake.unexpected) == 1


async def test_default_and_responder(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    fake.default = text("default")
    first = await _create(client)
    fake.responder = lambda body: text(f"you said {body['messages'][-1]['content']}")
    second = await _create(client)
    fake.add(text("queued"))
    third = await _create(client)
    assert [m.content[0].text for m in (first, second, third)] == [
        "default",
        "you said hi",
        "queued",
    ]


async def test_wait_requests(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    release = asyncio.Event()
    fake.add(hold(text("a"), before=release), hold(text("b"), before=release))
    calls = [asyncio.create_task(_create(client)) for _ in range(2)]
    await fake.wait_requests(2)
    assert len(fake.requests) == 2
    assert not any(call.done() for call in calls)
    release.set()
    answers = await asyncio.gather(*calls)
    assert sorted(a.content[0].text for a in answers) == ["a", "b"]
    await fake.wait_requests(1)  # already there: returns at once


async def test_raw_body(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    fake.add(raw(503, {"type": "error", "error": {"type": "api_error", "message": "down"}}))
    with pytest.raises(anthropic.InternalServerError, match="down"):
        await _create(client)


async def test_count_tokens_and_models(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    counted = await client.messages.count_tokens(model="claude-test", messages=HELLO)  # type: ignore[arg-type]
    assert counted.input_tokens > 0
    info = await client.models.retrieve("claude-test")
    assert info.id == "claude-test"
    fake.models = {"claude-other"}
    with pytest.raises(anthropic.NotFoundError):
        await client.models.retrieve("claude-test")
    assert fake.model_lookups == ["claude-test", "claude-test"]


async def test_unknown_path_and_missing_key(fake: FakeAnthropic) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fake.base_url}/v1/files") as answer:
            assert answer.status == 404
        headers = {"anthropic-version": "2023-06-01"}
        async with session.post(f"{fake.base_url}/v1/messages", json={}, headers=headers) as answer:
            assert answer.status == 401
    assert len(fake.unexpected) == 2


async def test_a_body_not_declared_json_is_refused(fake: FakeAnthropic) -> None:
    fake.default = text("never")
    headers = {"anthropic-version": "2023-06-01", "x-api-key": "k"}
    body = json.dumps(_body(HELLO))
    async with aiohttp.ClientSession() as session:
        plain = {**headers, "content-type": "text/plain"}
        async with session.post(f"{fake.base_url}/v1/messages", data=body, headers=plain) as answer:
            assert answer.status == 400
        declared = {**headers, "content-type": "application/json"}
        async with session.post(
            f"{fake.base_url}/v1/messages", data=body, headers=declared
        ) as answer:
            assert answer.status == 200
    assert len(fake.unexpected) == 1
    assert "not JSON" in fake.unexpected[0]


async def test_invalid_requests_get_400_and_are_recorded(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.default = text("never")
    with pytest.raises(anthropic.BadRequestError, match="non-whitespace"):
        await _create(client, [{"role": "user", "content": [{"type": "text", "text": " "}]}])
    assert fake.unexpected


def _tool_use(id: str = "toolu_1") -> dict[str, Any]:
    return {"type": "tool_use", "id": id, "name": "note_concern", "input": {}}


def _result(id: str = "toolu_1") -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": id, "content": "Noted."}


def _image(base64_chars: int) -> dict[str, Any]:
    source = {"type": "base64", "media_type": "image/png", "data": "A" * base64_chars}
    return {"type": "image", "source": source}


def _body(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 5, "messages": messages, **extra}


GOOD_LOOP: list[dict[str, Any]] = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": [{"type": "text", "text": "ok"}, _tool_use()]},
    {"role": "user", "content": [_result(), {"type": "text", "text": "and?"}]},
]


@pytest.mark.parametrize(
    "body",
    [
        _body(GOOD_LOOP),
        _body([{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]),
        _body(HELLO, system="s", tools=[{"name": "t", "input_schema": {"type": "object"}}]),
        _body(
            HELLO, system=[{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}]
        ),
    ],
)
def test_valid_requests(body: dict[str, Any]) -> None:
    assert validate(body) == []


_cc = {"type": "ephemeral"}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"max_tokens": 5, "messages": HELLO}, "model"),
        (_body([]), "messages"),
        (_body([{"role": "system", "content": "x"}]), "role"),
        (_body([{"role": "user", "content": ""}]), "non-empty"),
        (_body([{"role": "user", "content": []}]), "non-empty"),
        (_body([{"role": "user", "content": [{"type": "text", "text": ""}]}]), "whitespace"),
        (_body([{"role": "user", "content": [_image(5 * 1024 * 1024 + 1)]}]), "exceeds 5 MB"),
        (
            _body([*HELLO, {"role": "assistant", "content": [_tool_use()]}]),
            "no tool_result",
        ),
        (
            _body(
                [
                    *HELLO,
                    {"role": "assistant", "content": [_tool_use()]},
                    {"role": "user", "content": "forgot"},
                ]
            ),
            "without tool_result",
        ),
        (
            _body(
                [
                    *HELLO,
                    {"role": "assistant", "content": [_tool_use()]},
                    {"role": "user", "content": [{"type": "text", "text": "x"}, _result()]},
                ]
            ),
            "come first",
        ),
        (_body([{"role": "user", "content": [_result("toolu_9")]}]), "unexpected tool_use_id"),
        (
            _body(
                [
                    *HELLO,
                    {"role": "assistant", "content": [_tool_use("bad id!")]},
                    {"role": "user", "content": [_result("bad id!")]},
                ]
            ),
            "pattern",
        ),
        (_body([{"role": "user", "content": [_tool_use()]}]), "not allowed"),
        (
            _body(
                [
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "x", "cache_control": _cc}] * 5,
                    }
                ]
            ),
            "maximum of 4",
        ),
        (
            _body(
                [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "x", "cache_control": {"type": "forever"}}
                        ],
                    }
                ]
            ),
            "ephemeral",
        ),
        (_body(HELLO, tools=[{"name": "a b", "input_schema": {"type": "object"}}]), "name"),
        (
            _body(
                HELLO, tools=[{"name": "a", "input_schema": {}}, {"name": "a", "input_schema": {}}]
            ),
            "unique",
        ),
        (_body(HELLO, system=[{"type": "text", "text": ""}]), "system"),
    ],
)
def test_invalid_requests(body: dict[str, Any], problem: str) -> None:
    problems = validate(body)
    assert any(problem in p for p in problems), problems


async def test_streaming_events_reach_the_sdk_in_order(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    use_id = tool_id()
    fake.add(
        tool(
            "end_conversation",
            {"reason": "user_requested", "explanation": "asked"},
            text="Bye!",
            id=use_id,
        )
    )
    seen: list[str] = []
    async with client.messages.stream(model="m", max_tokens=5, messages=HELLO) as stream:  # type: ignore[arg-type]
        async for event in stream:
            seen.append(event.type)
        message = await stream.get_final_message()
    assert seen[0] == "message_start"
    assert seen[-2:] == ["message_delta", "message_stop"]
    assert "input_json" in seen
    assert message.content[1].type == "tool_use"
    assert message.content[1].id == use_id
    assert message.content[1].input == {"reason": "user_requested", "explanation": "asked"}


def test_response_is_a_plain_value() -> None:
    response = text("x")
    assert isinstance(response, Response)
    assert response.message is not None
    assert response.message["content"] == [{"type": "text", "text": "x"}]
