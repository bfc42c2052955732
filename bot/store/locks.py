"""One turn at a time per conversation, in this process and across processes.

Every store serialises in two steps: an in-process `asyncio.Lock` per conversation key (the
fast path, and what keeps a second coroutine of this process off the shared lock), then a
lock that other processes see: an advisory lock in PostgreSQL, a byte-range lock on a file
next to a SQLite database. Both kinds are dropped by the server or the kernel when the
process holding them dies, so a SIGKILLed process leaves no conversation locked.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import struct
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bot.conversation import ConversationKey, Inbound
from bot.ports import AtPlace

log = logging.getLogger(__name__)


def lock_number(key: ConversationKey) -> int:
    """A stable signed 64-bit number for `key`, the same in every process and version.

    A collision only makes two conversations wait for each other now and then.
    """
    digest = hashlib.blake2b(
        f"{key.platform}\x00{key.place}".encode(), digest_size=8, person=b"quitbot-lock"
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


class SharedLock(Protocol):
    """A lock on a number that other processes see.

    `try_now` and `release_now` are the fast path where no I/O is needed (a system call on
    a lock file): True when done at once, False to fall back to the awaitable form.
    `acquire` given the message a turn is for may read what the turn starts from in the
    same round trip, once the lock is held (`Store.at_place`); None when it did not.
    """

    def try_now(self, number: int) -> bool: ...

    def release_now(self, number: int) -> bool: ...

    async def acquire(self, number: int, inbound: Inbound | None = None) -> AtPlace | None: ...

    async def release(self, number: int) -> None: ...


@dataclass(slots=True)
class _KeyLock:
    """One key's lock, and how many are holding or waiting for it; dropped at 0."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class KeyedLocks:
    """Per-conversation serialisation: in-process first, then `shared` across processes.

    Only one coroutine per key of this process ever waits on the shared lock, so what it
    costs is paid once per turn, never per waiter.
    """

    def __init__(self, shared: SharedLock | None = None) -> None:
        self._held: dict[ConversationKey, _KeyLock] = {}
        self._shared = shared
        self._undoing: set[asyncio.Task[None]] = set()  # referenced until done

    def __len__(self) -> int:
        """Keys held or waited for now (0 when idle: nothing stays behind)."""
        return len(self._held)

    @asynccontextmanager
    async def hold(self, key: ConversationKey) -> AsyncIterator[None]:
        async with self._hold(key, None):
            yield

    @asynccontextmanager
    async def hold_at(
        self, inbound: Inbound, at_place: Callable[[Inbound], Awaitable[AtPlace]]
    ) -> AsyncIterator[AtPlace]:
        """Hold `inbound`'s conversation, giving what its turn starts from: as the shared
        lock read it, else `at_place` asked once held."""
        async with self._hold(inbound.key, inbound) as read:
            yield read if read is not None else await at_place(inbound)

    @asynccontextmanager
    async def _hold(
        self, key: ConversationKey, inbound: Inbound | None
    ) -> AsyncIterator[AtPlace | None]:
        """Hold `key`; what `inbound`'s turn starts from if the shared lock read it."""
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = _KeyLock()
        held.users += 1
        try:
            await held.lock.acquire()
        except BaseException:
            self._leave(key, held)
            raise
        if self._shared is None:  # in-process only (an in-memory database)
            try:
                yield None
            finally:
                self._leave(key, held, locked=True)
            return
        number = lock_number(key)
        try:
            taken = self._shared.try_now(number)
        except BaseException:
            self._leave(key, held, locked=True)
            raise
        if taken:
            try:
                yield None
            finally:
                try:
                    if not self._shared.release_now(number):
                        await asyncio.shield(self._shared.release(number))
                finally:
                    self._leave(key, held, locked=True)
            return
        acquiring = asyncio.ensure_future(self._shared.acquire(number, inbound))
        try:
            read = await asyncio.shield(acquiring)
        except asyncio.CancelledError:
            # The shared lock may be granted a moment later. Until that is undone, this
            # process keeps the key: another holder here would share the grant (one open
            # file, one session) and lose it to the undo.
            self._undo_later(key, held, number, acquiring)
            raise
        except BaseException:
            self._leave(key, held, locked=True)
            raise
        try:
            yield read
        finally:
            try:
                # Shielded: a turn cancelled by shutdown must still let the others go.
                if not self._shared.release_now(number):
                    await asyncio.shield(self._shared.release(number))
            finally:
                self._leave(key, held, locked=True)

    def _leave(self, key: ConversationKey, held: _KeyLock, *, locked: bool = False) -> None:
        if locked:
            held.lock.release()
        held.users -= 1
        if held.users == 0:
            del self._held[key]

    def _undo_later(
        self,
        key: ConversationKey,
        held: _KeyLock,
        number: int,
        acquiring: asyncio.Future[AtPlace | None],
    ) -> None:
        shared = self._shared
        assert shared is not None

        async def undo() -> None:
            try:
                await acquiring
                await shared.release(number)
            except Exception:
                log.exception("could not give back a conversation lock after a cancel")
            finally:
                self._leave(key, held, locked=True)

        task = asyncio.ensure_future(undo())
        self._undoing.add(task)  # the loop holds tasks only weakly
        task.add_done_callback(self._undoing.discard)


# --- between processes on one host: byte-range locks on a file ------------------------------

# Open-file-description locks (Linux): owned by the open file, not the process, so two
# stores in one process exclude each other like two processes do, and no deadlock detection
# reports false cycles between unrelated conversations. Elsewhere, POSIX record locks.
_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)
_OFD_SETLKW: int | None = getattr(fcntl, "F_OFD_SETLKW", None)
_BUSY = {errno.EAGAIN, errno.EACCES}


def _offset(number: int) -> int:
    """The lock file byte for `number`: non-negative, and far from off_t's end."""
    return number & (2**62 - 1)


def _ofd_request(kind: int, offset: int) -> bytes:
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (must be 0 for OFD locks).
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, offset, 1, 0)


class FileLocks:
    """`SharedLock` for processes on one host: one byte of a lock file per number.

    The kernel drops the locks of a process that dies. A lock that is free costs one system
    call; a busy one is waited for on a thread of its own (daemon, so a wait that never ends
    cannot keep the process from exiting).
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def open(cls, path: Path) -> FileLocks:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        return cls(fd)

    def close(self) -> None:
        """Close the lock file, dropping every lock still held through it."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def try_now(self, number: int) -> bool:
        return self._try(_offset(number))

    def release_now(self, number: int) -> bool:
        if self._fd < 0:
            return True  # closed: the lock went with the file
        offset = _offset(number)
        if _OFD_SETLK is not None:
            fcntl.fcntl(self._fd, _OFD_SETLK, _ofd_request(fcntl.F_UNLCK, offset))
        else:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, offset)
        return True

    async def acquire(self, number: int, inbound: Inbound | None = None) -> AtPlace | None:
        offset = _offset(number)
        if not self._try(offset):
            await _in_daemon_thread(lambda: self._wait(offset))
        return None

    async def release(self, number: int) -> None:
        self.release_now(number)

    def _try(self, offset: int) -> bool:
        try:
            if _OFD_SETLK is not None:
                fcntl.fcntl(self._fd, _OFD_SETLK, _ofd_request(fcntl.F_WRLCK, offset))
            else:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
        except OSError as exc:
            if exc.errno in _BUSY:
                return False
            raise
        return True

    def _wait(self, offset: int) -> None:
        if _OFD_SETLKW is not None:
            fcntl.fcntl(self._fd, _OFD_SETLKW, _ofd_request(fcntl.F_WRLCK, offset))
            return
        while True:
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, offset)
                return
            except OSError as exc:
                # POSIX locks belong to the process, so the kernel may see a cycle that
                # is not one (our other coroutines hold other conversations): wait again.
                if exc.errno != errno.EDEADLK:
                    raise


async def _in_daemon_thread(wait: Callable[[], None]) -> None:
    """Run a blocking `wait` on a daemon thread; if our caller is cancelled first, the lock
    it then gets is given back (`KeyedLocks.hold` shields this)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.cancelled():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            wait()
        except BaseException as exc:
            error = exc
        # A closed loop raises RuntimeError: the process is ending, and so is its need.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, name="quitbot-lock-wait", daemon=True).start()
    await done
