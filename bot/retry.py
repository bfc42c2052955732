"""Start-up retries for `quitbot run`: a network or DNS hiccup at boot (the database or a
platform not reachable yet) is waited out with a growing pause and one log line per try,
instead of ending the process; what cannot pass (a refused token) still ends it at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

LONGEST_PAUSE = 30.0  # seconds; the pause doubles from 1 s up to this


def pauses(retries: int) -> list[float]:
    """The pause before each of `retries` tries after the first: 1, 2, 4, ... 30, 30 s."""
    return [min(2.0**n, LONGEST_PAUSE) for n in range(retries)]


async def retrying(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    passing: type[BaseException] | tuple[type[BaseException], ...],
    retries: int,
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """`attempt()`, tried again after each failure of a `passing` kind, `retries` times at
    most; the last failure is raised."""
    waits = pauses(retries)
    for tried, pause in enumerate(waits, start=1):
        try:
            return await attempt()
        except passing as exc:
            log.warning(
                "%s: %s; trying again in %g s (retry %d of %d)", what, exc, pause, tried, retries
            )
        await sleep(pause)
    return await attempt()
