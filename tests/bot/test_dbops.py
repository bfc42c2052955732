"""`quitbot db upgrade | copy | backup`: moving a deployment loses nothing."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot.communities import CommunitySettings
from bot.conversation import ConversationKey, FileRef
from bot.dbops import CopyError, backup_sqlite, copy
from bot.ports import BlockedOutcome, Outbox, ShownReply, Store
from bot.settings import parse_database_url
from bot.store import open_store
from tests.bot.storekit import (
    ENDED,
    KEY,
    QUIET,
    T0,
    assistant_message,
    at,
    event,
    inbound,
    user_message,
)
from tests.fakes.anthropic import FakeAnthropic
from tests.processes import clean_env, quitbot

# Later than anything a test receives: every kept message is pending before it.
LATER = datetime(2999, 1, 1, tzinfo=UTC)


async def fill(store: Store) -> list[str]:
    """A bit of everything a deployment holds; the conversation ids."""
    first = await store.create(KEY, "u1", T0)
    await store.begin_turn(
        first.id, inbound("e1"), user_message("hi", at(1), platform_message_id="m1")
    )
    await store.commit_turn(
        first.id,
        ENDED,
        at(2),
        [assistant_message("bye", at(2))],
        [event("end", at(2), explanation="kept at it", ids=["m1"])],
        exclude_seq=1,
    )
    assert await store.record_blocked(first.id, inbound("e2"), at(3), QUIET) == "notify"
    await store.add_feedback(first.id, "u1", "this was a mistake", at(4), [event("feedback")])
    branch = await store.create(
        ConversationKey("discord", "thread-2"),
        "u1",
        at(5),
        branched_from=first.id,
        history=[user_message("hi", at(1))],
        events=[event("branched", at(5), source=first.id)],
    )
    other = await store.create(ConversationKey("slack", "C1:1.0"), "u2", at(6), community="T1")
    strict = CommunitySettings(redirects_before_warning=1, crisis_message="call 112")
    await store.set_community_settings("slack", "T1", strict, at(6), "admin")
    await store.begin_turn(other.id, inbound("s1", key=other.key), user_message("yo", at(7)))
    # Not answered yet; its file is kept by reference, for the answer after a restart.
    notes = FileRef("notes.txt", "text/plain", 5, "https://files.example/notes.txt")
    assert await store.receive(replace(inbound("r1", key=other.key), files=(notes,)), at(8))
    # Its reply was shown in full before the run stopped: the next run adopts it.
    await store.reply_shown(inbound("r1", key=other.key), "1700000009.000100", True)
    return [first.id, branch.id, other.id]


async def everything(store: Store) -> list[Any]:
    """All a store says about its conversations, for comparing two stores."""
    pending = await store.pending(LATER)
    seen: list[Any] = [pending, [await store.shown(i) for i in pending], await store.communities()]
    for conversation in await store.list_conversations(limit=1000):
        seen.append(
            (
                conversation,
                await store.messages(conversation.id),
                await store.events(conversation.id),
                await store.feedback(conversation.id),  # type: ignore[attr-defined]
            )
        )
    return seen


async def opened(url: str) -> Store:
    return await open_store(parse_database_url(url), outbox=OUTBOX)


# The deployment copied has webhooks: its undelivered events come along.
OUTBOX = Outbox(targets=("hook",), kinds=frozenset({"end", "feedback"}))


async def test_copy_sqlite_to_postgres_and_back_loses_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    original_url = f"sqlite:///{tmp_path / 'original.db'}"
    back_url = f"sqlite:///{tmp_path / 'back.db'}"
    store = await opened(original_url)
    try:
        ids = await fill(store)
        before = await everything(store)
        [received] = before[0]
        assert [f.name for f in received.files] == ["notes.txt"]
        assert before[1] == [ShownReply("1700000009.000100", complete=True)]
    finally:
        await store.close()

    report = await copy(
        parse_database_url(original_url), parse_database_url(postgres_url), replace=False
    )
    assert report.counts == {
        "conversations": 3,
        "messages": 4,
        "events": 3,
        "outbox": 2,
        "processed_events": 4,
        "blocked_notices": 1,
        "feedback": 1,
        "inbox": 1,
        "communities": 1,
        "participants": 0,
    }
    await copy(parse_database_url(postgres_url), parse_database_url(back_url), replace=False)

    for url in (postgres_url, back_url):
        store = await opened(url)
        try:
            assert await everything(store) == before
            queued = await store.claim_outbox(["hook"], LATER, timedelta(seconds=1), 10)
            assert [(i.event.kind, i.conversation_id) for i in queued] == [
                ("end", ids[0]),
                ("feedback", ids[0]),
            ]
            # Claims came along: a platform retry after the move is still a duplicate...
            again = inbound("s1", key=ConversationKey("slack", "C1:1.0"))
            assert await store.begin_turn(ids[2], again, user_message("yo")) is None
            # ...and so did the last notice time: no second notice within the interval.
            blocked = await store.record_blocked(ids[0], inbound("e9"), at(10), QUIET)
            assert blocked is BlockedOutcome.QUIET
            # New rows number on after the copied ones.
            newest = await store.create(KEY, "u3", at(20))
            assert (await store.current(KEY)) == newest
            await store.add_events(newest.id, [event("later")])
        finally:
            await store.close()


async def test_copy_refuses_a_target_with_conversations_unless_told(
    tmp_path: Path, postgres_url: str
) -> None:
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    for url in (source_url, postgres_url):
        store = await opened(url)
        try:
            await store.create(KEY, "someone", T0)
        finally:
            await store.close()
    source, target = parse_database_url(source_url), parse_database_url(postgres_url)
    with pytest.raises(CopyError, match="already holds 1 conversations"):
        await copy(source, target, replace=False)
    report = await copy(source, target, replace=True)
    assert report.counts["conversations"] == 1
    with pytest.raises(CopyError, match="same database"):
        await copy(source, source, replace=True)


async def test_the_cli_prints_the_same_json_on_either_backend(
    tmp_path: Path, postgres_url: str
) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = await opened(sqlite_url)
    try:
        ids = await fill(store)
    finally:
        await store.close()
    env = clean_env(tmp_path, None)
    code, out, err = await quitbot(
        tmp_path, env, "db", "copy", "--from", sqlite_url, "--to", postgres_url
    )
    assert code == 0, err
    assert "the counts match" in out and "3 conversations" in out

    async def cli_json(url: str, *args: str) -> Any:
        code, out, err = await quitbot(tmp_path, {**env, "QUITBOT_DATABASE_URL": url}, *args)
        assert code == 0, err
        return json.loads(out)

    for args in (
        ("conversations", "list", "--json"),
        *(("conversations", "show", conversation_id, "--json") for conversation_id in ids),
    ):
        on_sqlite, on_postgres = await asyncio.gather(
            cli_json(sqlite_url, *args), cli_json(postgres_url, *args)
        )
        assert on_sqlite == on_postgres
    code, _, err = await quitbot(
        tmp_path, env, "db", "copy", "--from", sqlite_url, "--to", postgres_url
    )
    assert code == 1 and "--replace" in err


async def test_db_upgrade_migrates_either_backend(tmp_path: Path, postgres_url: str) -> None:
    for url, name in ((f"sqlite:///{tmp_path / 'new.db'}", "new.db"), (postgres_url, "")):
        env = clean_env(tmp_path, None, QUITBOT_DATABASE_URL=url)
        code, out, err = await quitbot(tmp_path, env, "db", "upgrade")
        assert code == 0, err
        assert "is at schema version" in out and name in out
        code, out, _ = await quitbot(tmp_path, env, "conversations", "list", "--json")
        assert code == 0 and json.loads(out) == []


async def test_backup_copies_a_live_sqlite_database(tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    store = await opened(f"sqlite:///{live}")
    try:
        await fill(store)
        env = clean_env(tmp_path, None, QUITBOT_DATABASE_URL=f"sqlite:///{live}")
        code, out, err = await quitbot(tmp_path, env, "db", "backup", str(tmp_path / "b.db"))
        assert code == 0, err
        assert "3 conversations" in out
        await store.create(KEY, "u9", at(30))  # the store goes on while and after it is copied
    finally:
        await store.close()
    copied = sqlite3.connect(tmp_path / "b.db")
    try:
        assert copied.execute("SELECT COUNT(*) FROM conversations").fetchall() == [(3,)]
        assert copied.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        copied.close()
    assert (tmp_path / "b.db").stat().st_mode & 0o777 == 0o600
    with pytest.raises(CopyError, match="already exists"):
        backup_sqlite(str(live), tmp_path / "b.db")


async def test_backup_of_postgres_prints_the_pg_dump_command(tmp_path: Path) -> None:
    url = "postgresql://quitbot:s3cret@db.internal:5432/quitbot"
    env = clean_env(tmp_path, None, QUITBOT_DATABASE_URL=url)
    code, out, err = await quitbot(tmp_path, env, "db", "backup", "/backups/q.dump")
    assert code == 0, err
    assert "pg_dump --format=custom --file='/backups/q.dump'" in out
    assert "db.internal:5432/quitbot" in out and "s3cret" not in out


async def test_copy_with_a_bad_url_or_missing_source_says_so(tmp_path: Path) -> None:
    env = clean_env(tmp_path, None)
    code, _, err = await quitbot(
        tmp_path, env, "db", "copy", "--from", "mysql://x/y", "--to", "sqlite:///b.db"
    )
    assert code == 2 and "unknown database scheme" in err
    code, _, err = await quitbot(tmp_path, env, "db", "backup", str(tmp_path / "b.db"))
    assert code == 1 and "there is no database" in err


async def test_doctor_checks_a_postgres_database_without_showing_its_password(
    tmp_path: Path, postgres_url: str, fake_anthropic: FakeAnthropic
) -> None:
    parts = urlsplit(postgres_url)
    password = parts.password or "s3cret"  # a server that trusts ignores it
    netloc = f"{parts.username or 'postgres'}:{password}@{parts.hostname}:{parts.port or 5432}"
    url = urlunsplit(parts._replace(netloc=netloc))
    env = clean_env(tmp_path, fake_anthropic, QUITBOT_DATABASE_URL=url)
    code, out, err = await quitbot(tmp_path, env, "doctor")
    # No platform is configured here: `run` would refuse, the one failure.
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert code == 1 and len(failed) == 1 and failed[0].startswith("FAIL run:"), out + err
    assert ":***@" in out and "ok   database: postgresql://" in out
    assert f":{password}@" not in out + err
