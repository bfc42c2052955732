"""Per-conversation lines, shared by the adapters: a conversation's items handled one at a
time, in the order they arrived."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

from bot.conversation import ConversationKey

log = logging.getLogger(__name__)
T = TypeVar("T")
Spawn = Callable[[Coroutine[Any, Any, None], str], object]


class Lines(Generic[T]):
    """Per conversation place, items handled one at a time in the order they were added,
    by one task per place that ends when its line is empty.

    A waiting item is only the item: not a task, nor the platform's event objects. In a
    burst, thousands of delivered messages can wait at once, so what each costs in memory
    while it waits is what counts. `spawn` starts a line's task where the adapter tracks
    its work (for shutdown); without it the lines keep their own tasks. `idle` is told of a
    place whose line ran dry, so what the adapter keeps for it while busy can go too.
    """

    def __init__(
        self,
        handle: Callable[[T], Awaitable[None]],
        what: str,
        spawn: Spawn | None = None,
        *,
        idle: Callable[[ConversationKey], None] | None = None,
    ) -> None:
        self._handle, self._what, self._spawn, self._idle = handle, what, spawn, idle
        self._lines: dict[ConversationKey, deque[T]] = {}
        self._workers: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    def __len__(self) -> int:
        """Places with a line now (0 when idle: nothing per place stays behind)."""
        return len(self._lines)

    def add(self, key: ConversationKey, item: T) -> None:
        """Put `item` last in `key`'s line (at once, nothing awaited)."""
        line = self._lines.get(key)
        if line is not None:
            line.append(item)
            return
        line = self._lines[key] = deque((item,))
        work, name = self._work_through(key, line), f"line {key.place}"
        if self._spawn is not None:
            self._spawn(work, name)
            return
        worker = asyncio.get_running_loop().create_task(work, name=name)
        self._workers.add(worker)
        worker.add_done_callback(self._workers.discard)

    def waiting(self, key: ConversationKey) -> Sequence[T]:
        """What is in `key`'s line, the item being handled first."""
        return self._lines.get(key, ())

    async def _work_through(self, key: ConversationKey, line: deque[T]) -> None:
        try:
            while line:
                try:
                    await self._handle(line[0])
                except Exception:
                    log.exception("%s in %s failed", self._what, key.place)
                line.popleft()
        finally:
            # Cancelled (shutdown): those still in line stay kept in the store, for the next
            # run's `answer_pending`.
            del self._lines[key]
            if self._idle is not None:
                self._idle(key)
