"""The default store: one SQLite file (or ":memory:") behind one aiosqlite connection."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite

from bot.conversation import (
    Actor,
    AuditEvent,
    Conversation,
    ConversationKey,
    EndReason,
    Inbound,
    LadderState,
    StoredMessage,
)
from bot.ports import BlockedOutcome, NewMessage
from bot.store.migrations import MIGRATIONS, Migration, migrate

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000

# No 0/o, 1/l/i: people read these ids aloud and type them from screenshots.
_ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
_ID_LENGTH = 9  # after the leading "c": 31**9 is about 2.6e13 ids

_CONVERSATION_COLUMNS = (
    "id, platform, place, user_id, redirects, warned, crisis, ended, ended_by, ended_reason, "
    "created_at, updated_at, ended_at, branched_from"
)
_MESSAGE_COLUMNS = "seq, role, text, api, at, user_id, platform_message_id, in_context"


class StoreError(RuntimeError):
    """The database cannot be opened or used as quitbot needs."""


class UnknownConversation(LookupError):
    """No conversation has that id."""


def new_conversation_id() -> str:
    return "c" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


class SqliteStore:
    """`bot.ports.Store` on SQLite.

    One connection, opened once. Every operation holds one asyncio.Lock, so a coroutine
    never reads another's half-finished transaction on the shared connection and writes
    never interleave. Build it with `await SqliteStore.open(path)`.
    """

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str, *, migrations: Sequence[Migration] = MIGRATIONS) -> SqliteStore:
        """Open (creating it owner-only if new) and migrate the database at `path`."""
        if path != ":memory:":
            _create_private(Path(path))
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {path}: {exc}") from exc
        try:
            await _configure(db, path)
            await migrate(db, migrations)
        except BaseException:
            await db.close()
            raise
        db.row_factory = sqlite3.Row
        return cls(db)

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    async def __aenter__(self) -> SqliteStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- reading ---------------------------------------------------------------------------

    async def current(self, key: ConversationKey) -> Conversation | None:
        async with self._lock:
            return await self._one_conversation(
                f"SELECT {_CONVERSATION_COLUMNS} FROM conversations "
                "WHERE platform = ? AND place = ? ORDER BY n DESC LIMIT 1",
                (key.platform, key.place),
            )

    async def get(self, conversation_id: str) -> Conversation | None:
        async with self._lock:
            return await self._get(conversation_id)

    async def recent_messages(self, conversation_id: str, limit: int) -> list[StoredMessage]:
        if limit <= 0:
            return []
        async with self._lock:
            rows = await self._db.execute_fetchall(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? "
                "ORDER BY seq DESC LIMIT ?",
                (conversation_id, limit),
            )
        return [_message(row) for row in reversed(list(rows))]

    async def messages(self, conversation_id: str) -> list[StoredMessage]:
        async with self._lock:
            rows = await self._db.execute_fetchall(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY seq",
                (conversation_id,),
            )
        return [_message(row) for row in rows]

    async def events(self, conversation_id: str) -> list[AuditEvent]:
        async with self._lock:
            rows = await self._db.execute_fetchall(
                "SELECT kind, at, actor, detail FROM events WHERE conversation_id = ? ORDER BY n",
                (conversation_id,),
            )
        return [
            AuditEvent(row[0], _from_text(row[1]), Actor(row[2]), json.loads(row[3]))
            for row in rows
        ]

    async def list_conversations(
        self, *, state: str | None = None, platform: str | None = None, limit: int = 100
    ) -> list[Conversation]:
        """Newest first, optionally only `state` ("active" | "ended") or one platform."""
        where, params = _list_filter(state, platform)
        async with self._lock:
            rows = await self._db.execute_fetchall(
                f"SELECT {_CONVERSATION_COLUMNS} FROM conversations{where} ORDER BY n DESC LIMIT ?",
                (*params, limit),
            )
        return [_conversation(row) for row in rows]

    async def ended_count(self, platform: str, user_id: str, since: datetime) -> int:
        async with self._lock:
            rows = list(
                await self._db.execute_fetchall(
                    "SELECT COUNT(*) FROM conversations WHERE platform = ? AND user_id = ? "
                    "AND ended_at >= ? AND ended = 1 AND ended_reason IS NOT ?",
                    (platform, user_id, _to_text(since), EndReason.USER_REQUESTED.value),
                )
            )
        return int(rows[0][0])

    # --- writing ---------------------------------------------------------------------------

    async def create(
        self,
        key: ConversationKey,
        user_id: str,
        at: datetime,
        *,
        branched_from: str | None = None,
        history: Sequence[NewMessage] = (),
        events: Sequence[AuditEvent] = (),
    ) -> Conversation:
        stamp = _to_text(at)
        async with self._transaction():
            conversation_id = await self._insert_conversation(key, user_id, stamp, branched_from)
            await self._insert_messages(conversation_id, history)
            await self._insert_events(conversation_id, events)
            created = await self._get(conversation_id)
        assert created is not None
        return created

    async def begin_turn(
        self, conversation_id: str, inbound: Inbound, message: NewMessage
    ) -> StoredMessage | None:
        """Claim the inbound event and store the user's message in one transaction.

        Returns None, storing nothing, if the platform event was handled before.
        """
        async with self._transaction():
            if not await self._claim(inbound, message.at):
                return None
            rows = await self._db.execute_fetchall(
                "UPDATE conversations SET updated_at = ? WHERE id = ? RETURNING 1",
                (_to_text(message.at), conversation_id),
            )
            if not list(rows):
                raise UnknownConversation(conversation_id)
            seqs = await self._insert_messages(conversation_id, (message,))
        return _stored(seqs[0], message)

    async def commit_turn(
        self,
        conversation_id: str,
        ladder: LadderState,
        at: datetime,
        messages: Sequence[NewMessage] = (),
        events: Sequence[AuditEvent] = (),
        exclude_seq: int | None = None,
    ) -> Conversation:
        """Store the turn's messages, the new ladder state and its events in one transaction.

        `exclude_seq` marks that earlier message as out of context (a refused turn). Ending
        stamps `ended_at`; reopening clears it.
        """
        async with self._transaction():
            row = await self._update_ladder(conversation_id, ladder, _to_text(at))
            await self._insert_messages(conversation_id, messages)
            await self._insert_events(conversation_id, events)
            if exclude_seq is not None:
                await self._exclude(conversation_id, exclude_seq)
        return _conversation(row)

    async def record_blocked(
        self, conversation_id: str, inbound: Inbound, at: datetime, quiet: timedelta
    ) -> BlockedOutcome:
        """Claim a message sent to an ended conversation; decide whether to notify its poster.

        Notify on the first such message from a person since the end, then at most once per
        `quiet` per person.
        """
        async with self._transaction():
            if not await self._claim(inbound, at):
                return BlockedOutcome.DUPLICATE
            rows = list(
                await self._db.execute_fetchall(
                    "SELECT b.at FROM conversations AS c LEFT JOIN blocked_notices AS b "
                    "ON b.conversation_id = c.id AND b.user_id = ? WHERE c.id = ?",
                    (inbound.user_id, conversation_id),
                )
            )
            if not rows:
                raise UnknownConversation(conversation_id)
            last = rows[0][0]
            if last is not None and at - _from_text(last) < quiet:
                return BlockedOutcome.QUIET
            await self._db.execute(
                "INSERT INTO blocked_notices (conversation_id, user_id, at) VALUES (?, ?, ?) "
                "ON CONFLICT (conversation_id, user_id) DO UPDATE SET at = excluded.at",
                (conversation_id, inbound.user_id, _to_text(at)),
            )
        return BlockedOutcome.NOTIFY

    async def add_events(self, conversation_id: str, events: Sequence[AuditEvent]) -> None:
        async with self._transaction():
            await self._require(conversation_id)
            await self._insert_events(conversation_id, events)

    async def add_feedback(
        self, conversation_id: str, user_id: str, text: str, at: datetime
    ) -> None:
        """Keep what a user said about a conversation; the engine audits it separately."""
        async with self._transaction():
            await self._require(conversation_id)
            await self._db.execute(
                "INSERT INTO feedback (conversation_id, user_id, text, at) VALUES (?, ?, ?, ?)",
                (conversation_id, user_id, text, _to_text(at)),
            )

    async def feedback(self, conversation_id: str) -> list[tuple[str, str, datetime]]:
        """(user_id, text, at) of each feedback row, oldest first."""
        async with self._lock:
            rows = await self._db.execute_fetchall(
                "SELECT user_id, text, at FROM feedback WHERE conversation_id = ? ORDER BY n",
                (conversation_id,),
            )
        return [(row[0], row[1], _from_text(row[2])) for row in rows]

    # --- inside a transaction --------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """BEGIN IMMEDIATE ... COMMIT under the lock; anything escaping rolls it all back.

        IMMEDIATE takes SQLite's write lock up front, so another process (the CLI) makes us
        wait up to the busy timeout instead of failing half-way through.
        """
        async with self._lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                yield
                await self._db.execute("COMMIT")
            except BaseException:
                # Even when cancelled, the ROLLBACK is queued on the connection's thread
                # before the lock is released, so the next transaction starts clean.
                await self._rollback()
                raise

    async def _rollback(self) -> None:
        # SQLite may already have rolled back (or committed, if cancelled during COMMIT).
        with suppress(sqlite3.OperationalError):
            await self._db.execute("ROLLBACK")

    async def _get(self, conversation_id: str) -> Conversation | None:
        return await self._one_conversation(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ?",
            (conversation_id,),
        )

    async def _one_conversation(self, sql: str, params: Iterable[Any]) -> Conversation | None:
        rows = list(await self._db.execute_fetchall(sql, params))
        return _conversation(rows[0]) if rows else None

    async def _require(self, conversation_id: str) -> None:
        rows = list(
            await self._db.execute_fetchall(
                "SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)
            )
        )
        if not rows:
            raise UnknownConversation(conversation_id)

    async def _claim(self, inbound: Inbound, at: datetime) -> bool:
        if not inbound.event_id:
            raise ValueError("inbound.event_id is empty; adapters must give every event an id")
        rows = await self._db.execute_fetchall(
            "INSERT INTO processed_events (platform, event_id, at) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            (inbound.key.platform, inbound.event_id, _to_text(at)),
        )
        return bool(list(rows))

    async def _insert_conversation(
        self, key: ConversationKey, user_id: str, stamp: str, branched_from: str | None
    ) -> str:
        while True:
            conversation_id = new_conversation_id()
            rows = await self._db.execute_fetchall(
                "INSERT INTO conversations "
                "(id, platform, place, user_id, created_at, updated_at, branched_from) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING 1",
                (conversation_id, key.platform, key.place, user_id, stamp, stamp, branched_from),
            )
            if list(rows):
                return conversation_id

    async def _insert_messages(
        self, conversation_id: str, messages: Sequence[NewMessage]
    ) -> list[int]:
        """Append after the conversation's last message; return the new seqs."""
        seqs: list[int] = []
        for message in messages:
            rows = list(
                await self._db.execute_fetchall(
                    "INSERT INTO messages (conversation_id, seq, role, text, api, at, user_id, "
                    "platform_message_id, in_context) "
                    "SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 "
                    "FROM messages WHERE conversation_id = ?1 RETURNING seq",
                    (conversation_id, *_message_values(message)),
                )
            )
            seqs.append(int(rows[0][0]))
        return seqs

    async def _insert_events(self, conversation_id: str, events: Sequence[AuditEvent]) -> None:
        if events:
            await self._db.executemany(
                "INSERT INTO events (conversation_id, kind, at, actor, detail) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (conversation_id, e.kind, _to_text(e.at), e.actor.value, _json(e.detail))
                    for e in events
                ],
            )

    async def _update_ladder(
        self, conversation_id: str, ladder: LadderState, stamp: str
    ) -> sqlite3.Row:
        rows = list(
            await self._db.execute_fetchall(
                "UPDATE conversations SET redirects = ?1, warned = ?2, crisis = ?3, ended = ?4, "
                "ended_by = ?5, ended_reason = ?6, updated_at = ?7, "
                "ended_at = CASE WHEN NOT ?4 THEN NULL WHEN ended THEN ended_at ELSE ?7 END "
                f"WHERE id = ?8 RETURNING {_CONVERSATION_COLUMNS}",
                (
                    ladder.redirects,
                    ladder.warned,
                    ladder.crisis,
                    ladder.ended,
                    None if ladder.ended_by is None else ladder.ended_by.value,
                    None if ladder.ended_reason is None else ladder.ended_reason.value,
                    stamp,
                    conversation_id,
                ),
            )
        )
        if not rows:
            raise UnknownConversation(conversation_id)
        row: sqlite3.Row = rows[0]
        return row

    async def _exclude(self, conversation_id: str, seq: int) -> None:
        rows = await self._db.execute_fetchall(
            "UPDATE messages SET in_context = 0 WHERE conversation_id = ? AND seq = ? RETURNING 1",
            (conversation_id, seq),
        )
        if not list(rows):
            raise LookupError(f"conversation {conversation_id} has no message {seq}")


# --- opening -------------------------------------------------------------------------------


def _create_private(path: Path) -> None:
    """Create a new database file readable by its owner only, before SQLite does.

    SQLite gives the -wal and -shm files the main file's mode, so they follow. Existing
    files keep the mode their operator chose.
    """
    if path.exists():
        return
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the database {path}: {exc.strerror}") from exc
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return  # another process created it a moment ago
    except OSError as exc:
        raise StoreError(f"cannot create the database {path}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o600)  # whatever the umask took away or allowed
    finally:
        os.close(fd)


async def _configure(db: aiosqlite.Connection, path: str) -> None:
    rows = list(await db.execute_fetchall("PRAGMA journal_mode = WAL"))
    mode = str(rows[0][0]).lower()
    if path != ":memory:" and mode != "wal":
        log.warning("database %s stays in %s journal mode (WAL unavailable)", path, mode)
    await db.execute("PRAGMA foreign_keys = ON")
    await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await db.execute("PRAGMA synchronous = NORMAL")


# --- rows and values -----------------------------------------------------------------------


def _to_text(at: datetime) -> str:
    """Fixed-width UTC ISO-8601, so text order is time order in SQL comparisons."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: the store takes timezone-aware times")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _from_text(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _message_values(message: NewMessage) -> tuple[Any, ...]:
    return (
        message.role,
        message.text,
        _json(message.api),
        _to_text(message.at),
        message.user_id,
        message.platform_message_id,
        message.in_context,
    )


def _stored(seq: int, message: NewMessage) -> StoredMessage:
    return StoredMessage(
        seq=seq,
        role=message.role,
        text=message.text,
        api=message.api,
        at=message.at.astimezone(UTC),
        user_id=message.user_id,
        platform_message_id=message.platform_message_id,
        in_context=message.in_context,
    )


def _message(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        seq=row["seq"],
        role=row["role"],
        text=row["text"],
        api=json.loads(row["api"]),
        at=_from_text(row["at"]),
        user_id=row["user_id"],
        platform_message_id=row["platform_message_id"],
        in_context=bool(row["in_context"]),
    )


def _conversation(row: sqlite3.Row) -> Conversation:
    ladder = LadderState(
        redirects=row["redirects"],
        warned=bool(row["warned"]),
        crisis=bool(row["crisis"]),
        ended=bool(row["ended"]),
        ended_by=None if row["ended_by"] is None else Actor(row["ended_by"]),
        ended_reason=None if row["ended_reason"] is None else EndReason(row["ended_reason"]),
    )
    return Conversation(
        id=row["id"],
        key=ConversationKey(row["platform"], row["place"]),
        user_id=row["user_id"],
        ladder=ladder,
        created_at=_from_text(row["created_at"]),
        updated_at=_from_text(row["updated_at"]),
        ended_at=None if row["ended_at"] is None else _from_text(row["ended_at"]),
        branched_from=row["branched_from"],
    )


def _list_filter(state: str | None, platform: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if state is not None:
        if state not in {"active", "ended"}:
            raise ValueError(f"state must be 'active' or 'ended', not {state!r}")
        clauses.append("ended = ?")
        params.append(state == "ended")
    if platform is not None:
        clauses.append("platform = ?")
        params.append(platform)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
