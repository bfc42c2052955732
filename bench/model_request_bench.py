"""CPU of the Messages API request's two pieces that quitbot builds differently (issue 22).

Prints figures; not a pass/fail test. No network: the request is built, not sent.

    .venv/bin/python bench/model_request_bench.py

- building the request: the SDK's `_build_request` against the template of
  `bot/model_request.py` (same options, a 2 kB body);
- decoding a reply's stream (the fake's 19 events for a 12-word reply): the SDK's
  `SSEDecoder` against `bot/model_request._Events`, the stream arriving in one chunk (as in
  a burst) and one event per chunk.
Each figure is the best of 7 rounds, in µs, the two interleaved.
"""

from __future__ import annotations

import asyncio
import json
import time
import timeit
from collections.abc import AsyncIterator, Callable
from typing import Any

from anthropic import AsyncAnthropic
from anthropic._models import FinalRequestOptions
from anthropic._streaming import SSEDecoder

from bot.model_request import _Events, with_prebuilt_requests
from quitbot.testing.anthropic import _sse_events, text

ROUNDS = 7


def building() -> tuple[float, float]:
    client = AsyncAnthropic(api_key="sk-ant-bench-0123456789", base_url="http://127.0.0.1:9")
    prebuilt = with_prebuilt_requests(client)
    body = json.dumps({"messages": [{"role": "user", "content": "x" * 2000}]}).encode()
    options = FinalRequestOptions.construct(method="post", url="/v1/messages", content=body)
    prebuilt._build_request(options)  # the template
    return _best(lambda: client._build_request(options), lambda: prebuilt._build_request(options))


def decoding(one_chunk: bool) -> tuple[float, float]:
    reply = text("Sure, here is a short answer of about twelve words for you today.")
    pairs = _sse_events(reply.message)
    events = [f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode() for kind, data in pairs]
    chunks = [b"".join(events)] if one_chunk else events

    async def decode(decoder: Any) -> None:
        async def arriving() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        async for _ in decoder.aiter_bytes(arriving()):
            pass

    loop = asyncio.new_event_loop()
    try:
        return _best(
            lambda: loop.run_until_complete(decode(SSEDecoder())),
            lambda: loop.run_until_complete(decode(_Events())),
        )
    finally:
        loop.close()


def _best(sdk: Callable[[], object], ours: Callable[[], object]) -> tuple[float, float]:
    number = 2000
    figures: list[list[float]] = [[], []]
    for _ in range(ROUNDS):
        for figure, run in zip(figures, (sdk, ours), strict=True):
            figure.append(timeit.timeit(run, number=number) / number * 1e6)
    return min(figures[0]), min(figures[1])


def main() -> None:
    started = time.strftime("%H:%M:%S")
    print(f"started {started}; µs, best of {ROUNDS}: the SDK's / quitbot's")
    for name, figures in [
        ("building the request", building()),
        ("decoding a reply's 19 events, one chunk", decoding(True)),
        ("decoding a reply's 19 events, one chunk each", decoding(False)),
    ]:
        print(f"{name:48} {figures[0]:7.1f} / {figures[1]:6.1f}")


if __name__ == "__main__":
    main()
