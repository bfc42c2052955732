"""An event loop that counts how often other threads woke it (issue 22: hand-offs between
threads are batched, one wake for many)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import Context
from typing import Any


class CountedLoop(asyncio.SelectorEventLoop):
    wakes = 0

    def call_soon_threadsafe(  # type: ignore[override]
        self, callback: Callable[..., object], *args: Any, context: Context | None = None
    ) -> asyncio.Handle:
        self.wakes += 1
        return super().call_soon_threadsafe(callback, *args, context=context)
