"""Would aiosqlite pay? The store's statements for one engine message, three ways.

    .venv/bin/python bench/aiosqlite_bench.py [messages]

1. `SqliteStore` as it is: its own thread, one hop per store call, group commit.
2. aiosqlite, a transaction per store call (its thread runs one statement per hop).
3. aiosqlite with group commit: queued writes share one transaction, each in a SAVEPOINT.

Each runs the same SQL (the store's own statements) for an engine message: current,
begin_turn (claim, touch, append), recent_context(60), commit_turn (ladder, append), one
conversation at a time and then 100 at once. Figures, not pass/fail; needs aiosqlite
(`pip install aiosqlite`), which quitbot itself does not depend on.

Measured (2 cores, shared with other work): the store's own thread 314-346 µs CPU per
message and 1,470-1,480 messages/s with 100 conversations at once; aiosqlite 540-593 µs and
670-1,010 messages/s, with or without group commit. aiosqlite's thread runs one statement
per hop (BEGIN, each statement, SAVEPOINT/RELEASE and COMMIT each cross threads: 11+ hops
per message instead of 4), which costs more than the 20% the store could give up, so the
store keeps its own thread.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from bot.conversation import ConversationKey, Inbound, LadderState
from bot.ports import NewMessage
from bot.store import SqliteStore
from bot.store import rows as codec
from bot.store import sqlite as s

FIGURES = "p50 %.0f µs; 100 at once: %.0f msg/s, %.0f µs CPU/msg"
TEXT = "a question of ordinary length, about a hundred characters or so, like most people write"


def message(role: str, text: str) -> NewMessage:
    api = [{"role": role, "content": [{"type": "text", "text": text}]}]
    return NewMessage(role, text, api, datetime.now(UTC), user_id="u1")


Writes = list[tuple[str, tuple[Any, ...]]]


class AioStore:
    """Just enough of a store on aiosqlite to run an engine message's statements."""

    def __init__(self, db: aiosqlite.Connection, group: bool) -> None:
        self.db = db
        self.group = group
        self.lock = asyncio.Lock()  # one transaction at a time on the one connection
        self.queue: list[tuple[Writes, asyncio.Future[list[Any]]]] = []
        self.running = False

    async def read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        async with self.lock:
            return list(await self.db.execute_fetchall(sql, params))

    async def write(self, statements: Writes) -> list[Any]:
        if not self.group:
            async with self.lock:
                await self.db.execute("BEGIN IMMEDIATE")
                rows = [await self.db.execute_fetchall(q, p) for q, p in statements]
                await self.db.execute("COMMIT")
                return rows
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.queue.append((statements, future))
        if not self.running:
            self.running = True
            asyncio.get_running_loop().create_task(self.drain())
        return await future

    async def drain(self) -> None:
        while self.queue:
            batch, self.queue = self.queue[: s.MAX_BATCH], self.queue[s.MAX_BATCH :]
            async with self.lock:
                await self.db.execute("BEGIN IMMEDIATE")
                results = []
                for statements, _ in batch:
                    await self.db.execute("SAVEPOINT op")
                    results.append([await self.db.execute_fetchall(q, p) for q, p in statements])
                    await self.db.execute("RELEASE op")
                await self.db.execute("COMMIT")
            for (_, future), rows in zip(batch, results, strict=True):
                future.set_result(rows)
        self.running = False

    async def engine_message(self, conversation_id: str, key: ConversationKey, n: int) -> None:
        # Decoded as the store decodes them, so both sides do the same work.
        s._conversation((await self.read(s._CURRENT, (key.platform, key.place)))[0])
        user = message("user", TEXT)
        claim = s._claim_params(
            conversation_id, Inbound(key, f"{key.place}-{n}", "u1", TEXT), user.at
        )
        await self.write(
            [
                (s._CLAIM, claim),
                (s._TOUCH, (s._to_text(user.at), conversation_id)),
                (s._INSERT_MESSAGE_RETURNING_SEQ, (conversation_id, *s._message_values(user))),
            ]
        )
        recent = await self.read(s._RECENT, (conversation_id, 60))
        recent.reverse()
        codec.context_entries(recent)
        reply = message("assistant", TEXT * 4)
        ladder = (0, False, False, False, None, None, s._to_text(reply.at), conversation_id, False)
        await self.write(
            [
                (s._UPDATE_LADDER, ladder),
                (s._INSERT_MESSAGE, (conversation_id, *s._message_values(reply))),
            ]
        )


async def store_message(
    store: SqliteStore, conversation_id: str, key: ConversationKey, n: int
) -> None:
    await store.current(key)
    inbound = Inbound(key, f"{key.place}-{n}", "u1", TEXT)
    await store.begin_turn(conversation_id, inbound, message("user", TEXT))
    await store.recent_context(conversation_id, 60)
    await store.commit_turn(
        conversation_id, LadderState(), datetime.now(UTC), [message("assistant", TEXT * 4)]
    )


async def measure(
    create: Callable[[ConversationKey], Awaitable[str]],
    run: Callable[[str, ConversationKey, int], Awaitable[None]],
    count: int,
) -> tuple[float, float, float]:
    """(p50 µs of one message alone; messages/s and CPU µs per message (both threads)
    with 100 conversations at once)."""
    key = ConversationKey("bench", "alone")
    conversation_id = await create(key)
    samples = []
    for n in range(count):
        start = time.perf_counter()
        await run(conversation_id, key, n)
        samples.append(time.perf_counter() - start)
    samples.sort()
    crowd = [ConversationKey("bench", f"crowd-{n}") for n in range(100)]
    ids = [await create(k) for k in crowd]
    each = max(1, count // 100)

    async def talk(conversation_id: str, key: ConversationKey) -> None:
        for n in range(each):
            await run(conversation_id, key, n)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(talk(i, k) for i, k in zip(ids, crowd, strict=True)))
    rate = 100 * each / (time.perf_counter() - wall)
    cpu_us = (time.process_time() - cpu) / (100 * each) * 1e6
    return samples[len(samples) // 2] * 1e6, rate, cpu_us


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with await SqliteStore.open(str(Path(folder) / "store.db")) as store:

            async def create_in_store(key: ConversationKey) -> str:
                return (await store.create(key, "u1", datetime.now(UTC))).id

            print(
                "SqliteStore (own thread, group commit): "
                + FIGURES
                % await measure(
                    create_in_store, lambda c, k, n: store_message(store, c, k, n), count
                )
            )

        for group in (False, True):
            path = Path(folder) / f"aio-{group}.db"
            async with await SqliteStore.open(str(path)):
                pass  # the schema
            async with aiosqlite.connect(path, isolation_level=None) as db:
                await db.execute("PRAGMA journal_mode = WAL")
                await db.execute("PRAGMA synchronous = NORMAL")
                aio = AioStore(db, group)

                async def create_in_aio(key: ConversationKey, aio: AioStore = aio) -> str:
                    conversation_id = s.new_conversation_id()
                    stamp = s._to_text(datetime.now(UTC))
                    await aio.write(
                        [
                            (
                                s._INSERT_CONVERSATION,
                                (
                                    conversation_id,
                                    key.platform,
                                    key.place,
                                    "u1",
                                    stamp,
                                    stamp,
                                    None,
                                ),
                            )
                        ]
                    )
                    return conversation_id

                name = (
                    "aiosqlite, group commit + savepoints"
                    if group
                    else "aiosqlite, a transaction per call"
                )
                figures = await measure(create_in_aio, aio.engine_message, count)
                print(f"{name}: " + FIGURES % figures)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000))
