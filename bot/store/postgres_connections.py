"""The PostgreSQL store's connections: what counts as the server gone (said once, and once
when it is back), calls batched into one round trip, and the conversations' advisory
locks on a connection they share."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import asyncpg

from bot.conversation import Inbound
from bot.ports import AtPlace, DatabaseUnavailable
from bot.store import postgres_rows as pg
from bot.store.sqlite import StoreError

# The store's own name, so that its lines read as one store's whichever module says them.
log = logging.getLogger("bot.store.postgres")
_Item = TypeVar("_Item")
_Answer = TypeVar("_Answer")

# Connecting failed for a reason that may pass (no route or name yet, the server still
# starting up); a refused password or a missing database will not.
UNREACHABLE = (OSError, TimeoutError, asyncpg.CannotConnectNowError)

CONNECTION_LOST = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,  # the server is starting up or shutting down
)


class Outage:
    """Whether PostgreSQL answers: one line when it goes away and one when it is back, not a
    traceback for every call that fails meanwhile."""

    def __init__(self) -> None:
        self.away = False

    def lost(self, exc: BaseException) -> DatabaseUnavailable:
        if not self.away:
            self.away = True
            log.error(
                "PostgreSQL went away (%s): nothing can be kept or answered until it is back",
                pg.why(exc),
            )
        return DatabaseUnavailable(f"PostgreSQL does not answer: {pg.why(exc)}")

    def answered(self) -> None:
        if self.away:
            self.away = False
            log.info("PostgreSQL is back")


class PoolFloor(logging.Filter):
    """asyncpg's pool logs a traceback each time it fails to reconnect its idle connections
    (retrying after 1, 2, 4... up to 60 seconds) while the server is away: that is the
    outage, said once."""

    def __init__(self, outage: Outage) -> None:
        super().__init__()
        self._outage = outage

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if "pool connection floor" in str(record.msg) and isinstance(error, CONNECTION_LOST):
            self._outage.lost(error)
            return False
        return True


_LOCK = "SELECT pg_advisory_lock($1)"
_UNLOCK = "SELECT pg_advisory_unlock($1)"
# Takes (true) or gives back (false) each lock in turn, for every turn that asked while the
# shared connection was busy: one round trip for all of them. A take for a turn's message
# ($3..$6 its platform, place, event id and community; NULL for none) also reads what the
# turn starts from once taken: its rows are postgres_sql.AT_PLACES's, ending with `held`
# (migration 9; a row at least for each lock).
_LOCK_AND_READ = "SELECT * FROM quitbot_conversation_locks($1, $2, $3, $4, $5, $6)"
# Not taken (False), taken (True), or taken with what the turn starts from.
_Granted = bool | AtPlace
# A lock asked of the shared connection: its number, take it or give it back, the message
# whose turn it is for (to read with it), and who waits for the answer.
_Asked = tuple[int, bool, Inbound | None, asyncio.Future[_Granted] | None]


async def keep_session(db: asyncpg.Connection) -> None:
    """Pooled connections hold no session state of ours (locks live elsewhere), so a
    connection going back to the pool needs no RESET ALL round trip; asyncpg still rolls
    back a transaction left open."""


class Batched(Generic[_Item, _Answer]):
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


class AdvisoryLocks:
    """`SharedLock` by PostgreSQL session-level advisory locks (see PostgresStore).

    Tries and releases go over one shared connection, batched: what turns ask while a round
    trip is under way goes together in the next one.
    """

    def __init__(self, url: str, waiters: int, outage: Outage) -> None:
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
        except CONNECTION_LOST as exc:
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
            with contextlib.suppress(*CONNECTION_LOST):  # the lock went with the session
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
        if given_back and not isinstance(exc, CONNECTION_LOST):
            # A lost connection let its locks go with it (and was said); anything else is news.
            log.error("could not give back conversation locks: %s", pg.why(exc))

    async def _trip(self, batch: list[_Asked]) -> list[_Granted | BaseException]:
        """Each asked lock's answer, or the error that kept it from one."""
        try:
            return _granted(batch, await self._fetch(batch))
        except CONNECTION_LOST:
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
                _LOCK_AND_READ, *pg.columns([_lock_row(asked) for asked in batch], 6)
            )
        except CONNECTION_LOST:
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
    columns = pg.columns([_lock_row(asked)], 6)
    columns[1] = [None]  # wait
    granted = _granted([asked], await own.fetch(_LOCK_AND_READ, *columns))[0]
    return granted if isinstance(granted, AtPlace) else None


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
        batch, itertools.groupby(rows, key=pg.first), strict=True
    ):
        place = list(group)
        held = bool(place[0]["held"])
        answers.append(pg.at_place(place) if held and inbound is not None else held)
    return answers
