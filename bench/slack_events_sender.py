"""Slack's side of e2e_bench.py's burst, in a process of its own: signed Events API requests,
a fixed number in flight, each acknowledgement timed.

Run by e2e_bench.py, not by hand. Reads one JSON document on stdin (`url`, `in_flight`,
`bodies`: the requests' JSON texts, in order), connects, prints `ready`, waits for a line
(go), sends, and prints the acks' milliseconds as a JSON list, in the order they came back.

Why a process: the bench's own loop also runs the fake Web API and the fake model, and in
a burst it ran up to tens of ms late; an ack timed there was late by as much (bench/README.md,
issue 22, sixth round). Slack's senders share nothing with the bot's fakes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quitbot.testing.slack_requests import SIGNING_SECRET, sign


async def send_all(url: str, in_flight: int, bodies: list[str]) -> list[float]:
    acks: list[float] = []
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        numbers = iter(range(len(bodies)))

        async def sender() -> None:
            for n in numbers:
                body = bodies[n]
                headers = {"Content-Type": "application/json", **sign(body, SIGNING_SECRET)}
                start = time.perf_counter()
                async with session.post(url, data=body.encode(), headers=headers) as response:
                    answer = await response.read()
                acks.append((time.perf_counter() - start) * 1000)
                if response.status != 200:
                    raise RuntimeError(f"the bot answered {response.status}: {answer[:200]!r}")

        await asyncio.gather(*(sender() for _ in range(in_flight)))
    return acks


def main() -> None:
    gc.disable()  # 2,000 requests: nothing worth a collection's pause in the timings
    asked = json.loads(sys.stdin.readline())
    acks = asyncio.run(send_all(asked["url"], asked["in_flight"], asked["bodies"]))
    print(json.dumps(acks), flush=True)


if __name__ == "__main__":
    main()
