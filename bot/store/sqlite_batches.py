"""The SQLite store's batches: operations queued on the event loop, each batch run whole on
the store's own thread (one transaction, a savepoint per write), and each operation's
outcome handed back to the loop that awaits it."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

# The store's own name, so that its lines read as one store's whichever module says them.
log = logging.getLogger("bot.store.sqlite")

# A backlog is committed in batches of at most this many operations, so no one transaction
# (and no caller waiting on it) grows without bound.
MAX_BATCH = 256


@dataclass(slots=True)
class Op:
    """One store operation: `call(connection, *args)`, to run on the store's thread.

    The thread reads `call`, `args` and `writes` only; `future` belongs to the event loop.
    """

    call: Callable[..., Any]
    args: tuple[Any, ...]
    writes: bool
    future: asyncio.Future[Any]  # of the store's loop, or of another thread's (`anywhere`)

    def run(self, db: sqlite3.Connection) -> Any:
        return self.call(db, *self.args)


@dataclass(frozen=True, slots=True)
class Failed:
    """What an operation raised; the rest of its batch went on without it."""

    error: BaseException


Outcomes = list[tuple[Op, Any]]


def resolve_all(outcomes: Outcomes) -> None:
    for op, outcome in outcomes:
        _resolve(op.future, outcome)


def _handed_elsewhere(outcomes: Outcomes, home: asyncio.AbstractEventLoop) -> Outcomes:
    """Called on the store's thread: hand the outcomes other threads' loops await to
    those loops, one call into each for all of its own (a wake each, not one a receipt);
    the rest (`home`'s, the store's loop) are returned."""
    rest: Outcomes = []
    elsewhere: dict[asyncio.AbstractEventLoop, Outcomes] = {}
    for op, outcome in outcomes:
        loop = op.future.get_loop()
        if loop is home:
            rest.append((op, outcome))
        else:
            elsewhere.setdefault(loop, []).append((op, outcome))
    for loop, theirs in elsewhere.items():
        try:
            loop.call_soon_threadsafe(resolve_all, theirs)
        except RuntimeError:  # that loop closed: its callers are gone, what they kept is kept
            log.warning("%d receipts' callers were gone when they were kept", len(theirs))
    return rest


def _resolve(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.cancelled():  # the caller gave up after the batch was sent; it ran regardless
        if isinstance(outcome, Failed):
            log.error(
                "a store operation failed after its caller was cancelled", exc_info=outcome.error
            )
    elif isinstance(outcome, Failed):
        future.set_exception(outcome.error)
    else:
        future.set_result(outcome)


# --- batches: each runs whole on the connection's thread -----------------------------------


def run_batch(
    db: sqlite3.Connection,
    batch: list[Op],
    receipts: Waiting,
    report: Callable[[Outcomes], object],
    home: asyncio.AbstractEventLoop,
) -> Outcomes:
    """Run `batch` in order; return each operation run with its result, or `Failed`.

    Receipts that arrive meanwhile (`receipts`, appended to by the event loop) cut in after
    the operation under way: they run, everything so far is committed and handed to
    `report`, and the rest of the batch goes on in a transaction of its own. If a
    transaction fails as a whole (its BEGIN or COMMIT), nothing of it is written and its
    operations fail, with the rest of the batch.
    """
    rest = batch
    while True:
        ran, rest = _run_transaction(db, rest, receipts)
        ran = _handed_elsewhere(ran, home)
        if not rest:
            return ran
        report(ran)


# Receipts waiting, in queues each taken from one side at a time (see `SqliteStore`).
Waiting = Sequence[deque[Op]]


def taken(receipts: Waiting, most: int) -> list[Op]:
    """Up to `most` receipts, each queue's oldest first."""
    ops: list[Op] = []
    for queue in receipts:
        with suppress(IndexError):  # another thread appends, never takes: only `len` is stale
            while len(ops) < most:
                ops.append(queue.popleft())
    return ops


def take_receipts(
    db: sqlite3.Connection,
    receipts: Waiting,
    report: Callable[[Outcomes], object],
    home: asyncio.AbstractEventLoop,
) -> None:
    """The receipts waiting, if a batch has not taken them already, in the order asked
    for: up to MAX_BATCH a transaction, none cutting in ahead of those taken before it."""
    while waiting := taken(receipts, MAX_BATCH):
        ran, _ = _run_transaction(db, waiting, ())
        report(_handed_elsewhere(ran, home))


def _run_transaction(
    db: sqlite3.Connection, ops: list[Op], receipts: Waiting
) -> tuple[Outcomes, list[Op]]:
    """Run `ops` from the front in one transaction until they are done or receipts are
    waiting, then those receipts, and commit: what ran, with its outcomes, and what is left.

    IMMEDIATE takes SQLite's write lock up front, so another process (the CLI) makes us
    wait up to the busy timeout instead of failing half-way through.
    """
    if not any(op.writes for op in ops):
        return [(op, _read_outcome(db, op)) for op in ops], []
    ran: list[Op] = []
    outcomes: list[Any] = []
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            _run_plainly(db, ops, receipts, ran, outcomes)
        except Exception:
            # One raised. A lone one's error is the transaction's (below); else none of it
            # is kept, and those that ran run again, each undoing only its own on error
            # (the rest of `ops` is left for the next transaction).
            if (len(ops) == len(ran) == 1) or not db.in_transaction:  # SQLite rolled back
                raise
            db.execute("ROLLBACK")
            db.execute("BEGIN IMMEDIATE")
            outcomes = [_in_savepoint(db, op) for op in ran]
        db.execute("COMMIT")
    except BaseException as exc:
        # Not raised on: the receipts taken above are known only here, and must be answered.
        with suppress(sqlite3.Error):
            if db.in_transaction:  # SQLite rolls back after some errors by itself
                db.execute("ROLLBACK")
        failed = Failed(exc)
        return [(op, failed) for op in (*ran, *ops[_from_front(ran, ops) :])], []
    return list(zip(ran, outcomes, strict=True)), ops[_from_front(ran, ops) :]


def _from_front(ran: list[Op], ops: list[Op]) -> int:
    """How many of `ops` are in `ran`: its first ones (receipts taken come after them)."""
    count = 0
    while count < len(ran) and count < len(ops) and ran[count] is ops[count]:
        count += 1
    return count


def _run_plainly(
    db: sqlite3.Connection,
    ops: list[Op],
    receipts: Waiting,
    ran: list[Op],
    outcomes: list[Any],
) -> None:
    """`_run_transaction`'s first try: no savepoints. Each operation is added to `ran`
    before it runs, so when one raises, `ran` holds it and all that ran before it."""
    for op in ops:
        ran.append(op)
        outcomes.append(op.run(db))
        if any(receipts):
            break
    while waiting := taken(receipts, MAX_BATCH):
        for op in waiting:
            ran.append(op)
            outcomes.append(op.run(db))


def _read_outcome(db: sqlite3.Connection, op: Op) -> Any:
    try:
        return op.run(db)
    except Exception as exc:
        return Failed(exc)


def _in_savepoint(db: sqlite3.Connection, op: Op) -> Any:
    """Run `op` so that its error undoes its own statements only."""
    db.execute("SAVEPOINT op")
    try:
        result = op.run(db)
    except Exception as exc:
        if not db.in_transaction:  # SQLite rolled it all back (a full disk, say): all fail
            raise
        db.execute("ROLLBACK TO op")
        db.execute("RELEASE op")
        return Failed(exc)
    db.execute("RELEASE op")
    return result
