"""Start-up retries: a growing pause, one line per try, and the last failure raised."""

from __future__ import annotations

import logging

import pytest

from bot.retry import pauses, retrying


class Down(Exception):
    pass


def test_the_pause_doubles_up_to_half_a_minute() -> None:
    assert pauses(7) == [1, 2, 4, 8, 16, 30, 30]
    assert pauses(0) == []


async def test_tries_again_until_it_works(caplog: pytest.LogCaptureFixture) -> None:
    slept: list[float] = []
    failures = [Down("no route to host"), Down("name not known")]

    async def attempt() -> str:
        if failures:
            raise failures.pop(0)
        return "connected"

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    caplog.set_level(logging.WARNING, logger="bot.retry")
    assert await retrying("slack", attempt, Down, 5, sleep=sleep) == "connected"
    assert slept == [1, 2]
    assert [r.getMessage() for r in caplog.records] == [
        "slack: no route to host; trying again in 1 s (retry 1 of 5)",
        "slack: name not known; trying again in 2 s (retry 2 of 5)",
    ]
    assert all(r.exc_info is None for r in caplog.records)


async def test_gives_up_after_its_retries_and_never_retries_the_rest() -> None:
    tried: list[int] = []

    async def down() -> None:
        tried.append(1)
        raise Down("still down")

    async def sleep(seconds: float) -> None:
        pass

    with pytest.raises(Down, match="still down"):
        await retrying("database", down, Down, 2, sleep=sleep)
    assert len(tried) == 3

    async def refused() -> None:
        tried.append(1)
        raise ValueError("token refused")

    with pytest.raises(ValueError):
        await retrying("discord", refused, Down, 5, sleep=sleep)
    assert len(tried) == 4
