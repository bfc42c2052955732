"""Retention on a schedule: purge at once, then every interval, surviving a failed purge."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.ports import Purged
from bot.retention import RETENTION_INTERVAL, keep_purging

NOW = datetime(2026, 6, 1, tzinfo=UTC)


class CountingStore:
    def __init__(self, fail_first: bool = False) -> None:
        self.cutoffs: list[datetime] = []
        self.fail_first = fail_first

    async def purge_text(self, before: datetime) -> Purged:
        self.cutoffs.append(before)
        if self.fail_first and len(self.cutoffs) == 1:
            raise RuntimeError("database is locked")
        return Purged(messages=1)


async def test_purges_now_then_every_interval_until_cancelled() -> None:
    store = CountingStore(fail_first=True)
    waits: list[float] = []

    async def wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await keep_purging(store, 30, RETENTION_INTERVAL, clock=lambda: NOW, wait=wait)  # type: ignore[arg-type]
    assert store.cutoffs == [NOW - timedelta(days=30)] * 3  # the failed one was tried again
    assert waits == [3600.0] * 3
