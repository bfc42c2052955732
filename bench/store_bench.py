"""How long the store's hot paths take on a real file database.

    .venv/bin/python bench/store_bench.py [turns]

Prints p50/p99 of one turn (begin_turn + commit_turn), of one whole message as the engine
handles it (current + begin_turn + recent_context(60) + commit_turn), of record_blocked (a
message to an ended conversation), and how many SQL statements an engine message runs (each
store call is one hop to the store's thread, the main cost); then the same store calls from
100 conversations at once, where group commit runs many per hop and per transaction.
Figures, not pass/fail.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.conversation import Actor, AuditEvent, ConversationKey, EndReason, Inbound, LadderState
from bot.ports import NewMessage
from bot.store import SqliteStore

ENDED = LadderState(
    redirects=3,
    warned=True,
    ended=True,
    ended_by=Actor.MODEL,
    ended_reason=EndReason.PERSISTENT_ABUSE,
)


def message(role: str, text: str) -> NewMessage:
    api = [{"role": role, "content": [{"type": "text", "text": text}]}]
    return NewMessage(role, text, api, datetime.now(UTC), user_id="u1")


async def timed(samples: list[float], call: Callable[[], Awaitable[object]]) -> None:
    start = time.perf_counter()
    await call()
    samples.append(time.perf_counter() - start)


def report(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2] * 1e6
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6
    p999 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.999))] * 1e6
    print(
        f"{name:<34} n={len(ordered):>6}  p50={p50:7.0f} µs  p99={p99:7.0f} µs  "
        f"p99.9={p999:7.0f} µs"
    )


async def bench_turns(store: SqliteStore, turns: int) -> dict[str, list[float]]:
    key = ConversationKey("bench", f"turns-{turns}")
    conversation = await store.create(key, "u1", datetime.now(UTC))
    samples: dict[str, list[float]] = {"begin_turn": [], "commit_turn": [], "turn": []}
    text = "a question of ordinary length, about a hundred characters or so, like most people write"
    for n in range(turns):
        inbound = Inbound(key, f"{key.place}-{n}", "u1", text)
        start = time.perf_counter()
        await store.begin_turn(conversation.id, inbound, message("user", text))
        middle = time.perf_counter()
        await store.commit_turn(
            conversation.id,
            LadderState(redirects=n % 2),
            datetime.now(UTC),
            messages=[message("assistant", text * 4)],
            events=[AuditEvent("redirect", datetime.now(UTC), Actor.MODEL, {"note": "x"})],
        )
        end = time.perf_counter()
        samples["begin_turn"].append(middle - start)
        samples["commit_turn"].append(end - middle)
        samples["turn"].append(end - start)
    return samples


async def bench_messages(store: SqliteStore, count: int) -> list[float]:
    """The store calls the engine makes for one message, in 50 conversations taken in turn."""
    keys = [ConversationKey("bench", f"engine-{n}") for n in range(50)]
    for key in keys:
        await store.create(key, "u1", datetime.now(UTC))
    text = "a question of ordinary length, about a hundred characters or so, like most people write"
    samples: list[float] = []
    for n in range(count):
        key = keys[n % len(keys)]
        start = time.perf_counter()
        conversation = await store.current(key)
        assert conversation is not None
        await store.begin_turn(
            conversation.id, Inbound(key, f"m{n}", "u1", text), message("user", text)
        )
        await store.recent_context(conversation.id, 60)
        await store.commit_turn(
            conversation.id,
            conversation.ladder,
            datetime.now(UTC),
            messages=[message("assistant", text * 4)],
        )
        samples.append(time.perf_counter() - start)
    return samples


async def statements(store: SqliteStore, call: Callable[[], Awaitable[object]]) -> int:
    """Statements SQLite runs for `call`, BEGIN and COMMIT included."""
    traced: list[str] = []
    await store._read(lambda db: db.set_trace_callback(traced.append))
    try:
        await call()
    finally:
        await store._read(lambda db: db.set_trace_callback(None))
    # A statement that starts a trigger is traced twice with the same text.
    return len([s for n, s in enumerate(traced) if n == 0 or s != traced[n - 1]])


async def bench_concurrent(store: SqliteStore, conversations: int, each: int) -> None:
    """Engine messages from many conversations at once: rate and writes per transaction."""
    keys = [ConversationKey("bench", f"crowd-{n}") for n in range(conversations)]
    for key in keys:
        await store.create(key, "u1", datetime.now(UTC))
    text = "a question of ordinary length, about a hundred characters or so, like most people write"

    async def talk(key: ConversationKey) -> None:
        for n in range(each):
            conversation = await store.current(key)
            assert conversation is not None
            inbound = Inbound(key, f"{key.place}-{n}", "u1", text)
            await store.begin_turn(conversation.id, inbound, message("user", text))
            await store.recent_context(conversation.id, 60)
            await store.commit_turn(
                conversation.id,
                conversation.ladder,
                datetime.now(UTC),
                messages=[message("assistant", text * 4)],
            )

    traced: list[str] = []
    await store._read(lambda db: db.set_trace_callback(traced.append))
    wall = time.perf_counter()
    try:
        await asyncio.gather(*(talk(key) for key in keys))
    finally:
        wall = time.perf_counter() - wall
        await store._read(lambda db: db.set_trace_callback(None))
    total = conversations * each
    commits = traced.count("COMMIT")
    print(
        f"{conversations} conversations at once: {total / wall:,.0f} engine messages/s, "
        f"{commits} transactions for {2 * total} writes ({2 * total / commits:.1f} per COMMIT)"
    )


async def bench_blocked(store: SqliteStore, count: int) -> list[float]:
    key = ConversationKey("bench", "blocked")
    conversation = await store.create(key, "u1", datetime.now(UTC))
    await store.commit_turn(conversation.id, ENDED, datetime.now(UTC))
    samples: list[float] = []
    quiet = timedelta(seconds=60)
    for n in range(count):
        inbound = Inbound(key, f"blocked-{n}", f"u{n % 10}", "let me in")
        start = time.perf_counter()
        await store.record_blocked(conversation.id, inbound, datetime.now(UTC), quiet)
        samples.append(time.perf_counter() - start)
    return samples


async def main(turns: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.db"
        async with await SqliteStore.open(str(path)) as store:
            await bench_turns(store, 200)  # warm the page cache and the thread hand-off
            for name, samples in (await bench_turns(store, turns)).items():
                report(name, samples)
            report("record_blocked", await bench_blocked(store, turns))
            report("engine message (4 store calls)", await bench_messages(store, turns))
            print(
                f"SQL statements per engine message: {await count_message_statements(store)} "
                "(4 hops, one per store call)"
            )
            recent: list[float] = []
            for _ in range(1000):
                await timed(recent, lambda: store.recent_context("x", 40))
            report("recent_context(limit=40), empty", recent)
            conversation = await store.current(ConversationKey("bench", f"turns-{turns}"))
            assert conversation is not None
            window: list[float] = []
            for _ in range(1000):
                await timed(window, lambda: store.recent_context(conversation.id, 40))
            report(f"recent_context(40) of {2 * turns}", window)
            await bench_concurrent(store, 100, 20)


async def count_message_statements(store: SqliteStore) -> int:
    key = ConversationKey("bench", "hops")
    conversation = await store.create(key, "u1", datetime.now(UTC))
    inbound = Inbound(key, "hops-1", "u1", "hi")
    return sum(
        [
            await statements(store, lambda: store.current(key)),
            await statements(
                store, lambda: store.begin_turn(conversation.id, inbound, message("user", "hi"))
            ),
            await statements(store, lambda: store.recent_context(conversation.id, 60)),
            await statements(
                store,
                lambda: store.commit_turn(
                    conversation.id,
                    LadderState(),
                    datetime.now(UTC),
                    messages=[message("assistant", "hello")],
                ),
            ),
        ]
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
