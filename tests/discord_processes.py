"""The real `quitbot run` serving Discord in a child process, against the loopback fakes.

Its output is read as it comes (a full pipe would stall the process) and kept, so a test can
look for tracebacks; it is stopped with SIGTERM on the way out unless a test killed it.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.anthropic import FakeAnthropic, Response, text
from tests.fakes.discord import FakeDiscord
from tests.processes import clean_env, reaching_discord, start_quitbot

# How long a real process may take to start on a loaded machine: a guard against hanging,
# never what a test measures.
START_SECONDS = 90.0


@dataclass
class Running:
    process: asyncio.subprocess.Process
    output: list[str] = field(default_factory=list)  # stderr and stdout lines, as they came
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    _grew: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def log(self) -> str:
        return "".join(self.output)

    # Event ids the process said it kept (logged at DEBUG once durably recorded).
    kept: list[str] = field(default_factory=list)

    async def wait_output(self, check: Callable[[], bool]) -> None:
        """Wait until `check()` holds, re-checked on every line the process writes."""
        async with asyncio.timeout(START_SECONDS), self._grew:
            await self._grew.wait_for(check)

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while line := (await stream.readline()).decode(errors="replace"):
            self.output.append(line)
            if found := KEPT.search(line):
                self.kept.append(found[1])
            async with self._grew:
                self._grew.notify_all()


KEPT = re.compile(r"DEBUG bot\.engine: kept (\S+) for ")


@asynccontextmanager
async def quitbot_discord(
    tmp_path: Path,
    anthropic: FakeAnthropic,
    discord: FakeDiscord,
    database_url: str,
    *,
    shard: int | None = None,
    api_key: str = "test-key",
    **extra: str,
) -> AsyncIterator[Running]:
    """`quitbot run` on Discord (running `shard` of the fake's shards, if given), once it
    has identified and been sent its servers. `api_key` tells its model requests apart."""
    env = clean_env(
        tmp_path,
        anthropic,
        **reaching_discord(discord),
        QUITBOT_DATABASE_URL=database_url,
        QUITBOT_LOG_LEVEL=extra.pop("QUITBOT_LOG_LEVEL", "INFO"),
        ANTHROPIC_API_KEY=api_key,
        **extra,
    )
    if shard is not None:
        env["QUITBOT_DISCORD_SHARD_COUNT"] = str(discord.shard_count)
        env["QUITBOT_DISCORD_SHARD_IDS"] = str(shard)
    connected = discord.ready_shards.count(shard or 0)
    async with watched(await start_quitbot(tmp_path, env, "run")) as running:
        process = running.process
        ready = asyncio.create_task(
            discord.wait_until(
                lambda: discord.ready_shards.count(shard or 0) > connected,
                give_up_after=START_SECONDS,
            )
        )
        ended = asyncio.create_task(process.wait())
        await asyncio.wait({ready, ended}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            await asyncio.gather(*running.readers)
            raise AssertionError(f"quitbot run ended at start-up:\n{running.log}")
        ended.cancel()
        ready.result()
        yield running


@asynccontextmanager
async def watched(process: asyncio.subprocess.Process) -> AsyncIterator[Running]:
    """A started `quitbot` process, its output read as it comes (and shown if the block
    fails); SIGTERM on the way out unless the test killed it."""
    running = Running(process)
    running.readers = [
        asyncio.create_task(running.drain(process.stderr)),
        asyncio.create_task(running.drain(process.stdout)),
    ]
    try:
        yield running
    except BaseException:
        print(f"--- quitbot run (pid {process.pid}) ---\n{running.log}")  # shown on failure
        raise
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await process.wait()
        await asyncio.gather(*running.readers)


TOKEN = re.compile(r"\bm-[\w-]+\b")


def tokens(content: Any) -> list[str]:
    """The test's message tokens (`m-...`) in a request's message content."""
    return TOKEN.findall(str(content))


def echo(body: dict[str, Any]) -> Response:
    """A model that answers each message with the token it carries: "re: m-..."."""
    said = tokens(body["messages"][-1]["content"])
    return text(f"re: {said[-1]}" if said else "Hello.")


def key_of(headers: dict[str, str]) -> str:
    return headers.get("authorization", "").removeprefix("Bearer ")
