"""Kept messages passed from the listener's thread to the turns' loop, in the order kept.

Each message once woke the turns' loop (`call_soon_threadsafe`): in a burst that was a wake
of a loop already busy, per message (bench/README.md, issue 22, third round). Here one wake
takes every message kept until it runs.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from platforms.slack.translate import SlackMessage

# Hands a kept message to the inbox's lines: True if it starts its thread's conversation.
HandOver = Callable[[SlackMessage, bool], None]


class Handover:
    """`hand_over` from one other thread (the listener's); `take` runs on `turns`, for each
    message in the order handed over, however many were handed over between its wakes."""

    def __init__(self, turns: asyncio.AbstractEventLoop, take: HandOver) -> None:
        self._turns, self._take = turns, take
        self._waiting: deque[tuple[SlackMessage, bool]] = deque()
        self._asked = False  # a wake is scheduled and has not started taking

    def hand_over(self, message: SlackMessage, first: bool) -> None:
        """On the listener's thread: `take(message, first)` soon, on the turns' loop."""
        self._waiting.append((message, first))
        # Read after the append: a wake seen scheduled clears this before it takes
        # anything, so it takes this message too.
        if not self._asked:
            self._asked = True
            self._turns.call_soon_threadsafe(self._take_waiting)

    def _take_waiting(self) -> None:
        self._asked = False  # before taking: a message handed over from now asks again
        waiting = self._waiting
        while waiting:
            self._take(*waiting.popleft())
