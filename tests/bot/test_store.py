"""The SQLite store against real files in a temporary directory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.conversation import (
    Actor,
    AuditEvent,
    ConversationKey,
    EndReason,
    Inbound,
    LadderState,
)
from bot.ports import BlockedOutcome, NewMessage
from bot.settings import DatabaseTarget, parse_database_url
from bot.store import SchemaTooNew, SqliteStore, StoreError, UnknownConversation, open_store
from bot.store import sqlite as sqlite_module
from bot.store.migrations import MIGRATIONS, Migration

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
KEY = ConversationKey("discord", "thread-1")
QUIET = timedelta(seconds=60)
ENDED = LadderState(
    redirects=3,
    warned=True,
    ended=True,
    ended_by=Actor.MODEL,
    ended_reason=EndReason.PERSISTENT_ABUSE,
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def user_message(text: str, when: datetime = T0, **kwargs: object) -> NewMessage:
    api = [{"role": "user", "content": [{"type": "text", "text": text}]}]
    return NewMessage("user", text, api, when, **kwargs)  # type: ignore[arg-type]


def assistant_message(text: str, when: datetime = T0) -> NewMessage:
    api = [{"role": "assistant", "content": [{"type": "text", "text": text}]}]
    return NewMessage("assistant", text, api, when)


def inbound(event_id: str, user_id: str = "u1", key: ConversationKey = KEY) -> Inbound:
    return Inbound(key=key, event_id=event_id, user_id=user_id, text="hello")


def event(kind: str, when: datetime = T0, **detail: object) -> AuditEvent:
    return AuditEvent(kind, when, Actor.MODEL, dict(detail))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "quitbot.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    async with await SqliteStore.open(str(db_path)) as opened:
        yield opened


R = TypeVar("R")


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


# --- conversations -----------------------------------------------------------------------


async def test_create_starts_an_active_conversation_with_a_typable_id(store: SqliteStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    assert re.fullmatch(r"c[2-9a-hj-km-np-z]{9}", conversation.id)
    assert conversation.key == KEY
    assert conversation.user_id == "u1"
    assert conversation.ladder == LadderState()
    assert conversation.state == "active"
    assert (conversation.created_at, conversation.updated_at) == (T0, T0)
    assert conversation.ended_at is None
    assert conversation.branched_from is None


async def test_ids_are_unique(store: SqliteStore) -> None:
    conversations = [await store.create(KEY, "u1", T0) for _ in range(50)]
    assert len({c.id for c in conversations}) == 50


async def test_create_can_carry_history_and_events_for_a_branch(store: SqliteStore) -> None:
    original = await store.create(KEY, "u1", T0)
    history = [user_message("one"), assistant_message("two")]
    branch = await store.create(
        ConversationKey("discord", "thread-2"),
        "u1",
        at(5),
        branched_from=original.id,
        history=history,
        events=[event("branched", at(5), source=original.id)],
    )
    assert branch.branched_from == original.id
    messages = await store.messages(branch.id)
    assert [(m.seq, m.role, m.text) for m in messages] == [
        (1, "user", "one"),
        (2, "assistant", "two"),
    ]
    assert await store.events(branch.id) == [event("branched", at(5), source=original.id)]


async def test_current_is_the_newest_conversation_at_a_place(store: SqliteStore) -> None:
    assert await store.current(KEY) is None
    await store.create(KEY, "u1", at(10))
    newer = await store.create(KEY, "u1", at(0))  # created later, whatever its clock says
    await store.create(ConversationKey("slack", KEY.place), "u1", at(20))
    await store.create(ConversationKey("discord", "elsewhere"), "u1", at(30))
    assert await store.current(KEY) == newer


async def test_get_an_unknown_id_is_none(store: SqliteStore) -> None:
    assert await store.get("cnothere22") is None


# --- turns -------------------------------------------------------------------------------


async def test_begin_turn_numbers_the_message_and_touches_the_conversation(
    store: SqliteStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)
    first = await store.begin_turn(conversation.id, inbound("e1"), user_message("a", at(1)))
    second = await store.begin_turn(
        conversation.id, inbound("e2"), user_message("b", at(2), platform_message_id="m2")
    )
    assert first is not None and second is not None
    assert (first.seq, second.seq) == (1, 2)
    assert second.platform_message_id == "m2"
    assert await store.messages(conversation.id) == [first, second]
    touched = await store.get(conversation.id)
    assert touched is not None and touched.updated_at == at(2)


async def test_begin_turn_handles_a_platform_event_once(store: SqliteStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    assert await store.begin_turn(conversation.id, inbound("e1"), user_message("a")) is not None
    again = await store.begin_turn(conversation.id, inbound("e1"), user_message("a again", at(9)))
    assert again is None
    assert [m.text for m in await store.messages(conversation.id)] == ["a"]
    unchanged = await store.get(conversation.id)
    assert unchanged is not None and unchanged.updated_at == T0


async def test_a_received_event_is_kept_until_a_turn_takes_it(store: SqliteStore) -> None:
    assert await store.receive(inbound("e1"), at(1))
    assert not await store.receive(inbound("e1"), at(2))  # a retry is not kept twice
    [kept] = await store.pending()
    assert (kept.key, kept.event_id, kept.user_id, kept.text) == (KEY, "e1", "u1", "hello")
    conversation = await store.create(KEY, "u1", T0)
    taken = await store.begin_turn(conversation.id, inbound("e1"), user_message("hi"))
    assert taken is not None and await store.pending() == []
    again = await store.begin_turn(conversation.id, inbound("e1"), user_message("hi"))
    assert again is None


async def test_a_received_event_to_an_ended_conversation_is_taken_once(
    store: SqliteStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)
    assert await store.receive(inbound("e1"), at(1))
    quiet = timedelta(minutes=1)
    assert await store.record_blocked(conversation.id, inbound("e1"), at(1), quiet) is (
        BlockedOutcome.NOTIFY
    )
    assert await store.record_blocked(conversation.id, inbound("e1"), at(2), quiet) is (
        BlockedOutcome.DUPLICATE
    )
    assert await store.pending() == []


async def test_settle_forgets_a_received_event(store: SqliteStore) -> None:
    assert await store.receive(inbound("e1"), at(1))
    await store.settle(inbound("e1"))
    assert await store.pending() == []
    assert not await store.receive(inbound("e1"), at(2))  # still handled once


async def test_event_ids_are_per_platform(store: SqliteStore) -> None:
    slack = ConversationKey("slack", "C1:1.0")
    discord_conversation = await store.create(KEY, "u1", T0)
    slack_conversation = await store.create(slack, "u1", T0)
    assert await store.begin_turn(discord_conversation.id, inbound("e1"), user_message("a"))
    assert await store.begin_turn(
        slack_conversation.id, inbound("e1", key=slack), user_message("b")
    )


async def test_begin_turn_in_an_unknown_conversation_claims_nothing(store: SqliteStore) -> None:
    with pytest.raises(UnknownConversation):
        await store.begin_turn("cnothere22", inbound("e1"), user_message("a"))
    conversation = await store.create(KEY, "u1", T0)
    assert await store.begin_turn(conversation.id, inbound("e1"), user_message("a"))


async def test_a_failed_begin_turn_leaves_the_event_unclaimed(store: SqliteStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    bad = replace(user_message("a"), role="system")
    with pytest.raises(sqlite3.IntegrityError):
        await store.begin_turn(conversation.id, inbound("e1"), bad)
    assert await store.begin_turn(conversation.id, inbound("e1"), user_message("a"))
    assert [m.seq for m in await store.messages(conversation.id)] == [1]


async def test_an_event_without_an_id_is_refused(store: SqliteStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    with pytest.raises(ValueError, match="event_id"):
        await store.begin_turn(conversation.id, inbound(""), user_message("a"))


async def test_commit_turn_stores_ladder_messages_and_events_together(
    store: SqliteStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)
    await store.begin_turn(conversation.id, inbound("e1"), user_message("bad request", at(1)))
    ladder = LadderState(redirects=1)
    after = await store.commit_turn(
        conversation.id,
        ladder,
        at(2),
        messages=[assistant_message("I can't help with that.", at(2))],
        events=[event("redirect", at(2), note="asked for malware", message_ids=["m1"])],
        exclude_seq=1,
    )
    assert after.ladder == ladder
    assert after.updated_at == at(2)
    assert await store.get(conversation.id) == after
    messages = await store.messages(conversation.id)
    assert [(m.seq, m.role, m.in_context) for m in messages] == [
        (1, "user", False),
        (2, "assistant", True),
    ]
    assert await store.events(conversation.id) == [
        event("redirect", at(2), note="asked for malware", message_ids=["m1"])
    ]


async def test_ending_stamps_ended_at_once_and_reopening_clears_it(store: SqliteStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    ended = await store.commit_turn(conversation.id, ENDED, at(5))
    assert ended.state == "ended"
    assert ended.ladder == ENDED
    assert ended.ended_at == at(5)
    still_ended = await store.commit_turn(conversation.id, ENDED, at(9))
    assert still_ended.ended_at == at(5)
    reopened = await store.commit_turn(
        conversation.id, LadderState(redirects=3, warned=True), at(20)
    )
    assert reopened.state == "active"
    assert reopened.ended_at is None


async def test_commit_turn_on_an_unknown_conversation_fails(store: SqliteStore) -> None:
    with pytest.raises(UnknownConversation):
        await store.commit_turn("cnothere22", LadderState(), T0)


async def test_a_failure_mid_commit_leaves_nothing_half_written(store: SqliteStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    await store.begin_turn(conversation.id, inbound("e1"), user_message("a"))
    bad = replace(assistant_message("oops"), role="system")
    with pytest.raises(sqlite3.IntegrityError):
        await store.commit_turn(
            conversation.id,
            ENDED,
            at(5),
            messages=[assistant_message("fine"), bad],
            events=[event("end")],
        )
    with pytest.raises(LookupError, match="no message 7"):
        await store.commit_turn(
            conversation.id,
            ENDED,
            at(5),
            messages=[assistant_message("fine")],
            events=[event("end")],
            exclude_seq=7,
        )
    assert await store.get(conversation.id) == conversation
    assert [m.text for m in await store.messages(conversation.id)] == ["a"]
    assert await store.events(conversation.id) == []


# --- messages to an ended conversation ---------------------------------------------------


async def ended_conversation(store: SqliteStore) -> str:
    conversation = await store.create(KEY, "u1", T0)
    await store.commit_turn(conversation.id, ENDED, T0)
    return conversation.id


async def test_the_first_blocked_message_notifies_then_quiet_until_the_interval_passes(
    store: SqliteStore,
) -> None:
    conversation_id = await ended_conversation(store)

    async def blocked(event_id: str, seconds: float, user_id: str = "u1") -> BlockedOutcome:
        return await store.record_blocked(
            conversation_id, inbound(event_id, user_id), at(seconds), QUIET
        )

    assert await blocked("e1", 1) is BlockedOutcome.NOTIFY
    assert await blocked("e2", 30) is BlockedOutcome.QUIET
    assert await blocked("e3", 60.999) is BlockedOutcome.QUIET
    assert await blocked("e4", 61) is BlockedOutcome.NOTIFY  # a full interval after e1
    assert await blocked("e5", 62, user_id="u2") is BlockedOutcome.NOTIFY
    assert await blocked("e6", 63, user_id="u2") is BlockedOutcome.QUIET
    assert await blocked("e4", 500) is BlockedOutcome.DUPLICATE


async def test_a_zero_interval_notifies_every_time(store: SqliteStore) -> None:
    conversation_id = await ended_conversation(store)
    for n in range(3):
        outcome = await store.record_blocked(conversation_id, inbound(f"e{n}"), T0, timedelta(0))
        assert outcome is BlockedOutcome.NOTIFY


async def test_a_later_end_notifies_again_at_once(store: SqliteStore) -> None:
    conversation_id = await ended_conversation(store)
    assert await store.record_blocked(conversation_id, inbound("e1"), at(1), QUIET) == "notify"
    await store.commit_turn(conversation_id, LadderState(redirects=3, warned=True), at(2))
    await store.commit_turn(conversation_id, ENDED, at(3))
    assert await store.record_blocked(conversation_id, inbound("e2"), at(4), QUIET) == "notify"


async def test_blocked_messages_share_dedupe_with_turns(store: SqliteStore) -> None:
    conversation_id = await ended_conversation(store)
    other = await store.create(ConversationKey("discord", "t2"), "u1", T0)
    assert await store.begin_turn(other.id, inbound("e1"), user_message("a"))
    outcome = await store.record_blocked(conversation_id, inbound("e1"), at(1), QUIET)
    assert outcome is BlockedOutcome.DUPLICATE


async def test_record_blocked_in_an_unknown_conversation_claims_nothing(
    store: SqliteStore,
) -> None:
    with pytest.raises(UnknownConversation):
        await store.record_blocked("cnothere22", inbound("e1"), T0, QUIET)
    conversation_id = await ended_conversation(store)
    assert await store.record_blocked(conversation_id, inbound("e1"), T0, QUIET) == "notify"


# --- reading -----------------------------------------------------------------------------


async def test_recent_messages_are_the_newest_oldest_first(store: SqliteStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    for n in range(1, 11):
        await store.begin_turn(conversation.id, inbound(f"e{n}"), user_message(f"m{n}", at(n)))
    recent = await store.recent_messages(conversation.id, 3)
    assert [m.text for m in recent] == ["m8", "m9", "m10"]
    assert [m.seq for m in await store.recent_messages(conversation.id, 50)] == list(range(1, 11))
    assert await store.recent_messages(conversation.id, 0) == []
    assert await store.recent_messages("cnothere22", 5) == []


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


async def test_events_keep_their_order_and_detail(store: SqliteStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    first = [event("redirect", at(1), count=1), event("warning", at(1))]
    later = [AuditEvent("reopen", at(0), Actor.MODERATOR, {"note": "ok", "by": ["mod", 1]})]
    await store.add_events(conversation.id, first)
    await store.add_events(conversation.id, later)
    assert await store.events(conversation.id) == first + later


async def test_add_events_to_an_unknown_conversation_fails(store: SqliteStore) -> None:
    with pytest.raises(UnknownConversation):
        await store.add_events("cnothere22", [event("x")])


async def test_list_conversations_filters_by_state_and_platform_newest_first(
    store: SqliteStore,
) -> None:
    a = await store.create(KEY, "u1", T0)
    b = await store.create(ConversationKey("slack", "C1:1.0"), "u1", T0)
    c = await store.create(ConversationKey("discord", "t3"), "u2", T0)
    b = await store.commit_turn(b.id, ENDED, at(1))
    assert [x.id for x in await store.list_conversations()] == [c.id, b.id, a.id]
    assert [x.id for x in await store.list_conversations(state="ended")] == [b.id]
    assert [x.id for x in await store.list_conversations(state="active")] == [c.id, a.id]
    assert [x.id for x in await store.list_conversations(platform="discord")] == [c.id, a.id]
    assert await store.list_conversations(state="ended", platform="discord") == []
    assert [x.id for x in await store.list_conversations(limit=1)] == [c.id]
    with pytest.raises(ValueError, match="state"):
        await store.list_conversations(state="closed")


async def test_ended_count_counts_ends_the_user_did_not_ask_for(store: SqliteStore) -> None:
    since = at(100)

    async def conversation_ended(
        user_id: str, when: float, ladder: LadderState = ENDED, key: ConversationKey = KEY
    ) -> str:
        conversation = await store.create(key, user_id, T0)
        await store.commit_turn(conversation.id, ladder, at(when))
        return conversation.id

    await conversation_ended("u1", 150)
    await conversation_ended("u1", 100)  # exactly at `since`
    await conversation_ended("u1", 99)  # before
    await conversation_ended(
        "u1", 150, replace(ENDED, ended_by=Actor.USER, ended_reason=EndReason.USER_REQUESTED)
    )
    await conversation_ended("u2", 150)
    await conversation_ended("u1", 150, key=ConversationKey("slack", "C1:1.0"))
    reopened = await conversation_ended("u1", 150)
    await store.commit_turn(reopened, LadderState(redirects=3, warned=True), at(160))
    await store.create(KEY, "u1", at(150))  # still active
    assert await store.ended_count("discord", "u1", since) == 2
    assert await store.ended_count("slack", "u1", since) == 1
    assert await store.ended_count("discord", "u3", since) == 0


async def test_feedback_is_kept(store: SqliteStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    await store.add_feedback(conversation.id, "u1", "this was a mistake", at(3))
    await store.add_feedback(conversation.id, "u1", "really", at(4))
    assert await store.feedback(conversation.id) == [
        ("u1", "this was a mistake", at(3)),
        ("u1", "really", at(4)),
    ]
    with pytest.raises(UnknownConversation):
        await store.add_feedback("cnothere22", "u1", "?", T0)


async def test_feedback_and_its_audit_event_are_written_together(store: SqliteStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    event = AuditEvent("feedback", at(3), Actor.USER, {"text": "this was a mistake"})
    await store.add_feedback(conversation.id, "u1", "this was a mistake", at(3), (event,))
    assert await store.events(conversation.id) == [event]
    assert len(await store.feedback(conversation.id)) == 1


# --- values ------------------------------------------------------------------------------


async def test_times_come_back_as_the_same_instant_in_utc(store: SqliteStore) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    local = datetime(2026, 3, 1, 17, 30, 0, 123456, tzinfo=india)
    conversation = await store.create(KEY, "u1", local)
    await store.begin_turn(conversation.id, inbound("e1"), user_message("a", local))
    await store.add_events(conversation.id, [event("x", local)])
    stored = await store.get(conversation.id)
    assert stored is not None
    times = [
        stored.created_at,
        (await store.messages(conversation.id))[0].at,
        (await store.events(conversation.id))[0].at,
    ]
    for time in times:
        assert time == local
        assert time.tzinfo is UTC
        assert time.microsecond == 123456


async def test_naive_times_are_refused(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.create(KEY, "u1", datetime(2026, 3, 1, 12, 0))
    assert await store.current(KEY) is None


async def test_api_json_and_text_round_trip(store: SqliteStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    api: list[dict[str, Any]] = [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": 'Ça va? 🚫 \u0000 "quoted"'},
                {"type": "tool_use", "id": "tu_1", "name": "note_concern", "input": {"n": 1.5}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1"}]},
    ]
    message = NewMessage("assistant", "Ça va? 🚫", api, T0, user_id="", in_context=True)
    await store.commit_turn(conversation.id, LadderState(), T0, messages=[message])
    (stored,) = await store.messages(conversation.id)
    assert stored.api == api
    assert stored.text == "Ça va? 🚫"


# --- concurrency and cancellation --------------------------------------------------------


async def test_many_coroutines_committing_at_once_never_interleave(store: SqliteStore) -> None:
    conversations = [
        await store.create(ConversationKey("discord", f"t{n}"), "u1", T0) for n in range(5)
    ]

    async def turn(conversation_id: str, n: int) -> None:
        started = await store.begin_turn(
            conversation_id, inbound(f"{conversation_id}-{n}"), user_message(f"q{n}", at(n))
        )
        assert started is not None
        await store.commit_turn(
            conversation_id,
            LadderState(redirects=n),
            at(n),
            messages=[assistant_message(f"a{n}", at(n))],
            events=[event("turn", at(n), n=n)],
        )

    await asyncio.gather(*(turn(c.id, n) for c in conversations for n in range(20)))
    duplicates = await asyncio.gather(
        *(store.begin_turn(c.id, inbound(f"{c.id}-0"), user_message("x")) for c in conversations)
    )
    assert duplicates == [None] * 5
    for conversation in conversations:
        messages = await store.messages(conversation.id)
        assert [m.seq for m in messages] == list(range(1, 41))
        assert sorted(m.text for m in messages) == sorted(
            [f"q{n}" for n in range(20)] + [f"a{n}" for n in range(20)]
        )
        assert len(await store.events(conversation.id)) == 20


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
        # Cancelled before its first step, the task asked for nothing; after it, the
        # transaction ran to its end on the store's thread regardless of the cancel.
        assert state.ladder.redirects == before.ladder.redirects + (1 if yields else 0)
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
    assert transactions(statements) == [
        "BEGIN IMMEDIATE",
        *["SAVEPOINT op", "RELEASE op"] * 3,
        "COMMIT",
    ]
    assert [m.text for m in await store.messages(first.id)] == ["a"]
    assert [m.text for m in await store.messages(second.id)] == ["b"]


async def test_a_backlog_is_committed_in_batches_of_at_most_max_batch(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "MAX_BATCH", 2)
    conversation = await store.create(KEY, "u1", T0)
    statements = await traced_on_thread(store)
    async with thread_held(store):
        turns = [
            await queued(
                store.begin_turn(conversation.id, inbound(f"e{n}"), user_message(str(n), at(n)))
            )
            for n in range(1, 6)
        ]
    assert all([await turn for turn in turns])
    assert transactions(statements).count("COMMIT") == 3  # 2 + 2 + 1
    assert [m.text for m in await store.messages(conversation.id)] == ["1", "2", "3", "4", "5"]


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
    assert transactions(statements) == [
        "BEGIN IMMEDIATE",
        "SAVEPOINT op",
        "RELEASE op",
        *["SAVEPOINT op", "ROLLBACK TO op", "RELEASE op"] * 2,
        "SAVEPOINT op",
        "RELEASE op",
        "COMMIT",
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
    await store.recent_messages(conversation.id, 10)
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
    for statements in (begin, commit, blocked):
        assert statements[0] == "BEGIN IMMEDIATE"
        assert statements[-1] == "COMMIT"
    # One hop to the store's thread each, but every statement still costs a step.
    assert (len(begin), len(commit), len(blocked)) == (5, 4, 4)


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


async def test_a_handled_event_is_a_duplicate_even_in_an_unknown_conversation(
    store: SqliteStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)
    assert await store.begin_turn(conversation.id, inbound("e1"), user_message("a"))
    assert await store.begin_turn("cnothere22", inbound("e1"), user_message("a")) is None
    outcome = await store.record_blocked("cnothere22", inbound("e1"), T0, QUIET)
    assert outcome is BlockedOutcome.DUPLICATE


async def test_quiet_intervals_beyond_the_calendar_do_not_overflow(store: SqliteStore) -> None:
    conversation_id = await ended_conversation(store)

    async def blocked(event_id: str, quiet: timedelta) -> BlockedOutcome:
        return await store.record_blocked(conversation_id, inbound(event_id), at(1), quiet)

    assert await blocked("e1", timedelta.max) is BlockedOutcome.NOTIFY
    assert await blocked("e2", timedelta.max) is BlockedOutcome.QUIET
    assert await blocked("e3", timedelta.min) is BlockedOutcome.NOTIFY
    assert await blocked("e4", timedelta(days=-1)) is BlockedOutcome.NOTIFY
    with pytest.raises(ValueError, match="naive"):
        await store.record_blocked(conversation_id, inbound("e5"), datetime(2026, 1, 1), QUIET)


async def test_adding_no_events_still_requires_the_conversation(store: SqliteStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    await store.add_events(conversation.id, [])
    with pytest.raises(UnknownConversation):
        await store.add_events("cnothere22", [])
    await store.add_events(conversation.id, [event("a"), event("b")])
    assert [e.kind for e in await store.events(conversation.id)] == ["a", "b"]


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
        # Cancelled before its first step, the turn was never asked for; after it, it was
        # sent to the idle thread at once and ran whole. (Whether `blocked`, queued behind
        # it, was sent before the cancel depends on the thread's pace: all or nothing, both.)
        assert (f"t{yields}" in claimed) == (yields > 0)
        messages = await store.messages(conversation.id)
        assert len(messages) == len([e for e in claimed if e.startswith("t")])
        state = await store.get(conversation.id)
        assert state is not None
        assert state.updated_at == (messages[-1].at if messages else T0)
        notices = await fetch(store, "SELECT user_id FROM blocked_notices")
        assert {row[0] for row in notices} == {f"u{e[1:]}" for e in claimed if e.startswith("b")}
    assert await store.begin_turn(conversation.id, inbound("z"), user_message("z")) is not None


async def test_old_event_ids_are_forgotten_recent_ones_still_deduplicate(
    store: SqliteStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)
    assert await store.begin_turn(conversation.id, inbound("old"), user_message("a", at(0)))
    assert await store.begin_turn(conversation.id, inbound("new"), user_message("b", at(100)))
    assert await store.forget_events_before(at(50)) == 1
    assert (
        await store.begin_turn(conversation.id, inbound("new"), user_message("b", at(101))) is None
    )
    assert await store.begin_turn(conversation.id, inbound("old"), user_message("a", at(102)))
    assert await store.forget_events_before(at(50)) == 0
