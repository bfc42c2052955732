"""A fake Anthropic Messages API on 127.0.0.1, so the real `anthropic` SDK runs in tests.

    async with FakeAnthropic() as fake:
        fake.add(text("Hello!"), tool("note_concern", {"kind": "abuse", "note": "..."}))
        client = AsyncAnthropic(api_key="test-key", base_url=fake.base_url)
        ...
        assert fake.requests[0]["messages"][-1]["content"] == "hi"

Each POST /v1/messages takes the next queued response (`add`), else asks `responder`,
else answers `default`; with none of them it answers 500 and records the call in
`unexpected`. Requests the real API would reject (a tool_use without its tool_result, an
empty text block, a bad role, more than 4 cache breakpoints...) get a 400 and are recorded
in `unexpected` too, because they are bugs in the caller: check it is empty at the end of a
test (quitbot's own `fake_anthropic` fixture does; clear it when a test means it).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

# --- scripted responses --------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """One scripted answer. `message` is a Messages API message (streamed as SSE when the
    request asks for a stream); `error` is an error body sent with `status`; `events`
    replaces the generated SSE events entirely (see `raw`).

    `before` is awaited before answering; `midway` (streams only) after the first content
    delta, so a test can look at a half-streamed reply without sleeping.
    """

    status: int = 200
    message: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] | None = None
    before: asyncio.Event | None = None
    midway: asyncio.Event | None = None
    drop: bool = False  # close the connection after the events instead of ending cleanly


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _message(content: list[dict[str, Any]], stop_reason: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"msg_fake_{uuid.uuid4().hex[:20]}",
        "type": "message",
        "role": "assistant",
        "model": "",  # filled in from the request
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
        **extra,
    }


def tool_id() -> str:
    return f"toolu_fake_{uuid.uuid4().hex[:20]}"


def text(s: str, stop_reason: str = "end_turn") -> Response:
    """A plain text reply (streamed a word at a time)."""
    content = [{"type": "text", "text": s}] if s else []
    return Response(message=_message(content, stop_reason))


def tool(name: str, input: dict[str, Any], text: str = "", id: str | None = None) -> Response:
    """A reply that calls one tool, optionally after some text."""
    return tools([(name, input, id)], text=text)


def tools(
    calls: Iterable[tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], str | None]],
    text: str = "",
) -> Response:
    """A reply that calls several tools: `[(name, input), (name, input, id), ...]`."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for call in calls:
        name, input_ = call[0], call[1]
        given = call[2] if len(call) > 2 else None
        content.append(
            {"type": "tool_use", "id": given or tool_id(), "name": name, "input": input_}
        )
    return Response(message=_message(content, "tool_use"))


def blocks(content: list[dict[str, Any]], stop_reason: str = "end_turn") -> Response:
    """A reply with exactly these content blocks (e.g. text after a tool_use)."""
    return Response(message=_message(content, stop_reason))


def refusal(
    explanation: str | None = "This request was refused.",
    category: str | None = "general_harms",
    text: str = "",
) -> Response:
    """The API's streaming classifier refused: stop_reason "refusal", no text by default."""
    content = [{"type": "text", "text": text}] if text else []
    details = {"type": "refusal", "category": category, "explanation": explanation}
    return Response(message=_message(content, "refusal", stop_details=details))


def error(status: int, retry_after: float | None = None, message: str | None = None) -> Response:
    """An HTTP error the SDK understands (it retries 408/409/429/5xx/529 itself)."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    body = {
        "type": "error",
        "error": {"type": kind, "message": message or f"fake {kind}"},
        "request_id": f"req_fake_{uuid.uuid4().hex[:12]}",
    }
    headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
    return Response(status=status, error=body, headers=headers)


def stream_error(text: str = "", kind: str = "overloaded_error") -> Response:
    """A stream that starts (with `text`, if any) and then breaks with an SSE error event."""
    events = list(_sse_events(_message([{"type": "text", "text": text}] if text else [], "")))
    cut = [e for e in events if e[0] not in {"message_delta", "message_stop"}]
    if text:
        cut = [e for e in cut if e[0] != "content_block_stop"]
    cut.append(("error", {"type": "error", "error": {"type": kind, "message": f"fake {kind}"}}))
    return Response(events=cut)


def stream_drop(text: str = "") -> Response:
    """A stream whose connection is lost after it started (and after `text`, if any)."""
    broken = stream_error(text)
    assert broken.events is not None
    return Response(events=broken.events[:-1], drop=True)


def raw(
    status: int = 200,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    events: list[tuple[str, dict[str, Any]]] | None = None,
) -> Response:
    """Anything else: a JSON `body` with `status`, or exactly these SSE `events`."""
    if events is not None:
        return Response(status=status, headers=headers or {}, events=events)
    return Response(status=status, error=body, headers=headers or {})


def hold(
    response: Response,
    before: asyncio.Event | None = None,
    midway: asyncio.Event | None = None,
) -> Response:
    """The same response, answered only once `before` is set (and, mid-stream, `midway`)."""
    return replace(response, before=before, midway=midway)


# --- SSE -----------------------------------------------------------------------------


def _pieces(s: str) -> list[str]:
    return re.findall(r"\s*\S+\s*|\s+", s) or [s]


def _json_pieces(value: dict[str, Any]) -> list[str]:
    # The real API starts every tool input with an empty partial_json.
    encoded = json.dumps(value)
    third = max(1, len(encoded) // 3)
    return ["", *[encoded[i : i + third] for i in range(0, len(encoded), third)]]


def _sse_events(message: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start.pop("stop_details", None)
    start["usage"] = {**message["usage"], "output_tokens": 1}
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            empty = {"type": "text", "text": ""}
            yield "content_block_start", _block_start(index, empty)
            for piece in _pieces(block["text"]):
                delta = {"type": "text_delta", "text": piece}
                yield "content_block_delta", _delta(index, delta)
        elif block["type"] == "tool_use":
            yield "content_block_start", _block_start(index, {**block, "input": {}})
            for piece in _json_pieces(block["input"]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield "content_block_delta", _delta(index, delta)
        else:
            yield "content_block_start", _block_start(index, block)
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    end: dict[str, Any] = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    if message.get("stop_details") is not None:
        end["stop_details"] = message["stop_details"]
    usage = {"output_tokens": message["usage"]["output_tokens"]}
    yield "message_delta", {"type": "message_delta", "delta": end, "usage": usage}
    yield "message_stop", {"type": "message_stop"}


def _block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


# --- request validation (what the real API would reject) ------------------------------

_WAIT_GUARD_SECONDS = 5.0
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_MAX_BREAKPOINTS = 4


def validate(body: dict[str, Any]) -> list[str]:
    """Problems the real Messages API would answer 400 for, in plain words."""
    problems: list[str] = []
    if not isinstance(body.get("model"), str) or not body["model"]:
        problems.append("model: required string")
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        problems.append("max_tokens: required positive integer")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "messages: required non-empty list"]
    problems += _validate_messages(messages)
    problems += _validate_system(body.get("system"))
    problems += _validate_tools(body.get("tools"))
    breakpoints = _count_cache_control(body)
    if breakpoints > _MAX_BREAKPOINTS:
        problems.append(
            f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}."
        )
    return problems


def _validate_messages(messages: list[Any]) -> list[str]:
    problems: list[str] = []
    pending: set[str] = set()
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict) or message.get("role") not in {"user", "assistant"}:
            problems.append(f"{where}.role: must be 'user' or 'assistant'")
            continue
        content = message.get("content")
        last = i == len(messages) - 1
        if isinstance(content, str):
            blocks_: Any = [{"type": "text", "text": content}] if content else []
        else:
            blocks_ = content
        if not isinstance(blocks_, list):
            problems.append(f"{where}.content: must be a string or a list of blocks")
            continue
        if not blocks_ and not (last and message["role"] == "assistant"):
            problems.append(f"{where}: all messages must have non-empty content")
        answered = {
            b.get("tool_use_id")
            for b in blocks_
            if isinstance(b, dict) and b.get("type") == "tool_result"
        }
        if message["role"] == "user":
            if pending - answered:
                problems.append(
                    f"{where}: tool_use ids were found without tool_result blocks immediately "
                    f"after: {sorted(pending - answered)}"
                )
            if answered - pending:
                stray = sorted(map(str, answered - pending))
                problems.append(f"{where}: unexpected tool_use_id in tool_result: {stray}")
            problems += _tool_results_first(where, blocks_)
        elif pending:
            problems.append(
                f"{where}: tool_use ids were found without tool_result blocks immediately after"
            )
        elif answered:
            problems.append(f"{where}: tool_result blocks are only allowed in user messages")
        pending = set()
        for j, block in enumerate(blocks_):
            problems += _validate_block(f"{where}.content.{j}", block, message["role"])
            if (
                message["role"] == "assistant"
                and isinstance(block, dict)
                and block.get("type") == "tool_use"
            ):
                pending.add(str(block.get("id")))
    if pending:
        problems.append("the last message has tool_use blocks with no tool_result to follow")
    return problems


def _tool_results_first(where: str, blocks_: list[Any]) -> list[str]:
    kinds = [b.get("type") for b in blocks_ if isinstance(b, dict)]
    seen_other = False
    for kind in kinds:
        if kind != "tool_result":
            seen_other = True
        elif seen_other:
            return [f"{where}: tool_result blocks must come first in the content"]
    return []


_BLOCK_TYPES = {
    "user": {"text", "image", "document", "tool_result"},
    "assistant": {"text", "tool_use", "thinking", "redacted_thinking"},
}


def _validate_block(where: str, block: Any, role: str) -> list[str]:
    if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES[role]:
        kind = block.get("type") if isinstance(block, dict) else type(block).__name__
        return [f"{where}: block type {kind!r} is not allowed in a {role} message"]
    problems = _validate_cache_control(where, block)
    if block["type"] == "text" and (
        not isinstance(block.get("text"), str) or not block["text"].strip()
    ):
        problems.append(f"{where}: text content blocks must contain non-whitespace text")
    if block["type"] == "tool_use":
        if not _TOOL_ID.match(str(block.get("id", ""))):
            problems.append(f"{where}.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
        if not isinstance(block.get("name"), str) or not isinstance(block.get("input"), dict):
            problems.append(f"{where}: tool_use needs a name and a dict input")
        extra = set(block) - {"type", "id", "name", "input", "cache_control"}
        if extra:
            problems.append(f"{where}: Extra inputs are not permitted: {sorted(extra)}")
    if block["type"] == "tool_result":
        problems += _validate_tool_result(where, block)
    if block["type"] == "image":
        problems += _validate_image(where, block)
    if block["type"] == "text":
        extra = set(block) - {"type", "text", "cache_control", "citations"}
        if extra:
            problems.append(f"{where}: Extra inputs are not permitted: {sorted(extra)}")
    return problems


# The API's limit is on the base64 data, not the image's bytes: "image exceeds 5 MB maximum:
# 6275800 bytes > 5242880 bytes" (github.com/lobehub/lobehub/pull/14711,
# anthropics/claude-code#19631).
IMAGE_BASE64_LIMIT = 5 * 1024 * 1024


def _validate_image(where: str, block: dict[str, Any]) -> list[str]:
    source = block.get("source")
    if not isinstance(source, dict) or source.get("type") != "base64":
        return []  # url and file sources: nothing to measure here
    size = len(str(source.get("data", "")))
    if size > IMAGE_BASE64_LIMIT:
        limit = IMAGE_BASE64_LIMIT
        return [f"{where}.source.base64: image exceeds 5 MB maximum: {size} bytes > {limit} bytes"]
    return []


def _validate_tool_result(where: str, block: dict[str, Any]) -> list[str]:
    content = block.get("content", "")
    if isinstance(content, list):
        return [
            p
            for j, inner in enumerate(content)
            for p in _validate_block(f"{where}.content.{j}", inner, "user")
            if not (isinstance(inner, dict) and inner.get("type") == "tool_result")
        ]
    if not isinstance(content, str):
        return [f"{where}.content: must be a string or a list of blocks"]
    return []


def _validate_cache_control(where: str, block: dict[str, Any]) -> list[str]:
    control = block.get("cache_control")
    if control is None:
        return []
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        return [f"{where}.cache_control: type must be 'ephemeral'"]
    return []


def _validate_system(system: Any) -> list[str]:
    if system is None or isinstance(system, str):
        return []
    if not isinstance(system, list):
        return ["system: must be a string or a list of text blocks"]
    problems: list[str] = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            problems.append(f"system.{i}: must be a text block")
        elif not str(block.get("text", "")).strip():
            problems.append(f"system.{i}: text content blocks must contain non-whitespace text")
        else:
            problems += _validate_cache_control(f"system.{i}", block)
    return problems


def _validate_tools(tools_: Any) -> list[str]:
    if tools_ is None:
        return []
    if not isinstance(tools_, list):
        return ["tools: must be a list"]
    problems: list[str] = []
    names = [t.get("name") for t in tools_ if isinstance(t, dict)]
    if len(names) != len(set(names)):
        problems.append("tools: tool names must be unique")
    for i, tool_ in enumerate(tools_):
        if not isinstance(tool_, dict) or not re.match(
            r"^[a-zA-Z0-9_-]{1,128}$", str(tool_.get("name"))
        ):
            problems.append(f"tools.{i}.name: must match ^[a-zA-Z0-9_-]{{1,128}}$")
            continue
        schema = tool_.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            problems.append(f"tools.{i}.input_schema: must be a JSON schema of type 'object'")
        problems += _validate_cache_control(f"tools.{i}", tool_)
    return problems


def _count_cache_control(body: dict[str, Any]) -> int:
    def count(value: Any) -> int:
        if isinstance(value, dict):
            own = 1 if "cache_control" in value else 0
            return own + sum(count(v) for k, v in value.items() if k != "cache_control")
        if isinstance(value, list):
            return sum(count(v) for v in value)
        return 0

    return count(body.get("system")) + count(body.get("tools")) + count(body.get("messages"))


# --- the server ------------------------------------------------------------------------


class FakeAnthropic:
    """The fake API server. Use as `async with FakeAnthropic() as fake:`.

    `api_key`, if set, is the only key accepted (others get a 401, which is not
    "unexpected": tests use it to check auth failures). `models`, if set, are the model
    ids GET /v1/models/{id} knows; by default it knows any id.
    """

    def __init__(self, api_key: str | None = None, models: Sequence[str] | None = None) -> None:
        self.api_key = api_key
        self.models = None if models is None else set(models)
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self.model_lookups: list[str] = []
        self.unexpected: list[str] = []
        self.default: Response | None = None
        self.responder: Callable[[dict[str, Any]], Response] | None = None
        self._queue: list[Response] = []
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # lifecycle

    async def start(self) -> FakeAnthropic:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_get("/v1/models/{model_id}", self._model)
        app.router.add_route("*", "/{tail:.*}", self._anything_else)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        self._waiters.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeAnthropic:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # scripting

    def add(self, *responses: Response) -> None:
        """Queue responses; each POST /v1/messages takes the next one."""
        self._queue.extend(responses)

    @property
    def pending(self) -> int:
        """Queued responses not yet taken (a test that scripted too many sees it here)."""
        return len(self._queue)

    async def wait_requests(self, n: int) -> None:
        """Return once at least `n` POST /v1/messages have arrived (no polling).

        Gives up after a few seconds with TimeoutError, so a missing call fails the test.
        """
        if len(self.requests) >= n:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((n, waiter))
        async with asyncio.timeout(_WAIT_GUARD_SECONDS):
            await waiter

    # handlers

    def _record(self, body: dict[str, Any], request: web.Request) -> None:
        self.requests.append(body)
        self.request_headers.append({k.lower(): v for k, v in request.headers.items()})
        count = len(self.requests)
        still: list[tuple[int, asyncio.Future[None]]] = []
        for n, waiter in self._waiters:
            if n <= count:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((n, waiter))
        self._waiters = still

    def _auth_problem(self, request: web.Request) -> web.Response | None:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        key = request.headers.get("x-api-key") or bearer
        if not key:
            return self._unexpected(f"{request.path}: no API key sent", 401)
        if "anthropic-version" not in request.headers:
            return self._unexpected(f"{request.path}: no anthropic-version header", 400)
        if self.api_key is not None and key != self.api_key:
            return _json(error(401, message="invalid x-api-key"))
        return None

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        # "The Anthropic API always accepts JSON in request bodies ... You will need to send
        # the content-type: application/json header in requests" (API overview, "Content
        # types": https://docs.claude.com/en/api/overview). What status it answers without
        # one is a guess.
        if request.content_type != "application/json":
            return self._unexpected(
                f"POST /v1/messages: content-type {request.content_type!r}, not JSON", 400
            )
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return self._unexpected("POST /v1/messages: body is not JSON", 400)
        self._record(body, request)
        refused = self._auth_problem(request)
        if refused is not None:
            return refused
        problems = validate(body)
        if problems:
            return self._unexpected("POST /v1/messages: " + "; ".join(problems), 400)
        response = self._next(body)
        if response is None:
            return self._unexpected(
                f"POST /v1/messages #{len(self.requests)}: no scripted response left "
                "(fake.add(...), fake.default or fake.responder)",
                500,
            )
        if response.before is not None:
            await response.before.wait()
        if response.status != 200 or (response.message is None and response.events is None):
            return _json(response)
        if body.get("stream"):
            return await self._stream(request, body, response)
        if response.message is None:
            return self._unexpected(
                "a raw SSE response was scripted for a non-streaming request", 500
            )
        return web.json_response(
            {**response.message, "model": body["model"]}, headers=response.headers
        )

    def _next(self, body: dict[str, Any]) -> Response | None:
        if self._queue:
            return self._queue.pop(0)
        if self.responder is not None:
            return self.responder(body)
        return self.default

    async def _stream(
        self, request: web.Request, body: dict[str, Any], response: Response
    ) -> web.StreamResponse:
        if response.events is not None:
            events = response.events
        else:
            assert response.message is not None
            events = list(_sse_events({**response.message, "model": body["model"]}))
        stream = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "request-id": f"req_fake_{uuid.uuid4().hex[:12]}",
                **response.headers,
            }
        )
        await stream.prepare(request)
        paused = False
        for name, data in events:
            await stream.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            if name == "content_block_delta" and response.midway is not None and not paused:
                paused = True
                await response.midway.wait()
        if response.drop and request.transport is not None:
            request.transport.close()
            return stream
        await stream.write_eof()
        return stream

    async def _count_tokens(self, request: web.Request) -> web.Response:
        refused = self._auth_problem(request)
        if refused is not None:
            return refused
        body = await request.json()
        # Roughly four characters a token, which is all a test can rely on anyway.
        size = len(json.dumps(body.get("messages", []))) + len(json.dumps(body.get("system", "")))
        return web.json_response({"input_tokens": max(1, size // 4)})

    async def _model(self, request: web.Request) -> web.Response:
        model_id = request.match_info["model_id"]
        self.model_lookups.append(model_id)
        refused = self._auth_problem(request)
        if refused is not None:
            return refused
        if self.models is not None and model_id not in self.models:
            return _json(error(404, message=f"model: {model_id}"))
        return web.json_response(
            {
                "type": "model",
                "id": model_id,
                "display_name": model_id,
                "created_at": "2025-01-01T00:00:00Z",
            }
        )

    async def _anything_else(self, request: web.Request) -> web.Response:
        return self._unexpected(f"{request.method} {request.path}: not part of the fake", 404)

    def _unexpected(self, what: str, status: int) -> web.Response:
        self.unexpected.append(what)
        return _json(error(status, message=f"FakeAnthropic: {what}"))


def _json(response: Response) -> web.Response:
    return web.json_response(response.error or {}, status=response.status, headers=response.headers)
