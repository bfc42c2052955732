"""Holding a real `quitbot run` between showing a reply and committing its turn, so a test
can SIGKILL it there: the one window a kill can leave an answer shown but not recorded.

A trigger on the insert of an assistant's message (which only a turn's commit does) keeps
that commit from finishing: on PostgreSQL it waits for an advisory lock the test holds; on
SQLite, which has no waiting inside a statement, it counts a cross join too large to end
before the kill (a few seconds of one core at most, then the process is gone).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import asyncpg

from bot.app import build_runtime
from tests.conftest import make_settings
from tests.discord_processes import Running
from tests.fakes.anthropic import FakeAnthropic

T = TypeVar("T")

LOCK = 22_022  # the advisory lock the PostgreSQL trigger waits for

_PG_HOLD = (
    "CREATE FUNCTION quitbot_test_hold() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN PERFORM pg_advisory_xact_lock({LOCK}); RETURN NEW; END $$",
    "CREATE TRIGGER quitbot_test_hold BEFORE INSERT ON messages FOR EACH ROW "
    "WHEN (NEW.role = 'assistant') EXECUTE FUNCTION quitbot_test_hold()",
)
_PG_RELEASE = (
    "DROP TRIGGER quitbot_test_hold ON messages",
    "DROP FUNCTION quitbot_test_hold()",
)
# Backends still waiting for the lock belong to killed processes: end them, so the locks
# their half-done commits hold go with them (PostgreSQL notices a dead client only when it
# next writes to it). pg_terminate_backend waits up to the timeout for each to be gone.
_PG_END_WAITERS = (
    "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks "
    "WHERE locktype = 'advisory' AND NOT granted AND pid <> pg_backend_pid()"
)
_SQLITE_ROWS = "CREATE TABLE quitbot_test_rows (x INTEGER)"
_SQLITE_HOLD = (
    "CREATE TRIGGER quitbot_test_hold BEFORE INSERT ON messages "
    "WHEN NEW.role = 'assistant' BEGIN "
    "SELECT count(*) FROM quitbot_test_rows a, quitbot_test_rows b, quitbot_test_rows c; END"
)
_SQLITE_RELEASE = ("DROP TRIGGER quitbot_test_hold", "DROP TABLE quitbot_test_rows")


@asynccontextmanager
async def commits_held(url: str) -> AsyncIterator[None]:
    """Every turn's commit in the database at `url` hangs until the block exits; kill the
    process that commits before then. The database must already have its schema."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        await asyncio.to_thread(_sqlite, path, _sqlite_hold)
        try:
            yield
        finally:
            await asyncio.to_thread(_sqlite, path, _sqlite_release)
        return
    holder = await asyncpg.connect(url)
    try:
        await holder.execute(f"SELECT pg_advisory_lock({LOCK})")
        for statement in _PG_HOLD:
            await holder.execute(statement)
        try:
            yield
        finally:
            await holder.fetch(_PG_END_WAITERS)
            for statement in _PG_RELEASE:
                await holder.execute(statement)
            await holder.execute(f"SELECT pg_advisory_unlock({LOCK})")
    finally:
        await holder.close()


def _sqlite(path: str, work: Callable[[sqlite3.Connection], None]) -> None:
    with closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as db:
        work(db)


def _sqlite_hold(db: sqlite3.Connection) -> None:
    db.execute(_SQLITE_ROWS)
    db.executemany("INSERT INTO quitbot_test_rows VALUES (?)", [(n,) for n in range(3000)])
    db.execute(_SQLITE_HOLD)


def _sqlite_release(db: sqlite3.Connection) -> None:
    for statement in _SQLITE_RELEASE:
        db.execute(statement)


@dataclass(frozen=True, slots=True)
class Stored:
    """One conversation as the store keeps it after the restart."""

    messages: list[tuple[str, str]]  # (role, text), oldest first
    adopted: int  # reply_adopted events


async def stored_by_place(tmp_path: Path, fake: FakeAnthropic, url: str) -> dict[str, Stored]:
    """Every conversation's messages, by place; fails if any received message still waits."""
    settings = make_settings(tmp_path, fake, database_url=url)
    async with build_runtime(settings) as rt:
        found = {}
        for conversation in await rt.store.list_conversations():
            messages, events = await rt.engine.record(conversation.id)
            adopted = sum(e.kind == "reply_adopted" for e in events)
            found[conversation.key.place] = Stored([(m.role, m.text) for m in messages], adopted)
        assert await rt.store.pending(datetime(2999, 1, 1, tzinfo=UTC)) == []
    return found


AT_LENGTH, BRIEFLY = "tell me at length", "tell me briefly"


async def kill_between_reply_and_commit(
    run: Running, ask: Callable[[str], Awaitable[T]]
) -> tuple[T, T]:
    """With commits held: ask at length (the model holds that reply half-shown), then
    briefly (shown in full and noted so, its commit hanging), and SIGKILL the run. What
    `ask` returned for each (half, whole)."""
    half = await ask(AT_LENGTH)
    await run.wait_output(lambda: "shown (complete: False)" in run.log)
    whole = await ask(BRIEFLY)
    await run.wait_output(lambda: "shown (complete: True)" in run.log)
    run.process.kill()
    await run.process.wait()
    return half, whole
