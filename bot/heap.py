"""Freed heap given back to the system once the bot is quiet: glibc's `malloc_trim(0)`.

A burst of turns raises the C heap's high-water mark, and glibc keeps what was freed inside
the heap for later (only its top goes back by itself). Over 20,000 conversations the second
pass left glibc holding 2-4 MB more free bytes with its bytes in use flat (bench/README.md,
"Issue 22, third round"). `malloc_trim(0)` hands whole free pages anywhere in the heap back
(`madvise`), in about 0.4 ms for a 40 MB heap, so it runs only once nothing is under way:
never on a turn's path, at most once per quiet spell. Other C libraries (musl, macOS) have
no such call and keep what they keep.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
from collections.abc import Callable

QUIET_SECONDS = 1.0  # nothing under way for this long: the burst is over, for now


def glibc_trim() -> Callable[[], object] | None:
    """glibc's `malloc_trim(0)`, or None where the C library is not glibc."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        trim = ctypes.CDLL(None).malloc_trim
    except (ValueError, OSError, AttributeError):  # not glibc, or no such symbol
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


class Quiet:
    """Gives freed heap back once nothing has been under way for `after` seconds.

    `settled()` is called when the work ran dry; `busy()` says whether any is under way
    now. The give-back runs from the loop's timer, never from the caller, and not if work
    came back meanwhile (the next time it runs dry arms it again)."""

    def __init__(
        self,
        busy: Callable[[], bool],
        give_back: Callable[[], object] | None,
        after: float = QUIET_SECONDS,
    ) -> None:
        self._busy, self._give_back, self._after = busy, give_back, after
        self._timer: asyncio.TimerHandle | None = None
        self.given = 0  # how many times the heap was given back

    def settled(self) -> None:
        if self._give_back is None or self._timer is not None:
            return
        self._timer = asyncio.get_running_loop().call_later(self._after, self._quiet)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _quiet(self) -> None:
        self._timer = None
        if self._give_back is not None and not self._busy():
            self._give_back()
            self.given += 1
