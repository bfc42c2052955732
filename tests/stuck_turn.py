"""A quitbot process stuck in the middle of a turn, for tests that SIGKILL it.

    python -m tests.stuck_turn DATABASE_URL PLATFORM PLACE

Opens the store the URL names, starts a turn at (PLATFORM, PLACE) whose model never
answers, prints "in turn" once the turn holds the conversation, and waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from bot.conversation import ConversationKey, Inbound
from bot.engine import Engine, EngineConfig
from bot.ports import ModelReply, TextSink
from bot.settings import parse_database_url
from bot.store import open_store


class NeverAnswers:
    """Says it has the turn, then waits for ever (for the SIGKILL)."""

    async def reply(self, messages: Sequence[dict[str, Any]], on_text: TextSink) -> ModelReply:
        print("in turn", flush=True)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class Silent:
    def track(self, answering: str, shown: object) -> None:
        return None

    async def thinking(self) -> None:
        pass

    async def text(self, delta: str) -> None:
        pass

    async def done(self) -> str:
        return ""


async def main(url: str, platform: str, place: str) -> None:
    store = await open_store(parse_database_url(url))
    engine = Engine(store, NeverAnswers(), EngineConfig())
    key = ConversationKey(platform, place)
    await engine.handle(Inbound(key, "stuck-1", "u1", "hello"), Silent())


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
