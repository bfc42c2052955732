"""Retention: message text older than QUITBOT_RETENTION_DAYS is removed, on a schedule
inside `quitbot run` and on demand (`quitbot conversations purge`).

What stays: conversations, their ladder state, the order and authors of their messages,
and audit events with their kinds, reasons, actors, times and ids; what goes: what anyone
wrote (message text and content sent to the model, feedback, notes, explanations).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from bot.ports import Purged, Store

log = logging.getLogger(__name__)

# How often `quitbot run` purges: text lives at most this much longer than the setting says.
RETENTION_INTERVAL = timedelta(hours=1)


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def purge(store: Store, days: int, now: datetime) -> Purged:
    """Remove text older than `days` days before `now`; what was removed."""
    purged = await store.purge_text(now - timedelta(days=days))
    if purged.total:
        log.info(
            "retention: emptied %d messages, %d feedback, %d audit events older than %d days; "
            "dropped %d unhandled messages",
            purged.messages,
            purged.feedback,
            purged.events,
            days,
            purged.pending,
        )
    return purged


async def keep_purging(
    store: Store,
    days: int,
    interval: timedelta,
    *,
    clock: Callable[[], datetime] = _utcnow,
    wait: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Purge now, then every `interval`, until cancelled. A failed purge is logged and
    tried again next time: retention must never stop the bot."""
    while True:
        try:
            await purge(store, days, clock())
        except Exception:
            log.exception("retention: the purge failed; trying again in %s", interval)
        await wait(interval.total_seconds())
