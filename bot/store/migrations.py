"""The SQLite schema as numbered migrations, applied in order at start-up.

Append a new `Migration` to change the schema; never edit one that has shipped, because
databases in the field have already applied it and will not run it again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer quitbot than this one."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


_V1 = Migration(
    1,
    "conversations, messages, audit events, processed events, blocked notices, feedback",
    (
        # `n` gives "newest at a place" an insertion order that no clock can disturb;
        # `id` is the short code people type.
        """
        CREATE TABLE conversations (
            n             INTEGER PRIMARY KEY,
            id            TEXT    NOT NULL UNIQUE,
            platform      TEXT    NOT NULL,
            place         TEXT    NOT NULL,
            user_id       TEXT    NOT NULL,
            redirects     INTEGER NOT NULL DEFAULT 0,
            warned        INTEGER NOT NULL DEFAULT 0,
            crisis        INTEGER NOT NULL DEFAULT 0,
            ended         INTEGER NOT NULL DEFAULT 0,
            ended_by      TEXT,
            ended_reason  TEXT,
            created_at    TEXT    NOT NULL,
            updated_at    TEXT    NOT NULL,
            ended_at      TEXT,
            branched_from TEXT    REFERENCES conversations (id)
        )
        """,
        "CREATE INDEX conversations_at_place ON conversations (platform, place)",
        "CREATE INDEX conversations_ended_by_user ON conversations (platform, user_id, ended_at)",
        """
        CREATE TABLE messages (
            conversation_id     TEXT    NOT NULL REFERENCES conversations (id),
            seq                 INTEGER NOT NULL CHECK (seq >= 1),
            role                TEXT    NOT NULL CHECK (role IN ('user', 'assistant')),
            text                TEXT    NOT NULL,
            api                 TEXT    NOT NULL,
            at                  TEXT    NOT NULL,
            user_id             TEXT    NOT NULL DEFAULT '',
            platform_message_id TEXT    NOT NULL DEFAULT '',
            in_context          INTEGER NOT NULL DEFAULT 1,
            PRIMARY KEY (conversation_id, seq)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE events (
            n               INTEGER PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations (id),
            kind            TEXT NOT NULL,
            at              TEXT NOT NULL,
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
            at       TEXT NOT NULL,
            PRIMARY KEY (platform, event_id)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE blocked_notices (
            conversation_id TEXT NOT NULL REFERENCES conversations (id),
            user_id         TEXT NOT NULL,
            at              TEXT NOT NULL,
            PRIMARY KEY (conversation_id, user_id)
        ) WITHOUT ROWID
        """,
        # A fresh end must notify again, whatever was said after an earlier end.
        """
        CREATE TRIGGER blocked_notices_forgotten_on_state_change
        AFTER UPDATE OF ended ON conversations
        WHEN NEW.ended != OLD.ended
        BEGIN
            DELETE FROM blocked_notices WHERE conversation_id = NEW.id;
        END
        """,
        """
        CREATE TABLE feedback (
            n               INTEGER PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations (id),
            user_id         TEXT NOT NULL,
            text            TEXT NOT NULL,
            at              TEXT NOT NULL
        )
        """,
        "CREATE INDEX feedback_of_conversation ON feedback (conversation_id, n)",
    ),
)

_V2 = Migration(
    2,
    "a proposed end awaiting the person's confirmation",
    ("ALTER TABLE conversations ADD COLUMN end_proposed INTEGER NOT NULL DEFAULT 0",),
)

_V3 = Migration(
    3,
    "messages received but not yet handled, so a message a platform was told arrived is kept",
    (
        """
        CREATE TABLE inbox (
            n          INTEGER PRIMARY KEY,
            platform   TEXT NOT NULL,
            event_id   TEXT NOT NULL,
            place      TEXT NOT NULL,
            user_id    TEXT NOT NULL,
            text       TEXT NOT NULL,
            message_id TEXT NOT NULL DEFAULT '',
            at         TEXT NOT NULL,
            UNIQUE (platform, event_id)
        )
        """,
    ),
)

_V4 = Migration(
    4,
    "per-community settings, and which community each conversation belongs to",
    (
        "ALTER TABLE conversations ADD COLUMN community TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE inbox ADD COLUMN community TEXT NOT NULL DEFAULT ''",
        """
        CREATE TABLE communities (
            platform   TEXT NOT NULL,
            community  TEXT NOT NULL,
            settings   TEXT NOT NULL DEFAULT '{}',
            updated_at TEXT NOT NULL,
            updated_by TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (platform, community)
        ) WITHOUT ROWID
        """,
    ),
)

_V5 = Migration(
    5,
    "where a received message's files can be read again, so a restart does not lose them",
    ("ALTER TABLE inbox ADD COLUMN files TEXT NOT NULL DEFAULT '[]'",),
)

# Existing conversations keep their state: the starter's ladder stays the conversation's own,
# and nobody else has written in them as a participant of their own yet.
_V6 = Migration(
    6,
    "the ladder of each participant other than the starter (a shared place)",
    (
        """
        CREATE TABLE participants (
            conversation_id TEXT    NOT NULL REFERENCES conversations (id),
            user_id         TEXT    NOT NULL,
            redirects       INTEGER NOT NULL DEFAULT 0,
            warned          INTEGER NOT NULL DEFAULT 0,
            crisis          INTEGER NOT NULL DEFAULT 0,
            shut_out        INTEGER NOT NULL DEFAULT 0,
            shut_out_reason TEXT,
            shut_out_at     TEXT,
            PRIMARY KEY (conversation_id, user_id)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX participants_shut_out ON participants (user_id, shut_out_at)",
    ),
)

# A row per (event, destination) still to deliver; delivered rows are deleted, so the table
# stays small. `due_at` is both the next attempt's time and a claim's lease.
_V7 = Migration(
    7,
    "the outbox: audit events still to deliver to webhooks",
    (
        """
        CREATE TABLE outbox (
            event_n  INTEGER NOT NULL REFERENCES events (n),
            target   TEXT    NOT NULL,
            due_at   TEXT    NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (event_n, target)
        )
        """,
        "CREATE INDEX outbox_due ON outbox (due_at)",
    ),
)

_V8 = Migration(
    8,
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
_V9 = Migration(
    9,
    "the reply shown for a received message, until its turn commits",
    (
        "ALTER TABLE inbox ADD COLUMN reply_id TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE inbox ADD COLUMN reply_complete INTEGER NOT NULL DEFAULT 0",
    ),
)

# A turn's begin asks whether its message was stored by a turn that never finished: by the
# message's platform id, the newest first. Without this it read every message of the
# conversation (time growing with a conversation's length).
_V10 = Migration(
    10,
    "an index on each conversation's messages by platform message id",
    (
        "CREATE INDEX messages_by_platform_id "
        "ON messages (conversation_id, platform_message_id, role, seq)",
    ),
)

# Each message asks for the messages received before it in its place: with only the
# (platform, event_id) key that read every pending message of the platform and sorted them,
# in a burst 0.1-0.15 ms a message (bench/README.md, issue 22's third round).
_V11 = Migration(
    11,
    "an index on the inbox by place, in the order received",
    ("CREATE INDEX inbox_by_place ON inbox (platform, place, n)",),
)

MIGRATIONS: tuple[Migration, ...] = (
    _V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10, _V11,
)  # fmt: skip


def schema_version(db: sqlite3.Connection) -> int:
    """The highest migration applied; 0 for a new database."""
    rows = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchall()
    return int(rows[0][0])


def migrate(db: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the schema up to date, one transaction per migration; return the version.

    The connection must be in autocommit mode (isolation_level=None). Re-running is a no-op.
    Each step re-reads the version under the write lock, so two processes starting at once
    do not both apply it.
    """
    latest = migrations[-1].version if migrations else 0
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    current = schema_version(db)
    _refuse_newer(current, latest)
    for migration in migrations:
        if migration.version > current:
            current = _apply(db, migration)
            _refuse_newer(current, latest)
    return current


def _apply(db: sqlite3.Connection, migration: Migration) -> int:
    db.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(db)
        if migration.version > current:
            for statement in migration.statements:
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.description, datetime.now(UTC).isoformat()),
            )
            current = migration.version
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite rolls back after some errors by itself
            db.execute("ROLLBACK")
        raise
    return current


def _refuse_newer(current: int, latest: int) -> None:
    if current > latest:
        raise SchemaTooNew(
            f"the database is at schema version {current}, but this quitbot only knows up to "
            f"version {latest}; upgrade quitbot (or point QUITBOT_DATABASE_URL at another file)"
        )
