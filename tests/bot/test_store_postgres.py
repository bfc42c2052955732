"""What only the PostgreSQL store has: migrations under a lock, the pool, the server's own
rules. The behaviour both backends share is in test_store.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bot.conversation import ConversationKey, LadderState
from bot.ports import DatabaseUnavailable, NewMessage
from bot.settings import parse_database_url
from bot.store import SchemaTooNew, StoreError, StoreUnreachable, open_store
from bot.store.locks import lock_number
from bot.store.migrations import Migration
from bot.store.postgres import PostgresStore
from bot.store.postgres_migrations import MIGRATIONS
from tests import postgres
from tests.bot.storekit import KEY, T0, assistant_message, at, event, inbound, user_message
from tests.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def fresh_url() -> AsyncIterator[str]:
    """A database of its own, never migrated (the run's shared one already is)."""
    if not postgres.enabled():
        pytest.skip("QUITBOT_TEST_POSTGRES=0: PostgreSQL tests skipped on request")
    url = await postgres.create_database("quitbot_test_fresh")
    try:
        yield url
    finally:
        await postgres.drop_database(url)


async def fetch(url: str, sql: str) -> list[tuple[object, ...]]:
    db = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await db.fetch(sql)]
    finally:
        await db.close()


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


async def test_processes_starting_together_migrate_once(fresh_url: str) -> None:
    stores = await asyncio.gather(*(PostgresStore.open(fresh_url) for _ in range(4)))
    try:
        conversation = await stores[0].create(KEY, "u1", T0)
        assert await stores[3].get(conversation.id) == conversation
    finally:
        for store in stores:
            await store.close()
    versions = await fetch(fresh_url, "SELECT version FROM schema_version ORDER BY version")
    assert versions == [(m.version,) for m in MIGRATIONS]


async def test_a_database_from_a_newer_quitbot_is_refused(postgres_url: str) -> None:
    async with await PostgresStore.open(postgres_url):
        pass
    db = await asyncpg.connect(postgres_url)
    try:
        await db.execute(
            "INSERT INTO schema_version VALUES (99, 'from the future', $1)", datetime.now(UTC)
        )
        with pytest.raises(SchemaTooNew, match=r"schema version 99.*upgrade quitbot"):
            await PostgresStore.open(postgres_url)
    finally:
        await db.execute("DELETE FROM schema_version WHERE version = 99")
        await db.close()


async def test_a_failing_migration_leaves_the_previous_version_whole(fresh_url: str) -> None:
    broken = Migration(2, "half a change", ("CREATE TABLE notes (text TEXT)", "NOT SQL AT ALL"))
    with pytest.raises(asyncpg.PostgresSyntaxError):
        await PostgresStore.open(fresh_url, migrations=(*MIGRATIONS[:1], broken))
    assert await fetch(fresh_url, "SELECT MAX(version) FROM schema_version") == [(1,)]
    assert await fetch(fresh_url, "SELECT to_regclass('notes') IS NULL") == [(True,)]
    fixed = Migration(2, "notes", ("CREATE TABLE notes (text TEXT)",))
    async with await PostgresStore.open(fresh_url, migrations=(*MIGRATIONS[:1], fixed)):
        pass
    assert await fetch(fresh_url, "SELECT MAX(version) FROM schema_version") == [(2,)]


async def test_an_unreachable_or_missing_database_is_a_clear_error(postgres_url: str) -> None:
    missing = postgres.with_database(postgres_url, "quitbot_no_such_database")
    with pytest.raises(StoreError, match=r"cannot connect to PostgreSQL.*does not exist") as no:
        await open_store(parse_database_url(missing))
    assert not isinstance(no.value, StoreUnreachable)  # waiting would not bring it
    with pytest.raises(StoreUnreachable, match="cannot connect to PostgreSQL"):
        await open_store(parse_database_url("postgresql://postgres@127.0.0.1:1/quitbot"))


async def test_a_nul_in_text_is_kept_as_a_replacement_character(postgres_url: str) -> None:
    async with await PostgresStore.open(postgres_url) as store:
        conversation = await store.create(KEY, "u1", T0)
        await store.begin_turn(conversation.id, inbound("e1"), user_message("a\x00b"))
        await store.add_feedback(conversation.id, "u1", "x\x00", T0)
        assert [m.text for m in await store.messages(conversation.id)] == ["a\ufffdb"]
        assert [text for _, text, _ in await store.feedback(conversation.id)] == ["x\ufffd"]


async def test_a_cancelled_commit_is_all_or_nothing(postgres_url: str) -> None:
    async with await PostgresStore.open(postgres_url) as store:
        conversation = await store.create(KEY, "u1", T0)
        for yields in range(12):
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
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            state = await store.get(conversation.id)
            assert state is not None
            messages = await store.messages(conversation.id)
            events = await store.events(conversation.id)
            assert len(messages) == len(events) == state.ladder.redirects


async def test_a_lock_on_a_lost_connection_is_given_up_by_the_server(postgres_url: str) -> None:
    async with await PostgresStore.open(postgres_url) as store:
        async with store.serialised(KEY):
            holder = await asyncpg.connect(postgres_url)
            try:
                taken = await holder.fetchval("SELECT pg_try_advisory_lock($1)", lock_number(KEY))
                assert taken is False
                # The server ends the session that holds it, as when its process dies.
                await holder.execute(
                    # Only this database's: other test runs share the server.
                    "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() "
                    "AND database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database())"
                )
                assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", lock_number(KEY))
            finally:
                await holder.close()
        # Its next use makes a new shared connection; the store goes on.
        async with asyncio.timeout(30), store.serialised(KEY):
            assert await store.current(KEY) is None


async def test_locks_asked_for_together_share_round_trips_and_each_holds(
    postgres_url: str,
) -> None:
    keys = [ConversationKey("discord", f"t{n}") for n in range(40)]
    numbers = [lock_number(key) for key in keys]
    held, done = asyncio.Event(), asyncio.Event()
    async with await PostgresStore.open(postgres_url) as store:

        async def hold(key: ConversationKey, holding: list[None]) -> None:
            async with store.serialised(key):
                holding.append(None)
                if len(holding) == len(keys):
                    held.set()
                await done.wait()

        holding: list[None] = []
        with pytest.MonkeyPatch.context() as patch:
            trips = counted_fetches(patch)
            task = asyncio.gather(*(hold(key, holding) for key in keys))
            async with asyncio.timeout(30):
                await held.wait()
            other = await asyncpg.connect(postgres_url)
            try:  # held against every other session (another process)
                taken = await other.fetch(
                    "SELECT pg_try_advisory_lock(n) FROM unnest($1::bigint[]) AS n", numbers
                )
                assert not any(row[0] for row in taken)
                done.set()
                await task
                # Given back without waiting, but before anything asked after: in order.
                async with store.serialised(ConversationKey("discord", "later")):
                    pass
                taken = await other.fetch(
                    "SELECT pg_try_advisory_lock(n) FROM unnest($1::bigint[]) AS n", numbers
                )
                assert all(row[0] for row in taken)  # and all given back
            finally:
                await other.close()
        assert len(trips) < len(keys)  # 40 taken and 40 given back in fewer trips than 40


async def test_a_lock_waited_for_reuses_the_connection_it_waited_on(postgres_url: str) -> None:
    async with (
        await PostgresStore.open(postgres_url) as first,
        await PostgresStore.open(postgres_url) as second,
    ):
        for _ in range(3):
            inside = asyncio.Event()
            async with first.serialised(KEY):
                waiting = asyncio.create_task(hold_until(second, inside))
                await waited_on_by_the_server(postgres_url)
                assert not inside.is_set()
            async with asyncio.timeout(30):
                await waiting
            assert len(second._advisory._idle) == 1  # one connection, waited on each time
        other = await asyncpg.connect(postgres_url)
        try:  # and every lock taken on it was given back
            assert await other.fetchval("SELECT pg_try_advisory_lock($1)", lock_number(KEY))
        finally:
            await other.close()


def counted_fetches(patch: pytest.MonkeyPatch) -> list[None]:
    """An item in the list returned for each asyncpg `fetch` from now on."""
    trips: list[None] = []
    fetch = asyncpg.Connection.fetch

    async def counted(self: asyncpg.Connection, *args: object) -> object:
        trips.append(None)
        return await fetch(self, *args)

    patch.setattr(asyncpg.Connection, "fetch", counted)
    return trips


async def waited_on_by_the_server(url: str) -> None:
    """Until a session of this database waits for an advisory lock (the server has no
    event to wait on for it: asked again until so)."""
    db = await asyncpg.connect(url)
    try:
        async with asyncio.timeout(30):
            while not await db.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ):
                pass
    finally:
        await db.close()


async def hold_until(store: PostgresStore, inside: asyncio.Event) -> None:
    async with store.serialised(KEY):
        inside.set()


async def run_pytest(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_without_a_server_these_tests_fail_saying_how_to_start_one() -> None:
    one = (
        f"{Path(__file__).relative_to(ROOT)}::test_a_nul_in_text_is_kept_as_a_replacement_character"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUITBOT_TEST_POSTGRES")}
    env["QUITBOT_TEST_POSTGRES_URL"] = "postgresql://postgres@127.0.0.1:1/postgres"
    code, out = await run_pytest(env, one)
    assert code == 1, out
    assert "pg_ctlcluster --skip-systemctl-redirect" in out and "1 error" in out
    code, out = await run_pytest({**env, "QUITBOT_TEST_POSTGRES": "0"}, one)
    assert code == 0 and "1 skipped" in out, out


async def test_a_message_received_before_files_were_kept_comes_back_without_any(
    fresh_url: str,
) -> None:
    """Migration 3 keeps what an older quitbot received: its files were never recorded."""
    async with await PostgresStore.open(fresh_url, migrations=MIGRATIONS[:2]):
        pass
    db = await asyncpg.connect(fresh_url)
    try:
        await db.execute(
            "INSERT INTO inbox (platform, event_id, place, user_id, text, at) "
            "VALUES ('discord', 'e1', 'thread-1', 'u1', 'hello', $1)",
            at(1),
        )
    finally:
        await db.close()
    async with await PostgresStore.open(fresh_url) as store:
        [kept] = await store.pending(at(2))
    assert (kept.event_id, kept.text, kept.files) == ("e1", "hello", ())


async def test_an_outage_is_said_once_and_its_end_once(
    fresh_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The server is reached through a TCP proxy the test cuts (the shared server itself is
    never stopped): every call meanwhile fails as DatabaseUnavailable, locks too; the log
    says once that PostgreSQL went away (asyncpg's pool retrying its idle connection, which
    logs a traceback each time, included) and once that it is back."""
    caplog.set_level(logging.INFO, logger="bot.store.postgres")
    target = urlsplit(fresh_url)
    async with TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        via = target.netloc.replace(f":{target.port or 5432}", f":{proxy.port}")
        store = await PostgresStore.open(urlunsplit(target._replace(netloc=via)), pool_size=2)
        try:
            conversation = await store.create(KEY, "u1", T0)
            await proxy.cut()
            for _ in range(3):
                with pytest.raises(DatabaseUnavailable):
                    await store.get(conversation.id)
            with pytest.raises(DatabaseUnavailable):
                async with store.serialised(KEY):
                    pass
            await proxy.restore()
            assert await store.get(conversation.id) == conversation
            async with store.serialised(KEY):
                assert await store.current(KEY) == conversation
        finally:
            await store.close()
    said = [r for r in caplog.records if r.name == "bot.store.postgres"]
    lines = [(r.levelname, r.getMessage().split(" (")[0]) for r in said]
    assert lines == [("ERROR", "PostgreSQL went away"), ("INFO", "PostgreSQL is back")]
    assert not [r for r in caplog.records if r.exc_info and r.levelno >= logging.WARNING]


async def test_turns_that_commit_together_take_one_round_trip(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused one among them sends the others again, each alone (the outcomes are
    checked on both backends in test_store.py)."""
    trips: list[int] = []
    fetchmany = asyncpg.Connection.fetchmany

    async def counted(self: asyncpg.Connection, query: str, args: list[object]) -> object:
        trips.append(len(args))
        return await fetchmany(self, query, args)

    monkeypatch.setattr(asyncpg.Connection, "fetchmany", counted)
    refused = replace(assistant_message("b"), role="system")
    async with await PostgresStore.open(postgres_url) as store:
        keys = [ConversationKey("discord", f"together-{n}") for n in range(5)]
        conversations = [await store.create(key, "u1", T0) for key in keys]

        async def commit(conversation_id: str, message: NewMessage) -> object:
            return await store.commit_turn(conversation_id, LadderState(), at(1), [message])

        await asyncio.gather(*(commit(c.id, assistant_message("a")) for c in conversations))
        assert trips == [5]
        again = await asyncio.gather(
            *(
                commit(c.id, refused if c is conversations[1] else assistant_message("a"))
                for c in conversations[:3]
            ),
            return_exceptions=True,
        )
        assert trips == [5, 3]  # then each alone, outside fetchmany
        assert isinstance(again[1], asyncpg.CheckViolationError)
        kept = [len(await store.messages(c.id)) for c in conversations]
        assert kept == [2, 1, 2, 1, 1]


async def test_a_turn_begun_before_the_index_by_platform_id_is_found_through_it(
    fresh_url: str,
) -> None:
    """Migration 8 indexes the messages a database already holds, and the begun-turn check
    reads the index instead of the conversation's messages."""
    received = replace(inbound("e1"), message_id="m1")
    message = user_message("hi", platform_message_id="m1")
    async with await PostgresStore.open(fresh_url, migrations=MIGRATIONS[:7]) as old:
        conversation = await old.create(KEY, "u1", T0)
        assert await old.receive(received, at(1))
        first = await old.begin_turn(conversation.id, received, message)
    async with await PostgresStore.open(fresh_url) as store:
        [pending] = await store.pending(at(2))
        again = await store.begin_turn(conversation.id, pending, message)
    assert first is not None and again is not None and again.seq == first.seq
    plan = await _explain(
        fresh_url,
        "SELECT seq FROM messages WHERE conversation_id = 'c' AND role = 'user' "
        "AND platform_message_id = 'm1' ORDER BY seq DESC LIMIT 1",
    )
    assert "messages_by_platform_id" in plan


async def test_the_messages_before_one_in_its_place_are_read_through_the_index(
    fresh_url: str,
) -> None:
    await _three_received(fresh_url)
    plan = await _explain(
        fresh_url,
        "SELECT n FROM inbox WHERE platform = 'd' AND place = 'p' AND n < "
        "(SELECT n FROM inbox WHERE platform = 'd' AND event_id = 'e2') ORDER BY n",
    )
    assert "inbox_by_place" in plan and "Sort" not in plan


async def test_a_received_message_is_found_by_its_event_through_its_own_index(
    fresh_url: str,
) -> None:
    # The inbox is nearly empty to the planner; with the index by place led by the platform,
    # a plan made once for every lookup read all of the platform's entries (migration 13).
    await _three_received(fresh_url)
    db = await asyncpg.connect(fresh_url)
    try:
        await db.execute("SET plan_cache_mode = force_generic_plan")
        await db.execute(
            "PREPARE lookup(text, text) AS "
            "SELECT n FROM inbox WHERE platform = $1 AND event_id = $2"
        )
        plan = " ".join(row[0] for row in await db.fetch("EXPLAIN EXECUTE lookup('d', 'e2')"))
    finally:
        await db.close()
    assert "inbox_platform_event_id_key" in plan and "Filter" not in plan, plan


async def _three_received(url: str) -> None:
    """Messages e0, e1 and e2 received at place p, waiting for their turns."""
    async with await PostgresStore.open(url) as store:
        for n in range(3):
            assert await store.receive(inbound(f"e{n}"), at(n))


async def _explain(url: str, sql: str) -> str:
    db = await asyncpg.connect(url)
    try:
        await db.execute("SET enable_seqscan = off")  # a table this small is read whole
        return " ".join(row[0] for row in await db.fetch(f"EXPLAIN {sql}"))
    finally:
        await db.close()


async def test_a_turn_takes_its_lock_and_reads_where_it_starts_in_one_round_trip(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await PostgresStore.open(postgres_url) as store:
        conversation = await store.create(KEY, "u1", T0)
        trips = counted_fetches(monkeypatch)
        async with store.serialised_at(inbound("e1")) as at:
            assert len(trips) == 1
            assert at.conversation == conversation
            other = await asyncpg.connect(postgres_url)
            try:  # held against every other session (another process)
                assert not await other.fetchval("SELECT pg_try_advisory_lock($1)", lock_number(KEY))
            finally:
                await other.close()


async def test_the_lock_functions_query_is_planned_once_per_session(fresh_url: str) -> None:
    # Planned at every call it cost the server ~250 µs a trip of ~400 (migration 12).
    async with await PostgresStore.open(fresh_url) as store, store.serialised_at(inbound("e1")):
        pass  # the function works with it
    [(settings,)] = await fetch(
        fresh_url, "SELECT proconfig FROM pg_proc WHERE proname = 'quitbot_conversation_locks'"
    )
    assert settings == ["plan_cache_mode=force_generic_plan"]


async def test_the_read_with_the_lock_sees_what_was_committed_before_it_was_taken(
    postgres_url: str,
) -> None:
    """Migration 9's function reads after its takes, in a snapshot of its own: a statement
    that began before the turn holding the lock committed and gave it back still sees
    that commit (the statement's own snapshot does not)."""
    gate = (0x71756974, 99)  # a lock apart from the conversations' (one bigint) and migrations'
    holder, turn = await asyncpg.connect(postgres_url), await asyncpg.connect(postgres_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1, $2)", *gate)
        reading = asyncio.ensure_future(
            turn.fetchrow(
                "SELECT t.held, t.id, (SELECT count(*) FROM conversations "
                "WHERE platform = $3 AND place = $4) AS seen_by_the_statement "
                "FROM (SELECT pg_advisory_lock($1, $2)::text AS waited) g CROSS JOIN LATERAL "
                "quitbot_conversation_locks(ARRAY[$5::bigint], ARRAY[g.waited IS NOT NULL], "
                "ARRAY[$3::text], ARRAY[$4::text], ARRAY['e1'], ARRAY['']) t",
                *gate,
                KEY.platform,
                KEY.place,
                lock_number(KEY),
            )
        )
        await waited_on_by_the_server(postgres_url)  # the statement's snapshot is taken
        async with await PostgresStore.open(postgres_url) as store:
            conversation = await store.create(KEY, "u1", T0)
        await holder.execute("SELECT pg_advisory_unlock($1, $2)", *gate)
        async with asyncio.timeout(30):
            row = await reading
        assert (row["held"], row["seen_by_the_statement"]) == (True, 0)
        assert row["id"] == conversation.id
    finally:
        await holder.close()
        await turn.close()


async def test_a_turn_that_waits_for_another_process_reads_where_it_starts_as_the_wait_ends(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiting for a conversation another process holds, and reading what the turn starts
    from, is one round trip on the waiting connection (migration 11): the read is never
    asked of the pool after the wait, and sees what the holder committed before it gave
    the lock back (the messages received before this one, and the ladder)."""
    async with (
        await PostgresStore.open(postgres_url) as holder,
        await PostgresStore.open(postgres_url) as waiter,
    ):
        conversation = await holder.create(KEY, "u1", T0)
        for n in (1, 2):
            assert await waiter.receive(inbound(f"e{n}"), at(n))

        async def pooled(asked: object) -> None:
            raise AssertionError("read through the pool after the wait")

        monkeypatch.setattr(waiter, "at_place", pooled)

        async def turn() -> object:
            async with waiter.serialised_at(inbound("e2")) as where:
                return where

        async with holder.serialised_at(inbound("e1")) as first:
            assert [i.event_id for i in first.earlier] == []
            waiting = asyncio.create_task(turn())
            await waited_on_by_the_server(postgres_url)
            await holder.commit_turn(
                conversation.id, LadderState(redirects=1), at(3), answered=inbound("e1")
            )
        async with asyncio.timeout(30):
            where = await waiting
        assert where.earlier == ()  # e1 was answered, and that commit is seen
        assert where.conversation is not None and where.conversation.ladder.redirects == 1
        assert len(waiter._advisory._idle) == 1  # waited on, and given back
        other = await asyncpg.connect(postgres_url)
        try:  # nothing held once both turns are over
            assert await other.fetchval("SELECT pg_try_advisory_lock($1)", lock_number(KEY))
        finally:
            await other.close()


async def test_a_turn_whose_place_postgresql_refuses_fails_alone_and_keeps_no_lock(
    postgres_url: str,
) -> None:
    keys = [ConversationKey("discord", f"t{n}") for n in range(4)]
    refused = ConversationKey("discord", "t\x00")
    async with await PostgresStore.open(postgres_url) as store:
        started = [await store.create(key, "u1", T0) for key in keys]

        async def turn(key: ConversationKey) -> object:
            async with store.serialised_at(inbound(f"e-{key.place}", "u1", key)) as at:
                return at.conversation

        outcomes = await asyncio.gather(
            *(turn(key) for key in [*keys[:2], refused, *keys[2:]]), return_exceptions=True
        )
        assert outcomes[:2] + outcomes[3:] == started
        assert isinstance(outcomes[2], asyncpg.PostgresError)
        async with store.serialised(KEY):  # every lock given back went before this one
            pass
        other = await asyncpg.connect(postgres_url)
        try:
            numbers = [lock_number(key) for key in [*keys, refused]]
            taken = await other.fetch(
                "SELECT pg_try_advisory_lock(n) FROM unnest($1::bigint[]) AS n", numbers
            )
            assert all(row[0] for row in taken)
        finally:
            await other.close()
