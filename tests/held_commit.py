"""Holding a real `quitbot run` between showing a reply and recording it, so a test can
SIGKILL it there: the window a kill can leave an answer shown but not recorded.

A trigger keeps a write from finishing: the insert of an assistant's message (which only a
turn's commit does), or the note of a reply shown (`Store.reply_shown`). On PostgreSQL it
waits for an advisory lock the test holds; on SQLite, which has no waiting inside a
statement, it counts a cross join too large to end before the kill (a few seconds of one
core at most, then the process is gone).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

import asyncpg

from bot.app import build_runtime
from tests.conftest import make_settings
from tests.discord_processes import Running
from tests.fakes.anthropic import FakeAnthropic

T = TypeVar("T")

LOCK = 22_022  # the advisory lock the PostgreSQL trigger waits for

# What is held: (the table, the event, the condition) of the trigger.
COMMIT = ("messages", "INSERT", "NEW.role = 'assistant'")
Held = tuple[str, str, str]


def _pg_hold(held: Held) -> tuple[str, ...]:
    table, event, when = held
    return (
        "CREATE FUNCTION quitbot_test_hold() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN PERFORM pg_advisory_xact_lock({LOCK}); RETURN NEW; END $$",
        f"CREATE TRIGGER quitbot_test_hold BEFORE {event} ON {table} FOR EACH ROW "
        f"WHEN ({when}) EXECUTE FUNCTION quitbot_test_hold()",
    )


def _pg_release(held: Held) -> tuple[str, ...]:
    return (f"DROP TRIGGER quitbot_test_hold ON {held[0]}", "DROP FUNCTION quitbot_test_hold()")


# Backends still waiting for the lock belong to killed processes: end them, so the locks
# their half-done commits hold go with them (PostgreSQL notices a dead client only when it
# next writes to it). pg_terminate_backend waits up to the timeout for each to be gone.
_PG_END_WAITERS = (
    "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks "
    "WHERE locktype = 'advisory' AND NOT granted AND pid <> pg_backend_pid()"
)
_SQLITE_ROWS = "CREATE TABLE quitbot_test_rows (x INTEGER)"
_SQLITE_SPIN = "SELECT count(*) FROM quitbot_test_rows a, quitbot_test_rows b, quitbot_test_rows c"
_SQLITE_RELEASE = ("DROP TRIGGER quitbot_test_hold", "DROP TABLE quitbot_test_rows")


@asynccontextmanager
async def commits_held(url: str, held: Held = COMMIT) -> AsyncIterator[None]:
    """Every turn's commit (or what `held` names) in the database at `url` hangs until the
    block exits; kill the process before then. The database must already have its schema."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        await asyncio.to_thread(_sqlite, path, partial(_sqlite_hold, held))
        try:
            yield
        finally:
            await asyncio.to_thread(_sqlite, path, _sqlite_release)
        return
    holder = await asyncpg.connect(url)
    try:
        await holder.execute(f"SELECT pg_advisory_lock({LOCK})")
        for statement in _pg_hold(held):
            await holder.execute(statement)
        try:
            yield
        finally:
            await holder.fetch(_PG_END_WAITERS)
            for statement in _pg_release(held):
                await holder.execute(statement)
            await holder.execute(f"SELECT pg_advisory_unlock({LOCK})")
    finally:
        await holder.close()


def _sqlite(path: str, work: Callable[[sqlite3.Connection], None]) -> None:
    with closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as db:
        work(db)


def _sqlite_hold(held: Held, db: sqlite3.Connection) -> None:
    table, event, when = held
    db.execute(_SQLITE_ROWS)
    db.executemany("INSERT INTO quitbot_test_rows VALUES (?)", [(n,) for n in range(3000)])
    db.execute(
        f"CREATE TRIGGER quitbot_test_hold BEFORE {event} ON {table} "
        f"WHEN {when} BEGIN {_SQLITE_SPIN}; END"
    )


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
    run: Running,
    ask: Callable[[str], Awaitable[T]],
    shown_whole: Callable[[], Awaitable[object]] | None = None,
) -> tuple[T, T]:
    """With commits held: ask at length (the model holds that reply half-shown), then
    briefly (shown in full, its commit hanging), and SIGKILL the run. The brief reply is
    shown once `shown_whole()` returns (by default: once the run says it noted it so).
    What `ask` returned for each (half, whole)."""
    half = await ask(AT_LENGTH)
    await run.wait_output(lambda: "shown (complete: False)" in run.log)
    whole = await ask(BRIEFLY)
    if shown_whole is None:
        await run.wait_output(lambda: "shown (complete: True)" in run.log)
    else:
        await shown_whole()
    run.process.kill()
    await run.process.wait()
    return half, whole
