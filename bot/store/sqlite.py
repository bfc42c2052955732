"""The default store: one SQLite file (or ":memory:") behind one aiosqlite connection."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator, Sequence
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

# Rows come back as plain tuples (no row factory), read by position: these column lists and
# the unpacking in `_conversation` / `_messages` must stay in the same order.
_CONVERSATION_COLUMNS = (
    "id, platform, place, user_id, redirects, warned, crisis, ended, ended_by, ended_reason, "
    "created_at, updated_at, ended_at, branched_from"
)
_MESSAGE_COLUMNS = "seq, role, text, at, user_id, platform_message_id, in_context, api"

# Every statement is a constant, so sqlite3's statement cache reuses its prepared form.
_CURRENT = (
    f"SELECT {_CONVERSATION_COLUMNS} FROM conversations "
    "WHERE platform = ? AND place = ? ORDER BY n DESC LIMIT 1"
)
_GET = f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ?"
_EXISTS = "SELECT 1 FROM conversations WHERE id = ?"
_RECENT = (
    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?"
)
_ALL_MESSAGES = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY seq"
_EVENTS = "SELECT kind, at, actor, detail FROM events WHERE conversation_id = ? ORDER BY n"
_FEEDBACK = "SELECT user_id, text, at FROM feedback WHERE conversation_id = ? ORDER BY n"
_ENDED_COUNT = (
    "SELECT COUNT(*) FROM conversations WHERE platform = ? AND user_id = ? "
    "AND ended_at >= ? AND ended = 1 AND ended_reason IS NOT ?"
)
_INSERT_CONVERSATION = (
    "INSERT INTO conversations "
    "(id, platform, place, user_id, created_at, updated_at, branched_from) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING "
    f"RETURNING {_CONVERSATION_COLUMNS}"
)
# Claims the platform event only if the conversation exists, so the existence check costs
# no statement of its own; an empty result means "duplicate or unknown" (see `_unclaimed`).
_CLAIM = (
    "INSERT INTO processed_events (platform, event_id, at) SELECT ?1, ?2, ?3 "
    "WHERE EXISTS (SELECT 1 FROM conversations WHERE id = ?4) "
    "ON CONFLICT DO NOTHING RETURNING 1"
)
_CLAIMED = "SELECT 1 FROM processed_events WHERE platform = ? AND event_id = ?"
_TOUCH = "UPDATE conversations SET updated_at = ? WHERE id = ?"
# The seq is computed in the INSERT: one past the conversation's last message.
_INSERT_MESSAGE = (
    "INSERT INTO messages (conversation_id, seq, role, text, api, at, user_id, "
    "platform_message_id, in_context) "
    "SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 "
    "FROM messages WHERE conversation_id = ?1"
)
_INSERT_MESSAGE_RETURNING_SEQ = _INSERT_MESSAGE + " RETURNING seq"
_INSERT_EVENT = (
    "INSERT INTO events (conversation_id, kind, at, actor, detail) VALUES (?, ?, ?, ?, ?)"
)
# For add_events, whose first statement must write (see `_transaction`) yet must raise
# UnknownConversation rather than a foreign-key error.
_INSERT_EVENT_IF_EXISTS = (
    "INSERT INTO events (conversation_id, kind, at, actor, detail) SELECT ?1, ?2, ?3, ?4, ?5 "
    "WHERE EXISTS (SELECT 1 FROM conversations WHERE id = ?1)"
)
_INSERT_FEEDBACK_IF_EXISTS = (
    "INSERT INTO feedback (conversation_id, user_id, text, at) SELECT ?1, ?2, ?3, ?4 "
    "WHERE EXISTS (SELECT 1 FROM conversations WHERE id = ?1) RETURNING 1"
)
_UPDATE_LADDER = (
    "UPDATE conversations SET redirects = ?1, warned = ?2, crisis = ?3, ended = ?4, "
    "ended_by = ?5, ended_reason = ?6, updated_at = ?7, "
    "ended_at = CASE WHEN NOT ?4 THEN NULL WHEN ended THEN ended_at ELSE ?7 END "
    f"WHERE id = ?8 RETURNING {_CONVERSATION_COLUMNS}"
)
_EXCLUDE = "UPDATE messages SET in_context = 0 WHERE conversation_id = ? AND seq = ? RETURNING 1"
# Record a notice unless this person was notified less than `quiet` ago: the row is only
# (re)written when the last notice is at or before ?4 = at - quiet, and RETURNING says so.
# Times are fixed-width UTC text, so text order is time order.
_NOTIFY_UNLESS_QUIET = (
    "INSERT INTO blocked_notices (conversation_id, user_id, at) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (conversation_id, user_id) DO UPDATE SET at = excluded.at "
    "WHERE blocked_notices.at <= ?4 RETURNING 1"
)


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

    Each call to the connection is a hop to aiosqlite's thread and back, the main cost of a
    store operation, so every operation uses as few statements as its guarantees allow: the
    transaction begins with its first write (see `_transaction`), existence checks ride
    along in the writes, and writes RETURN what the caller needs instead of re-reading it.
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
        # From here on sqlite3 opens each transaction itself: it runs BEGIN IMMEDIATE just
        # before the first INSERT/UPDATE/DELETE outside a transaction, in the same hop to the
        # connection's thread as that statement. Only `_transaction` writes.
        db.isolation_level = "IMMEDIATE"
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
            rows = await self._db.execute_fetchall(_CURRENT, (key.platform, key.place))
        for row in rows:
            return _conversation(row)
        return None

    async def get(self, conversation_id: str) -> Conversation | None:
        async with self._lock:
            rows = await self._db.execute_fetchall(_GET, (conversation_id,))
        for row in rows:
            return _conversation(row)
        return None

    async def recent_messages(self, conversation_id: str, limit: int) -> list[StoredMessage]:
        if limit <= 0:
            return []
        async with self._lock:
            rows = list(await self._db.execute_fetchall(_RECENT, (conversation_id, limit)))
        rows.reverse()
        return _messages(rows)

    async def messages(self, conversation_id: str) -> list[StoredMessage]:
        async with self._lock:
            rows = list(await self._db.execute_fetchall(_ALL_MESSAGES, (conversation_id,)))
        return _messages(rows)

    async def events(self, conversation_id: str) -> list[AuditEvent]:
        async with self._lock:
            rows = list(await self._db.execute_fetchall(_EVENTS, (conversation_id,)))
        details = _json_list([row[3] for row in rows])
        return [
            AuditEvent(row[0], _from_text(row[1]), _ACTORS[row[2]], detail)
            for row, detail in zip(rows, details, strict=True)
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
        params = (platform, user_id, _to_text(since), EndReason.USER_REQUESTED.value)
        async with self._lock:
            rows = list(await self._db.execute_fetchall(_ENDED_COUNT, params))
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
        message_rows = _message_rows(history)
        event_rows = _event_rows(events)
        async with self._transaction():
            while True:  # until the random id is new
                conversation_id = new_conversation_id()
                rows = list(
                    await self._db.execute_fetchall(
                        _INSERT_CONVERSATION,
                        (
                            conversation_id,
                            key.platform,
                            key.place,
                            user_id,
                            stamp,
                            stamp,
                            branched_from,
                        ),
                    )
                )
                if rows:
                    break
            await self._insert_messages(conversation_id, message_rows)
            await self._insert_events(conversation_id, event_rows)
        return _conversation(rows[0])

    async def begin_turn(
        self, conversation_id: str, inbound: Inbound, message: NewMessage
    ) -> StoredMessage | None:
        """Claim the inbound event and store the user's message in one transaction.

        Returns None, storing nothing, if the platform event was handled before.
        """
        claim = _claim_params(conversation_id, inbound, message.at)
        touch = (_to_text(message.at), conversation_id)
        values = (conversation_id, *_message_values(message))
        async with self._transaction():
            if not list(await self._db.execute_fetchall(_CLAIM, claim)):
                await self._unclaimed(inbound, conversation_id)
                return None
            await self._db.execute(_TOUCH, touch)
            rows = list(await self._db.execute_fetchall(_INSERT_MESSAGE_RETURNING_SEQ, values))
        return _stored(rows[0][0], message)

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
        update = (
            ladder.redirects,
            ladder.warned,
            ladder.crisis,
            ladder.ended,
            None if ladder.ended_by is None else ladder.ended_by.value,
            None if ladder.ended_reason is None else ladder.ended_reason.value,
            _to_text(at),
            conversation_id,
        )
        message_rows = _message_rows(messages)
        event_rows = _event_rows(events)
        async with self._transaction():
            rows = list(await self._db.execute_fetchall(_UPDATE_LADDER, update))
            if not rows:
                raise UnknownConversation(conversation_id)
            await self._insert_messages(conversation_id, message_rows)
            await self._insert_events(conversation_id, event_rows)
            if exclude_seq is not None:
                excluded = await self._db.execute_fetchall(_EXCLUDE, (conversation_id, exclude_seq))
                if not list(excluded):
                    raise LookupError(
                        f"conversation {conversation_id} has no message {exclude_seq}"
                    )
        return _conversation(rows[0])

    async def record_blocked(
        self, conversation_id: str, inbound: Inbound, at: datetime, quiet: timedelta
    ) -> BlockedOutcome:
        """Claim a message sent to an ended conversation; decide whether to notify its poster.

        Notify on the first such message from a person since the end, then at most once per
        `quiet` per person.
        """
        claim = _claim_params(conversation_id, inbound, at)
        notice = (conversation_id, inbound.user_id, claim[2], _quiet_until(at, quiet))
        async with self._transaction():
            if not list(await self._db.execute_fetchall(_CLAIM, claim)):
                await self._unclaimed(inbound, conversation_id)
                return BlockedOutcome.DUPLICATE
            if not list(await self._db.execute_fetchall(_NOTIFY_UNLESS_QUIET, notice)):
                return BlockedOutcome.QUIET
        return BlockedOutcome.NOTIFY

    async def add_events(self, conversation_id: str, events: Sequence[AuditEvent]) -> None:
        event_rows = _event_rows(events)
        if not event_rows:
            await self._require(conversation_id)
            return
        async with self._transaction():
            cursor = await self._db.executemany(
                _INSERT_EVENT_IF_EXISTS, [(conversation_id, *row) for row in event_rows]
            )
            if cursor.rowcount != len(event_rows):
                raise UnknownConversation(conversation_id)

    async def add_feedback(
        self, conversation_id: str, user_id: str, text: str, at: datetime
    ) -> None:
        """Keep what a user said about a conversation; the engine audits it separately."""
        params = (conversation_id, user_id, text, _to_text(at))
        async with self._transaction():
            if not list(await self._db.execute_fetchall(_INSERT_FEEDBACK_IF_EXISTS, params)):
                raise UnknownConversation(conversation_id)

    async def feedback(self, conversation_id: str) -> list[tuple[str, str, datetime]]:
        """(user_id, text, at) of each feedback row, oldest first."""
        async with self._lock:
            rows = await self._db.execute_fetchall(_FEEDBACK, (conversation_id,))
        return [(row[0], row[1], _from_text(row[2])) for row in rows]

    # --- inside a transaction --------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """A write transaction under the lock; anything escaping rolls it all back.

        The body's first statement must write: sqlite3 runs BEGIN IMMEDIATE just before it
        (isolation_level, set in `open`), saving a hop to the connection's thread. IMMEDIATE
        takes SQLite's write lock up front, so another process (the CLI) makes us wait up to
        the busy timeout instead of failing half-way through.
        """
        async with self._lock:
            try:
                yield
                await self._db.commit()
            except BaseException:
                # Even when cancelled, the rollback is queued on the connection's thread
                # after any statement already sent and before the lock is released, so the
                # next transaction starts clean.
                await self._rollback()
                raise

    async def _rollback(self) -> None:
        # A no-op when no transaction is open (SQLite may already have rolled back, or
        # committed, if cancelled during the commit).
        with suppress(sqlite3.OperationalError):
            await self._db.rollback()

    async def _require(self, conversation_id: str) -> None:
        async with self._lock:
            rows = list(await self._db.execute_fetchall(_EXISTS, (conversation_id,)))
        if not rows:
            raise UnknownConversation(conversation_id)

    async def _unclaimed(self, inbound: Inbound, conversation_id: str) -> None:
        """After `_CLAIM` inserted nothing: return if the event was handled before, else
        the conversation is unknown (a handled event wins, as if checked first)."""
        rows = await self._db.execute_fetchall(_CLAIMED, (inbound.key.platform, inbound.event_id))
        if not list(rows):
            raise UnknownConversation(conversation_id)

    async def _insert_messages(self, conversation_id: str, rows: list[tuple[Any, ...]]) -> None:
        """Append after the conversation's last message, in order, in one hop."""
        if len(rows) == 1:
            await self._db.execute(_INSERT_MESSAGE, (conversation_id, *rows[0]))
        elif rows:
            await self._db.executemany(_INSERT_MESSAGE, [(conversation_id, *r) for r in rows])

    async def _insert_events(self, conversation_id: str, rows: list[tuple[Any, ...]]) -> None:
        if len(rows) == 1:
            await self._db.execute(_INSERT_EVENT, (conversation_id, *rows[0]))
        elif rows:
            await self._db.executemany(_INSERT_EVENT, [(conversation_id, *r) for r in rows])


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

# One encoder, not one per call (json.dumps builds a new one whenever options are given).
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_ACTORS = {actor.value: actor for actor in Actor}
_END_REASONS = {reason.value: reason for reason in EndReason}


def _to_text(at: datetime) -> str:
    """Fixed-width UTC ISO-8601, so text order is time order in SQL comparisons."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: the store takes timezone-aware times")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _from_text(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    # The store writes "+00:00", which fromisoformat already gives as UTC itself.
    return at if at.tzinfo is UTC else at.astimezone(UTC)


def _json_list(texts: list[str]) -> list[Any]:
    """Decode many stored JSON values with one json.loads call (they are valid JSON each)."""
    if not texts:
        return []
    decoded: list[Any] = json.loads("[" + ",".join(texts) + "]")
    return decoded


def _quiet_until(at: datetime, quiet: timedelta) -> str:
    """The text time a person's last notice must be at or before to be notified again."""
    try:
        return _to_text(at - quiet)
    except OverflowError:  # an interval beyond the calendar: never again, or always
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(
                f"naive datetime {at!r}: the store takes timezone-aware times"
            ) from None
        return "" if quiet > timedelta(0) else "\uffff"


def _claim_params(conversation_id: str, inbound: Inbound, at: datetime) -> tuple[str, ...]:
    if not inbound.event_id:
        raise ValueError("inbound.event_id is empty; adapters must give every event an id")
    return (inbound.key.platform, inbound.event_id, _to_text(at), conversation_id)


def _message_values(message: NewMessage) -> tuple[Any, ...]:
    return (
        message.role,
        message.text,
        _encode_json(message.api),
        _to_text(message.at),
        message.user_id,
        message.platform_message_id,
        message.in_context,
    )


def _message_rows(messages: Sequence[NewMessage]) -> list[tuple[Any, ...]]:
    return [_message_values(message) for message in messages]


def _event_rows(events: Sequence[AuditEvent]) -> list[tuple[Any, ...]]:
    return [(e.kind, _to_text(e.at), e.actor.value, _encode_json(e.detail)) for e in events]


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


def _messages(rows: list[Any]) -> list[StoredMessage]:
    """Rows of `_MESSAGE_COLUMNS`, in the order given."""
    apis = _json_list([row[7] for row in rows])
    return [
        StoredMessage(seq, role, text, api, _from_text(at), user_id, pmid, bool(in_context))
        for (seq, role, text, at, user_id, pmid, in_context, _), api in zip(rows, apis, strict=True)
    ]


def _conversation(row: Any) -> Conversation:
    """A row of `_CONVERSATION_COLUMNS`."""
    (
        conversation_id,
        platform,
        place,
        user_id,
        redirects,
        warned,
        crisis,
        ended,
        ended_by,
        ended_reason,
        created_at,
        updated_at,
        ended_at,
        branched_from,
    ) = row
    ladder = LadderState(
        redirects=redirects,
        warned=bool(warned),
        crisis=bool(crisis),
        ended=bool(ended),
        ended_by=None if ended_by is None else _ACTORS[ended_by],
        ended_reason=None if ended_reason is None else _END_REASONS[ended_reason],
    )
    return Conversation(
        id=conversation_id,
        key=ConversationKey(platform, place),
        user_id=user_id,
        ladder=ladder,
        created_at=_from_text(created_at),
        updated_at=_from_text(updated_at),
        ended_at=None if ended_at is None else _from_text(ended_at),
        branched_from=branched_from,
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
