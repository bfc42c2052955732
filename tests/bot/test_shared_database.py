"""Several processes on one database: each guarantee of one process holds across them.

Each "process" is an Engine with a store of its own on the same database (its own
connections, its own lock file description), which is what a second process has; the
SIGKILL case runs a real second process. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.conversation import ConversationKey, Inbound
from bot.engine import Engine, EngineConfig
from bot.notices import NoticeKind, Outcome
from bot.ports import ModelReply, Store, TextSink
from bot.settings import parse_database_url
from bot.store import open_store
from bot.store.locks import FileLocks, lock_number
from tests.bot.storekit import ENDED, T0

# Later than anything a test receives: every kept message is pending before it.
LATER = datetime(2999, 1, 1, tzinfo=UTC)

ROOT = Path(__file__).resolve().parents[2]
KEY = ConversationKey("slack", "C1:1700000000.000100")


class CountingModel:
    """Answers at once, noting how many turns of one conversation were inside it together."""

    def __init__(self) -> None:
        self.calls = 0
        self.inside = 0
        self.most_inside = 0

    async def reply(self, messages: Sequence[dict[str, Any]], on_text: TextSink) -> ModelReply:
        self.calls += 1
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            for _ in range(5):  # give any other turn every chance to slip in
                await asyncio.sleep(0)
            await on_text("ok")
        finally:
            self.inside -= 1
        return ModelReply([{"type": "text", "text": "ok"}], "end_turn")


class Silent:
    def track(self, answering: str, shown: object) -> None:
        return None

    async def thinking(self) -> None:
        pass

    async def text(self, delta: str) -> None:
        pass

    async def done(self) -> str:
        return ""


async def open_target(url: str) -> Store:
    return await open_store(parse_database_url(url))


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[tuple[Store, Store]]:
    first = await open_target(database_url)
    second = await open_target(database_url)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


@pytest.fixture
def model() -> CountingModel:
    return CountingModel()


def engines(
    stores: tuple[Store, Store], model: CountingModel, **config: Any
) -> tuple[Engine, Engine]:
    return (
        Engine(stores[0], model, EngineConfig(**config)),
        Engine(stores[1], model, EngineConfig(**config)),
    )


def message(event_id: str, user_id: str = "u1", key: ConversationKey = KEY) -> Inbound:
    return Inbound(key, event_id, user_id, "hello")


async def test_an_event_delivered_to_two_processes_is_answered_once(
    stores: tuple[Store, Store], model: CountingModel
) -> None:
    a, b = engines(stores, model)
    outcomes = await asyncio.gather(
        a.handle(message("ev-1"), Silent()), b.handle(message("ev-1"), Silent())
    )
    assert sorted(o.duplicate for o in outcomes) == [False, True]
    assert model.calls == 1
    assert len(await stores[0].list_conversations()) == 1  # not one per process


async def test_an_event_received_by_two_processes_is_kept_once_and_taken_once(
    stores: tuple[Store, Store], model: CountingModel
) -> None:
    a, b = engines(stores, model)
    kept = await asyncio.gather(a.receive(message("ev-1")), b.receive(message("ev-1")))
    assert sorted(kept) == [False, True]
    assert [i.event_id for i in await stores[1].pending(LATER)] == ["ev-1"]
    # Engines running already leave it to the turn under way: not theirs to answer again.
    assert await a.pending() == [] and await b.pending() == []
    outcomes = await asyncio.gather(
        a.handle(message("ev-1"), Silent()), b.handle(message("ev-1"), Silent())
    )
    assert sorted(o.duplicate for o in outcomes) == [False, True]
    assert model.calls == 1
    assert await stores[0].pending(LATER) == []


async def test_turns_of_one_conversation_never_overlap_across_processes(
    stores: tuple[Store, Store], model: CountingModel
) -> None:
    a, b = engines(stores, model)
    other = ConversationKey("slack", "C2:1.0")
    await asyncio.gather(
        *(a.handle(message(f"a{n}"), Silent()) for n in range(6)),
        *(b.handle(message(f"b{n}"), Silent()) for n in range(6)),
    )
    assert model.calls == 12
    assert model.most_inside == 1
    [conversation] = await stores[1].list_conversations()
    assert len(await stores[1].messages(conversation.id)) == 24
    # Other conversations still go side by side: each turn waits inside the model until
    # the other is inside too, which only ends if neither waits for the other's lock.
    meeting = Meeting(2)
    a, b = engines(stores, meeting)
    await asyncio.wait_for(
        asyncio.gather(
            a.handle(message("c1"), Silent()), b.handle(message("c2", key=other), Silent())
        ),
        30,
    )


class Meeting(CountingModel):
    """Each reply waits until `size` replies are inside at once."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.everyone = asyncio.Event()

    async def reply(self, messages: Sequence[dict[str, Any]], on_text: TextSink) -> ModelReply:
        self.inside += 1
        if self.inside == self.size:
            self.everyone.set()
        await self.everyone.wait()
        return ModelReply([{"type": "text", "text": "ok"}], "end_turn")


async def test_when_two_ends_race_exactly_one_wins(
    stores: tuple[Store, Store], model: CountingModel
) -> None:
    a, b = engines(stores, model)
    await a.handle(message("ev-1"), Silent())
    outcomes = await asyncio.gather(a.end_by_user(KEY, "u1"), b.end_by_user(KEY, "u1"))
    assert sorted(o.just_ended for o in outcomes) == [False, True]
    conversation = await stores[0].current(KEY)
    assert conversation is not None and conversation.ladder.ended
    kinds = [e.kind for e in await stores[1].events(conversation.id)]
    assert kinds.count("end") == 1


async def test_an_end_in_one_process_is_refused_at_once_by_another(
    stores: tuple[Store, Store], model: CountingModel
) -> None:
    a, b = engines(stores, model)
    assert (await b.handle(message("ev-1"), Silent())).reply == "ok"  # b has seen it active
    await a.end_by_user(KEY, "u1")
    outcome = await b.handle(message("ev-2"), Silent())
    assert outcome.blocked
    assert [n.kind for n in outcome.notices] == [NoticeKind.BLOCKED]
    assert model.calls == 1


async def test_the_blocked_notice_limit_holds_across_processes(
    stores: tuple[Store, Store], model: CountingModel
) -> None:
    a, b = engines(stores, model, blocked_notice_seconds=3600)
    await a.handle(message("ev-1"), Silent())
    await a.end_by_user(KEY, "u1")

    def told(outcome: Outcome) -> bool:
        return any(n.kind is NoticeKind.BLOCKED for n in outcome.notices)

    first, second = await asyncio.gather(
        a.handle(message("ev-2"), Silent()), b.handle(message("ev-3"), Silent())
    )
    assert sorted([told(first), told(second)]) == [False, True]
    assert not told(await a.handle(message("ev-4"), Silent()))
    assert told(await b.handle(message("ev-5", user_id="u2"), Silent()))


async def test_the_daily_limit_holds_across_processes(
    stores: tuple[Store, Store], model: CountingModel
) -> None:
    a, b = engines(stores, model, max_ended_per_day=1)
    started = await a.start_new(KEY, "u1")
    assert started.conversation is not None
    await stores[0].commit_turn(started.conversation.id, ENDED, T0.now(T0.tzinfo))
    refused = await b.start_new(ConversationKey("slack", "C9:2.0"), "u1")
    assert refused.conversation is None
    assert [n.kind for n in refused.notices] == [NoticeKind.LIMIT]


async def probe_is_free(url: str, key: ConversationKey, *, waiting: bool = False) -> bool:
    """Whether another process could take `key`'s lock right now (without keeping it).
    `waiting`: PostgreSQL ends a killed client's backend, and lets go of its locks, a moment
    after the client is gone, so the probe waits for the lock as a process would (up to 30
    s) rather than catch that moment. A file lock goes with the process, before `wait()`."""
    target = parse_database_url(url)
    if target.backend == "sqlite":
        locks = FileLocks.open(Path(target.path + ".lock"))
        try:
            free = locks.try_now(lock_number(key))
            if free:
                locks.release_now(lock_number(key))
            return free
        finally:
            locks.close()
    db = await asyncpg.connect(target.url)
    try:
        if not waiting:
            return bool(await db.fetchval("SELECT pg_try_advisory_lock($1)", lock_number(key)))
        await db.execute("SET lock_timeout = '30s'")
        try:
            await db.execute("SELECT pg_advisory_lock($1)", lock_number(key))
        except asyncpg.LockNotAvailableError:
            return False
        return True
    finally:
        await db.close()  # and with the session, any lock the probe got


async def test_a_process_killed_mid_turn_leaves_no_lock_behind(
    database_url: str, model: CountingModel
) -> None:
    async with await open_target(database_url):
        pass  # create and migrate, so the child does not race the test for it
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.stuck_turn",
        database_url,
        KEY.platform,
        KEY.place,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        assert line == b"in turn\n"
        assert not await probe_is_free(database_url, KEY)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert await probe_is_free(database_url, KEY, waiting=True)
    store = await open_target(database_url)
    try:
        engine = Engine(store, model, EngineConfig())
        outcome = await asyncio.wait_for(engine.handle(message("ev-after"), Silent()), 30)
        assert outcome.reply == "ok" and not outcome.duplicate
        assert outcome.conversation is not None
        texts = [m.role for m in await store.messages(outcome.conversation.id)]
        assert texts == ["user", "user", "assistant"]  # the killed turn's message stays
    finally:
        await store.close()
