"""The store for several processes: PostgreSQL through asyncpg, with a pool of connections.

Behaviour is SQLite's (bot/store/sqlite.py), statement for statement where the dialects
allow; the store contract tests run against both. What differs is underneath: no group
commit (the pool runs operations side by side and the server commits them together), and
row locks, `ON CONFLICT` and advisory locks make every guarantee hold across processes.

The statements are in postgres_sql.py, the connections, batches and locks underneath in
postgres_connections.py, and the rows and values in postgres_rows.py.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any

import asyncpg

from bot.communities import CommunitySettings
from bot.conversation import (
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
from bot.store import postgres_rows as pg
from bot.store import postgres_sql as sql
from bot.store import rows as codec
from bot.store.locks import KeyedLocks
from bot.store.migrations import Migration
from bot.store.postgres_connections import (
    CONNECTION_LOST,
    UNREACHABLE,
    AdvisoryLocks,
    Batched,
    Outage,
    PoolFloor,
    keep_session,
)
from bot.store.postgres_migrations import MIGRATIONS, migrate
from bot.store.sqlite import (
    StoreError,
    StoreUnreachable,
    UnknownConversation,
    new_conversation_id,
)

log = logging.getLogger(__name__)


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
        self._outage = Outage()
        self._outbox = outbox
        self._floor = PoolFloor(self._outage)
        logging.getLogger("asyncpg.pool").addFilter(self._floor)
        self._advisory = AdvisoryLocks(url, pool_size, self._outage)
        self._locks = KeyedLocks(self._advisory)
        # Acknowledging waits for a receipt: those arriving while one is kept go together.
        self._receipts = Batched(self._keep_received)
        self._places = Batched(self._read_places)  # a turn's start waits for it too
        # Turns begun, replies shown and turns committed at the same time go together too.
        self._begins = Batched(partial(self._each, sql.BEGIN_TURN_WITH_CONTEXT))
        self._shown = Batched(partial(self._each, sql.REPLY_SHOWN))
        self._commits = Batched(partial(self._each, sql.COMMIT_TURN))
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
        except UNREACHABLE as exc:
            raise StoreUnreachable(f"cannot connect to PostgreSQL: {pg.why(exc)}") from exc
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {pg.why(exc)}") from exc
        try:
            await migrate(first, migrations)
        finally:
            await first.close()
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=pool_size,
                reset=keep_session,
                # No timer re-armed at every release (a few µs each, several per message);
                # the pool is small and its connections are worth keeping.
                max_inactive_connection_lifetime=0,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {pg.why(exc)}") from exc
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
        except CONNECTION_LOST as exc:
            raise self._outage.lost(exc) from exc
        self._outage.answered()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._connection() as db, db.transaction():
            yield db

    async def _each(
        self, statement: str, calls: list[tuple[Any, ...]]
    ) -> Sequence[list[asyncpg.Record] | BaseException]:
        """`statement` run once for each call, and the rows of each (it ends every row with
        its last parameter: the call's number here).

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
                    numbered = [(*call, n) for n, call in enumerate(calls)]
                    rows = await db.fetchmany(statement, numbered)
            except DatabaseUnavailable:
                raise
            except Exception:  # refused by the server, or a value asyncpg cannot send
                pass
            else:
                each: list[list[asyncpg.Record]] = [[] for _ in calls]
                for row in rows:
                    each[row[-1]].append(row)
                return each
        return [await self._alone(statement, (*call, n)) for n, call in enumerate(calls)]

    async def _alone(
        self, statement: str, params: tuple[Any, ...]
    ) -> list[asyncpg.Record] | Exception:
        try:
            async with self._connection() as db:
                rows: list[asyncpg.Record] = await db.fetch(statement, *params)
        except Exception as exc:  # this call's own, given to its caller alone
            return exc
        return rows

    # --- reading ---------------------------------------------------------------------------

    async def current(self, key: ConversationKey) -> Conversation | None:
        """The newest conversation at `key`, if any."""
        async with self._connection() as db:
            row = await db.fetchrow(sql.CURRENT, key.platform, key.place)
        return None if row is None else pg.conversation(row)

    async def in_use(self, key: ConversationKey) -> bool:
        """A conversation at `key`, or a message received there waiting to start one."""
        async with self._connection() as db:
            return bool(await db.fetchval(sql.IN_USE, key.platform, key.place))

    async def at_place(self, inbound: Inbound) -> AtPlace:
        """The conversation at the place, everyone else's ladders, the messages received
        there before `inbound` and its community's settings: one statement, shared with the
        other turns asking at the same time."""
        return await self._places.add(inbound)

    async def _read_places(self, asked: list[Inbound]) -> list[AtPlace]:
        columns = pg.columns(
            [(i.key.platform, i.key.place, i.event_id, i.community) for i in asked], 4
        )
        async with self._connection() as db:
            rows = await db.fetch(sql.AT_PLACES, *columns)
        return [pg.at_place(list(place)) for _, place in itertools.groupby(rows, key=pg.first)]

    async def get(self, conversation_id: str) -> Conversation | None:
        async with self._connection() as db:
            row = await db.fetchrow(sql.GET, conversation_id)
        return None if row is None else pg.conversation(row)

    async def recent_context(self, conversation_id: str, limit: int) -> list[ContextEntry]:
        """The newest `limit` messages, oldest first, their API messages as stored text."""
        if limit <= 0:
            return []
        async with self._connection() as db:
            rows = await db.fetch(sql.RECENT, conversation_id, limit)
        rows.reverse()
        return codec.context_entries(rows)

    async def messages(self, conversation_id: str) -> list[StoredMessage]:
        async with self._connection() as db:
            return pg.messages(await db.fetch(sql.ALL_MESSAGES, conversation_id))

    async def events(self, conversation_id: str) -> list[AuditEvent]:
        async with self._connection() as db:
            rows = await db.fetch(sql.EVENTS, conversation_id)
        details = codec.json_list([row[3] for row in rows])
        return [
            AuditEvent(row[0], pg.utc(row[1]), codec.ACTORS[row[2]], detail)
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
            state, platform, community, more, lambda n: f"${n}", pg.aware
        )
        params += [limit, offset]
        query = (
            f"SELECT {sql.CONVERSATION_COLUMNS} FROM conversations{where} "
            f"ORDER BY n DESC LIMIT ${len(params) - 1} OFFSET ${len(params)}"
        )
        async with self._connection() as db:
            return [pg.conversation(row) for row in await db.fetch(query, *params)]

    async def ended_count(self, platform: str, user_id: str, since: datetime) -> int:
        """How many of the user's conversations were ended (not at their request) since then."""
        async with self._connection() as db:
            count = await db.fetchval(
                sql.ENDED_COUNT, platform, user_id, pg.aware(since), EndReason.USER_REQUESTED.value
            )
        return int(count)

    async def participants(self, conversation_id: str) -> dict[str, LadderState]:
        """The ladder of each person other than the starter who wrote in the conversation."""
        async with self._connection() as db:
            rows = await db.fetch(sql.PARTICIPANTS, conversation_id)
        return codec.participant_ladders(rows)

    async def feedback(self, conversation_id: str) -> list[tuple[str, str, datetime]]:
        """(user_id, text, at) of each feedback row, oldest first."""
        async with self._connection() as db:
            rows = await db.fetch(sql.FEEDBACK, conversation_id)
        return [(row[0], row[1], pg.utc(row[2])) for row in rows]

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
        stamp = pg.aware(at)
        message_rows = pg.message_rows(history)
        event_rows = self._event_rows(events)
        async with self._transaction() as db:
            while True:  # until the random id is new
                conversation_id = new_conversation_id()
                row = await db.fetchrow(
                    sql.INSERT_CONVERSATION,
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
        return pg.conversation(row)

    async def begin_turn(
        self, conversation_id: str, inbound: Inbound, message: NewMessage
    ) -> StoredMessage | None:
        """Claim the inbound event and store the user's message in one transaction.

        Returns None, storing nothing, if the platform event was handled before.
        """
        claim = pg.claim_params(conversation_id, inbound, message.at)
        role, text, api, _, user_id, pmid, in_context = pg.message_values(message)
        async with self._connection() as db:
            seq = await db.fetchval(
                sql.BEGIN_TURN, *claim, role, text, api, user_id, pmid, in_context
            )
            if seq is None:
                await _unclaimed(db, claim)
                return None
        return codec.stored(seq, message)

    async def begin_turn_with_context(
        self, conversation_id: str, inbound: Inbound, message: NewMessage, limit: int
    ) -> tuple[StoredMessage, list[ContextEntry]] | None:
        """`begin_turn` and then `recent_context`, in one round trip."""
        claim = pg.claim_params(conversation_id, inbound, message.at)
        role, text, api, _, user_id, pmid, in_context = pg.message_values(message)
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
        return codec.stored(seq, message), codec.context_entries(history if limit > 0 else [])

    async def receive(self, inbound: Inbound, at: datetime) -> bool:
        """Claim a just-delivered event and keep its message until a turn takes it.

        False (storing nothing) if the event was received or handled before, here or by
        any other process.
        """
        platform, event_id, stamp, _ = pg.claim_params("", inbound, at)
        row = (
            platform,
            event_id,
            inbound.key.place,
            inbound.user_id,
            pg.text(inbound.text),
            inbound.message_id,
            stamp,
            inbound.community,
            codec.files_json(inbound.files),
        )
        return await self._receipts.add(row)

    async def _keep_received(self, rows: list[tuple[Any, ...]]) -> list[bool]:
        """Keep a batch of received messages in one statement; whether each was kept."""
        async with self._connection() as db:
            kept = {row[0] for row in await db.fetch(sql.RECEIVE, *pg.columns(rows, 9))}
        return [n in kept for n in range(1, len(rows) + 1)]

    async def settle(self, inbound: Inbound) -> None:
        """Forget a received message that will not be stored (the limit stopped it)."""
        async with self._connection() as db:
            await db.execute(sql.TAKE_RECEIVED, inbound.key.platform, inbound.event_id)

    async def reply_shown(self, inbound: Inbound, reply_id: str, complete: bool) -> None:
        """Note the reply the platform shows for a received message (see `Store`)."""
        await self._shown.ask((reply_id, complete, inbound.key.platform, inbound.event_id))

    async def shown(self, inbound: Inbound) -> ShownReply | None:
        """The reply an earlier attempt at `inbound` showed, if any."""
        async with self._connection() as db:
            row = await db.fetchrow(sql.SHOWN, inbound.key.platform, inbound.event_id)
        return None if row is None else ShownReply(row[0], bool(row[1]))

    async def pending(self, before: datetime) -> list[Inbound]:
        """Messages received before `before` but not handled (a process stopped first),
        oldest first."""
        async with self._connection() as db:
            rows = await db.fetch(sql.PENDING, before)
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
            pg.aware(at),
            conversation_id,
            ladder.end_proposed,
        )
        message_rows = pg.message_rows(messages)
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
                    *pg.columns(message_rows, 7),
                    *pg.columns([row[:4] for row in event_rows], 4),
                    *taken,
                    *joined,
                )
            )
            if not rows:
                raise UnknownConversation(conversation_id)
            return pg.conversation(rows[0])
        # A refused turn also hides an earlier message, and fails whole if there is none;
        # queued events need their numbers back for the outbox.
        async with self._transaction() as db:
            row = await db.fetchrow(sql.UPDATE_LADDER, *update, len(message_rows))
            if row is None:
                raise UnknownConversation(conversation_id)
            if answered is not None:
                await db.execute(sql.TAKE_RECEIVED, answered.key.platform, answered.event_id)
            if participant is not None:
                values = codec.participant_values(conversation_id, *participant, pg.aware(at))
                await db.execute(sql.SAVE_PARTICIPANT, *values)
            first = row["last_seq"] - len(message_rows) + 1
            await _insert_messages(db, conversation_id, first, message_rows)
            await _insert_events(db, conversation_id, event_rows)
            if (
                exclude_seq is not None
                and await db.fetchval(sql.EXCLUDE, conversation_id, exclude_seq) is None
            ):
                raise LookupError(f"conversation {conversation_id} has no message {exclude_seq}")
        return pg.conversation(row)

    async def record_blocked(
        self, conversation_id: str, inbound: Inbound, at: datetime, quiet: timedelta
    ) -> BlockedOutcome:
        """Claim a message sent to an ended conversation; decide whether to notify its poster.

        Notify on the first such message from a person since the end, then at most once per
        `quiet` per person.
        """
        claim = pg.claim_params(conversation_id, inbound, at)
        until = pg.quiet_until(claim[2], quiet)
        async with self._connection() as db:
            go, notified = await db.fetchrow(sql.RECORD_BLOCKED, *claim, inbound.user_id, until)
            if not go:
                await _unclaimed(db, claim)
                return BlockedOutcome.DUPLICATE
        return BlockedOutcome.NOTIFY if notified else BlockedOutcome.QUIET

    async def add_events(self, conversation_id: str, events: Sequence[AuditEvent]) -> None:
        event_rows = self._event_rows(events)
        async with self._transaction() as db:
            # FOR KEY SHARE: the conversation cannot vanish before the inserts below.
            if await db.fetchval(sql.EXISTS + " FOR KEY SHARE", conversation_id) is None:
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
        params = (conversation_id, user_id, pg.text(text), pg.aware(at))
        event_rows = self._event_rows(events)
        async with self._transaction() as db:
            if await db.fetchval(sql.INSERT_FEEDBACK_IF_EXISTS, *params) is None:
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
                sql.CLAIM_OUTBOX, list(targets), pg.aware(now), pg.aware(now + lease), limit
            )
        return codec.outbox_items(rows, pg.utc)

    async def outbox_done(self, items: Sequence[tuple[int, str]]) -> None:
        if items:
            async with self._connection() as db:
                await db.executemany(sql.OUTBOX_DONE, list(items))

    async def outbox_retry(self, items: Sequence[tuple[int, str]], due: datetime) -> None:
        if items:
            async with self._connection() as db:
                await db.executemany(sql.OUTBOX_RETRY, [(*item, pg.aware(due)) for item in items])

    def _event_rows(self, events: Sequence[AuditEvent]) -> list[tuple[Any, ...]]:
        return codec.event_rows(events, pg.aware, self._outbox)

    async def forget_events_before(self, before: datetime) -> int:
        """Drop processed platform event ids older than `before` (see bot.ports.Store)."""
        async with self._connection() as db:
            status = await db.execute(sql.FORGET_EVENTS, pg.aware(before))
        return int(status.rsplit(" ", 1)[-1])

    # --- retention, privacy, review ---------------------------------------------------------

    async def purge_text(self, before: datetime) -> Purged:
        """Empty message, feedback and audit text older than `before` (see bot.ports.Store)."""
        stamp = pg.aware(before)
        async with self._transaction() as db:
            messages = pg.count(await db.execute(sql.PURGE_MESSAGES, stamp))
            feedback = pg.count(await db.execute(sql.PURGE_FEEDBACK, stamp))
            events = await _strip_event_text(db, await db.fetch(sql.EVENTS_WITH_TEXT_BEFORE, stamp))
            pending = pg.count(await db.execute(sql.PURGE_INBOX, stamp))
        return Purged(messages, feedback, events, pending)

    async def forget_user(self, platform: str, user_id: str, event: AuditEvent) -> Purged:
        """Delete what one person wrote on `platform` (see bot.ports.Store)."""
        event_rows = self._event_rows([event])
        async with self._transaction() as db:
            touched = sorted(row[0] for row in await db.fetch(sql.TOUCHED, platform, user_id))
            own = {row[0] for row in await db.fetch(sql.OWN, platform, user_id)}
            replies = pg.count(await db.execute(sql.FORGET_REPLIES, platform, user_id))
            messages = pg.count(await db.execute(sql.FORGET_MESSAGES, platform, user_id))
            feedback = pg.count(await db.execute(sql.FORGET_FEEDBACK, platform, user_id))
            pending = pg.count(await db.execute(sql.FORGET_INBOX, platform, user_id))
            await db.execute(sql.FORGET_NOTICES, platform, user_id)
            rows = await db.fetch(sql.EVENTS_WITH_TEXT_ON_PLATFORM, platform)
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
            conversations = await db.fetch(sql.PERSON_CONVERSATIONS, platform, user_id)
            messages = await db.fetch(sql.PERSON_MESSAGES, platform, user_id)
            feedback = await db.fetch(sql.PERSON_FEEDBACK, platform, user_id)
            waiting = await db.fetch(sql.PERSON_WAITING, platform, user_id)
        stored = pg.messages([tuple(row)[1:] for row in messages])
        return PersonRecord(
            [pg.conversation(row) for row in conversations],
            [(row[0], message) for row, message in zip(messages, stored, strict=True)],
            [(row[0], row[1], pg.utc(row[2])) for row in feedback],
            codec.received(waiting),
        )

    async def community_settings(self, platform: str, community: str) -> CommunitySettings | None:
        """A community's own settings, if it has any."""
        async with self._connection() as db:
            settings = await db.fetchval(sql.COMMUNITY, platform, community)
        return None if settings is None else CommunitySettings.from_json(settings)

    async def set_community_settings(
        self, platform: str, community: str, settings: CommunitySettings, at: datetime, by: str
    ) -> None:
        """Replace a community's settings (all defaults again when `settings` sets nothing)."""
        async with self._connection() as db:
            await db.execute(
                sql.SET_COMMUNITY, platform, community, settings.to_json(), pg.aware(at), by
            )

    async def communities(self, platform: str | None = None) -> list[CommunityRecord]:
        """Every community with settings of its own, by platform and id."""
        async with self._connection() as db:
            rows = await db.fetch(sql.COMMUNITIES, platform)
        return [
            CommunityRecord(p, c, CommunitySettings.from_json(settings), pg.utc(at), by)
            for p, c, settings, at, by in rows
        ]

    async def awaiting_review(
        self, platform: str | None = None, limit: int = 100, *, community: str | None = None
    ) -> list[Conversation]:
        """Ended conversations with unanswered feedback, the longest-waiting first."""
        return await self._awaiting(sql.AWAITING_REVIEW, platform, limit, community)

    async def disputed_shut_outs(
        self, platform: str | None = None, limit: int = 100, *, community: str | None = None
    ) -> list[tuple[Conversation, str]]:
        """(conversation, person) for each shut-out with unanswered feedback from the person
        shut out, the longest-waiting first."""
        async with self._connection() as db:
            rows = await db.fetch(sql.DISPUTED_SHUT_OUTS, platform, limit, community)
        return [(pg.conversation(tuple(row)[:-2]), str(row[-2])) for row in rows]

    async def awaiting_marks(
        self, platform: str | None = None, limit: int = 100, *, community: str | None = None
    ) -> list[Conversation]:
        """Conversations with an unmarked `would_end`, the longest-waiting first."""
        return await self._awaiting(sql.AWAITING_MARKS, platform, limit, community)

    async def _awaiting(
        self, statement: str, platform: str | None, limit: int, community: str | None
    ) -> list[Conversation]:
        async with self._connection() as db:
            rows = await db.fetch(statement, platform, limit, community)
        return [pg.conversation(tuple(row)[:-1]) for row in rows]

    async def review_decisions(self, since: datetime) -> dict[str, int]:
        """How many `review` events since then, by their `decision`."""
        async with self._connection() as db:
            rows = await db.fetch(sql.REVIEW_DECISIONS, pg.aware(since))
        return {str(decision): int(count) for decision, count in rows}

    async def daily_activity(
        self, platform: str, community: str, since: datetime
    ) -> list[tuple[str, str, int]]:
        """Per UTC day: conversations started, and the ladder's events by kind."""
        async with self._connection() as db:
            rows = await db.fetch(sql.DAILY, platform, community, pg.aware(since))
        return [(str(day), str(series), int(n)) for day, series, n in rows]


# --- statements that several calls share ------------------------------------------------------


async def _unclaimed(db: asyncpg.Connection, claim: tuple[Any, ...]) -> None:
    """After a claim inserted nothing: return if the event was handled before, else the
    conversation is unknown (a handled event wins, as if checked first)."""
    platform, event_id, _, conversation_id = claim
    if await db.fetchval(sql.CLAIMED, platform, event_id) is None:
        raise UnknownConversation(conversation_id)


async def _insert_messages(
    db: asyncpg.Connection, conversation_id: str, first: int, rows: list[tuple[Any, ...]]
) -> None:
    """Insert `rows` numbered from `first` (the caller raised last_seq for them)."""
    numbered = [(conversation_id, first + n, *row) for n, row in enumerate(rows)]
    if len(numbered) == 1:
        await db.execute(sql.INSERT_MESSAGE, *numbered[0])
    elif numbered:
        await db.executemany(sql.INSERT_MESSAGE, numbered)


async def _insert_events(
    db: asyncpg.Connection, conversation_id: str, rows: list[tuple[Any, ...]]
) -> None:
    """Insert `codec.event_rows`, queueing each in the outbox for its targets."""
    if len(rows) > 1 and not codec.queued(rows):
        await db.executemany(sql.INSERT_EVENT, [(conversation_id, *row[:4]) for row in rows])
        return
    for row in rows:
        number = await db.fetchval(sql.INSERT_EVENT + " RETURNING n", conversation_id, *row[:4])
        if row[4]:
            await db.executemany(sql.QUEUE, [(number, target, row[1]) for target in row[4]])


async def _strip_event_text(db: asyncpg.Connection, rows: Sequence[Any]) -> int:
    """Remove `EVENT_TEXT_KEYS` from these events' details; how many changed."""
    updates = []
    for row in rows:
        detail = json.loads(row["detail"])
        if not isinstance(detail, dict):
            continue
        kept = {key: value for key, value in detail.items() if key not in EVENT_TEXT_KEYS}
        if len(kept) != len(detail):
            updates.append((row["n"], codec.encode_json(kept)))
    if updates:
        await db.executemany(sql.UPDATE_DETAIL, updates)
    return len(updates)
