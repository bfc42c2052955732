"""The per-conversation lines both adapters keep messages and answers in (no network)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.conversation import ConversationKey
from platforms.lines import Lines

HERE = ConversationKey("discord", "1")
THERE = ConversationKey("discord", "2")


class Answers:
    """Records each answer's start, and lets it finish only when the test says so."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self._go: dict[str, asyncio.Event] = {}
        self._began: dict[str, asyncio.Event] = {}
        self._failing = failing

    def _event(self, table: dict[str, asyncio.Event], item: str) -> asyncio.Event:
        return table.setdefault(item, asyncio.Event())

    async def __call__(self, item: str) -> None:
        self.started.append(item)
        self._event(self._began, item).set()
        await self._event(self._go, item).wait()
        if item in self._failing:
            raise RuntimeError(f"{item} broke")
        self.finished.append(item)

    async def began(self, item: str) -> None:
        await self._event(self._began, item).wait()

    def let(self, item: str) -> None:
        self._event(self._go, item).set()


async def test_one_at_a_time_per_place_in_the_order_added() -> None:
    answers = Answers()
    lines = Lines[str](answers, "answering a message")
    lines.add(HERE, "first")
    lines.add(HERE, "second")
    lines.add(THERE, "elsewhere")
    await answers.began("first")
    await answers.began("elsewhere")  # another place does not wait for this one
    assert answers.started == ["first", "elsewhere"]
    answers.let("second")  # ready early, still not before "first" is done
    await asyncio.sleep(0)
    assert "second" not in answers.started
    answers.let("first")
    await answers.began("second")
    answers.let("elsewhere")
    assert answers.started == ["first", "elsewhere", "second"]


async def test_a_place_whose_line_ran_dry_gets_a_new_one() -> None:
    answers = Answers()
    lines = Lines[str](answers, "answering a message")
    answers.let("first")
    answers.let("later")
    lines.add(HERE, "first")
    await asyncio.wait(set(lines._workers))  # done, and its line gone
    assert answers.finished == ["first"]
    lines.add(HERE, "later")
    await answers.began("later")
    assert answers.started == ["first", "later"]


async def test_a_failed_answer_is_logged_and_the_line_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = Answers(failing=frozenset({"broken"}))
    lines = Lines[str](answers, "answering a message")
    for item in ("broken", "next"):
        answers.let(item)
        lines.add(HERE, item)
    with caplog.at_level(logging.ERROR, logger="platforms.discord.cog"):
        await answers.began("next")
    assert answers.started == ["broken", "next"]
    assert "answering a message in 1 failed" in caplog.text


async def test_a_cancelled_line_leaves_the_rest_for_the_next_run_and_starts_afresh() -> None:
    answers = Answers()
    lines = Lines[str](answers, "answering a message")
    lines.add(HERE, "under way")
    lines.add(HERE, "waiting")  # kept in the store: the next run's answer_pending has it
    await answers.began("under way")
    (worker,) = lines._workers
    worker.cancel()
    await asyncio.wait([worker])
    assert answers.started == ["under way"]
    answers.let("after")
    lines.add(HERE, "after")  # a line of its own, not stuck behind the cancelled one
    await answers.began("after")
    assert answers.started == ["under way", "after"]


async def test_nothing_per_place_outlives_its_line() -> None:
    """Many places, each answered once and then again: once their lines run dry, the lines
    keep nothing of any of them (the memory of 20,000 conversations is not theirs)."""
    places = [ConversationKey("slack", f"C1:{n}.0") for n in range(2000)]
    answers: list[str] = []
    all_answered = asyncio.Event()

    async def answer(item: str) -> None:
        answers.append(item)
        if len(answers) % len(places) == 0:
            all_answered.set()

    lines = Lines[str](answer, "answering")
    for round_ in range(2):
        all_answered.clear()
        for key in places:
            lines.add(key, f"{key.place} {round_}")
        assert len(lines) == len(places)
        await all_answered.wait()  # each line's task ended in the step that answered it
        assert len(lines) == 0
        assert all(lines.waiting(key) == () for key in places)


async def test_a_place_is_told_idle_once_each_time_its_line_runs_dry() -> None:
    """What an adapter keeps for a place while it is busy (Discord: its cached thread) can
    go when its line runs dry, not before: told once per dry run, after the last item."""
    answers = Answers()
    idle: list[tuple[ConversationKey, tuple[str, ...]]] = []
    lines = Lines[str](
        answers, "answering", idle=lambda key: idle.append((key, tuple(lines.waiting(key))))
    )
    lines.add(HERE, "first")
    lines.add(HERE, "second")
    answers.let("first")
    await answers.began("second")
    assert idle == []  # "second" still in line
    answers.let("second")
    await asyncio.wait(set(lines._workers))
    assert idle == [(HERE, ())]  # told once, the line already gone
    answers.let("again")
    lines.add(HERE, "again")
    await asyncio.wait(set(lines._workers))
    assert idle == [(HERE, ()), (HERE, ())]
