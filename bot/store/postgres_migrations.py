"""The PostgreSQL schema as numbered migrations, applied in order at start-up.

The same tables as SQLite's (bot/store/migrations.py), in PostgreSQL's types. Numbering is
PostgreSQL's own: append a `Migration` to change the schema; never edit one that has shipped.

Several processes may start at once: migrating happens under a transaction-scoped advisory
lock, and each migration re-reads the version under it, so each is applied exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.store.migrations import Migration, SchemaTooNew

if TYPE_CHECKING:
    import asyncpg

# pg_advisory_xact_lock(int, int): a key space apart from the per-conversation locks, which
# use the one-bigint form.
MIGRATION_LOCK = (0x71756974, 1)  # "quit", 1

_V1 = Migration(
    1,
    "conversations (with end proposals), messages, audit events, processed events, "
    "blocked notices, feedback, inbox",
    (
        # `n` gives "newest at a place" an insertion order that no clock can disturb;
        # `id` is the short code people type; `last_seq` numbers its messages (see
        # bot/store/postgres.py). JSON (messages.api, events.detail) is kept as
        # text: jsonb would reorder keys and refuse the \u0000 escape that SQLite keeps.
        """
        CREATE TABLE conversations (
            n             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id            TEXT    NOT NULL UNIQUE,
            platform      TEXT    NOT NULL,
            place         TEXT    NOT NULL,
            user_id       TEXT    NOT NULL,
            redirects     INTEGER NOT NULL DEFAULT 0,
            warned        BOOLEAN NOT NULL DEFAULT false,
            crisis        BOOLEAN NOT NULL DEFAULT false,
            ended         BOOLEAN NOT NULL DEFAULT false,
            end_proposed  BOOLEAN NOT NULL DEFAULT false,
            ended_by      TEXT,
            ended_reason  TEXT,
            created_at    TIMESTAMPTZ NOT NULL,
            updated_at    TIMESTAMPTZ NOT NULL,
            ended_at      TIMESTAMPTZ,
            branched_from TEXT    REFERENCES conversations (id),
            last_seq      INTEGER NOT NULL DEFAULT 0
        )
        """,
        "CREATE INDEX conversations_at_place ON conversations (platform, place, n)",
        "CREATE INDEX conversations_ended_by_user ON conversations (platform, user_id, ended_at)",
        """
        CREATE TABLE messages (
            conversation_id     TEXT    NOT NULL REFERENCES conversations (id),
            seq                 INTEGER NOT NULL CHECK (seq >= 1),
            role                TEXT    NOT NULL CHECK (role IN ('user', 'assistant')),
            text                TEXT    NOT NULL,
            api                 TEXT    NOT NULL,
            at                  TIMESTAMPTZ NOT NULL,
            user_id             TEXT    NOT NULL DEFAULT '',
            platform_message_id TEXT    NOT NULL DEFAULT '',
            in_context          BOOLEAN NOT NULL DEFAULT true,
            PRIMARY KEY (conversation_id, seq)
        )
        """,
        """
        CREATE TABLE events (
            n               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations (id),
            kind            TEXT NOT NULL,
            at              TIMESTAMPTZ NOT NULL,
            actor           TEXT NOT NULL,
            detail          TEXT NOT NULL DEFAULT '{}'
        )
        """,
        "CREATE INDEX events_of_conversation ON events (conversation_id, n)",
        # `at` is kept so old rows can be pruned once platforms stop retrying them.
        """
        CREATE TABLE processed_events (
            platform TEXT NOT NULL,
            event_id TEXT NOT NULL,
            at       TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (platform, event_id)
        )
        """,
        "CREATE INDEX processed_events_at ON processed_events (at)",
        """
        CREATE TABLE blocked_notices (
            conversation_id TEXT NOT NULL REFERENCES conversations (id),
            user_id         TEXT NOT NULL,
            at              TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (conversation_id, user_id)
        )
        """,
        # A fresh end must notify again, whatever was said after an earlier end.
        """
        CREATE FUNCTION quitbot_forget_blocked_notices() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM blocked_notices WHERE conversation_id = NEW.id;
            RETURN NULL;
        END
        $$
        """,
        """
        CREATE TRIGGER blocked_notices_forgotten_on_state_change
        AFTER UPDATE OF ended ON conversations
        FOR EACH ROW WHEN (NEW.ended IS DISTINCT FROM OLD.ended)
        EXECUTE FUNCTION quitbot_forget_blocked_notices()
        """,
        """
        CREATE TABLE feedback (
            n               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations (id),
            user_id         TEXT NOT NULL,
            text            TEXT NOT NULL,
            at              TIMESTAMPTZ NOT NULL
        )
        """,
        "CREATE INDEX feedback_of_conversation ON feedback (conversation_id, n)",
        # Messages received but not yet handled, so a message a platform was told arrived
        # is kept; whoever deletes a row handles its message.
        """
        CREATE TABLE inbox (
            n          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            platform   TEXT NOT NULL,
            event_id   TEXT NOT NULL,
            place      TEXT NOT NULL,
            user_id    TEXT NOT NULL,
            text       TEXT NOT NULL,
            message_id TEXT NOT NULL DEFAULT '',
            at         TIMESTAMPTZ NOT NULL,
            UNIQUE (platform, event_id)
        )
        """,
    ),
)

_V2 = Migration(
    2,
    "per-community settings, and which community each conversation belongs to",
    (
        "ALTER TABLE conversations ADD COLUMN community TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE inbox ADD COLUMN community TEXT NOT NULL DEFAULT ''",
        """
        CREATE TABLE communities (
            platform   TEXT NOT NULL,
            community  TEXT NOT NULL,
            settings   TEXT NOT NULL DEFAULT '{}',
            updated_at TIMESTAMPTZ NOT NULL,
            updated_by TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (platform, community)
        )
        """,
    ),
)

# A constant default: PostgreSQL (11 and later) adds the column without rewriting the table.
_V3 = Migration(
    3,
    "where a received message's files can be read again, so a restart does not lose them",
    ("ALTER TABLE inbox ADD COLUMN files TEXT NOT NULL DEFAULT '[]'",),
)

# Existing conversations keep their state: the starter's ladder stays the conversation's own,
# and nobody else has written in them as a participant of their own yet.
_V4 = Migration(
    4,
    "the ladder of each participant other than the starter (a shared place)",
    (
        """
        CREATE TABLE participants (
            conversation_id TEXT    NOT NULL REFERENCES conversations (id),
            user_id         TEXT    NOT NULL,
            redirects       INTEGER NOT NULL DEFAULT 0,
            warned          BOOLEAN NOT NULL DEFAULT false,
            crisis          BOOLEAN NOT NULL DEFAULT false,
            shut_out        BOOLEAN NOT NULL DEFAULT false,
            shut_out_reason TEXT,
            shut_out_at     TIMESTAMPTZ,
            PRIMARY KEY (conversation_id, user_id)
        )
        """,
        "CREATE INDEX participants_shut_out ON participants (user_id, shut_out_at)",
    ),
)

# A row per (event, destination) still to deliver; delivered rows are deleted, so the table
# stays small. `due_at` is both the next attempt's time and a claim's lease.
_V5 = Migration(
    5,
    "the outbox: audit events still to deliver to webhooks",
    (
        """
        CREATE TABLE outbox (
            event_n  BIGINT      NOT NULL REFERENCES events (n),
            target   TEXT        NOT NULL,
            due_at   TIMESTAMPTZ NOT NULL,
            attempts INTEGER     NOT NULL DEFAULT 0,
            PRIMARY KEY (event_n, target)
        )
        """,
        "CREATE INDEX outbox_due ON outbox (due_at)",
    ),
)

_V6 = Migration(
    6,
    "indexes for the dashboard: a community's conversations, events by kind and time",
    (
        # One community's conversations newest first (a page of the dashboard's list), and
        # those started since a day (its overview); the overview's events by kind and time.
        # Measured with bench/dashboard_bench.py at 100,000 conversations.
        "CREATE INDEX conversations_of_community ON conversations (platform, community, n)",
        "CREATE INDEX conversations_started ON conversations (platform, community, created_at)",
        "CREATE INDEX events_by_kind ON events (kind, at)",
    ),
)

# The reply a turn has shown in the place, kept with the message it answers until the
# turn's commit deletes the row: after a kill in between, the next run adopts a complete
# reply instead of answering twice, and marks a half-shown one as cut short.
_V7 = Migration(
    7,
    "the reply shown for a received message, until its turn commits",
    (
        "ALTER TABLE inbox ADD COLUMN reply_id TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE inbox ADD COLUMN reply_complete BOOLEAN NOT NULL DEFAULT false",
    ),
)

# A turn's begin asks whether its message was stored by a turn that never finished: by the
# message's platform id, the newest first. Without this it read every message of the
# conversation (server CPU growing with a conversation's length).
_V8 = Migration(
    8,
    "an index on each conversation's messages by platform message id",
    (
        "CREATE INDEX messages_by_platform_id "
        "ON messages (conversation_id, platform_message_id, role, seq)",
    ),
)

_LOCKS_FUNCTION = """
        CREATE FUNCTION quitbot_conversation_locks(
            numbers BIGINT[], takes BOOLEAN[],
            platforms TEXT[], places TEXT[], event_ids TEXT[], communities TEXT[]
        ) RETURNS TABLE (
            i BIGINT,
            e_platform TEXT[], e_event_id TEXT[], e_place TEXT[], e_user_id TEXT[],
            e_text TEXT[], e_message_id TEXT[], e_community TEXT[], e_files TEXT[],
            id TEXT, platform TEXT, place TEXT, user_id TEXT, redirects INTEGER,
            warned BOOLEAN, crisis BOOLEAN, ended BOOLEAN, ended_by TEXT, ended_reason TEXT,
            created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ, ended_at TIMESTAMPTZ,
            branched_from TEXT, end_proposed BOOLEAN, community TEXT,
            p_user TEXT, p_redirects INTEGER, p_warned BOOLEAN, p_crisis BOOLEAN,
            p_shut_out BOOLEAN, p_shut_out_reason TEXT, settings TEXT, held BOOLEAN
        ) VOLATILE LANGUAGE plpgsql AS $$
        #variable_conflict use_column
        DECLARE
            granted BOOLEAN[] := '{}';
        BEGIN
            FOR k IN 1 .. coalesce(array_length(numbers, 1), 0) LOOP
                IF takes[k] THEN
                    granted[k] := pg_try_advisory_lock(numbers[k]);
                ELSE
                    granted[k] := pg_advisory_unlock(numbers[k]);
                END IF;
            END LOOP;
            RETURN QUERY SELECT
                q.i, e.*, c.id, c.platform, c.place, c.user_id, c.redirects, c.warned,
                c.crisis, c.ended, c.ended_by, c.ended_reason, c.created_at, c.updated_at,
                c.ended_at, c.branched_from, c.end_proposed, c.community,
                p.user_id, p.redirects, p.warned, p.crisis, p.shut_out, p.shut_out_reason,
                s.settings, q.held
            FROM unnest(granted, takes, platforms, places, event_ids, communities)
                WITH ORDINALITY AS q(held, take, platform, place, event_id, community, i)
            CROSS JOIN LATERAL (
                SELECT array_agg(b.platform ORDER BY b.n), array_agg(b.event_id ORDER BY b.n),
                    array_agg(b.place ORDER BY b.n), array_agg(b.user_id ORDER BY b.n),
                    array_agg(b.text ORDER BY b.n), array_agg(b.message_id ORDER BY b.n),
                    array_agg(b.community ORDER BY b.n), array_agg(b.files ORDER BY b.n)
                FROM inbox b WHERE q.held AND q.take
                AND b.platform = q.platform AND b.place = q.place
                AND b.n < (SELECT o.n FROM inbox o
                    WHERE o.platform = q.platform AND o.event_id = q.event_id)
            ) e
            LEFT JOIN LATERAL (SELECT * FROM conversations v
                WHERE q.held AND q.take AND v.platform = q.platform AND v.place = q.place
                ORDER BY v.n DESC LIMIT 1) c ON true
            LEFT JOIN participants p ON p.conversation_id = c.id
            LEFT JOIN communities s ON q.held AND q.take AND s.platform = q.platform
                AND s.community = COALESCE(c.community, q.community) AND s.community <> ''
            ORDER BY q.i;
        END
        $$
        """

_V9 = Migration(
    9,
    "conversations' locks taken or given back, and what their turns start from read after, "
    "in one call",
    (
        # Volatile, so in READ COMMITTED the read takes its snapshot after the takes: it sees
        # the commit of a turn that gave a lock back just before (a plain statement's
        # snapshot predates its takes, and could miss it). Each lock in turn, in order; then
        # one read for every place taken (a row at least for each lock, `i` its number).
        _LOCKS_FUNCTION,
    ),
)

# Each message asks for the messages received before it in its place: with only the
# (platform, event_id) key that read every pending message of the platform and sorted them
# (bench/README.md, issue 22's third round; SQLite's migration 11).
_V10 = Migration(
    10,
    "an index on the inbox by place, in the order received",
    ("CREATE INDEX inbox_by_place ON inbox (platform, place, n)",),
)


def _waiting_too(function: str) -> str:
    """Migration 9's function, where a take that is neither true nor false (NULL) waits."""
    waits = (
        function.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
        .replace(
            "IF takes[k] THEN",
            "IF takes[k] IS NULL THEN\n"
            "                    PERFORM pg_advisory_lock(numbers[k]);\n"
            "                    granted[k] := true;\n"
            "                ELSIF takes[k] THEN",
        )
        .replace("q.held AND q.take", "q.held AND q.take IS NOT FALSE")
    )
    assert waits.count("q.take IS NOT FALSE") == 3, "migration 9's function changed"
    return waits


# A turn whose conversation another process holds waited for it on a connection of its own,
# then read what it starts from through the pool: two trips, on two connections. Now the
# function waits (a NULL take) and reads after, on the waiting connection: one trip. The
# read is still a query of its own, after the wait, so it sees the commit of the turn that
# gave the lock back. Processes of version 10 never ask it to wait (bench/README.md, issue
# 22's fifth round).
_V11 = Migration(
    11,
    "a conversation's lock waited for, and what its turn starts from read after, in one call",
    (_waiting_too(_LOCKS_FUNCTION),),
)

# The lock function's query was planned anew at every call, ~250 µs of the server's CPU of
# a trip's ~400: a custom plan knows the sizes of the function's arrays and a generic one
# does not, so the `auto` mode never settled on the generic plan. Its shape does not depend
# on them (each place is looked up by its indexes, laterally), so the plan made once per
# session is kept (bench/README.md, issue 22's seventh round). The setting is PostgreSQL
# 12's; an older server keeps planning at each call. A later CREATE OR REPLACE of the
# function drops it: that migration must set it again.
_V12 = Migration(
    12,
    "the lock function's query planned once per session, not at every call",
    (
        """
        DO $$
        BEGIN
            IF current_setting('server_version_num')::int >= 120000 THEN
                ALTER FUNCTION quitbot_conversation_locks(
                    BIGINT[], BOOLEAN[], TEXT[], TEXT[], TEXT[], TEXT[]
                ) SET plan_cache_mode = force_generic_plan;
            END IF;
        END
        $$
        """,
    ),
)

# Looking a received message up by its event (a turn's begin and commit, a reply noted as
# shown, the lock's read) has the unique (platform, event_id) index for it; but the inbox is
# a queue, nearly empty to the planner, and migration 10's (platform, place, n) costs the
# same there, so PostgreSQL often took that one: every entry of the platform read, the dead
# ones too until a vacuum, to find one event (~550 a lookup in a 2,000-message Discord
# burst, 5.5 million in all, most of the server's CPU). Led by the place, it is no use
# without one (bench/README.md, issue 22's seventh round).
_V13 = Migration(
    13,
    "the inbox's index by place led by the place, so that a lookup by event uses its own",
    (
        "DROP INDEX inbox_by_place",
        "CREATE INDEX inbox_by_place ON inbox (place, platform, n)",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (
    _V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10, _V11, _V12, _V13,
)  # fmt: skip

_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version "
    "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
)
_VERSION = "SELECT COALESCE(MAX(version), 0) FROM schema_version"


async def schema_version(db: asyncpg.Connection) -> int:
    """The highest migration applied; 0 for a new database."""
    exists = await db.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    return int(await db.fetchval(_VERSION)) if exists else 0


async def migrate(db: asyncpg.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the schema up to date, one transaction per migration; return the version.

    Re-running is a no-op. Each step takes the migration lock and re-reads the version
    under it, so processes starting together apply each migration once; a failing one
    leaves the previous version whole.
    """
    latest = migrations[-1].version if migrations else 0
    current = await schema_version(db)
    _refuse_newer(current, latest)
    if current == latest:
        return current  # the common start: no lock, no write
    for migration in migrations:
        if migration.version > current:
            current = await _apply(db, migration)
            _refuse_newer(current, latest)
    return current


async def _apply(db: asyncpg.Connection, migration: Migration) -> int:
    async with db.transaction():
        await db.execute("SELECT pg_advisory_xact_lock($1, $2)", *MIGRATION_LOCK)
        await db.execute(_VERSION_TABLE)
        current = int(await db.fetchval(_VERSION))
        if migration.version > current:
            for statement in migration.statements:
                await db.execute(statement)
            await db.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES ($1, $2, $3)",
                migration.version,
                migration.description,
                datetime.now(UTC),
            )
            current = migration.version
    return current


def _refuse_newer(current: int, latest: int) -> None:
    if current > latest:
        raise SchemaTooNew(
            f"the database is at schema version {current}, but this quitbot only knows up to "
            f"version {latest}; upgrade quitbot (or point QUITBOT_DATABASE_URL elsewhere)"
        )
