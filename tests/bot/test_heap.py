"""Freed heap given back once the bot is quiet (bot/heap.py): when, and only when, nothing
is under way; from the loop's timer, never from a turn (no network)."""

from __future__ import annotations

import asyncio

import pytest

from bot import heap
from bot.heap import Quiet, glibc_trim

WAIT = 5.0  # seconds before a wait fails the test loudly (the timers here are due at once)


async def waited(event: asyncio.Event) -> None:
    async with asyncio.timeout(WAIT):
        await event.wait()


class GiveBack:
    """Records each give-back, and the task it ran in (None: the loop's own callback)."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[object] | None] = []
        self.given = asyncio.Event()

    def __call__(self) -> None:
        self.tasks.append(asyncio.current_task())
        self.given.set()


class Busy:
    """Whether work is under way; each time the question is asked, counted and told."""

    def __init__(self, busy: bool = False) -> None:
        self.busy, self.asked = busy, 0
        self.answered = asyncio.Event()

    def __call__(self) -> bool:
        self.asked += 1
        self.answered.set()
        return self.busy


async def test_given_back_once_settled_from_the_loop_not_the_caller() -> None:
    give_back, busy = GiveBack(), Busy()
    quiet = Quiet(busy, give_back, after=0)
    quiet.settled()
    assert give_back.tasks == []  # not there and then: on the loop's timer
    await waited(give_back.given)
    assert give_back.tasks == [None] and quiet.given == 1


async def test_not_given_back_when_work_came_back_meanwhile() -> None:
    give_back, busy = GiveBack(), Busy(busy=True)
    quiet = Quiet(busy, give_back, after=0)
    quiet.settled()
    await waited(busy.answered)
    assert give_back.tasks == [] and quiet.given == 0
    busy.busy, busy.answered = False, asyncio.Event()
    quiet.settled()  # ran dry again: armed again
    await waited(give_back.given)
    assert quiet.given == 1


async def test_settled_many_times_arms_one_timer() -> None:
    give_back, busy = GiveBack(), Busy()
    quiet = Quiet(busy, give_back, after=0)
    for _ in range(100):
        quiet.settled()
    await waited(give_back.given)
    give_back.given.clear()
    quiet.settled()
    await waited(give_back.given)
    assert busy.asked == 2 and quiet.given == 2


async def test_closed_it_gives_nothing_back() -> None:
    give_back, busy = GiveBack(), Busy()
    quiet = Quiet(busy, give_back, after=0)
    quiet.settled()
    quiet.close()
    later = GiveBack()
    other = Quiet(Busy(), later, after=0)  # a timer armed after the closed one's
    other.settled()
    await waited(later.given)
    assert give_back.tasks == [] and quiet.given == 0


async def test_without_a_give_back_nothing_is_armed() -> None:
    busy = Busy()
    quiet = Quiet(busy, None, after=0)
    quiet.settled()
    assert quiet._timer is None


def test_glibc_s_trim_is_found_here_and_runs() -> None:
    trim = glibc_trim()
    assert trim is not None  # the test machine runs glibc (Debian)
    assert trim() in (0, 1)  # malloc_trim: 1 if memory was given back


def test_no_trim_where_the_c_library_is_not_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_glibc(name: str) -> str:
        raise ValueError(f"unrecognized configuration name {name!r}")  # musl, macOS

    monkeypatch.setattr(heap.os, "confstr", not_glibc)
    assert glibc_trim() is None
