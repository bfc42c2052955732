"""The store for several processes: PostgreSQL through asyncpg, with a pool of connections.

Behaviour is SQLite's (bot/store/sqlite.py), statement for statement where the dialects
allow; the store contract tests run against both. What differs is underneath: no group
commit (the pool runs operations side by side and the server commits them together), and
row locks, `ON CONFLICT` and advisory locks make every guarantee hold across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any, Generic, TypeVar

import asyncpg

from bot.communities import CommunitySettings
from bot.conversation import (
    Actor,
    AuditEvent,
    ContextEntry,
    Conversation,
    ConversationKey,
    EndReason,
    Inbound,
    LadderState,
    StoredMessage,
)
from bot.ports import (
    EVENT_TEXT_KEYS,
    NO_OUTBOX,
    AtPlace,
    BlockedOutcome,
    CommunityRecord,
    DatabaseUnavailable,
    ListFilter,
    NewMessage,
    Outbox,
    OutboxItem,
    PersonRecord,
    Purged,
    ShownReply,
)
from bot.store import rows as codec
from bot.store.locks import KeyedLocks
from bot.store.migrations import Migration
from bot.store.postgres_migrations import MIGRATIONS, migrate
from bot.store.sqlite import (
    StoreError,
    StoreUnreachable,
    UnknownConversation,
    new_conversation_id,
)

log = logging.getLogger(__name__)
_Item = TypeVar("_Item")
_Answer = TypeVar("_Answer")

_CONVERSATION_COLUMNS = codec.CONVERSATION_COLUMNS
_MESSAGE_COLUMNS = codec.MESSAGE_COLUMNS

_CURRENT = (
    f"SELECT {_CONVERSATION_COLUMNS} FROM conversations "
    "WHERE platform = $1 AND place = $2 ORDER BY n DESC LIMIT 1"
)
_GET = f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = $1"
_EXISTS = "SELECT 1 FROM conversations WHERE id = $1"
_RECENT = (
    f"SELECT {codec.CONTEXT_COLUMNS} FROM messages WHERE conversation_id = $1 "
    "ORDER BY seq DESC LIMIT $2"
)
_ALL_MESSAGES = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 ORDER BY seq"
_EVENTS = "SELECT kind, at, actor, detail FROM events WHERE conversation_id = $1 ORDER BY n"
_FEEDBACK = "SELECT user_id, text, at FROM feedback WHERE conversation_id = $1 ORDER BY n"
# Ends a person earned: their own conversations ended, and others' they were shut out of.
_ENDED_COUNT = (
    "SELECT (SELECT COUNT(*) FROM conversations WHERE platform = $1 AND user_id = $2 "
    "AND ended_at >= $3 AND ended AND ended_reason IS DISTINCT FROM $4) + "
    "(SELECT COUNT(*) FROM participants p JOIN conversations c ON c.id = p.conversation_id "
    "WHERE p.user_id = $2 AND p.shut_out AND p.shut_out_at >= $3 AND c.platform = $1)"
)
_PARTICIPANTS = f"SELECT {codec.PARTICIPANT_COLUMNS} FROM participants WHERE conversation_id = $1"
# Places read in one round trip, each as at_place needs it, for every turn that asked while
# the round trip before was under way ($1..$4: platform, place, event id and community of
# each, as arrays). A place's rows: the messages received there before the one at hand, as
# one array per inbox column (one row, even when there are none), then the conversation and
# everyone else's ladder, a row per participant, and the community's own settings. Nothing
# is earlier when the message itself was never received (n < NULL): no order to keep then.
_AT_PLACES = (
    "SELECT q.i, e.*, c.*, p.user_id AS p_user, p.redirects, p.warned, p.crisis, "
    "p.shut_out, p.shut_out_reason, s.settings "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY "
    "AS q(platform, place, event_id, community, i) "
    "CROSS JOIN LATERAL (SELECT "
    + ", ".join(f"array_agg({column} ORDER BY n)" for column in codec.INBOX_COLUMNS.split(", "))
    + " FROM inbox WHERE platform = q.platform AND place = q.place AND n < "
    "(SELECT n FROM inbox WHERE platform = q.platform AND event_id = q.event_id)) e "
    f"LEFT JOIN LATERAL (SELECT {_CONVERSATION_COLUMNS} FROM conversations "
    "WHERE platform = q.platform AND place = q.place ORDER BY n DESC LIMIT 1) c ON true "
    "LEFT JOIN participants p ON p.conversation_id = c.id "
    "LEFT JOIN communities s ON s.platform = q.platform "
    "AND s.community = COALESCE(c.community, q.community) AND s.community <> '' "
    "ORDER BY q.i, p.user_id"
)
_EARLIER = 1 + len(codec.INBOX_COLUMNS.split(", "))  # where a row of _AT_PLACES turns to c.*
_PARTICIPANT_AT = _EARLIER + 16  # and to the participant
_SETTINGS = _PARTICIPANT_AT + 6  # and to the community's settings
# Shut out stamps `shut_out_at` once; a moderator letting them back in clears it.
_PARTICIPANT_COLUMNS = (
    "participants (conversation_id, user_id, redirects, warned, crisis, shut_out, "
    "shut_out_reason, shut_out_at)"
)
_PARTICIPANT_CONFLICT = (
    "ON CONFLICT (conversation_id, user_id) DO UPDATE SET redirects = excluded.redirects, "
    "warned = excluded.warned, crisis = excluded.crisis, shut_out = excluded.shut_out, "
    "shut_out_reason = excluded.shut_out_reason, shut_out_at = CASE WHEN NOT excluded.shut_out "
    "THEN NULL WHEN participants.shut_out THEN participants.shut_out_at ELSE {at} END"
)
_SAVE_PARTICIPANT = (
    f"INSERT INTO {_PARTICIPANT_COLUMNS} VALUES ($1, $2, $3, $4, $5, $6, $7, "
    "CASE WHEN $6 THEN $8::timestamptz END) " + _PARTICIPANT_CONFLICT.format(at="$8")
)
# `last_seq` numbers a conversation's messages. It is raised by the UPDATE that also locks
# the conversation's row, and PostgreSQL re-reads a row it waited for, so two processes
# appending at once get different numbers (MAX(seq) + 1 would read a stale snapshot).
_INSERT_CONVERSATION = (
    "INSERT INTO conversations "
    "(id, platform, place, user_id, created_at, updated_at, branched_from, last_seq, community) "
    "VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING "
    f"RETURNING {_CONVERSATION_COLUMNS}"
)
_PENDING = f"SELECT {codec.INBOX_COLUMNS} FROM inbox WHERE at < $1 ORDER BY n"
# The reply a turn showed in the place, kept with its message until the turn commits (the
# commit deletes the row): a run killed in between leaves word of it for the next one.
_REPLY_SHOWN = (
    "UPDATE inbox SET reply_id = $1, reply_complete = $2 WHERE platform = $3 AND event_id = $4 "
    "RETURNING $5::integer"  # run with the others noted at the same time (`_each`)
)
_SHOWN = (
    "SELECT reply_id, reply_complete FROM inbox "
    "WHERE platform = $1 AND event_id = $2 AND reply_id <> ''"
)
_IN_USE = (
    "SELECT EXISTS (SELECT 1 FROM conversations WHERE platform = $1 AND place = $2) "
    "OR EXISTS (SELECT 1 FROM inbox WHERE platform = $1 AND place = $2)"
)
_CLAIMED = "SELECT 1 FROM processed_events WHERE platform = $1 AND event_id = $2"
_FORGET_EVENTS = "DELETE FROM processed_events WHERE at < $1"
_TAKE_RECEIVED = "DELETE FROM inbox WHERE platform = $1 AND event_id = $2"
_INSERT_MESSAGE = (
    "INSERT INTO messages (conversation_id, seq, role, text, api, at, user_id, "
    "platform_message_id, in_context) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)
_INSERT_EVENT = (
    "INSERT INTO events (conversation_id, kind, at, actor, detail) VALUES ($1, $2, $3, $4, $5)"
)
_QUEUE = "INSERT INTO outbox (event_n, target, due_at) VALUES ($1, $2, $3)"
# SKIP LOCKED: processes claiming at once take different rows instead of queueing on the
# same ones; the new due_at is the lease, committed with the claim.
_CLAIM_OUTBOX = (
    "WITH due AS (SELECT event_n, target FROM outbox "
    "WHERE target = ANY($1::text[]) AND due_at <= $2 "
    "ORDER BY event_n LIMIT $4 FOR UPDATE SKIP LOCKED), "
    "claimed AS (UPDATE outbox SET due_at = $3, attempts = outbox.attempts + 1 FROM due "
    "WHERE outbox.event_n = due.event_n AND outbox.target = due.target "
    "RETURNING outbox.event_n, outbox.target, outbox.attempts) "
    f"SELECT {codec.OUTBOX_COLUMNS} FROM claimed o "
    "JOIN events e ON e.n = o.event_n JOIN conversations c ON c.id = e.conversation_id "
    "ORDER BY o.event_n, o.target"
)
_OUTBOX_DONE = "DELETE FROM outbox WHERE event_n = $1 AND target = $2"
_OUTBOX_RETRY = "UPDATE outbox SET due_at = $3 WHERE event_n = $1 AND target = $2"
_INSERT_FEEDBACK_IF_EXISTS = (
    "INSERT INTO feedback (conversation_id, user_id, text, at) "
    "SELECT $1::text, $2::text, $3::text, $4::timestamptz "
    "WHERE EXISTS (SELECT 1 FROM conversations WHERE id = $1) RETURNING 1"
)
# $10: how many messages the turn adds.
_UPDATE_LADDER = (
    "UPDATE conversations SET redirects = $1, warned = $2, crisis = $3, ended = $4, "
    "ended_by = $5, ended_reason = $6, updated_at = $7, "
    "ended_at = CASE WHEN NOT $4 THEN NULL WHEN ended THEN ended_at ELSE $7 END, "
    "end_proposed = $9, last_seq = last_seq + $10::integer "
    f"WHERE id = $8 RETURNING {_CONVERSATION_COLUMNS}, last_seq"
)
_EXCLUDE = (
    "UPDATE messages SET in_context = false WHERE conversation_id = $1 AND seq = $2 RETURNING 1"
)

# The hot paths are one statement each: one round trip, and atomic without BEGIN/COMMIT.
# Every WITH part runs to completion whether or not the rest reads it (PostgreSQL's rule).
#
# `go` holds a row when this call claims the event, or takes it from those received (a
# received event's claim exists already, so at most one of the two can succeed). A claim of
# the same event by another process waits for ours to commit, then inserts nothing; of two
# deleting one inbox row, the second finds it gone: either way one process goes on.
_CLAIM_OR_TAKE = (
    "WITH claimed AS ("
    "INSERT INTO processed_events (platform, event_id, at) "
    "SELECT $1::text, $2::text, $3::timestamptz "
    "WHERE EXISTS (SELECT 1 FROM conversations WHERE id = $4::text) "
    "ON CONFLICT DO NOTHING RETURNING 1), "
    "taken AS (DELETE FROM inbox WHERE platform = $1 AND event_id = $2 "
    "AND EXISTS (SELECT 1 FROM conversations WHERE id = $4) RETURNING 1), "
    "go AS (SELECT 1 FROM claimed UNION ALL SELECT 1 FROM taken)"
)
# For a turn: claimed now, or received before. The received row stays until the turn
# commits, so that a process dying mid-turn leaves it for the next start-up (`pending`).
# `begun` is the user's message of a turn begun before, by a process that died before
# finishing it: then that message's number comes back (true), and nothing is stored again.
_BEGIN_TURN = (
    "WITH begun AS (SELECT m.seq FROM messages m WHERE m.conversation_id = $4::text "
    "AND m.role = 'user' AND m.platform_message_id = $9::text AND $9::text <> '' "
    "AND EXISTS (SELECT 1 FROM inbox WHERE platform = $1::text AND event_id = $2::text) "
    "ORDER BY m.seq DESC LIMIT 1), "
    "claimed AS (INSERT INTO processed_events (platform, event_id, at) "
    "SELECT $1, $2, $3::timestamptz "
    "WHERE EXISTS (SELECT 1 FROM conversations WHERE id = $4) "
    "AND NOT EXISTS (SELECT 1 FROM begun) ON CONFLICT DO NOTHING RETURNING 1), "
    "received AS (SELECT 1 FROM inbox WHERE platform = $1 AND event_id = $2 "
    "AND EXISTS (SELECT 1 FROM conversations WHERE id = $4)), "
    "go AS (SELECT 1 FROM claimed UNION ALL SELECT 1 FROM received), "
    "touched AS (UPDATE conversations SET updated_at = $3, last_seq = last_seq + 1 "
    "WHERE id = $4 AND EXISTS (SELECT 1 FROM go) AND NOT EXISTS (SELECT 1 FROM begun) "
    "RETURNING last_seq), "
    "added AS (INSERT INTO messages (conversation_id, seq, role, text, api, at, user_id, "
    "platform_message_id, in_context) "
    "SELECT $4, last_seq, $5::text, $6::text, $7::text, $3, $8::text, $9, $10::boolean "
    "FROM touched RETURNING seq) "
    "SELECT seq FROM added UNION ALL SELECT seq FROM begun"
)
# The same, and the newest $11 messages before it, newest first (the statement's snapshot
# holds them but not what it adds): `part` 0 is the message stored now, 1 the one a turn
# begun before stored, 2 the history; each row ends with $12, the call's number among the
# turns begun at the same time (`_each`).
_BEGIN_TURN_WITH_CONTEXT = (
    _BEGIN_TURN.removesuffix("SELECT seq FROM added UNION ALL SELECT seq FROM begun")
    + ", history AS (SELECT seq, role, in_context, api FROM messages "
    "WHERE conversation_id = $4 ORDER BY seq DESC LIMIT $11) "
    "SELECT 0 AS part, seq, NULL::text, NULL::boolean, NULL::text, $12::integer FROM added "
    "UNION ALL SELECT 1, seq, NULL, NULL, NULL, $12 FROM begun "
    "UNION ALL SELECT 2, seq, role, in_context, api, $12 FROM history ORDER BY 1, 2 DESC"
)
# (claimed or taken, notified). ON CONFLICT DO UPDATE locks the row and re-checks the WHERE
# on its newest version, so two processes' blocked messages from one person cannot both
# notify within `quiet`: the row is only (re)written when the last notice is at or before
# $6 = at - quiet. A NULL $6 means "quiet for ever" (an interval beyond the calendar).
_RECORD_BLOCKED = (
    f"{_CLAIM_OR_TAKE}, "
    "notified AS (INSERT INTO blocked_notices (conversation_id, user_id, at) "
    "SELECT $4, $5::text, $3 WHERE EXISTS (SELECT 1 FROM go) "
    "ON CONFLICT (conversation_id, user_id) DO UPDATE SET at = excluded.at "
    "WHERE $6::timestamptz IS NOT NULL AND blocked_notices.at <= $6 RETURNING 1) "
    "SELECT EXISTS (SELECT 1 FROM go), EXISTS (SELECT 1 FROM notified)"
)
# Messages delivered together, kept in one statement in the order they came ($1..$9 the
# inbox columns as arrays). A second copy of an event in the same batch is not kept again:
# only an event's first copy there can be claimed, the rest find it claimed.
_RECEIVE = (
    "WITH given AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
    "$5::text[], $6::text[], $7::timestamptz[], $8::text[], $9::text[]) WITH ORDINALITY "
    "AS g(platform, event_id, place, user_id, text, message_id, at, community, files, i)), "
    "firsts AS (SELECT DISTINCT ON (platform, event_id) * FROM given "
    "ORDER BY platform, event_id, i), "
    "claimed AS (INSERT INTO processed_events (platform, event_id, at) "
    "SELECT platform, event_id, at FROM firsts ON CONFLICT DO NOTHING "
    "RETURNING platform, event_id), "
    "kept AS (INSERT INTO inbox "
    "(platform, event_id, place, user_id, text, message_id, at, community, files) "
    "SELECT f.platform, f.event_id, f.place, f.user_id, f.text, f.message_id, f.at, "
    "f.community, f.files FROM firsts f JOIN claimed c "
    "ON c.platform = f.platform AND c.event_id = f.event_id ORDER BY f.i RETURNING 1) "
    "SELECT f.i FROM firsts f JOIN claimed c "
    "ON c.platform = f.platform AND c.event_id = f.event_id"
)
# The turn's messages and events go in as arrays, in order, after the last message; the row
# ends with $30, the call's number among the turns committed at the same time (`_each`).
_COMMIT_TURN = (
    f"WITH updated AS ({_UPDATE_LADDER}), "
    "added AS (INSERT INTO messages (conversation_id, seq, role, text, api, at, user_id, "
    "platform_message_id, in_context) "
    "SELECT $8, updated.last_seq - $10 + m.ord, m.role, m.text, m.api, m.at, m.user_id, "
    "m.pmid, m.in_context "
    "FROM updated, unnest($11::text[], $12::text[], $13::text[], $14::timestamptz[], "
    "$15::text[], $16::text[], $17::boolean[]) "
    "WITH ORDINALITY AS m(role, text, api, at, user_id, pmid, in_context, ord)), "
    "logged AS (INSERT INTO events (conversation_id, kind, at, actor, detail) "
    "SELECT $8, e.kind, e.at, e.actor, e.detail "
    "FROM unnest($18::text[], $19::timestamptz[], $20::text[], $21::text[]) "
    "WITH ORDINALITY AS e(kind, at, actor, detail, ord) "
    "WHERE EXISTS (SELECT 1 FROM updated) ORDER BY e.ord), "
    # The message answered leaves the received ones ($22, $23: NULL when none)...
    "taken AS (DELETE FROM inbox WHERE platform = $22::text AND event_id = $23::text "
    "AND EXISTS (SELECT 1 FROM updated) RETURNING 1), "
    # ...and the ladder of its author, when not the starter, is saved ($24: NULL when so).
    f"joined AS (INSERT INTO {_PARTICIPANT_COLUMNS} "
    "SELECT $8, $24::text, $25::integer, $26::boolean, $27::boolean, $28::boolean, $29::text, "
    "CASE WHEN $28 THEN $7 END FROM updated WHERE $24 IS NOT NULL "
    + _PARTICIPANT_CONFLICT.format(at="$7")
    + f" RETURNING 1) SELECT {_CONVERSATION_COLUMNS}, $30::integer FROM updated"
)

# Connecting failed for a reason that may pass (no route or name yet, the server still
# starting up); a refused password or a missing database will not.
_UNREACHABLE = (OSError, TimeoutError, asyncpg.CannotConnectNowError)

_CONNECTION_LOST = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,  # the server is starting up or shutting down
)


class _Outage:
    """Whether PostgreSQL answers: one line when it goes away and one when it is back, not a
    traceback for every call that fails meanwhile."""

    def __init__(self) -> None:
        self.away = False

    def lost(self, exc: BaseException) -> DatabaseUnavailable:
        if not self.away:
            self.away = True
            log.error(
                "PostgreSQL went away (%s): nothing can be kept or answered until it is back",
                _why(exc),
            )
        return DatabaseUnavailable(f"PostgreSQL does not answer: {_why(exc)}")

    def answered(self) -> None:
        if self.away:
            self.away = False
            log.info("PostgreSQL is back")


class _PoolFloor(logging.Filter):
    """asyncpg's pool logs a traceback each time it fails to reconnect its idle connections
    (retrying after 1, 2, 4... up to 60 seconds) while the server is away: that is the
    outage, said once."""

    def __init__(self, outage: _Outage) -> None:
        super().__init__()
        self._outage = outage

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if "pool connection floor" in str(record.msg) and isinstance(error, _CONNECTION_LOST):
            self._outage.lost(error)
            return False
        return True


_LOCK = "SELECT pg_advisory_lock($1)"
_UNLOCK = "SELECT pg_advisory_unlock($1)"
# Takes (true) or gives back (false) each lock in turn, for every turn that asked while the
# shared connection was busy: one round trip for all of them. A take for a turn's message
# ($3..$6 its platform, place, event id and community; NULL for none) also reads what the
# turn starts from once taken: its rows are _AT_PLACES's, ending with `held` (migration 9;
# a row at least for each lock).
_LOCK_AND_READ = "SELECT * FROM quitbot_conversation_locks($1, $2, $3, $4, $5, $6)"
# Not taken (False), taken (True), or taken with what the turn starts from.
_Granted = bool | AtPlace
# A lock asked of the shared connection: its number, take it or give it back, the message
# whose turn it is for (to read with it), and who waits for the answer.
_Asked = tuple[int, bool, Inbound | None, asyncio.Future[_Granted] | None]


class PostgresStore:
    """`bot.ports.Store` on PostgreSQL, for one or many processes on one database.

    Each call takes a pooled connection for one statement or one transaction (READ
    COMMITTED), so calls run side by side up to the pool's size; the hot paths (a turn's
    begin and commit, a blocked message, a received event) are one statement each.
    Build it with `await PostgresStore.open(url)`; `close()` waits for calls under way,
    then closes the pool.

    `serialised` holds a conversation with a session-level advisory lock: on one shared
    connection when it is free (one round trip), on a connection of its own when another
    process holds it (the wait must block on the server). A process that dies loses its
    connections, and the server lets its locks go.
    """

    def __init__(
        self, pool: asyncpg.Pool, url: str, pool_size: int, outbox: Outbox = NO_OUTBOX
    ) -> None:
        self._pool = pool
        self._outage = _Outage()
        self._outbox = outbox
        self._floor = _PoolFloor(self._outage)
        logging.getLogger("asyncpg.pool").addFilter(self._floor)
        self._advisory = _AdvisoryLocks(url, pool_size, self._outage)
        self._locks = KeyedLocks(self._advisory)
        # Acknowledging waits for a receipt: those arriving while one is kept go together.
        self._receipts = _Batched(self._keep_received)
        self._places = _Batched(self._read_places)  # a turn's start waits for it too
        # Turns begun, replies shown and turns committed at the same time go together too.
        self._begins = _Batched(partial(self._each, _BEGIN_TURN_WITH_CONTEXT))
        self._shown = _Batched(partial(self._each, _REPLY_SHOWN))
        self._commits = _Batched(partial(self._each, _COMMIT_TURN))
        self._closed = False

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        pool_size: int = 10,
        migrations: Sequence[Migration] = MIGRATIONS,
        outbox: Outbox = NO_OUTBOX,
    ) -> PostgresStore:
        """Connect, migrate (once, whoever else starts at the same time) and pool; events
        of the `outbox`'s kinds are queued for its targets as they are recorded."""
        try:
            first = await asyncpg.connect(url)
        except _UNREACHABLE as exc:
            raise StoreUnreachable(f"cannot connect to PostgreSQL: {_why(exc)}") from exc
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {_why(exc)}") from exc
        try:
            await migrate(first, migrations)
        finally:
            await first.close()
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=pool_size,
                reset=_keep_session,
                # No timer re-armed at every release (a few µs each, several per message);
                # the pool is small and its connections are worth keeping.
                max_inactive_connection_lifetime=0,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {_why(exc)}") from exc
        return cls(pool, url, pool_size, outbox)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._advisory.close()
        await self._pool.close()
        logging.getLogger("asyncpg.pool").removeFilter(self._floor)

    async def __aenter__(self) -> PostgresStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def serialised(self, key: ConversationKey) -> AbstractAsyncContextManager[None]:
        """Hold `key`'s conversation against every other turn, in any process."""
        return self._locks.hold(key)

    def serialised_at(self, inbound: Inbound) -> AbstractAsyncContextManager[AtPlace]:
        """`serialised`, giving what `inbound`'s turn starts from, read once held."""
        return self._locks.hold_at(inbound, self.at_place)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        if self._closed:
            raise StoreError("the store is closed")
        try:
            async with self._pool.acquire() as db:
                yield db
        except _CONNECTION_LOST as exc:
            raise self._outage.lost(exc) from exc
        self._outage.answered()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._connection() as db, db.transaction():
            yield db

    async def _each(
        self, sql: str, calls: list[tuple[Any, ...]]
    ) -> Sequence[list[asyncpg.Record] | BaseException]:
        """`sql` run once for each call, and the rows of each (`sql` ends every row with its
        last parameter: the call's number here).

        Calls that came together go in one round trip, pipelined in one implicit transaction
        (asyncpg's `fetchmany`): all of them are kept, or none. When the server refuses the
        batch (one call's conflict or bad value), nothing of it was kept, and each call runs
        again alone: one call's failure never fails another's, nor is kept with it. A lost
        connection fails them all (`DatabaseUnavailable`): whether the server had kept the
        batch is unknown, and running it again could keep a turn twice.
        """
        if len(calls) > 1:
            try:
                async with self._connection() as db:
                    rows = await db.fetchmany(sql, [(*call, n) for n, call in enumerate(calls)])
            except DatabaseUnavailable:
                raise
            except Exception:  # refused by the server, or a value asyncpg cannot send
                pass
            else:
                each: list[list[asyncpg.Record]] = [[] for _ in calls]
                for row in rows:
                    each[row[-1]].append(row)
                return each
        return [await self._alone(sql, (*call, n)) for n, call in enumerate(calls)]

    async def _alone(self, sql: str, params: tuple[Any, ...]) -> list[asyncpg.Record] | Exception:
        try:
            async with self._connection() as db:
                rows: list[asyncpg.Record] = await db.fetch(sql, *params)
        except Exception as exc:  # this call's own, given to its caller alone
            return exc
        return rows

    # --- reading ---------------------------------------------------------------------------

    async def current(self, key: ConversationKey) -> Conversation | None:
        """The newest conversation at `key`, if any."""
        async with self._connection() as db:
            row = await db.fetchrow(_CURRENT, key.platform, key.place)
        return None if row is None else _conversation(row)

    async def in_use(self, key: ConversationKey) -> bool:
        """A conversation at `key`, or a message received there waiting to start one."""
        async with self._connection() as db:
            return bool(await db.fetchval(_IN_USE, key.platform, key.place))

    async def at_place(self, inbound: Inbound) -> AtPlace:
        """The conversation at the place, everyone else's ladders, the messages received
        there before `inbound` and its community's settings: one statement, shared with the
        other turns asking at the same time."""
        return await self._places.add(inbound)

    async def _read_places(self, asked: list[Inbound]) -> list[AtPlace]:
        columns = _columns(
            [(i.key.platform, i.key.place, i.event_id, i.community) for i in asked], 4
        )
        async with self._connection() as db:
            rows = await db.fetch(_AT_PLACES, *columns)
        return [_at_place(list(place)) for _, place in itertools.groupby(rows, key=_first)]

    async def get(self, conversation_id: str) -> Conversation | None:
        async with self._connection() as db:
            row = await db.fetchrow(_GET, conversation_id)
        return None if row is None else _conversation(row)

    async def recent_context(self, conversation_id: str, limit: int) -> list[ContextEntry]:
        """The newest `limit` messages, oldest first, their API messages as stored text."""
        if limit <= 0:
            return []
        async with self._connection() as db:
            rows = await db.fetch(_RECENT, conversation_id, limit)
        rows.reverse()
        return codec.context_entries(rows)

    async def messages(self, conversation_id: str) -> list[StoredMessage]:
        async with self._connection() as db:
            return _messages(await db.fetch(_ALL_MESSAGES, conversation_id))

    async def events(self, conversation_id: str) -> list[AuditEvent]:
        async with self._connection() as db:
            rows = await db.fetch(_EVENTS, conversation_id)
        details = _json_list([row[3] for row in rows])
        return [
            AuditEvent(row[0], _utc(row[1]), _ACTORS[row[2]], detail)
            for row, detail in zip(rows, details, strict=True)
        ]

    async def list_conversations(
        self,
        *,
        state: str | None = None,
        platform: str | None = None,
        limit: int = 100,
        community: str | None = None,
        offset: int = 0,
        more: ListFilter = ListFilter(),  # noqa: B008 - frozen, so one shared default is safe
    ) -> list[Conversation]:
        """Newest first, optionally only `state` ("active" | "ended"), one platform or
        community and what `more` asks; `offset` skips that many."""
        where, params = codec.list_filter(
            state, platform, community, more, lambda n: f"${n}", _aware
        )
        params += [limit, offset]
        sql = (
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations{where} "
            f"ORDER BY n DESC LIMIT ${len(params) - 1} OFFSET ${len(params)}"
        )
        async with self._connection() as db:
            return [_conversation(row) for row in await db.fetch(sql, *params)]

    async def ended_count(self, platform: str, user_id: str, since: datetime) -> int:
        """How many of the user's conversations were ended (not at their request) since then."""
        async with self._connection() as db:
            count = await db.fetchval(
                _ENDED_COUNT, platform, user_id, _aware(since), EndReason.USER_REQUESTED.value
            )
        return int(count)

    async def participants(self, conversation_id: str) -> dict[str, LadderState]:
        """The ladder of each person other than the starter who wrote in the conversation."""
        async with self._connection() as db:
            rows = await db.fetch(_PARTICIPANTS, conversation_id)
        return codec.participant_ladders(rows)

    async def feedback(self, conversation_id: str) -> list[tuple[str, str, datetime]]:
        """(user_id, text, at) of each feedback row, oldest first."""
        async with self._connection() as db:
            rows = await db.fetch(_FEEDBACK, conversation_id)
        return [(row[0], row[1], _utc(row[2])) for row in rows]

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
        community: str = "",
    ) -> Conversation:
        stamp = _aware(at)
        message_rows = _message_rows(history)
        event_rows = self._event_rows(events)
        async with self._transaction() as db:
            while True:  # until the random id is new
                conversation_id = new_conversation_id()
                row = await db.fetchrow(
                    _INSERT_CONVERSATION,
                    conversation_id,
                    key.platform,
                    key.place,
                    user_id,
                    stamp,
                    branched_from,
                    len(message_rows),
                    community,
                )
                if row is not None:
                    break
            await _insert_messages(db, conversation_id, 1, message_rows)
            await _insert_events(db, conversation_id, event_rows)
        return _conversation(row)

    async def begin_turn(
        self, conversation_id: str, inbound: Inbound, message: NewMessage
    ) -> StoredMessage | None:
        """Claim the inbound event and store the user's message in one transaction.

        Returns None, storing nothing, if the platform event was handled before.
        """
        claim = _claim_params(conversation_id, inbound, message.at)
        role, text, api, _, user_id, pmid, in_context = _message_values(message)
        async with self._connection() as db:
            seq = await db.fetchval(_BEGIN_TURN, *claim, role, text, api, user_id, pmid, in_context)
            if seq is None:
                await _unclaimed(db, claim)
                return None
        return _stored(seq, message)

    async def begin_turn_with_context(
        self, conversation_id: str, inbound: Inbound, message: NewMessage, limit: int
    ) -> tuple[StoredMessage, list[ContextEntry]] | None:
        """`begin_turn` and then `recent_context`, in one round trip."""
        claim = _claim_params(conversation_id, inbound, message.at)
        role, text, api, _, user_id, pmid, in_context = _message_values(message)
        params = (*claim, role, text, api, user_id, pmid, in_context, max(limit, 0))
        rows = await self._begins.ask(params)
        if not rows or rows[0][0] == 2:
            async with self._connection() as db:
                await _unclaimed(db, claim)
            return None
        part, seq = rows[0][0], rows[0][1]
        history = [tuple(row)[1:5] for row in rows[1:]]
        if part == 0:  # stored now: the newest, and not in the statement's snapshot
            history = [(seq, role, in_context, api), *history[: limit - 1]]
        history.reverse()
        return _stored(seq, message), codec.context_entries(history if limit > 0 else [])

    async def receive(self, inbound: Inbound, at: datetime) -> bool:
        """Claim a just-delivered event and keep its message until a turn takes it.

        False (storing nothing) if the event was received or handled before, here or by
        any other process.
        """
        platform, event_id, stamp, _ = _claim_params("", inbound, at)
        row = (
            platform,
            event_id,
            inbound.key.place,
            inbound.user_id,
            _text(inbound.text),
            inbound.message_id,
            stamp,
            inbound.community,
            codec.files_json(inbound.files),
        )
        return await self._receipts.add(row)

    async def _keep_received(self, rows: list[tuple[Any, ...]]) -> list[bool]:
        """Keep a batch of received messages in one statement; whether each was kept."""
        async with self._connection() as db:
            kept = {row[0] for row in await db.fetch(_RECEIVE, *_columns(rows, 9))}
        return [n in kept for n in range(1, len(rows) + 1)]

    async def settle(self, inbound: Inbound) -> None:
        """Forget a received message that will not be stored (the limit stopped it)."""
        async with self._connection() as db:
            await db.execute(_TAKE_RECEIVED, inbound.key.platform, inbound.event_id)

    async def reply_shown(self, inbound: Inbound, reply_id: str, complete: bool) -> None:
        """Note the reply the platform shows for a received message (see `Store`)."""
        await self._shown.ask((reply_id, complete, inbound.key.platform, inbound.event_id))

    async def shown(self, inbound: Inbound) -> ShownReply | None:
        """The reply an earlier attempt at `inbound` showed, if any."""
        async with self._connection() as db:
            row = await db.fetchrow(_SHOWN, inbound.key.platform, inbound.event_id)
        return None if row is None else ShownReply(row[0], bool(row[1]))

    async def pending(self, before: datetime) -> list[Inbound]:
        """Messages received before `before` but not handled (a process stopped first),
        oldest first."""
        async with self._connection() as db:
            rows = await db.fetch(_PENDING, before)
        return codec.received(rows)

    async def commit_turn(
        self,
        conversation_id: str,
        ladder: LadderState,
        at: datetime,
        messages: Sequence[NewMessage] = (),
        events: Sequence[AuditEvent] = (),
        exclude_seq: int | None = None,
        answered: Inbound | None = None,
        participant: tuple[str, LadderState] | None = None,
    ) -> Conversation:
        """Store the turn's messages, the new ladder state and its events in one transaction.

        `exclude_seq` marks that earlier message as out of context (a refused turn). Ending
        stamps `ended_at`; reopening clears it. `answered`, the message the turn answered,
        leaves the received ones in the same transaction; `participant` (user id, ladder) is
        saved with them.
        """
        update = (
            ladder.redirects,
            ladder.warned,
            ladder.crisis,
            ladder.ended,
            None if ladder.ended_by is None else ladder.ended_by.value,
            None if ladder.ended_reason is None else ladder.ended_reason.value,
            _aware(at),
            conversation_id,
            ladder.end_proposed,
        )
        message_rows = _message_rows(messages)
        event_rows = self._event_rows(events)
        if exclude_seq is None and not codec.queued(event_rows):
            taken = (None, None) if answered is None else (answered.key.platform, answered.event_id)
            joined = (
                (None,) * 6
                if participant is None
                else codec.participant_values(conversation_id, *participant, None)[1:7]
            )
            rows = await self._commits.ask(
                (
                    *update,
                    len(message_rows),
                    *_columns(message_rows, 7),
                    *_columns([row[:4] for row in event_rows], 4),
                    *taken,
                    *joined,
                )
            )
            if not rows:
                raise UnknownConversation(conversation_id)
            return _conversation(rows[0])
        # A refused turn also hides an earlier message, and fails whole if there is none;
        # queued events need their numbers back for the outbox.
        async with self._transaction() as db:
            row = await db.fetchrow(_UPDATE_LADDER, *update, len(message_rows))
            if row is None:
                raise UnknownConversation(conversation_id)
            if answered is not None:
                await db.execute(_TAKE_RECEIVED, answered.key.platform, answered.event_id)
            if participant is not None:
                values = codec.participant_values(conversation_id, *participant, _aware(at))
                await db.execute(_SAVE_PARTICIPANT, *values)
            first = row["last_seq"] - len(message_rows) + 1
            await _insert_messages(db, conversation_id, first, message_rows)
            await _insert_events(db, conversation_id, event_rows)
            if (
                exclude_seq is not None
                and await db.fetchval(_EXCLUDE, conversation_id, exclude_seq) is None
            ):
                raise LookupError(f"conversation {conversation_id} has no message {exclude_seq}")
        return _conversation(row)

    async def record_blocked(
        self, conversation_id: str, inbound: Inbound, at: datetime, quiet: timedelta
    ) -> BlockedOutcome:
        """Claim a message sent to an ended conversation; decide whether to notify its poster.

        Notify on the first such message from a person since the end, then at most once per
        `quiet` per person.
        """
        claim = _claim_params(conversation_id, inbound, at)
        until = _quiet_until(claim[2], quiet)
        async with self._connection() as db:
            go, notified = await db.fetchrow(_RECORD_BLOCKED, *claim, inbound.user_id, until)
            if not go:
                await _unclaimed(db, claim)
                return BlockedOutcome.DUPLICATE
        return BlockedOutcome.NOTIFY if notified else BlockedOutcome.QUIET

    async def add_events(self, conversation_id: str, events: Sequence[AuditEvent]) -> None:
        event_rows = self._event_rows(events)
        async with self._transaction() as db:
            # FOR KEY SHARE: the conversation cannot vanish before the inserts below.
            if await db.fetchval(_EXISTS + " FOR KEY SHARE", conversation_id) is None:
                raise UnknownConversation(conversation_id)
            await _insert_events(db, conversation_id, event_rows)

    async def add_feedback(
        self,
        conversation_id: str,
        user_id: str,
        text: str,
        at: datetime,
        events: Sequence[AuditEvent] = (),
    ) -> None:
        """Keep what a user said about a conversation, and its audit events, in one write."""
        params = (conversation_id, user_id, _text(text), _aware(at))
        event_rows = self._event_rows(events)
        async with self._transaction() as db:
            if await db.fetchval(_INSERT_FEEDBACK_IF_EXISTS, *params) is None:
                raise UnknownConversation(conversation_id)
            await _insert_events(db, conversation_id, event_rows)

    # --- the outbox ---------------------------------------------------------------------------

    async def claim_outbox(
        self, targets: Sequence[str], now: datetime, lease: timedelta, limit: int
    ) -> list[OutboxItem]:
        """Take due outbox rows for `targets` (see bot.ports.Store), skipping rows another
        process is claiming this instant."""
        async with self._connection() as db:
            rows = await db.fetch(
                _CLAIM_OUTBOX, list(targets), _aware(now), _aware(now + lease), limit
            )
        return codec.outbox_items(rows, _utc)

    async def outbox_done(self, items: Sequence[tuple[int, str]]) -> None:
        if items:
            async with self._connection() as db:
                await db.executemany(_OUTBOX_DONE, list(items))

    async def outbox_retry(self, items: Sequence[tuple[int, str]], due: datetime) -> None:
        if items:
            async with self._connection() as db:
                await db.executemany(_OUTBOX_RETRY, [(*item, _aware(due)) for item in items])

    def _event_rows(self, events: Sequence[AuditEvent]) -> list[tuple[Any, ...]]:
        return codec.event_rows(events, _aware, self._outbox)

    async def forget_events_before(self, before: datetime) -> int:
        """Drop processed platform event ids older than `before` (see bot.ports.Store)."""
        async with self._connection() as db:
            status = await db.execute(_FORGET_EVENTS, _aware(before))
        return int(status.rsplit(" ", 1)[-1])

    # --- retention, privacy, review ---------------------------------------------------------

    async def purge_text(self, before: datetime) -> Purged:
        """Empty message, feedback and audit text older than `before` (see bot.ports.Store)."""
        stamp = _aware(before)
        async with self._transaction() as db:
            messages = _count(await db.execute(_PURGE_MESSAGES, stamp))
            feedback = _count(await db.execute(_PURGE_FEEDBACK, stamp))
            events = await _strip_event_text(db, await db.fetch(_EVENTS_WITH_TEXT_BEFORE, stamp))
            pending = _count(await db.execute(_PURGE_INBOX, stamp))
        return Purged(messages, feedback, events, pending)

    async def forget_user(self, platform: str, user_id: str, event: AuditEvent) -> Purged:
        """Delete what one person wrote on `platform` (see bot.ports.Store)."""
        event_rows = self._event_rows([event])
        async with self._transaction() as db:
            touched = sorted(row[0] for row in await db.fetch(_TOUCHED, platform, user_id))
            own = {row[0] for row in await db.fetch(_OWN, platform, user_id)}
            replies = _count(await db.execute(_FORGET_REPLIES, platform, user_id))
            messages = _count(await db.execute(_FORGET_MESSAGES, platform, user_id))
            feedback = _count(await db.execute(_FORGET_FEEDBACK, platform, user_id))
            pending = _count(await db.execute(_FORGET_INBOX, platform, user_id))
            await db.execute(_FORGET_NOTICES, platform, user_id)
            rows = await db.fetch(_EVENTS_WITH_TEXT_ON_PLATFORM, platform)
            # In their own conversations every note and explanation may quote them;
            # elsewhere, the feedback they gave.
            about_them = [
                row
                for row in rows
                if row["conversation_id"] in own
                or json.loads(row["detail"]).get("user_id") == user_id
            ]
            events = await _strip_event_text(db, about_them)
            for conversation_id in touched:
                await _insert_events(db, conversation_id, event_rows)
        return Purged(replies + messages, feedback, events, pending)

    async def person(self, platform: str, user_id: str) -> PersonRecord:
        """Everything kept that names this person."""
        async with self._connection() as db:
            conversations = await db.fetch(_PERSON_CONVERSATIONS, platform, user_id)
            messages = await db.fetch(_PERSON_MESSAGES, platform, user_id)
            feedback = await db.fetch(_PERSON_FEEDBACK, platform, user_id)
            waiting = await db.fetch(_PERSON_WAITING, platform, user_id)
        stored = _messages([tuple(row)[1:] for row in messages])
        return PersonRecord(
            [_conversation(row) for row in conversations],
            [(row[0], message) for row, message in zip(messages, stored, strict=True)],
            [(row[0], row[1], _utc(row[2])) for row in feedback],
            codec.received(waiting),
        )

    async def community_settings(self, platform: str, community: str) -> CommunitySettings | None:
        """A community's own settings, if it has any."""
        async with self._connection() as db:
            settings = await db.fetchval(_COMMUNITY, platform, community)
        return None if settings is None else CommunitySettings.from_json(settings)

    async def set_community_settings(
        self, platform: str, community: str, settings: CommunitySettings, at: datetime, by: str
    ) -> None:
        """Replace a community's settings (all defaults again when `settings` sets nothing)."""
        async with self._connection() as db:
            await db.execute(
                _SET_COMMUNITY, platform, community, settings.to_json(), _aware(at), by
            )

    async def communities(self, platform: str | None = None) -> list[CommunityRecord]:
        """Every community with settings of its own, by platform and id."""
        async with self._connection() as db:
            rows = await db.fetch(_COMMUNITIES, platform)
        return [
            CommunityRecord(p, c, CommunitySettings.from_json(settings), _utc(at), by)
            for p, c, settings, at, by in rows
        ]

    async def awaiting_review(
        self, platform: str | None = None, limit: int = 100, *, community: str | None = None
    ) -> list[Conversation]:
        """Ended conversations with unanswered feedback, the longest-waiting first."""
        return await self._awaiting(_AWAITING_REVIEW, platform, limit, community)

    async def disputed_shut_outs(
        self, platform: str | None = None, limit: int = 100, *, community: str | None = None
    ) -> list[tuple[Conversation, str]]:
        """(conversation, person) for each shut-out with unanswered feedback from the person
        shut out, the longest-waiting first."""
        async with self._connection() as db:
            rows = await db.fetch(_DISPUTED_SHUT_OUTS, platform, limit, community)
        return [(_conversation(tuple(row)[:-2]), str(row[-2])) for row in rows]

    async def awaiting_marks(
        self, platform: str | None = None, limit: int = 100, *, community: str | None = None
    ) -> list[Conversation]:
        """Conversations with an unmarked `would_end`, the longest-waiting first."""
        return await self._awaiting(_AWAITING_MARKS, platform, limit, community)

    async def _awaiting(
        self, sql: str, platform: str | None, limit: int, community: str | None
    ) -> list[Conversation]:
        async with self._connection() as db:
            rows = await db.fetch(sql, platform, limit, community)
        return [_conversation(tuple(row)[:-1]) for row in rows]

    async def review_decisions(self, since: datetime) -> dict[str, int]:
        """How many `review` events since then, by their `decision`."""
        async with self._connection() as db:
            rows = await db.fetch(_REVIEW_DECISIONS, _aware(since))
        return {str(decision): int(count) for decision, count in rows}

    async def daily_activity(
        self, platform: str, community: str, since: datetime
    ) -> list[tuple[str, str, int]]:
        """Per UTC day: conversations started, and the ladder's events by kind."""
        async with self._connection() as db:
            rows = await db.fetch(_DAILY, platform, community, _aware(since))
        return [(str(day), str(series), int(n)) for day, series, n in rows]


async def _keep_session(db: asyncpg.Connection) -> None:
    """Pooled connections hold no session state of ours (locks live elsewhere), so a
    connection going back to the pool needs no RESET ALL round trip; asyncpg still rolls
    back a transaction left open."""


class _Batched(Generic[_Item, _Answer]):
    """Items handled in batches: one call of `run` for all that were added while the call
    before was under way, each awaiting its own answer (or the batch's exception, or its
    own when `run` gives one in its place)."""

    def __init__(
        self, run: Callable[[list[_Item]], Awaitable[Sequence[_Answer | BaseException]]]
    ) -> None:
        self._run = run
        self._waiting: list[tuple[_Item, asyncio.Future[_Answer]]] = []
        self._sender: asyncio.Task[None] | None = None

    def add(self, item: _Item) -> asyncio.Future[_Answer]:
        answer: asyncio.Future[_Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, answer))
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send())
        return answer

    async def ask(self, item: _Item) -> _Answer:
        """`item`'s answer, for a write: a caller cancelled before its item went leaves
        nothing behind, and one cancelled after waits for the batch's end before it goes
        on, so that whatever it does next finds the write kept or not, never under way."""
        answer = self.add(item)
        try:
            return await asyncio.shield(answer)
        except asyncio.CancelledError:
            unsent = [entry for entry in self._waiting if entry[1] is not answer]
            if len(unsent) < len(self._waiting):
                self._waiting = unsent
                answer.cancel()
                raise
            while not answer.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait((answer,))
            raise

    async def _send(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    answers = await self._run([item for item, _ in batch])
                except asyncio.CancelledError:
                    for _, answer in batch:
                        answer.cancel()
                    raise
                except BaseException as exc:
                    for _, answer in batch:
                        if not answer.done():
                            answer.set_exception(exc)
                    continue
                for (_, answer), given in zip(batch, answers, strict=True):
                    if answer.done():
                        continue
                    if isinstance(given, BaseException):
                        answer.set_exception(given)
                    else:
                        answer.set_result(given)
        finally:
            self._sender = None


class _AdvisoryLocks:
    """`SharedLock` by PostgreSQL session-level advisory locks (see PostgresStore).

    Tries and releases go over one shared connection, batched: what turns ask while a round
    trip is under way goes together in the next one.
    """

    def __init__(self, url: str, waiters: int, outage: _Outage) -> None:
        self._url = url
        self._outage = outage
        self._shared: asyncpg.Connection | None = None
        self._asked: list[_Asked] = []  # for the next trip
        self._sender: asyncio.Task[None] | None = None
        self._waiting = asyncio.Semaphore(waiters)  # connections blocked in pg_advisory_lock
        self._own: dict[int, asyncpg.Connection] = {}  # locks held on a connection of their own
        # Connections a lock was waited on before, free again: connecting anew for every
        # wait costs far more than the wait's one statement (processes sharing threads wait
        # on each other all the time).
        self._idle: list[asyncpg.Connection] = []
        self._closed = False

    def try_now(self, number: int) -> bool:
        return False  # every lock operation is a round trip

    def release_now(self, number: int) -> bool:
        """Give back a lock held on the shared connection without waiting: it goes with the
        next trip, before any later try for the same lock (one connection, in order)."""
        if number in self._own:
            return False  # its own connection is closed instead
        if not self._closed:  # else closing ended the session, and every lock on it
            self._asked.append((number, False, None, None))
            self._start()
        return True

    async def acquire(self, number: int, inbound: Inbound | None = None) -> AtPlace | None:
        try:
            return await self._acquire(number, inbound)
        except _CONNECTION_LOST as exc:
            raise self._outage.lost(exc) from exc

    async def _acquire(self, number: int, inbound: Inbound | None) -> AtPlace | None:
        if self._closed:
            raise StoreError("the store is closed")
        granted = await self._on_shared(number, take=True, inbound=inbound)
        if granted is not False:
            return granted if isinstance(granted, AtPlace) else None
        await self._waiting.acquire()
        try:
            own = self._idle.pop() if self._idle else await asyncpg.connect(self._url)
        except BaseException:
            self._waiting.release()
            raise
        try:
            read = await _wait_on(own, number, inbound)
        except BaseException:
            # Cancelled or failed while waiting: the server may have granted it meanwhile,
            # and dropping the session is what surely lets it go.
            own.terminate()
            self._waiting.release()
            raise
        self._own[number] = own
        return read

    async def release(self, number: int) -> None:
        own = self._own.pop(number, None)
        if own is None:
            if self._closed:
                return  # closing ended the session, and every lock on it
            with contextlib.suppress(*_CONNECTION_LOST):  # the lock went with the session
                await self._on_shared(number, take=False)
            return
        try:
            if await own.fetchval(_UNLOCK, number) and not self._closed:
                self._idle.append(own)  # kept for the next wait
            else:
                own.terminate()
        except Exception:
            own.terminate()  # the session ends, and its lock with it
        except BaseException:
            own.terminate()
            raise
        finally:
            self._waiting.release()

    def _on_shared(
        self, number: int, *, take: bool, inbound: Inbound | None = None
    ) -> asyncio.Future[_Granted]:
        answer: asyncio.Future[_Granted] = asyncio.get_running_loop().create_future()
        self._asked.append((number, take, inbound, answer))
        self._start()
        return answer

    def _start(self) -> None:
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        try:
            while self._asked and not self._closed:
                batch, self._asked = self._asked, []
                try:
                    granted = await self._trip(batch)
                except asyncio.CancelledError:
                    for _, _, _, answer in batch:
                        if answer is not None:
                            answer.cancel()
                    raise
                except BaseException as exc:
                    self._failed(batch, exc)
                    continue
                for (number, take, _, answer), got in zip(batch, granted, strict=True):
                    if isinstance(got, BaseException):
                        self._failed([(number, take, None, answer)], got)
                    elif answer is None:
                        continue
                    elif not answer.done():
                        answer.set_result(got)
                    elif take and got is not False:  # nobody waits for it any more: give it back
                        self._asked.append((number, False, None, None))
        finally:
            self._sender = None
            for _, _, _, answer in self._asked if self._closed else ():
                if answer is not None:
                    answer.cancel()

    def _failed(self, batch: list[_Asked], exc: BaseException) -> None:
        for _, _, _, answer in batch:
            if answer is not None and not answer.done():
                answer.set_exception(exc)
        given_back = any(answer is None for _, _, _, answer in batch)
        if given_back and not isinstance(exc, _CONNECTION_LOST):
            # A lost connection let its locks go with it (and was said); anything else is news.
            log.error("could not give back conversation locks: %s", _why(exc))

    async def _trip(self, batch: list[_Asked]) -> list[_Granted | BaseException]:
        """Each asked lock's answer, or the error that kept it from one."""
        try:
            return _granted(batch, await self._fetch(batch))
        except _CONNECTION_LOST:
            raise
        except Exception as exc:  # refused by the server, or a value asyncpg cannot send
            # A take may have gone before the failure, and a session's locks ignore the
            # transaction's end: give each back (if not taken, the server says false), then
            # ask each alone, so that one turn's bad value fails no other turn.
            takes: list[_Asked] = [(n, False, None, None) for n, take, _, _ in batch if take]
            if takes:
                await self._fetch(takes)
            if len(batch) == 1:
                return [exc]
            return [(await self._trip([asked]))[0] for asked in batch]

    async def _fetch(self, batch: list[_Asked]) -> list[asyncpg.Record]:
        if self._shared is None or self._shared.is_closed():
            self._shared = await asyncpg.connect(self._url)
        try:
            rows: list[asyncpg.Record] = await self._shared.fetch(
                _LOCK_AND_READ, *_columns([_lock_row(asked) for asked in batch], 6)
            )
        except _CONNECTION_LOST:
            # A lost session lost every lock on it; the next call starts a new one.
            if not self._outage.away:  # else the outage was said, and locks go with it
                log.error("lost the PostgreSQL connection holding conversation locks")
            self._shared.terminate()
            self._shared = None
            raise
        return rows

    async def close(self) -> None:
        self._closed = True
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._sender)
        if self._shared is not None:
            await self._shared.close()
            self._shared = None
        for own in [*self._own.values(), *self._idle]:
            own.terminate()
        self._own.clear()
        self._idle.clear()


async def _wait_on(own: asyncpg.Connection, number: int, inbound: Inbound | None) -> AtPlace | None:
    """Wait for lock `number` on `own`; for a turn's message, read what the turn starts from
    in the same round trip, once the lock is held (a take neither true nor false waits: see
    migration 11). Otherwise the turn would read it through the pool after the wait: a
    second round trip, and nearly every wait is for a turn (bench/README.md, issue 22's
    fifth round)."""
    if inbound is None:
        await own.execute(_LOCK, number)
        return None
    asked: _Asked = (number, True, inbound, None)
    columns = _columns([_lock_row(asked)], 6)
    columns[1] = [None]  # wait
    granted = _granted([asked], await own.fetch(_LOCK_AND_READ, *columns))[0]
    return granted if isinstance(granted, AtPlace) else None


# --- statements that several calls share ------------------------------------------------------


async def _unclaimed(db: asyncpg.Connection, claim: tuple[Any, ...]) -> None:
    """After a claim inserted nothing: return if the event was handled before, else the
    conversation is unknown (a handled event wins, as if checked first)."""
    platform, event_id, _, conversation_id = claim
    if await db.fetchval(_CLAIMED, platform, event_id) is None:
        raise UnknownConversation(conversation_id)


async def _insert_messages(
    db: asyncpg.Connection, conversation_id: str, first: int, rows: list[tuple[Any, ...]]
) -> None:
    """Insert `rows` numbered from `first` (the caller raised last_seq for them)."""
    numbered = [(conversation_id, first + n, *row) for n, row in enumerate(rows)]
    if len(numbered) == 1:
        await db.execute(_INSERT_MESSAGE, *numbered[0])
    elif numbered:
        await db.executemany(_INSERT_MESSAGE, numbered)


async def _insert_events(
    db: asyncpg.Connection, conversation_id: str, rows: list[tuple[Any, ...]]
) -> None:
    """Insert `codec.event_rows`, queueing each in the outbox for its targets."""
    if len(rows) > 1 and not codec.queued(rows):
        await db.executemany(_INSERT_EVENT, [(conversation_id, *row[:4]) for row in rows])
        return
    for row in rows:
        number = await db.fetchval(_INSERT_EVENT + " RETURNING n", conversation_id, *row[:4])
        if row[4]:
            await db.executemany(_QUEUE, [(number, target, row[1]) for target in row[4]])


# --- rows and values -----------------------------------------------------------------------

_ACTORS = {actor.value: actor for actor in Actor}
_END_REASONS = {reason.value: reason for reason in EndReason}


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: the store takes timezone-aware times")
    return at


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is UTC else at.astimezone(UTC)


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL, which SQLite keeps; U+FFFD stands in for it."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as `width` column arrays, for unnest()."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


def _quiet_until(at: datetime, quiet: timedelta) -> datetime | None:
    """The time a person's last notice must be at or before to be notified again; None for
    never again (SQLite's text times order the same way at the calendar's ends)."""
    try:
        return at - quiet
    except OverflowError:
        return None if quiet > timedelta(0) else datetime.max.replace(tzinfo=UTC)


def _claim_params(conversation_id: str, inbound: Inbound, at: datetime) -> tuple[Any, ...]:
    if not inbound.event_id:
        raise ValueError("inbound.event_id is empty; adapters must give every event an id")
    return (inbound.key.platform, inbound.event_id, _aware(at), conversation_id)


def _first(row: Any) -> Any:
    return row[0]


def _lock_row(asked: _Asked) -> tuple[Any, ...]:
    number, take, inbound, _ = asked
    if inbound is None:
        return (number, take, None, None, None, None)
    key = inbound.key
    return (number, take, key.platform, key.place, inbound.event_id, inbound.community)


def _granted(batch: list[_Asked], rows: list[asyncpg.Record]) -> list[_Granted | BaseException]:
    """Each asked lock's answer from its rows of _LOCK_AND_READ (a row at least each)."""
    answers: list[_Granted | BaseException] = []
    for (_, _, inbound, _), (_, group) in zip(
        batch, itertools.groupby(rows, key=_first), strict=True
    ):
        place = list(group)
        held = bool(place[0]["held"])
        answers.append(_at_place(place) if held and inbound is not None else held)
    return answers


def _at_place(rows: list[Any]) -> AtPlace:
    """One place's rows of _AT_PLACES."""
    first = tuple(rows[0])
    columns = first[1:_EARLIER]
    earlier = tuple(codec.received(list(zip(*columns, strict=True)))) if columns[0] else ()
    settings = first[_SETTINGS]
    own = None if settings is None else CommunitySettings.from_json(settings)
    if first[_EARLIER] is None:
        return AtPlace(None, {}, earlier, own)
    others = [tuple(row)[_PARTICIPANT_AT:_SETTINGS] for row in rows if row["p_user"] is not None]
    conversation = _conversation(first[_EARLIER:_PARTICIPANT_AT])
    return AtPlace(conversation, codec.participant_ladders(others), earlier, own)


def _conversation(row: Any) -> Conversation:
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
        end_proposed,
        community,
    ) = tuple(row)[:16]  # a ladder update also returns last_seq
    ladder = LadderState(
        redirects=redirects,
        warned=warned,
        crisis=crisis,
        ended=ended,
        ended_by=None if ended_by is None else _ACTORS[ended_by],
        ended_reason=None if ended_reason is None else _END_REASONS[ended_reason],
        end_proposed=end_proposed,
    )
    return Conversation(
        id=conversation_id,
        key=ConversationKey(platform, place),
        user_id=user_id,
        ladder=ladder,
        created_at=_utc(created_at),
        updated_at=_utc(updated_at),
        ended_at=None if ended_at is None else _utc(ended_at),
        branched_from=branched_from,
        community=community,
    )


# --- retention, privacy, review ------------------------------------------------------------

# Event details are JSON kept as text (see the migrations), so their free-text keys are
# removed in Python, which keeps the other keys in their order; LIKE only narrows the rows.
_MAY_HAVE_TEXT = " OR ".join(f"detail LIKE '%\"{key}\"%'" for key in EVENT_TEXT_KEYS)
_EVENTS_WITH_TEXT_BEFORE = (
    f"SELECT n, conversation_id, detail FROM events WHERE at < $1 AND ({_MAY_HAVE_TEXT})"
)
_ON_PLATFORM = "SELECT id FROM conversations WHERE platform = $1"
_EVENTS_WITH_TEXT_ON_PLATFORM = (
    f"SELECT n, conversation_id, detail FROM events "
    f"WHERE conversation_id IN ({_ON_PLATFORM}) AND ({_MAY_HAVE_TEXT})"
)
_UPDATE_DETAIL = "UPDATE events SET detail = $2 WHERE n = $1"
_PURGE_MESSAGES = (
    "UPDATE messages SET text = '', api = '[]', in_context = false "
    "WHERE at < $1 AND (text <> '' OR api <> '[]')"
)
_PURGE_FEEDBACK = "UPDATE feedback SET text = '' WHERE at < $1 AND text <> ''"
_PURGE_INBOX = "DELETE FROM inbox WHERE at < $1"

_OWN = "SELECT id FROM conversations WHERE platform = $1 AND user_id = $2"
_TOUCHED = (
    f"{_OWN} "
    f"UNION SELECT conversation_id FROM messages WHERE user_id = $2 "
    f"AND conversation_id IN ({_ON_PLATFORM}) "
    f"UNION SELECT conversation_id FROM feedback WHERE user_id = $2 "
    f"AND conversation_id IN ({_ON_PLATFORM})"
)
_FORGET_REPLIES = f"DELETE FROM messages WHERE role = 'assistant' AND conversation_id IN ({_OWN})"
_FORGET_MESSAGES = (
    f"DELETE FROM messages WHERE user_id = $2 AND conversation_id IN ({_ON_PLATFORM})"
)
_FORGET_FEEDBACK = (
    f"DELETE FROM feedback WHERE user_id = $2 AND conversation_id IN ({_ON_PLATFORM})"
)
_FORGET_INBOX = "DELETE FROM inbox WHERE platform = $1 AND user_id = $2"
_FORGET_NOTICES = (
    f"DELETE FROM blocked_notices WHERE user_id = $2 AND conversation_id IN ({_ON_PLATFORM})"
)

_PERSON_CONVERSATIONS = (
    f"SELECT {_CONVERSATION_COLUMNS} FROM conversations "
    "WHERE platform = $1 AND user_id = $2 ORDER BY n"
)
_PERSON_MESSAGES = (
    f"SELECT conversation_id, {_MESSAGE_COLUMNS} FROM messages WHERE user_id = $2 "
    f"AND conversation_id IN ({_ON_PLATFORM}) ORDER BY at, conversation_id, seq"
)
_PERSON_FEEDBACK = (
    f"SELECT conversation_id, text, at FROM feedback WHERE user_id = $2 "
    f"AND conversation_id IN ({_ON_PLATFORM}) ORDER BY n"
)
_PERSON_WAITING = (
    f"SELECT {codec.INBOX_COLUMNS} FROM inbox WHERE platform = $1 AND user_id = $2 ORDER BY n"
)

# Feedback newer than the conversation's last decision (a review, or any reopen) waits.
_AWAITING_MARKS = (
    f"SELECT * FROM (SELECT {_CONVERSATION_COLUMNS}, ("
    "SELECT MIN(w.at) FROM events w WHERE w.conversation_id = c.id AND w.kind = 'would_end' "
    "AND w.at > COALESCE((SELECT MAX(e.at) FROM events e WHERE e.conversation_id = c.id "
    "AND e.kind = 'review' AND e.detail::json->>'participant' IS NULL), "
    "'-infinity'::timestamptz)) AS waiting_since "
    "FROM conversations c WHERE ($1::text IS NULL OR c.platform = $1) "
    "AND ($3::text IS NULL OR c.community = $3)) AS q "
    "WHERE waiting_since IS NOT NULL ORDER BY waiting_since LIMIT $2"
)
_DAILY = (
    "SELECT to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), CASE e.kind "
    "WHEN 'end' THEN 'end:' || COALESCE(e.detail::json->>'reason', '?') "
    "WHEN 'review' THEN 'review:' || COALESCE(e.detail::json->>'decision', '?') "
    "ELSE e.kind END, COUNT(*) "
    "FROM events e JOIN conversations c ON c.id = e.conversation_id "
    "WHERE c.platform = $1 AND c.community = $2 AND e.at >= $3 AND e.kind IN "
    "('redirect', 'warning', 'crisis_flagged', 'end', 'feedback', 'review', 'would_end', "
    "'model_unavailable') GROUP BY 1, 2 "
    "UNION ALL SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 'conversation', "
    "COUNT(*) FROM conversations "
    "WHERE platform = $1 AND community = $2 AND created_at >= $3 GROUP BY 1"
)
_REVIEW_DECISIONS = (
    "SELECT detail::json->>'decision', COUNT(*) FROM events "
    "WHERE kind = 'review' AND at >= $1 GROUP BY 1"
)
_AWAITING_REVIEW = (
    f"SELECT * FROM (SELECT {_CONVERSATION_COLUMNS}, ("
    # Only the starter's side (see the SQLite store).
    "SELECT MIN(f.at) FROM feedback f WHERE f.conversation_id = c.id AND f.user_id = c.user_id "
    "AND f.at > COALESCE((SELECT MAX(e.at) FROM events e WHERE e.conversation_id = c.id "
    "AND e.kind IN ('review', 'reopen') AND e.detail::json->>'participant' IS NULL), "
    "'-infinity'::timestamptz)) AS waiting_since "
    "FROM conversations c WHERE c.ended AND ($1::text IS NULL OR c.platform = $1) "
    "AND ($3::text IS NULL OR c.community = $3) "
    # Only conversations someone gave feedback on can wait (see the SQLite store).
    "AND c.id IN (SELECT conversation_id FROM feedback)) AS q "
    "WHERE waiting_since IS NOT NULL ORDER BY waiting_since LIMIT $2"
)
_QUALIFIED = codec.QUALIFIED_CONVERSATION_COLUMNS
# Disputed shut-outs (see the SQLite store).
_DISPUTED_SHUT_OUTS = (
    f"SELECT * FROM (SELECT {_QUALIFIED}, p.user_id AS shut_out_user, ("
    "SELECT MIN(f.at) FROM feedback f WHERE f.conversation_id = p.conversation_id "
    "AND f.user_id = p.user_id AND f.at >= p.shut_out_at AND f.at > COALESCE(("
    "SELECT MAX(e.at) FROM events e WHERE e.conversation_id = p.conversation_id "
    "AND e.kind = 'review' AND e.detail::json->>'participant' = p.user_id), "
    "'-infinity'::timestamptz)) AS waiting_since "
    "FROM participants p JOIN conversations c ON c.id = p.conversation_id "
    "WHERE p.shut_out AND ($1::text IS NULL OR c.platform = $1) "
    "AND ($3::text IS NULL OR c.community = $3) "
    "AND (p.conversation_id, p.user_id) IN (SELECT conversation_id, user_id FROM feedback)) "
    "AS q WHERE waiting_since IS NOT NULL ORDER BY waiting_since LIMIT $2"
)


def _count(status: str) -> int:
    """The row count of a command status such as "UPDATE 3"."""
    return int(status.rsplit(" ", 1)[-1])


async def _strip_event_text(db: asyncpg.Connection, rows: Sequence[Any]) -> int:
    """Remove `EVENT_TEXT_KEYS` from these events' details; how many changed."""
    updates = []
    for row in rows:
        detail = json.loads(row["detail"])
        if not isinstance(detail, dict):
            continue
        kept = {key: value for key, value in detail.items() if key not in EVENT_TEXT_KEYS}
        if len(kept) != len(detail):
            updates.append((row["n"], _encode_json(kept)))
    if updates:
        await db.executemany(_UPDATE_DETAIL, updates)
    return len(updates)


# --- per-community settings ------------------------------------------------------------

_COMMUNITY = "SELECT settings FROM communities WHERE platform = $1 AND community = $2"
_SET_COMMUNITY = (
    "INSERT INTO communities (platform, community, settings, updated_at, updated_by) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (platform, community) DO UPDATE SET "
    "settings = excluded.settings, updated_at = excluded.updated_at, "
    "updated_by = excluded.updated_by"
)
_COMMUNITIES = (
    "SELECT platform, community, settings, updated_at, updated_by FROM communities "
    "WHERE ($1::text IS NULL OR platform = $1) ORDER BY platform, community"
)


# --- rows: the shared codec (bot/store/rows.py) with this backend's time format ----------

_encode_json = codec.encode_json
_json_list = codec.json_list
_stored = codec.stored


def _message_values(message: NewMessage) -> tuple[Any, ...]:
    return codec.message_values(message, _aware, _text)


def _message_rows(messages: Sequence[NewMessage]) -> list[tuple[Any, ...]]:
    return codec.message_rows(messages, _aware, _text)


def _messages(found: Sequence[Any]) -> list[StoredMessage]:
    return codec.messages(found, _utc)
