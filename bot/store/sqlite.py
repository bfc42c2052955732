"""The default store: one SQLite file (or ":memory:") behind one sqlite3 connection, which
only a worker thread of the store's own ever uses. Its statements are in sqlite_sql.py."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

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
    NO_OUTBOX,
    AtPlace,
    BlockedOutcome,
    CommunityRecord,
    ListFilter,
    NewMessage,
    Outbox,
    OutboxItem,
    PersonRecord,
    Purged,
    Receipts,
    ShownReply,
)
from bot.store import rows as codec
from bot.store import sqlite_batches as batches
from bot.store import sqlite_sql as sql
from bot.store.locks import FileLocks, KeyedLocks
from bot.store.migrations import MIGRATIONS, Migration, migrate

log = logging.getLogger(__name__)

_T = TypeVar("_T")

BUSY_TIMEOUT_MS = 5_000

# No 0/o, 1/l/i: people read these ids aloud and type them from screenshots.
_ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
_ID_LENGTH = 9  # after the leading "c": 31**9 is about 2.6e13 ids


class StoreError(RuntimeError):
    """The database cannot be opened or used as quitbot needs."""


class StoreUnreachable(StoreError):
    """The database server could not be reached (network, DNS, still starting): worth
    trying again, unlike a refused password or a missing database."""


class UnknownConversation(LookupError):
    """No conversation has that id."""


def new_conversation_id() -> str:
    return "c" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


class SqliteStore:
    """`bot.ports.Store` on SQLite, with group commit.

    One connection, opened once and used only by one worker thread of the store's own.
    Each public method prepares its parameters on the event loop, queues one operation (a
    plain function doing every statement of the call and decoding its rows) and awaits it.

    Why batches: the hop to the thread and back, and each COMMIT, cost far more than the
    SQL, and with many conversations at once many operations are waiting at any moment. So
    the thread takes every queued operation in one hop and runs them in one transaction
    (BEGIN IMMEDIATE ... COMMIT). An operation that raises fails alone: its caller gets the
    exception, while the others go on. Operations rarely raise, so a batch first runs
    without a SAVEPOINT per operation (two more statements each, and each statement a
    release of the GIL); if one raises, the transaction is rolled back and the same
    operations run again, each inside its own SAVEPOINT, so that its error undoes its own
    statements only. Callers learn their results only after the batch's COMMIT; if the
    COMMIT (or BEGIN) fails, every operation in the batch fails with it and nothing of it
    is written. A batch of reads only runs without a transaction. A lone operation is a
    batch of one: its own transaction, its error the transaction's, as if there were no
    batching.

    Batches run one at a time, operations in the order they were asked for, so nothing
    interleaves and no lock is needed; while one batch runs, the next gathers in the queue.
    One exception: receiving a just-delivered message (a receipt) goes ahead, because the
    platform is waiting for it (Slack's acknowledgement) while replies are not, and nothing
    queued can depend on it (whoever uses a kept message awaited its receipt first). Idle,
    the store sends waiting receipts before anything else; busy, the thread takes them in
    between two operations of the batch under way, commits them with what ran before
    them, and goes on with the rest of the batch in a new transaction. So under a burst an
    acknowledgement waits for one operation, not for a queue or a batch of replies' writes.

    Cancellation: an operation whose caller is cancelled while it waits in the queue never
    runs; once its batch has been sent to the thread, it runs to its end (and commits with
    the batch), so a transaction never stops half-way because a coroutine stopped waiting.
    A receipt the thread takes mid-batch runs even if its caller has given up.

    Build it with `await SqliteStore.open(path)`; `close()` lets every operation already
    asked for finish, then closes the connection and ends the thread.

    Per-conversation serialisation (`serialised`) is an asyncio lock in this process and a
    byte-range lock on `<database>.lock` for the other processes on this host.
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        file_locks: FileLocks | None = None,
        outbox: Outbox = NO_OUTBOX,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._file_locks = file_locks
        self._locks = KeyedLocks(file_locks)
        self._executor = executor  # one thread: the only user of `_db`
        self._loop = asyncio.get_running_loop()
        self._queue: list[batches.Op] = []  # asked for, not yet sent to the thread
        # Receipts, likewise: sent before `_queue`, or taken by the thread mid-batch. Every
        # side uses it only through deque's thread-safe append and popleft (`batches.taken`).
        self._receipts: deque[batches.Op] = deque()
        # Receipts from other threads' loops (`anywhere`): taken by the store's thread alone,
        # so they commit in the order asked for (when this loop took from them too, the
        # receipts it sent could run after later ones the thread had taken). One ask of the
        # thread stands for all those waiting until it starts (`_take_asked`), not one each.
        self._elsewhere: deque[batches.Op] = deque()
        self._take_asked = False
        self._running: asyncio.Future[Any] | None = None  # the batch (or close) on the thread
        self._sending_soon = False  # idle, and a `_send_soon` is scheduled
        self._closing: asyncio.Future[None] | None = None  # set once close() is called

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        migrations: Sequence[Migration] = MIGRATIONS,
        outbox: Outbox = NO_OUTBOX,
    ) -> SqliteStore:
        """Open (creating it owner-only if new) and migrate the database at `path`; events
        of the `outbox`'s kinds are queued for its targets as they are recorded."""
        file_locks = None
        if path != ":memory:":  # no other process can open an in-memory database
            _create_private(Path(path))
            try:
                file_locks = FileLocks.open(Path(path + ".lock"))
            except OSError as exc:
                raise StoreError(f"cannot open the lock file {path}.lock: {exc.strerror}") from exc
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quitbot-sqlite")
        # submit + wrap_future is run_in_executor keeping hold of the thread's future, so a
        # failed or cancelled open can close whatever the thread opened.
        connecting = executor.submit(_connect, path, migrations)
        try:
            db = await asyncio.wrap_future(connecting)
        except BaseException:
            executor.shutdown(wait=True)  # lets a connect already under way finish
            if not connecting.cancelled() and connecting.exception() is None:
                connecting.result().close()
            if file_locks is not None:
                file_locks.close()
            raise
        return cls(db, executor, file_locks, outbox)

    def serialised(self, key: ConversationKey) -> AbstractAsyncContextManager[None]:
        """Hold `key`'s conversation against every other turn, in any process on this host."""
        return self._locks.hold(key)

    def serialised_at(self, inbound: Inbound) -> AbstractAsyncContextManager[AtPlace]:
        """`serialised`, giving what `inbound`'s turn starts from, read once held."""
        return self._locks.hold_at(inbound, self.at_place)

    async def close(self) -> None:
        """Close the connection on its thread, after every operation already asked for."""
        if self._closing is None:
            self._closing = self._loop.create_future()
            if self._running is None:
                self._dispatch()  # idle: close at once
        await asyncio.shield(self._closing)  # cancelled or not, the connection gets closed
        self._executor.shutdown(wait=True)  # the thread has nothing left to do: join it
        if self._file_locks is not None:
            self._file_locks.close()

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
        """The newest conversation at `key`, if any."""
        return await self._read(_current, key.platform, key.place)

    async def in_use(self, key: ConversationKey) -> bool:
        """A conversation at `key`, or a message received there waiting to start one."""
        return await self._read(_in_use, key.platform, key.place)

    async def at_place(self, inbound: Inbound) -> AtPlace:
        """The conversation at the place, everyone else's ladders, the messages received
        there before `inbound` and its community's settings, in one hop to the store's
        thread."""
        key = inbound.key
        return await self._read(
            _at_place, key.platform, key.place, inbound.event_id, inbound.community
        )

    async def get(self, conversation_id: str) -> Conversation | None:
        return await self._read(_get, conversation_id)

    async def recent_context(self, conversation_id: str, limit: int) -> list[ContextEntry]:
        """The newest `limit` messages, oldest first, their API messages as stored text."""
        if limit <= 0:
            return []
        return await self._read(_recent_context, conversation_id, limit)

    async def messages(self, conversation_id: str) -> list[StoredMessage]:
        return await self._read(_all_messages, conversation_id)

    async def events(self, conversation_id: str) -> list[AuditEvent]:
        return await self._read(_events, conversation_id)

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
        where, params = codec.list_filter(state, platform, community, more, lambda n: "?", _to_text)
        query = (
            f"SELECT {sql.CONVERSATION_COLUMNS} FROM conversations{where} "
            "ORDER BY n DESC LIMIT ? OFFSET ?"
        )
        return await self._read(_list_conversations, query, (*params, limit, offset))

    async def ended_count(self, platform: str, user_id: str, since: datetime) -> int:
        """How many of the user's conversations were ended (not at their request) since then."""
        params = (platform, user_id, _to_text(since), EndReason.USER_REQUESTED.value)
        return await self._read(_ended_count, params)

    async def participants(self, conversation_id: str) -> dict[str, LadderState]:
        """The ladder of each person other than the starter who wrote in the conversation."""
        return await self._read(_participants, conversation_id)

    async def feedback(self, conversation_id: str) -> list[tuple[str, str, datetime]]:
        """(user_id, text, at) of each feedback row, oldest first."""
        return await self._read(_feedback, conversation_id)

    # --- writing ---------------------------------------------------------------------------
    # Parameters are checked and encoded here, on the event loop's thread, so bad input
    # (a naive datetime, an empty event id) fails before any hop.

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
        stamp = _to_text(at)
        values = (key.platform, key.place, user_id, stamp, stamp, branched_from, community)
        return await self._write(_create, values, _message_rows(history), self._event_rows(events))

    async def begin_turn(
        self, conversation_id: str, inbound: Inbound, message: NewMessage
    ) -> StoredMessage | None:
        """Claim the inbound event and store the user's message in one transaction.

        Returns None, storing nothing, if the platform event was handled before.
        """
        claim = _claim_params(conversation_id, inbound, message.at)
        touch = (_to_text(message.at), conversation_id)
        values = (conversation_id, *_message_values(message))
        return await self._write(_begin_turn, claim, touch, values, message)

    async def begin_turn_with_context(
        self, conversation_id: str, inbound: Inbound, message: NewMessage, limit: int
    ) -> tuple[StoredMessage, list[ContextEntry]] | None:
        """`begin_turn` and then `recent_context`, in one hop to the store's thread."""
        claim = _claim_params(conversation_id, inbound, message.at)
        touch = (_to_text(message.at), conversation_id)
        values = (conversation_id, *_message_values(message))
        return await self._write(_begin_turn_with_context, claim, touch, values, message, limit)

    async def receive(self, inbound: Inbound, at: datetime) -> bool:
        """Claim a just-delivered event and keep its message until a turn takes it.

        False (storing nothing) if the event was received or handled before.
        """
        params = _receipt_params(inbound, at)
        kept_now: bool = await self._enqueue(_receive, params, writes=True, ahead=True)
        return kept_now

    def anywhere(self) -> Receipts:
        """Receipts and the lookup that decides them, for an event loop on another thread
        (a platform's listener): they go ahead as receipts do, and their outcomes are set
        on the store's thread, so acknowledging never waits for a turn of this loop."""
        return _Anywhere(self)

    async def _ahead_from_anywhere(
        self, call: Callable[..., _T], args: tuple[Any, ...], writes: bool
    ) -> _T:
        """`_enqueue(..., ahead=True)` for any thread's loop. The thread is asked to take
        the receipts waiting, in case it is idle: the loop that tracks whether it is
        (`_running`) may be too busy to say. An ask not yet started takes this one too.
        The outcome comes back to the caller's loop with the rest of its transaction's."""
        if self._closing is not None:
            raise StoreError("the store is closed")
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._elsewhere.append(batches.Op(call, args, writes, future))
        # Read after the append: an ask seen pending clears this flag before it takes
        # anything, so it takes this receipt; an extra ask finds nothing and costs little.
        if not self._take_asked:
            self._take_asked = True
            self._executor.submit(self._take_waiting)
        return await future

    def _take_waiting(self) -> None:
        """On the store's thread: the receipts other threads' loops asked it to take."""
        self._take_asked = False  # before taking: a receipt added from now asks again
        batches.take_receipts(self._db, (self._elsewhere,), self._report, self._loop)

    async def settle(self, inbound: Inbound) -> None:
        """Forget a received message that will not be stored (the limit stopped it)."""
        await self._write(_take_received, (inbound.key.platform, inbound.event_id))

    async def reply_shown(self, inbound: Inbound, reply_id: str, complete: bool) -> None:
        """Note the reply the platform shows for a received message (see `Store`)."""
        await self._write(
            _reply_shown, (reply_id, int(complete), inbound.key.platform, inbound.event_id)
        )

    async def shown(self, inbound: Inbound) -> ShownReply | None:
        """The reply an earlier attempt at `inbound` showed, if any."""
        return await self._read(_shown, (inbound.key.platform, inbound.event_id))

    async def pending(self, before: datetime) -> list[Inbound]:
        """Messages received before `before` but not handled (the process stopped first),
        oldest first."""
        return await self._read(_pending, _to_text(before))

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
            _to_text(at),
            conversation_id,
            ladder.end_proposed,
        )
        return await self._write(
            _commit_turn,
            conversation_id,
            update,
            _message_rows(messages),
            self._event_rows(events),
            exclude_seq,
            None if answered is None else (answered.key.platform, answered.event_id),
            None
            if participant is None
            else codec.participant_values(conversation_id, *participant, _to_text(at)),
        )

    async def record_blocked(
        self, conversation_id: str, inbound: Inbound, at: datetime, quiet: timedelta
    ) -> BlockedOutcome:
        """Claim a message sent to an ended conversation; decide whether to notify its poster.

        Notify on the first such message from a person since the end, then at most once per
        `quiet` per person.
        """
        claim = _claim_params(conversation_id, inbound, at)
        notice = (conversation_id, inbound.user_id, claim[2], _quiet_until(at, quiet))
        return await self._write(_record_blocked, claim, notice)

    async def add_events(self, conversation_id: str, events: Sequence[AuditEvent]) -> None:
        event_rows = self._event_rows(events)
        if not event_rows:
            await self._read(_require, conversation_id)
            return
        await self._write(_add_events, conversation_id, event_rows)

    async def add_feedback(
        self,
        conversation_id: str,
        user_id: str,
        text: str,
        at: datetime,
        events: Sequence[AuditEvent] = (),
    ) -> None:
        """Keep what a user said about a conversation, and its audit events, in one write."""
        await self._write(
            _add_feedback,
            (conversation_id, user_id, text, _to_text(at)),
            self._event_rows(events),
        )

    async def forget_events_before(self, before: datetime) -> int:
        """Drop processed platform event ids older than `before` (see bot.ports.Store)."""
        forgotten: int = await self._write(_forget_events, _to_text(before))
        return forgotten

    # --- the outbox ---------------------------------------------------------------------------

    async def claim_outbox(
        self, targets: Sequence[str], now: datetime, lease: timedelta, limit: int
    ) -> list[OutboxItem]:
        """Take due outbox rows for `targets` (see bot.ports.Store); the one writer
        thread makes the claim atomic."""
        return await self._write(
            _claim_outbox, tuple(targets), _to_text(now), _to_text(now + lease), limit
        )

    async def outbox_done(self, items: Sequence[tuple[int, str]]) -> None:
        if items:
            await self._write(_outbox_done, list(items))

    async def outbox_retry(self, items: Sequence[tuple[int, str]], due: datetime) -> None:
        if items:
            await self._write(_outbox_retry, [(_to_text(due), *item) for item in items])

    def _event_rows(self, events: Sequence[AuditEvent]) -> list[tuple[Any, ...]]:
        return codec.event_rows(events, _to_text, self._outbox)

    # --- retention, privacy, review ---------------------------------------------------------

    async def purge_text(self, before: datetime) -> Purged:
        """Empty message, feedback and audit text older than `before` (see bot.ports.Store)."""
        return await self._write(_purge_text, _to_text(before))

    async def forget_user(self, platform: str, user_id: str, event: AuditEvent) -> Purged:
        """Delete what one person wrote on `platform` (see bot.ports.Store)."""
        return await self._write(_forget_user, platform, user_id, self._event_rows([event])[0])

    async def person(self, platform: str, user_id: str) -> PersonRecord:
        """Everything kept that names this person."""
        return await self._read(_person, platform, user_id)

    async def community_settings(self, platform: str, community: str) -> CommunitySettings | None:
        """A community's own settings, if it has any."""
        return await self._read(_community_settings, platform, community)

    async def set_community_settings(
        self, platform: str, community: str, settings: CommunitySettings, at: datetime, by: str
    ) -> None:
        """Replace a community's settings (all defaults again when `settings` sets nothing)."""
        await self._write(
            _set_community, (platform, community, settings.to_json(), _to_text(at), by)
        )

    async def communities(self, platform: str | None = None) -> list[CommunityRecord]:
        """Every community with settings of its own, by platform and id."""
        return await self._read(_communities, platform)

    async def awaiting_review(
        self, platform: str | None = None, limit: int = 100, *, community: str | None = None
    ) -> list[Conversation]:
        """Ended conversations with unanswered feedback, the longest-waiting first."""
        return await self._read(_awaiting, sql.AWAITING_REVIEW, platform, limit, community)

    async def disputed_shut_outs(
        self, platform: str | None = None, limit: int = 100, *, community: str | None = None
    ) -> list[tuple[Conversation, str]]:
        """(conversation, person) for each shut-out with unanswered feedback from the person
        shut out, the longest-waiting first."""
        return await self._read(_disputed, platform, limit, community)

    async def awaiting_marks(
        self, platform: str | None = None, limit: int = 100, *, community: str | None = None
    ) -> list[Conversation]:
        """Conversations with an unmarked `would_end`, the longest-waiting first."""
        return await self._read(_awaiting, sql.AWAITING_MARKS, platform, limit, community)

    async def review_decisions(self, since: datetime) -> dict[str, int]:
        """How many `review` events since then, by their `decision`."""
        return await self._read(_review_decisions, _to_text(since))

    async def daily_activity(
        self, platform: str, community: str, since: datetime
    ) -> list[tuple[str, str, int]]:
        """Per UTC day: conversations started, and the ladder's events by kind."""
        params = (platform, community, _to_text(since))
        return await self._read(_daily_activity, params)

    # --- the queue ---------------------------------------------------------------------------

    async def _read(self, operation: Callable[..., _T], *args: Any) -> _T:
        """`operation(connection, *args)` on the store's thread, writing nothing."""
        result: _T = await self._enqueue(operation, args, writes=False)
        return result

    async def _write(self, operation: Callable[..., _T], *args: Any) -> _T:
        """`operation(connection, *args)` on the store's thread, committed whole or not at all."""
        result: _T = await self._enqueue(operation, args, writes=True)
        return result

    async def _enqueue(
        self, call: Callable[..., Any], args: tuple[Any, ...], writes: bool, ahead: bool = False
    ) -> Any:
        if self._closing is not None:
            raise StoreError("the store is closed")
        future = self._loop.create_future()
        (self._receipts if ahead else self._queue).append(batches.Op(call, args, writes, future))
        if self._running is None and not self._sending_soon:
            # Idle: sent once this turn of the loop is over, with whatever else it asks for.
            # Sent at once, it was a batch of one, with the rest of the turn's operations
            # waiting for it in another batch: two transactions and two wakes of the thread
            # where one does (bench/README.md, issue 22's fourth round).
            self._sending_soon = True
            self._loop.call_soon(self._send_soon)
        return await future

    def _send_soon(self) -> None:
        self._sending_soon = False
        if self._running is None:  # else sent meanwhile (by `close`): it goes after that
            self._dispatch()

    def _dispatch(self) -> None:
        """Send what is queued (up to batches.MAX_BATCH, receipts first and alone), less operations
        whose callers gave up. Called only while nothing is on the thread."""
        receipts = self._receipts
        batch = [
            op for op in batches.taken((receipts,), batches.MAX_BATCH) if not op.future.cancelled()
        ]
        # Receipts cut into a batch of others, never into one of receipts: later ones would
        # be kept before earlier ones.
        cutting_in: batches.Waiting = ()
        if not batch:
            self._queue = [op for op in self._queue if not op.future.cancelled()]
            batch, self._queue = self._queue[: batches.MAX_BATCH], self._queue[batches.MAX_BATCH :]
            cutting_in = (receipts, self._elsewhere)
        if batch:
            self._running = self._loop.run_in_executor(
                self._executor,
                batches.run_batch,
                self._db,
                batch,
                cutting_in,
                self._report,
                self._loop,
            )
            self._running.add_done_callback(partial(self._settle, batch))
        elif self._closing is not None:
            self._running = self._loop.run_in_executor(self._executor, self._db.close)
            self._running.add_done_callback(self._finish_closing)
        else:
            self._running = None

    def _report(self, outcomes: batches.Outcomes) -> None:
        """Called on the thread: outcomes committed before the batch is over (receipts cut
        in), given to their callers at once."""
        if outcomes:
            self._loop.call_soon_threadsafe(batches.resolve_all, outcomes)

    def _settle(self, batch: list[batches.Op], running: asyncio.Future[batches.Outcomes]) -> None:
        """Give each caller its outcome now the batch is over, then send the next batch."""
        try:
            outcomes = running.result()
        except (
            BaseException
        ) as exc:  # not expected: `batches.run_batch` fails operations, not itself
            outcomes = [(op, batches.Failed(exc)) for op in batch if not op.future.done()]
        batches.resolve_all(outcomes)
        self._dispatch()

    def _finish_closing(self, closing: asyncio.Future[None]) -> None:
        """Pass the connection's close, done on the thread, on to `close()`."""
        assert self._closing is not None
        if closing.cancelled() or (exc := closing.exception()) is None:
            self._closing.set_result(None)
        else:
            self._closing.set_exception(exc)


class _Anywhere:
    """`SqliteStore.anywhere()`: `Receipts` awaitable from any thread's event loop."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def receive(self, inbound: Inbound, at: datetime) -> bool:
        params = _receipt_params(inbound, at)
        return await self._store._ahead_from_anywhere(_receive, params, writes=True)

    async def in_use(self, key: ConversationKey) -> bool:
        args = (key.platform, key.place)
        return await self._store._ahead_from_anywhere(_in_use, args, writes=False)


# --- operations ----------------------------------------------------------------------------


def _current(db: sqlite3.Connection, platform: str, place: str) -> Conversation | None:
    rows = db.execute(sql.CURRENT, (platform, place)).fetchall()
    return _conversation(rows[0]) if rows else None


def _in_use(db: sqlite3.Connection, platform: str, place: str) -> bool:
    return bool(db.execute(sql.IN_USE, (platform, place)).fetchall()[0][0])


def _at_place(
    db: sqlite3.Connection, platform: str, place: str, event_id: str, community: str
) -> AtPlace:
    found = db.execute(sql.AT_PLACE, (platform, place)).fetchall()
    earlier_rows = db.execute(sql.RECEIVED_BEFORE, (platform, place, event_id)).fetchall()
    earlier = tuple(codec.received(earlier_rows))
    if not found:  # a conversation to start: the settings of the message's community
        own = _community_settings(db, platform, community) if community else None
        return AtPlace(None, {}, earlier, own)
    *columns, others_wrote, settings = found[0]
    conversation = _conversation(columns)
    others = _participants(db, conversation.id) if others_wrote else {}
    if settings is None or not conversation.community:
        return AtPlace(conversation, others, earlier, None)
    return AtPlace(conversation, others, earlier, CommunitySettings.from_json(settings))


def _get(db: sqlite3.Connection, conversation_id: str) -> Conversation | None:
    rows = db.execute(sql.GET, (conversation_id,)).fetchall()
    return _conversation(rows[0]) if rows else None


def _recent_context(db: sqlite3.Connection, conversation_id: str, limit: int) -> list[ContextEntry]:
    rows = db.execute(sql.RECENT, (conversation_id, limit)).fetchall()
    rows.reverse()
    return codec.context_entries(rows)


def _all_messages(db: sqlite3.Connection, conversation_id: str) -> list[StoredMessage]:
    return _messages(db.execute(sql.ALL_MESSAGES, (conversation_id,)).fetchall())


def _events(db: sqlite3.Connection, conversation_id: str) -> list[AuditEvent]:
    rows = db.execute(sql.EVENTS, (conversation_id,)).fetchall()
    details = codec.json_list([row[3] for row in rows])
    return [
        AuditEvent(row[0], _from_text(row[1]), codec.ACTORS[row[2]], detail)
        for row, detail in zip(rows, details, strict=True)
    ]


def _feedback(db: sqlite3.Connection, conversation_id: str) -> list[tuple[str, str, datetime]]:
    rows = db.execute(sql.FEEDBACK, (conversation_id,)).fetchall()
    return [(row[0], row[1], _from_text(row[2])) for row in rows]


def _list_conversations(
    db: sqlite3.Connection, query: str, params: tuple[Any, ...]
) -> list[Conversation]:
    return [_conversation(row) for row in db.execute(query, params).fetchall()]


def _ended_count(db: sqlite3.Connection, params: tuple[str, ...]) -> int:
    return int(db.execute(sql.ENDED_COUNT, params).fetchall()[0][0])


def _participants(db: sqlite3.Connection, conversation_id: str) -> dict[str, LadderState]:
    return codec.participant_ladders(db.execute(sql.PARTICIPANTS, (conversation_id,)).fetchall())


def _require(db: sqlite3.Connection, conversation_id: str) -> None:
    if not db.execute(sql.EXISTS, (conversation_id,)).fetchall():
        raise UnknownConversation(conversation_id)


def _create(
    db: sqlite3.Connection,
    values: tuple[Any, ...],
    message_rows: list[tuple[Any, ...]],
    event_rows: list[tuple[Any, ...]],
) -> Conversation:
    while True:  # until the random id is new
        conversation_id = new_conversation_id()
        rows = db.execute(sql.INSERT_CONVERSATION, (conversation_id, *values)).fetchall()
        if rows:
            break
    _insert_messages(db, conversation_id, message_rows)
    _insert_events(db, conversation_id, event_rows)
    return _conversation(rows[0])


def _begin_turn(
    db: sqlite3.Connection,
    claim: tuple[str, ...],
    touch: tuple[str, str],
    values: tuple[Any, ...],
    message: NewMessage,
) -> StoredMessage | None:
    # A received message stays received until its turn commits, so that a process dying
    # mid-turn leaves it for the next start-up (`pending`). Its receipt claimed its event,
    # so only a message never received is claimed here: every Slack and Discord message is
    # received first, and their claims here always failed, a statement each (issue 22).
    pmid = message.platform_message_id
    [(received, begun)] = db.execute(sql.RECEIVED_BEGUN, (*claim[:2], claim[3], pmid)).fetchall()
    if not received:
        if not db.execute(sql.CLAIM, claim).fetchall():
            _unclaimed(db, claim)
            return None
    elif pmid and begun is not None:
        # Stored by a turn that never finished: answered now, not stored again.
        return codec.stored(begun, message)
    db.execute(sql.TOUCH, touch)
    seq = db.execute(sql.INSERT_MESSAGE_RETURNING_SEQ, values).fetchall()[0][0]
    return codec.stored(seq, message)


def _begin_turn_with_context(
    db: sqlite3.Connection,
    claim: tuple[str, ...],
    touch: tuple[str, str],
    values: tuple[Any, ...],
    message: NewMessage,
    limit: int,
) -> tuple[StoredMessage, list[ContextEntry]] | None:
    stored = _begin_turn(db, claim, touch, values, message)
    if stored is None:
        return None
    return stored, _recent_context(db, claim[3], limit) if limit > 0 else []


def _commit_turn(
    db: sqlite3.Connection,
    conversation_id: str,
    update: tuple[Any, ...],
    message_rows: list[tuple[Any, ...]],
    event_rows: list[tuple[Any, ...]],
    exclude_seq: int | None,
    answered: tuple[str, str] | None = None,
    participant: tuple[Any, ...] | None = None,
) -> Conversation:
    rows = db.execute(sql.UPDATE_LADDER, update).fetchall()
    if not rows:
        raise UnknownConversation(conversation_id)
    if participant is not None:
        db.execute(sql.SAVE_PARTICIPANT, participant)
    if answered is not None:
        _take_received(db, answered)
    _insert_messages(db, conversation_id, message_rows)
    _insert_events(db, conversation_id, event_rows)
    if exclude_seq is not None:
        _exclude(db, conversation_id, exclude_seq)
    return _conversation(rows[0])


def _record_blocked(
    db: sqlite3.Connection, claim: tuple[str, ...], notice: tuple[str, ...]
) -> BlockedOutcome:
    if not db.execute(sql.CLAIM, claim).fetchall() and not _take_received(db, claim[:2]):
        _unclaimed(db, claim)
        return BlockedOutcome.DUPLICATE
    if not db.execute(sql.NOTIFY_UNLESS_QUIET, notice).fetchall():
        return BlockedOutcome.QUIET
    return BlockedOutcome.NOTIFY


def _add_events(
    db: sqlite3.Connection, conversation_id: str, event_rows: list[tuple[Any, ...]]
) -> None:
    if _insert_events(db, conversation_id, event_rows, sql.INSERT_EVENT_IF_EXISTS) != len(
        event_rows
    ):
        raise UnknownConversation(conversation_id)


def _claim_outbox(
    db: sqlite3.Connection, targets: tuple[str, ...], now: str, until: str, limit: int
) -> list[OutboxItem]:
    marks = ", ".join("?" for _ in targets)
    claimed = db.execute(
        "UPDATE outbox SET due_at = ?, attempts = attempts + 1 WHERE rowid IN "
        f"(SELECT rowid FROM outbox WHERE target IN ({marks}) AND due_at <= ? "
        "ORDER BY event_n LIMIT ?) RETURNING rowid",
        (until, *targets, now, limit),
    ).fetchall()
    if not claimed:
        return []
    rowids = [row[0] for row in claimed]
    rows = db.execute(
        f"SELECT {codec.OUTBOX_COLUMNS} FROM {codec.OUTBOX_JOIN} "
        f"WHERE o.rowid IN ({', '.join('?' for _ in rowids)}) ORDER BY o.event_n, o.target",
        rowids,
    ).fetchall()
    return codec.outbox_items(rows, _from_text)


def _outbox_done(db: sqlite3.Connection, items: list[tuple[int, str]]) -> None:
    db.executemany(sql.OUTBOX_DONE, items)


def _outbox_retry(db: sqlite3.Connection, items: list[tuple[str, int, str]]) -> None:
    db.executemany(sql.OUTBOX_RETRY, items)


def _forget_events(db: sqlite3.Connection, before: str) -> int:
    return db.execute(sql.FORGET_EVENTS, (before,)).rowcount


def _add_feedback(
    db: sqlite3.Connection, params: tuple[str, ...], event_rows: list[tuple[Any, ...]]
) -> None:
    if not db.execute(sql.INSERT_FEEDBACK_IF_EXISTS, params).fetchall():
        raise UnknownConversation(params[0])
    _insert_events(db, params[0], event_rows)


def _exclude(db: sqlite3.Connection, conversation_id: str, seq: int) -> None:
    """Mark an earlier message out of context (a refused turn)."""
    if not db.execute(sql.EXCLUDE, (conversation_id, seq)).fetchall():
        raise LookupError(f"conversation {conversation_id} has no message {seq}")


def _receive(db: sqlite3.Connection, claim: tuple[str, ...], row: tuple[str, ...]) -> bool:
    if not db.execute(sql.RECEIVE, claim).fetchall():
        return False
    db.execute(sql.INBOX, row)
    return True


def _take_received(db: sqlite3.Connection, event: tuple[str, ...]) -> bool:
    return bool(db.execute(sql.TAKE_RECEIVED, event).fetchall())


def _reply_shown(db: sqlite3.Connection, params: tuple[Any, ...]) -> None:
    db.execute(sql.REPLY_SHOWN, params)


def _shown(db: sqlite3.Connection, event: tuple[str, str]) -> ShownReply | None:
    rows = db.execute(sql.SHOWN, event).fetchall()
    return ShownReply(rows[0][0], bool(rows[0][1])) if rows else None


def _pending(db: sqlite3.Connection, before: str) -> list[Inbound]:
    return codec.received(db.execute(sql.PENDING, (before,)).fetchall())


def _unclaimed(db: sqlite3.Connection, claim: tuple[str, ...]) -> None:
    """After `sql.CLAIM` inserted nothing: return if the event was handled before, else the
    conversation is unknown (a handled event wins, as if checked first)."""
    platform, event_id, _, conversation_id = claim
    if not db.execute(sql.CLAIMED, (platform, event_id)).fetchall():
        raise UnknownConversation(conversation_id)


def _insert_messages(
    db: sqlite3.Connection, conversation_id: str, rows: list[tuple[Any, ...]]
) -> None:
    """Append after the conversation's last message, in order."""
    if len(rows) == 1:
        db.execute(sql.INSERT_MESSAGE, (conversation_id, *rows[0]))
    elif rows:
        db.executemany(sql.INSERT_MESSAGE, [(conversation_id, *row) for row in rows])


def _insert_events(
    db: sqlite3.Connection,
    conversation_id: str,
    rows: list[tuple[Any, ...]],
    statement: str = sql.INSERT_EVENT,
) -> int:
    """Insert `codec.event_rows`, queueing each in the outbox for its targets; how many
    went in."""
    if not rows:
        return 0
    if len(rows) > 1 and not codec.queued(rows):
        return db.executemany(statement, [(conversation_id, *row[:4]) for row in rows]).rowcount
    inserted = 0
    for row in rows:
        cursor = db.execute(statement, (conversation_id, *row[:4]))
        if cursor.rowcount == 1:
            inserted += 1
            db.executemany(sql.QUEUE, [(cursor.lastrowid, target, row[1]) for target in row[4]])
    return inserted


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


def _connect(path: str, migrations: Sequence[Migration]) -> sqlite3.Connection:
    """Open, tune and migrate the database; runs on the store's thread.

    Autocommit (isolation_level=None): migrations and `batches.run_batch` begin and end their
    transactions themselves, so sqlite3 never opens one behind their back.
    check_same_thread=False only because a cancelled `open` closes the connection from the
    event loop's thread, after the store's thread has gone.
    """
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the database {path}: {exc}") from exc
    try:
        _configure(db, path)
        migrate(db, migrations)
    except BaseException:
        db.close()
        raise
    return db


def _configure(db: sqlite3.Connection, path: str) -> None:
    mode = str(db.execute("PRAGMA journal_mode = WAL").fetchall()[0][0]).lower()
    if path != ":memory:" and mode != "wal":
        log.warning("database %s stays in %s journal mode (WAL unavailable)", path, mode)
    db.execute("PRAGMA foreign_keys = ON")
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA synchronous = NORMAL")


# --- rows and values -----------------------------------------------------------------------


def _to_text(at: datetime) -> str:
    """Fixed-width UTC ISO-8601, so text order is time order in SQL comparisons."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: the store takes timezone-aware times")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _from_text(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    # The store writes "+00:00", which fromisoformat already gives as UTC itself.
    return at if at.tzinfo is UTC else at.astimezone(UTC)


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


def _receipt_params(inbound: Inbound, at: datetime) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`_receive`'s: the event's claim, and its message's inbox row."""
    claim = _claim_params("", inbound, at)[:3]
    row = (*claim[:2], inbound.key.place, inbound.user_id, inbound.text)
    files = codec.files_json(inbound.files)
    return claim, (*row, inbound.message_id, claim[2], inbound.community, files)


def _claim_params(conversation_id: str, inbound: Inbound, at: datetime) -> tuple[str, ...]:
    if not inbound.event_id:
        raise ValueError("inbound.event_id is empty; adapters must give every event an id")
    return (inbound.key.platform, inbound.event_id, _to_text(at), conversation_id)


def _conversation(row: Any) -> Conversation:
    """A row of `sql.CONVERSATION_COLUMNS`."""
    return codec.conversation(row, _from_text)


def _purge_text(db: sqlite3.Connection, before: str) -> Purged:
    return Purged(
        messages=db.execute(sql.PURGE_MESSAGES, (before,)).rowcount,
        feedback=db.execute(sql.PURGE_FEEDBACK, (before,)).rowcount,
        events=db.execute(sql.PURGE_EVENTS, (before,)).rowcount,
        pending=db.execute(sql.PURGE_INBOX, (before,)).rowcount,
    )


def _forget_user(
    db: sqlite3.Connection, platform: str, user_id: str, event_row: tuple[Any, ...]
) -> Purged:
    who = (platform, user_id)
    touched = [row[0] for row in db.execute(sql.TOUCHED, who).fetchall()]
    replies = db.execute(sql.FORGET_REPLIES, who).rowcount
    messages = db.execute(sql.FORGET_MESSAGES, who).rowcount
    feedback = db.execute(sql.FORGET_FEEDBACK, who).rowcount
    pending = db.execute(sql.FORGET_INBOX, who).rowcount
    db.execute(sql.FORGET_NOTICES, who)
    events = db.execute(sql.FORGET_EVENT_TEXT, who).rowcount
    for conversation_id in touched:
        _insert_events(db, conversation_id, [event_row])
    return Purged(replies + messages, feedback, events, pending)


def _person(db: sqlite3.Connection, platform: str, user_id: str) -> PersonRecord:
    who = (platform, user_id)
    conversations = [_conversation(row) for row in db.execute(sql.PERSON_CONVERSATIONS, who)]
    rows = db.execute(sql.PERSON_MESSAGES, who).fetchall()
    messages = _messages([row[1:] for row in rows])
    feedback = [
        (row[0], row[1], _from_text(row[2])) for row in db.execute(sql.PERSON_FEEDBACK, who)
    ]
    return PersonRecord(
        conversations,
        [(row[0], message) for row, message in zip(rows, messages, strict=True)],
        feedback,
        codec.received(db.execute(sql.PERSON_WAITING, who).fetchall()),
    )


def _awaiting(
    db: sqlite3.Connection, query: str, platform: str | None, limit: int, community: str | None
) -> list[Conversation]:
    rows = db.execute(query, (platform, limit, community)).fetchall()
    return [_conversation(row[:-1]) for row in rows]


def _disputed(
    db: sqlite3.Connection, platform: str | None, limit: int, community: str | None
) -> list[tuple[Conversation, str]]:
    rows = db.execute(sql.DISPUTED_SHUT_OUTS, (platform, limit, community)).fetchall()
    return [(_conversation(row[:-2]), str(row[-2])) for row in rows]


def _daily_activity(db: sqlite3.Connection, params: tuple[str, ...]) -> list[tuple[str, str, int]]:
    return [(str(day), str(series), int(n)) for day, series, n in db.execute(sql.DAILY, params)]


def _review_decisions(db: sqlite3.Connection, since: str) -> dict[str, int]:
    return {
        str(decision): int(count) for decision, count in db.execute(sql.REVIEW_DECISIONS, (since,))
    }


def _community_settings(
    db: sqlite3.Connection, platform: str, community: str
) -> CommunitySettings | None:
    rows = db.execute(sql.COMMUNITY, (platform, community)).fetchall()
    return CommunitySettings.from_json(rows[0][0]) if rows else None


def _set_community(db: sqlite3.Connection, values: tuple[str, ...]) -> None:
    db.execute(sql.SET_COMMUNITY, values)


def _communities(db: sqlite3.Connection, platform: str | None) -> list[CommunityRecord]:
    return [
        CommunityRecord(p, c, CommunitySettings.from_json(settings), _from_text(at), by)
        for p, c, settings, at, by in db.execute(sql.COMMUNITIES, (platform,))
    ]


# --- rows: the shared codec (bot/store/rows.py) with this backend's time format ----------


def _message_values(message: NewMessage) -> tuple[Any, ...]:
    return codec.message_values(message, _to_text)


def _message_rows(messages: Sequence[NewMessage]) -> list[tuple[Any, ...]]:
    return codec.message_rows(messages, _to_text)


def _messages(found: Sequence[Any]) -> list[StoredMessage]:
    return codec.messages(found, _from_text)
