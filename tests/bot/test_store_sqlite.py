"""The SQLite store against real files in a temporary directory: its thread, group commit,
files and migrations. The behaviour both backends share is in test_store.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.conversation import ConversationKey, LadderState
from bot.settings import DatabaseTarget, parse_database_url
from bot.store import (
    SchemaTooNew,
    SqliteStore,
    StoreError,
    UnknownConversation,
    open_store,
    sqlite_batches,
    sqlite_sql,
)
from bot.store.migrations import MIGRATIONS, Migration
from tests.bot.storekit import (
    ENDED,
    KEY,
    QUIET,
    T0,
    assistant_message,
    at,
    ended_conversation,
    event,
    inbound,
    user_message,
)
from tests.wakes import CountedLoop

R = TypeVar("R")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "quitbot.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    async with await SqliteStore.open(str(db_path)) as opened:
        yield opened


async def on_thread(store: SqliteStore, use: Callable[[sqlite3.Connection], R]) -> R:
    """`use(connection)` on the store's thread, the connection's only user."""
    return await store._read(use)


async def fetch(store: SqliteStore, sql: str) -> list[Any]:
    return await on_thread(store, lambda db: db.execute(sql).fetchall())


def store_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("quitbot-sqlite")]


def mode_of(path: Path) -> int:
    return os.stat(path).st_mode & 0o777


def read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    connection = read_only(path)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


# --- opening ---------------------------------------------------------------------------


async def test_open_store_opens_a_file_from_the_database_url(tmp_path: Path) -> None:
    target = parse_database_url(f"sqlite:///{tmp_path}/q.db")
    store = await open_store(target)
    try:
        conversation = await store.create(KEY, "u1", T0)
        assert await store.get(conversation.id) == conversation
    finally:
        await store.close()
    assert (tmp_path / "q.db").exists()


async def test_open_store_works_in_memory() -> None:
    store = await open_store(DatabaseTarget("sqlite", ":memory:"))
    try:
        conversation = await store.create(KEY, "u1", T0)
        assert await store.current(KEY) == conversation
    finally:
        await store.close()


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("open_umask")
async def test_a_new_database_and_its_wal_files_are_readable_by_the_owner_only(
    db_path: Path,
) -> None:
    async with await SqliteStore.open(str(db_path)) as store:
        await store.create(KEY, "u1", T0)  # a write makes SQLite create -wal and -shm
        for suffix in ("", "-wal", "-shm"):
            file = db_path.with_name(db_path.name + suffix)
            assert mode_of(file) == 0o600, file
    assert mode_of(db_path.parent) == 0o700


async def test_an_existing_database_keeps_the_mode_its_operator_chose(db_path: Path) -> None:
    async with await SqliteStore.open(str(db_path)):
        pass
    os.chmod(db_path, 0o640)
    async with await SqliteStore.open(str(db_path)):
        pass
    assert mode_of(db_path) == 0o640


async def test_an_unusable_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.touch()
    with pytest.raises(StoreError, match="cannot create the database"):
        await SqliteStore.open(str(blocker / "q.db"))


async def test_the_connection_is_tuned_for_a_long_running_bot(store: SqliteStore) -> None:
    settings = {}
    for pragma in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous"):
        rows = await fetch(store, f"PRAGMA {pragma}")
        settings[pragma] = rows[0][0]
    assert settings == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": 5000,
        "synchronous": 1,  # NORMAL
    }


# --- migrations --------------------------------------------------------------------------


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


async def test_reopening_applies_nothing_twice_and_keeps_the_data(db_path: Path) -> None:
    async with await SqliteStore.open(str(db_path)) as store:
        conversation = await store.create(KEY, "u1", T0, history=[user_message("hi")])
    async with await SqliteStore.open(str(db_path)) as store:
        assert await store.get(conversation.id) == conversation
        assert [m.text for m in await store.messages(conversation.id)] == ["hi"]
    versions = query(db_path, "SELECT version FROM schema_version ORDER BY version")
    assert versions == [(m.version,) for m in MIGRATIONS]


async def test_a_database_from_a_newer_quitbot_is_refused(db_path: Path) -> None:
    async with await SqliteStore.open(str(db_path)):
        pass
    connection = sqlite3.connect(db_path)
    with connection:
        connection.execute(
            "INSERT INTO schema_version (version, description, applied_at) "
            "VALUES (99, 'from the future', '2030-01-01T00:00:00+00:00')"
        )
    connection.close()
    with pytest.raises(SchemaTooNew, match=r"schema version 99.*upgrade quitbot"):
        await SqliteStore.open(str(db_path))
    assert store_threads() == []  # the failed open shut its thread down


async def test_a_failing_migration_leaves_the_previous_version_whole(db_path: Path) -> None:
    broken = Migration(2, "half a change", ("CREATE TABLE notes (text TEXT)", "NOT SQL AT ALL"))
    with pytest.raises(sqlite3.OperationalError):
        await SqliteStore.open(str(db_path), migrations=(*MIGRATIONS[:1], broken))
    assert query(db_path, "SELECT MAX(version) FROM schema_version") == [(1,)]
    assert query(db_path, "SELECT name FROM sqlite_master WHERE name = 'notes'") == []

    fixed = Migration(2, "notes", ("CREATE TABLE notes (text TEXT)",))
    async with await SqliteStore.open(str(db_path), migrations=(*MIGRATIONS[:1], fixed)):
        pass
    assert query(db_path, "SELECT MAX(version) FROM schema_version") == [(2,)]


async def test_a_message_received_before_files_were_kept_comes_back_without_any(
    db_path: Path,
) -> None:
    """Migration 5 keeps what an older quitbot received: its files were never recorded."""
    async with await SqliteStore.open(str(db_path), migrations=MIGRATIONS[:4]):
        pass
    with contextlib.closing(sqlite3.connect(db_path)) as connection, connection:
        connection.execute(
            "INSERT INTO inbox (platform, event_id, place, user_id, text, at) "
            "VALUES ('discord', 'e1', 'thread-1', 'u1', 'hello', ?)",
            (at(1).isoformat(timespec="microseconds"),),
        )
    async with await SqliteStore.open(str(db_path)) as store:
        [kept] = await store.pending(at(2))
    assert (kept.event_id, kept.text, kept.files) == ("e1", "hello", ())


async def test_a_turn_begun_before_the_index_by_platform_id_is_taken_up_once(
    db_path: Path,
) -> None:
    """Migration 10 indexes the messages a database already holds."""
    received = replace(inbound("e1"), message_id="m1")
    message = user_message("hi", platform_message_id="m1")
    async with await SqliteStore.open(str(db_path), migrations=MIGRATIONS[:9]) as old:
        conversation = await old.create(KEY, "u1", T0)
        assert await old.receive(received, at(1))
        first = await old.begin_turn(conversation.id, received, message)
    async with await SqliteStore.open(str(db_path)) as store:
        [pending] = await store.pending(at(2))
        again = await store.begin_turn(conversation.id, pending, message)
    assert first is not None and again is not None and again.seq == first.seq
    indexes = query(db_path, "SELECT name FROM sqlite_master WHERE type = 'index'")
    assert ("messages_by_platform_id",) in indexes


def plan(path: Path, sql: str) -> str:
    rows = query(path, f"EXPLAIN QUERY PLAN {sql}")
    return " | ".join(str(row[-1]) for row in rows)


async def test_hot_paths_use_indexes_not_scans_or_sorts(store: SqliteStore, db_path: Path) -> None:
    recent = plan(
        db_path,
        "SELECT * FROM messages WHERE conversation_id = 'c' ORDER BY seq DESC LIMIT 20",
    )
    assert "PRIMARY KEY" in recent and "TEMP B-TREE" not in recent
    current = plan(
        db_path,
        "SELECT * FROM conversations WHERE platform = 'd' AND place = 'p' ORDER BY n DESC LIMIT 1",
    )
    assert "conversations_at_place" in current and "TEMP B-TREE" not in current
    ended = plan(
        db_path,
        "SELECT COUNT(*) FROM conversations WHERE platform = 'd' AND user_id = 'u' "
        "AND ended_at >= '2026' AND ended = 1",
    )
    assert "conversations_ended_by_user" in ended
    events = plan(db_path, "SELECT * FROM events WHERE conversation_id = 'c' ORDER BY n")
    assert "events_of_conversation" in events and "TEMP B-TREE" not in events
    begun = plan(
        db_path,
        "SELECT seq FROM messages WHERE conversation_id = 'c' AND role = 'user' "
        "AND platform_message_id = 'm1' ORDER BY seq DESC LIMIT 1",
    )
    assert "messages_by_platform_id" in begun and "TEMP B-TREE" not in begun
    earlier = plan(
        db_path,
        sqlite_sql.RECEIVED_BEFORE.replace("?1", "'d'").replace("?2", "'p'").replace("?3", "'e'"),
    )
    assert "inbox_by_place" in earlier and "TEMP B-TREE" not in earlier


async def test_a_cancelled_commit_is_all_or_nothing_and_completes_once_asked_for(
    store: SqliteStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)
    for yields in range(15):
        before = await store.get(conversation.id)
        assert before is not None
        task = asyncio.create_task(
            store.commit_turn(
                conversation.id,
                LadderState(redirects=before.ladder.redirects + 1),
                at(yields),
                messages=[assistant_message(f"a{yields}")],
                events=[event("turn", n=yields)],
            )
        )
        for _ in range(yields):
            await asyncio.sleep(0)  # let the task get part of the way, never a timed wait
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        state = await store.get(conversation.id)
        assert state is not None
        messages = await store.messages(conversation.id)
        events = await store.events(conversation.id)
        assert len(messages) == len(events) == state.ladder.redirects
        # Cancelled before its first step, the task asked for nothing; cancelled in the turn
        # of the loop that asked, its operation waited to be sent (with whatever else that
        # turn asked for) and never ran; after that, the transaction ran to its end on the
        # store's thread regardless of the cancel.
        assert state.ladder.redirects == before.ladder.redirects + (1 if yields >= 2 else 0)
    after = await store.commit_turn(conversation.id, ENDED, at(99), messages=[user_message("z")])
    assert after.state == "ended"


@contextlib.asynccontextmanager
async def thread_held(store: SqliteStore) -> AsyncIterator[None]:
    """Keep the store's thread busy, so that what is asked for meanwhile queues up."""
    release = threading.Event()
    busy = asyncio.create_task(on_thread(store, lambda db: release.wait(10)))
    await asyncio.sleep(0)  # `busy` is on the thread now, a batch of its own
    try:
        yield
    finally:
        release.set()
        assert await busy


async def queued(call: Any) -> asyncio.Task[Any]:
    """`call` as a task that has been asked for (it is in the store's queue)."""
    task = asyncio.create_task(call)
    await asyncio.sleep(0)
    return task


async def queued_turns(
    store: SqliteStore, conversation_id: str, numbers: Iterable[int]
) -> list[asyncio.Task[Any]]:
    """A turn per number (event `e<n>`, text `<n>`), each in the store's queue in order."""
    return [
        await queued(
            store.begin_turn(conversation_id, inbound(f"e{n}"), user_message(str(n), at(n)))
        )
        for n in numbers
    ]


async def traced_on_thread(store: SqliteStore) -> list[str]:
    """Start tracing on the store's thread; the list fills as statements run."""
    statements: list[str] = []
    await on_thread(store, lambda db: db.set_trace_callback(statements.append))
    return statements


def transactions(statements: list[str]) -> list[str]:
    """The transaction-control statements among `statements`, in order."""
    keywords = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
    return [s for s in statements if s.startswith(keywords)]


async def test_operations_asked_for_together_commit_in_one_transaction(
    store: SqliteStore,
) -> None:
    first = await store.create(KEY, "u1", T0)
    second = await store.create(ConversationKey("discord", "t2"), "u1", T0)
    statements = await traced_on_thread(store)
    async with thread_held(store):
        one = await queued(store.begin_turn(first.id, inbound("e1"), user_message("a", at(1))))
        two = await queued(store.begin_turn(second.id, inbound("e2"), user_message("b", at(2))))
        read = await queued(store.current(KEY))
    assert (await one) is not None and (await two) is not None
    assert (await read) == replace(first, updated_at=at(1))  # it saw the turn queued before it
    # No savepoint each while none raises: two statements and two releases of the GIL less.
    assert transactions(statements) == ["BEGIN IMMEDIATE", "COMMIT"]
    assert [m.text for m in await store.messages(first.id)] == ["a"]
    assert [m.text for m in await store.messages(second.id)] == ["b"]


async def test_operations_asked_for_in_one_turn_of_the_loop_go_in_one_batch(
    store: SqliteStore,
) -> None:
    """The thread idle, the first operation waits for the end of the loop's turn instead of
    going alone: one transaction (and one hop) for all three, not one and then two."""
    conversations = [await store.create(ConversationKey("d", f"t{n}"), "u1", T0) for n in (1, 2, 3)]
    statements = await traced_on_thread(store)
    begun = await asyncio.gather(
        *(
            store.begin_turn(c.id, inbound(f"e{n}"), user_message(str(n), at(n)))
            for n, c in enumerate(conversations)
        )
    )
    assert all(begun)
    assert transactions(statements) == ["BEGIN IMMEDIATE", "COMMIT"]


async def test_a_backlog_is_committed_in_batches_of_at_most_max_batch(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_batches, "MAX_BATCH", 2)
    conversation = await store.create(KEY, "u1", T0)
    statements = await traced_on_thread(store)
    async with thread_held(store):
        turns = await queued_turns(store, conversation.id, range(1, 6))
    assert all([await turn for turn in turns])
    assert transactions(statements).count("COMMIT") == 3  # 2 + 2 + 1
    assert [m.text for m in await store.messages(conversation.id)] == ["1", "2", "3", "4", "5"]


async def test_a_receipt_goes_ahead_of_queued_writes_in_a_batch_of_its_own(
    store: SqliteStore,
) -> None:
    """The platform waits on a receipt (Slack's acknowledgement); replies' writes do not."""
    conversation = await store.create(KEY, "u1", T0)
    statements = await traced_on_thread(store)
    async with thread_held(store):
        turns = await queued_turns(store, conversation.id, (1, 2))
        receipts = [await queued(store.receive(inbound(f"r{n}"), at(9))) for n in (1, 2)]
    assert all([await task for task in (*receipts, *turns)])
    inserts = [s.split(" (")[0] for s in statements if s.startswith("INSERT INTO")]
    assert inserts == [*["INSERT INTO processed_events", "INSERT INTO inbox"] * 2,
                       *["INSERT INTO processed_events", "INSERT INTO messages"] * 2]  # fmt: skip
    assert transactions(statements).count("COMMIT") == 2  # the receipts', then the turns'
    assert [m.text for m in await store.messages(conversation.id)] == ["1", "2"]


async def test_an_operation_failing_with_a_receipt_waiting_fails_alone(
    store: SqliteStore,
) -> None:
    """Tried without savepoints, the operation that raises undoes its whole transaction;
    it then runs again in a savepoint (its statements run twice, its error once to its
    caller) and the receipt and the rest of the batch are kept as if nothing happened."""
    conversation = await store.create(KEY, "u1", T0)
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def half_then_fail(db: sqlite3.Connection) -> None:
        runs.append(len(runs))
        db.execute(
            "UPDATE conversations SET updated_at = 'half-way' WHERE id = ?", (conversation.id,)
        )
        started.set()
        release.wait(10)
        raise UnknownConversation("on purpose")

    async with thread_held(store):
        failing = await queued(store._write(half_then_fail))
        turns = await queued_turns(store, conversation.id, (1, 2))
    assert await asyncio.to_thread(started.wait, 10)
    receipt = await queued(store.receive(inbound("r1"), at(9)))
    release.set()
    with pytest.raises(UnknownConversation, match="on purpose"):
        await failing
    assert await receipt and all([await turn for turn in turns])
    assert runs == [0, 1]
    assert (await store.get(conversation.id)).updated_at == at(2)  # nothing of the half-way
    assert [m.text for m in await store.messages(conversation.id)] == ["1", "2"]
    assert [i.event_id for i in await store.pending(at(10))] == ["r1"]


async def test_a_receipt_cuts_into_the_batch_under_way(store: SqliteStore) -> None:
    """It waits for the operation under way, not for the rest of the batch: it commits with
    what ran before it, and the batch goes on in a transaction of its own."""
    conversation = await store.create(KEY, "u1", T0)
    statements = await traced_on_thread(store)
    started, release = threading.Event(), threading.Event()

    def hold(db: sqlite3.Connection) -> bool:
        started.set()
        return release.wait(10)

    async with thread_held(store):
        held = await queued(store._write(hold))
        turns = await queued_turns(store, conversation.id, (1, 2))
    assert await asyncio.to_thread(started.wait, 10)  # `held`, `e1`, `e2`: one batch, begun
    receipt = await queued(store.receive(inbound("r1"), at(9)))
    release.set()
    assert await receipt and await held and all([await turn for turn in turns])
    inserts = [s.split(" (")[0] for s in statements if s.startswith("INSERT INTO")]
    assert inserts == [
        *["INSERT INTO processed_events", "INSERT INTO inbox"],
        *["INSERT INTO processed_events", "INSERT INTO messages"] * 2,
    ]
    one_transaction = ["BEGIN IMMEDIATE", "COMMIT"]
    assert transactions(statements) == one_transaction * 2  # `held` and the receipt, the turns


async def test_a_lone_operation_is_a_transaction_of_its_own_without_savepoints(
    store: SqliteStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)
    statements = await traced_on_thread(store)
    await store.begin_turn(conversation.id, inbound("e1"), user_message("a"))
    await store.current(KEY)
    assert transactions(statements) == ["BEGIN IMMEDIATE", "COMMIT"]


async def test_an_operation_failing_in_a_batch_is_rolled_back_alone(store: SqliteStore) -> None:
    first = await store.create(KEY, "u1", T0)
    second = await store.create(ConversationKey("discord", "t2"), "u1", T0)
    statements = await traced_on_thread(store)
    bad = replace(assistant_message("oops"), role="system")
    async with thread_held(store):
        before = await queued(store.begin_turn(first.id, inbound("e1"), user_message("a")))
        failing = await queued(
            store.commit_turn(
                second.id,
                ENDED,
                at(5),
                messages=[assistant_message("fine"), bad],
                events=[event("x")],
            )
        )
        unknown = await queued(store.add_feedback("cnothere22", "u1", "?", T0))
        after = await queued(store.commit_turn(first.id, LadderState(redirects=1), at(6)))
    assert await before is not None
    with pytest.raises(sqlite3.IntegrityError):
        await failing
    with pytest.raises(UnknownConversation):
        await unknown
    assert (await after).ladder.redirects == 1
    # Tried without savepoints, the failing turn rolls it all back; what ran then runs again,
    # each in its own savepoint, and commits; the rest goes on in a transaction of its own.
    assert transactions(statements) == [
        *["BEGIN IMMEDIATE", "ROLLBACK"],
        "BEGIN IMMEDIATE",
        *["SAVEPOINT op", "RELEASE op"],
        *["SAVEPOINT op", "ROLLBACK TO op", "RELEASE op"],
        "COMMIT",
        *["BEGIN IMMEDIATE", "ROLLBACK"],
        "BEGIN IMMEDIATE",
        *["SAVEPOINT op", "ROLLBACK TO op", "RELEASE op"],
        "COMMIT",
        *["BEGIN IMMEDIATE", "COMMIT"],
    ]
    assert await store.get(second.id) == second  # nothing of the failed turn, not even "fine"
    assert await store.messages(second.id) == []
    assert await store.events(second.id) == []
    assert [m.text for m in await store.messages(first.id)] == ["a"]


async def test_a_failed_commit_fails_every_operation_in_the_batch(store: SqliteStore) -> None:
    conversation = await store.create(KEY, "u1", T0)

    def orphan_event_checked_at_commit(db: sqlite3.Connection) -> None:
        # Deferred, the foreign key is checked by COMMIT instead of by the INSERT.
        db.execute("PRAGMA defer_foreign_keys = ON")
        db.execute(
            "INSERT INTO events (conversation_id, kind, at, actor, detail) "
            "VALUES ('cnothere22', 'x', '', 'model', '{}')"
        )

    async with thread_held(store):
        turn = await queued(store.begin_turn(conversation.id, inbound("e1"), user_message("a")))
        doomed = await queued(store._write(orphan_event_checked_at_commit))
        read = await queued(store.get(conversation.id))
    for task in (turn, doomed, read):
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            await task
    assert await store.messages(conversation.id) == []
    assert await store.get(conversation.id) == conversation
    assert not await on_thread(store, lambda db: db.in_transaction)
    assert await store.begin_turn(conversation.id, inbound("e1"), user_message("a")) is not None


async def test_a_receipt_cut_into_a_transaction_that_fails_fails_with_it(
    store: SqliteStore,
) -> None:
    """Nobody is left waiting: the receipt, the operation before it and the rest all fail."""
    conversation = await store.create(KEY, "u1", T0)
    started, release = threading.Event(), threading.Event()

    def orphan_event_then_hold(db: sqlite3.Connection) -> None:
        db.execute("PRAGMA defer_foreign_keys = ON")  # checked by COMMIT, not by the INSERT
        db.execute(
            "INSERT INTO events (conversation_id, kind, at, actor, detail) "
            "VALUES ('cnothere22', 'x', '', 'model', '{}')"
        )
        started.set()
        release.wait(10)

    async with thread_held(store):
        doomed = await queued(store._write(orphan_event_then_hold))
        [turn] = await queued_turns(store, conversation.id, (1,))
    assert await asyncio.to_thread(started.wait, 10)
    receipt = await queued(store.receive(inbound("r1"), at(9)))
    release.set()
    for task in (doomed, receipt, turn):
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            await task
    assert await store.messages(conversation.id) == []
    assert await store.pending(at(99)) == []
    assert await store.receive(inbound("r1"), at(10))  # Slack's retry is kept this time


async def test_an_error_that_ends_the_whole_transaction_fails_the_whole_batch(
    store: SqliteStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)

    def lose_the_transaction(db: sqlite3.Connection) -> None:
        db.execute("ROLLBACK")  # as SQLite does by itself on a full disk or an I/O error
        raise sqlite3.OperationalError("database or disk is full")

    async with thread_held(store):
        turn = await queued(store.begin_turn(conversation.id, inbound("e1"), user_message("a")))
        failing = await queued(store._write(lose_the_transaction))
        later = await queued(store.add_events(conversation.id, [event("x")]))
    for task in (turn, failing, later):
        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            await task
    assert await store.messages(conversation.id) == []
    assert await store.events(conversation.id) == []  # `later` never ran outside a transaction


async def test_an_operation_cancelled_while_queued_never_runs(store: SqliteStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    async with thread_held(store):
        turn = await queued(
            store.begin_turn(conversation.id, inbound("e1"), user_message("a", at(1)))
        )
        turn.cancel()
        with pytest.raises(asyncio.CancelledError):
            await turn
    assert await store.messages(conversation.id) == []
    assert await store.get(conversation.id) == conversation
    assert await store.begin_turn(conversation.id, inbound("e1"), user_message("b")) is not None


async def test_an_operation_cancelled_once_its_batch_is_running_completes(
    store: SqliteStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)
    release = threading.Event()
    async with thread_held(store):
        busy = await queued(on_thread(store, lambda db: release.wait(10)))
        turn = await queued(
            store.begin_turn(conversation.id, inbound("e1"), user_message("a", at(1)))
        )
    # The first hold is over, so the batch of `busy` and `turn` is on the thread.
    turn.cancel()
    release.set()
    assert await busy
    with pytest.raises(asyncio.CancelledError):
        await turn
    assert [m.text for m in await store.messages(conversation.id)] == ["a"]
    touched = await store.get(conversation.id)
    assert touched is not None and touched.updated_at == at(1)
    assert await store.begin_turn(conversation.id, inbound("e1"), user_message("a")) is None


async def test_close_waits_for_every_operation_asked_for(db_path: Path) -> None:
    store = await SqliteStore.open(str(db_path))
    conversation = await store.create(KEY, "u1", T0)
    async with thread_held(store):
        turn = await queued(store.begin_turn(conversation.id, inbound("e1"), user_message("a")))
        closing = await queued(store.close())
        with pytest.raises(StoreError, match="closed"):
            await store.current(KEY)
    await closing
    assert await turn is not None
    assert query(db_path, "SELECT text FROM messages") == [("a",)]
    assert store_threads() == []


async def test_only_the_store_thread_touches_the_connection(store: SqliteStore) -> None:
    threads: set[str] = set()

    def note_thread(_: str) -> None:
        threads.add(threading.current_thread().name)

    await on_thread(store, lambda db: db.set_trace_callback(note_thread))
    conversation = await store.create(KEY, "u1", T0)
    await store.begin_turn(conversation.id, inbound("e1"), user_message("a"))
    await store.commit_turn(conversation.id, ENDED, at(1), [assistant_message("b")])
    await store.record_blocked(conversation.id, inbound("e2"), at(2), QUIET)
    await store.recent_context(conversation.id, 10)
    assert len(threads) == 1
    assert next(iter(threads)).startswith("quitbot-sqlite")


async def test_close_ends_the_thread_and_later_calls_fail_clearly(db_path: Path) -> None:
    store = await SqliteStore.open(str(db_path))
    assert len(store_threads()) == 1
    await store.create(KEY, "u1", T0)
    await store.close()
    assert store_threads() == []
    with pytest.raises(StoreError, match="closed"):
        await store.current(KEY)


async def test_close_is_idempotent_and_the_data_survives(db_path: Path) -> None:
    store = await SqliteStore.open(str(db_path))
    conversation = await store.create(KEY, "u1", T0)
    await store.commit_turn(conversation.id, ENDED, at(1), messages=[user_message("a")])
    await store.close()
    await store.close()
    async with await SqliteStore.open(str(db_path)) as reopened:
        resumed = await reopened.current(KEY)
        assert resumed is not None and resumed.ladder == ENDED
        assert [m.text for m in await reopened.messages(conversation.id)] == ["a"]


# --- transaction shape -------------------------------------------------------------------


async def traced(store: SqliteStore, call: Any) -> list[str]:
    """The SQL statements SQLite ran for `call`, including those sqlite3 adds itself."""
    statements: list[str] = []
    await on_thread(store, lambda db: db.set_trace_callback(statements.append))
    try:
        await call
    finally:
        await on_thread(store, lambda db: db.set_trace_callback(None))
    # SQLite traces again when a statement starts a trigger (ladder updates do), and
    # sqlite3 reports that with the statement's own text: count it once.
    return [s for n, s in enumerate(statements) if n == 0 or s != statements[n - 1]]


async def test_a_turn_takes_the_write_lock_up_front_in_few_statements(store: SqliteStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    begin = await traced(
        store, store.begin_turn(conversation.id, inbound("e1"), user_message("a", at(1)))
    )
    commit = await traced(
        store,
        store.commit_turn(
            conversation.id, LadderState(redirects=1), at(2), [assistant_message("b", at(2))]
        ),
    )
    blocked = await traced(store, store.record_blocked(conversation.id, inbound("e2"), T0, QUIET))
    # A message received first (every Slack and Discord one) was claimed by its receipt.
    assert await store.receive(inbound("e3"), at(3))
    received = await traced(
        store, store.begin_turn(conversation.id, inbound("e3"), user_message("c", at(3)))
    )
    for statements in (begin, commit, blocked, received):
        assert statements[0] == "BEGIN IMMEDIATE"
        assert statements[-1] == "COMMIT"
    # One hop to the store's thread each, but every statement still costs a step.
    assert (len(begin), len(commit), len(blocked), len(received)) == (6, 4, 4, 5)
    assert not any(s.startswith("INSERT INTO processed_events") for s in received)
    # Where it starts from: the conversation with whether anyone else wrote there and its
    # community's settings, then the messages received before; the rest only if there are any.
    community = await store.create(ConversationKey("slack", "C1:1"), "u1", T0, community="T1")
    alone = await traced(store, store.at_place(replace(inbound("e4"), key=community.key)))
    assert len(alone) == 2


async def test_no_operation_leaves_a_transaction_open(store: SqliteStore) -> None:
    conversation_id = await ended_conversation(store)
    active = await store.create(ConversationKey("discord", "t2"), "u1", T0)

    async def check(call: Any) -> None:
        with contextlib.suppress(LookupError, ValueError, sqlite3.IntegrityError):
            await call
        assert not await on_thread(store, lambda db: db.in_transaction)

    await check(store.begin_turn(active.id, inbound("e1"), user_message("a")))
    await check(store.begin_turn(active.id, inbound("e1"), user_message("a")))  # duplicate
    await check(store.begin_turn("cnothere22", inbound("e2"), user_message("a")))
    await check(store.begin_turn(active.id, inbound("e3"), replace(user_message("a"), role="x")))
    await check(store.record_blocked(conversation_id, inbound("e4"), T0, QUIET))  # notify
    await check(store.record_blocked(conversation_id, inbound("e5"), T0, QUIET))  # quiet
    await check(store.commit_turn(active.id, LadderState(), T0, exclude_seq=99))
    await check(store.add_events("cnothere22", [event("x")]))
    await check(store.add_feedback("cnothere22", "u1", "?", T0))
    await check(store.create(KEY, "u1", T0, history=[replace(user_message("a"), role="x")]))


async def test_a_cancelled_begin_turn_or_blocked_message_is_all_or_nothing_once_asked_for(
    store: SqliteStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)
    ended_id = await ended_conversation(store)
    for yields in range(12):
        turn = asyncio.create_task(
            store.begin_turn(conversation.id, inbound(f"t{yields}"), user_message("a", at(yields)))
        )
        blocked = asyncio.create_task(
            store.record_blocked(ended_id, inbound(f"b{yields}", f"u{yields}"), T0, QUIET)
        )
        for _ in range(yields):
            await asyncio.sleep(0)
        turn.cancel()
        blocked.cancel()
        for task in (turn, blocked):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        claimed = {row[0] for row in await fetch(store, "SELECT event_id FROM processed_events")}
        # Cancelled before its first step, the turn was never asked for; cancelled in the
        # turn of the loop that asked, it waited to be sent and never ran; after that, it
        # was sent to the idle thread, `blocked` with it in one batch, and ran whole.
        assert (f"t{yields}" in claimed) == (yields > 1)
        assert (f"b{yields}" in claimed) == (yields > 1)
        messages = await store.messages(conversation.id)
        assert len(messages) == len([e for e in claimed if e.startswith("t")])
        state = await store.get(conversation.id)
        assert state is not None
        assert state.updated_at == (messages[-1].at if messages else T0)
        notices = await fetch(store, "SELECT user_id FROM blocked_notices")
        assert {row[0] for row in notices} == {f"u{e[1:]}" for e in claimed if e.startswith("b")}
    assert await store.begin_turn(conversation.id, inbound("z"), user_message("z")) is not None


async def test_a_receipt_from_another_threads_loop_needs_no_turn_of_this_one(
    store: SqliteStore,
) -> None:
    """Slack's listener keeps messages from a loop of its own (issue 22): their outcomes are
    set on the store's thread, so a loop busy with turns (held here) never delays them."""
    receipts, results, done = store.anywhere(), list[bool](), threading.Event()

    async def keep() -> None:
        results.append(await receipts.receive(inbound("r1"), at(9)))
        results.append(await receipts.in_use(KEY))
        results.append(await receipts.receive(inbound("r1"), at(9)))  # a retry

    thread = threading.Thread(target=lambda: (asyncio.run(keep()), done.set()))
    thread.start()
    assert done.wait(10)  # this loop held all along
    thread.join()
    assert results == [True, True, False]
    assert [i.event_id for i in await store.pending(at(10))] == ["r1"]


async def test_receipts_from_both_loops_at_once_are_each_kept_once(store: SqliteStore) -> None:
    """Both sides take from the same receipts at once (the store's loop dispatching, the
    thread asked by the other loop): none is lost, none is run twice."""
    receipts = store.anywhere()

    def elsewhere() -> list[bool]:
        async def keep_all() -> list[bool]:
            return list(
                await asyncio.gather(
                    *(receipts.receive(inbound(f"t{n}"), at(9)) for n in range(300))
                )
            )

        return asyncio.run(keep_all())

    here = asyncio.gather(*(store.receive(inbound(f"m{n}"), at(9)) for n in range(300)))
    kept_there, kept_here = await asyncio.gather(asyncio.to_thread(elsewhere), here)
    assert all(kept_there) and all(kept_here)
    assert len({i.event_id for i in await store.pending(at(10))}) == 600


async def test_receipts_kept_together_wake_their_loop_once(store: SqliteStore) -> None:
    """Issue 22, third round: the receipts a listener's loop asked for while the store's
    thread was busy are kept in one transaction, and their outcomes come back to that loop
    in one call (they once woke it once each), each to its own caller, a cancelled one's
    message kept all the same."""
    receipts, busy, loop = store.anywhere(), threading.Event(), CountedLoop()
    held = threading.Event()

    def hold(db: sqlite3.Connection) -> bool:
        held.set()
        return busy.wait(10)

    holding = asyncio.create_task(on_thread(store, hold))
    await asyncio.to_thread(held.wait, 10)  # the store's thread held

    def elsewhere() -> tuple[list[bool | BaseException], int]:
        asking = [loop.create_task(receipts.receive(inbound(f"k{n}"), at(9))) for n in range(99)]
        asking.append(loop.create_task(receipts.receive(inbound("k0"), at(9))))  # a retry
        loop.run_until_complete(asyncio.sleep(0))  # every receipt asked for
        asking[7].cancel()
        busy.set()
        outcomes = loop.run_until_complete(asyncio.gather(*asking, return_exceptions=True))
        return outcomes, loop.wakes

    try:
        outcomes, wakes = await asyncio.to_thread(elsewhere)
    finally:
        busy.set()
        loop.close()
        await holding
    assert isinstance(outcomes[7], asyncio.CancelledError)
    assert outcomes[:7] + outcomes[8:] == [True] * 98 + [False]
    assert wakes == 1
    assert len({i.event_id for i in await store.pending(at(10))}) == 99


async def test_receipts_from_two_other_loops_each_hear_their_own(store: SqliteStore) -> None:
    receipts = store.anywhere()

    def elsewhere(name: str) -> list[bool]:
        async def keep_all() -> list[bool]:
            ids = [f"{name}{n}" for n in range(200)] + [f"{name}0"]
            return list(await asyncio.gather(*(receipts.receive(inbound(i), at(9)) for i in ids)))

        return asyncio.run(keep_all())

    there, over_there = await asyncio.gather(
        asyncio.to_thread(elsewhere, "a"), asyncio.to_thread(elsewhere, "b")
    )
    assert there == over_there == [True] * 200 + [False]
    assert len({i.event_id for i in await store.pending(at(10))}) == 400


async def test_more_receipts_than_a_batch_are_kept_in_the_order_asked(
    store: SqliteStore,
) -> None:
    """From this loop and from another, while the store's thread is busy: more than
    MAX_BATCH receipts wait, and later ones never cut in ahead of earlier ones (they did:
    a batch of receipts let the rest cut in after its first)."""
    receipts, busy, held = store.anywhere(), threading.Event(), threading.Event()
    many = sqlite_batches.MAX_BATCH * 2 + 10

    def hold(db: sqlite3.Connection) -> bool:
        held.set()
        return busy.wait(10)

    def elsewhere() -> None:
        async def keep_all() -> None:
            asking = [receipts.receive(inbound(f"e{n:04d}"), at(9)) for n in range(many)]
            kept = asyncio.gather(*asking)
            await asyncio.sleep(0)  # every receipt asked for
            busy.set()
            assert all(await kept)

        asyncio.run(keep_all())

    holding = asyncio.create_task(on_thread(store, hold))
    await asyncio.to_thread(held.wait, 10)
    here = asyncio.gather(*(store.receive(inbound(f"h{n:04d}"), at(9)) for n in range(many)))
    await asyncio.gather(asyncio.to_thread(elsewhere), here, holding)
    kept = [i.event_id for i in await store.pending(at(10))]
    for side in "eh":
        assert [e for e in kept if e[0] == side] == [f"{side}{n:04d}" for n in range(many)]
