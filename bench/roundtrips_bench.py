"""Round trips to PostgreSQL per message, by statement, and the bot's CPU per message.

    .venv/bin/python bench/roundtrips_bench.py URL [MESSAGES] [CONVERSATIONS]

URL names an empty database (e.g. postgresql://postgres@127.0.0.1/bench; a sqlite:/// URL
gives the CPU figure alone). An Engine with an instant in-process model (bench/core_bench.py)
receives and answers MESSAGES messages (default 1,000) spread over CONVERSATIONS
conversations (default 100) at once, as an adapter does: `receive`, then `handle`. Every
asyncpg execution is counted by its statement (BEGIN and COMMIT included), and so is every
statement prepared anew (the statement cache missing). Figures, not pass/fail.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from typing import Any

from asyncpg.connection import Connection

from bot.app import build_runtime
from bot.conversation import ConversationKey, Inbound

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from core_bench import InstantModel, NullReply
from processes_bench import settings

trips: Counter[str] = Counter()
_execute, _executemany, _simple = Connection._execute, Connection._executemany, Connection.execute
_statement = Connection._get_statement


def _name(query: str) -> str:
    return " ".join(query.split())[:60]


async def _counted_execute(self: Connection, query: str, *args: Any, **kwargs: Any) -> Any:
    trips[_name(query)] += 1
    return await _execute(self, query, *args, **kwargs)


async def _counted_executemany(self: Connection, query: str, *args: Any, **kwargs: Any) -> Any:
    trips[_name(query)] += 1
    return await _executemany(self, query, *args, **kwargs)


async def _counted_simple(self: Connection, query: str, *args: Any, **kwargs: Any) -> Any:
    if not args:  # with arguments it goes through _execute, counted there
        trips[_name(query)] += 1
    return await _simple(self, query, *args, **kwargs)


async def _counted_statement(self: Connection, query: str, *args: Any, **kwargs: Any) -> Any:
    cache_key = (query, self._protocol.get_record_class(), kwargs.get("ignore_custom_codec", False))
    if self._stmt_cache.get(cache_key) is None:
        trips["(prepared anew) " + _name(query)] += 1
    return await _statement(self, query, *args, **kwargs)


async def main(url: str, messages: int, conversations: int) -> None:
    Connection._execute = _counted_execute  # type: ignore[method-assign]
    Connection._executemany = _counted_executemany  # type: ignore[method-assign]
    Connection.execute = _counted_simple  # type: ignore[method-assign]
    Connection._get_statement = _counted_statement  # type: ignore[method-assign]
    async with build_runtime(settings(url), model=InstantModel()) as runtime:
        engine = runtime.engine
        keys = [ConversationKey("bench", f"c{n}") for n in range(conversations)]
        count = 0

        async def message(key: ConversationKey) -> None:
            nonlocal count
            count += 1
            inbound = Inbound(key, f"e{count}", "u1", "hello there", message_id=f"m{count}")
            await engine.receive(inbound)
            await engine.handle(inbound, NullReply())

        for key in keys:  # warm: each conversation started, every statement prepared once
            await message(key)
        trips.clear()
        each = max(1, messages // conversations)

        async def talk(key: ConversationKey) -> None:
            for _ in range(each):
                await message(key)

        cpu = time.process_time()
        await asyncio.gather(*(talk(key) for key in keys))
        cpu = time.process_time() - cpu
    total = each * conversations
    for statement, n in trips.most_common():
        print(f"{n / total:6.2f}  {statement}")
    sent = sum(n for statement, n in trips.items() if not statement.startswith("(prepared"))
    print(
        f"round trips per message: {sent / total:.2f}; bot CPU per message: "
        f"{cpu / total * 1000:.3f} ms ({conversations} conversations at once)"
    )


if __name__ == "__main__":
    arguments = sys.argv[1:]
    asyncio.run(
        main(
            arguments[0],
            int(arguments[1]) if len(arguments) > 1 else 1000,
            int(arguments[2]) if len(arguments) > 2 else 100,
        )
    )
