"""Issue 22: in HTTP mode people's messages are kept and acknowledged by a listener on a
thread of its own, and handed to the inbox's lines on the turns' loop, in the order Slack
delivered them per thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import aiohttp
import pytest

from bot.app import engine_config
from bot.conversation import ConversationKey, Inbound
from bot.engine import Engine, Reception
from bot.ports import DatabaseUnavailable
from platforms.slack.inbox import Door
from platforms.slack.place import Deps, SlackPlaces
from platforms.slack.translate import Place, SlackMessage, thread_key
from tests.fakes.anthropic import text
from tests.fakes.slack_requests import event_callback, mention, message
from tests.platforms.slack.conftest import SlackHarness, receipts_fail_once, recorded

THREAD = "1700000100.000100"
LISTENER = "quitbot-slack-listener"


async def started(harness: SlackHarness) -> None:
    """A first mention, through Bolt: the bot learns its user id, so what follows takes the
    listener's own way."""
    await harness.send.event(event_callback(mention("hi", ts=THREAD)))
    await harness.settle()


def follow_up(n: int, thread: str = THREAD) -> dict[str, Any]:
    return event_callback(message(f"m{n}", ts=f"{thread[:-3]}{n + 200:03d}", thread_ts=thread))


async def test_the_listener_serves_from_a_thread_of_its_own(harness: SlackHarness) -> None:
    assert LISTENER in [t.name for t in threading.enumerate()]
    harness.claude.add(text("First."), text("Second."))
    await started(harness)
    assert (await harness.send.event(follow_up(1))).status == 200
    assert await recorded(harness, THREAD) == ["hi", "First.", "m1", "Second."]


async def test_a_thread_answered_once_needs_no_lookup_for_its_next_message(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the turns' loop learns (this thread holds a conversation) reaches the door the
    next message comes through, the listener's; it was once taught to Bolt's door alone,
    so every follow-up cost a store lookup and each thread was remembered twice."""
    harness.claude.add(text("First."), text("Second."), text("Third."))
    await started(harness)
    assert (await harness.send.event(follow_up(1))).status == 200
    await harness.settle()
    lookups: list[ConversationKey] = []
    in_use = Reception.in_use

    async def counted(reception: Reception, key: ConversationKey) -> bool:
        lookups.append(key)
        return await in_use(reception, key)

    monkeypatch.setattr(Reception, "in_use", counted)
    assert (await harness.send.event(follow_up(2))).status == 200
    assert await recorded(harness, THREAD) == ["hi", "First.", "m1", "Second.", "m2", "Third."]
    assert lookups == []
    door = harness.bot.inbox.listener_door
    assert door is not None and thread_key("C0GENERAL", THREAD).place in door.known
    assert len(harness.bot.inbox.door.known) == 0


async def test_a_message_acknowledged_is_in_the_store(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 200 means kept: a run that dies right after it leaves the message to the next."""
    harness.claude.add(text("First."))
    await started(harness)
    never = asyncio.Event()

    async def unanswered(*_: object) -> None:
        await never.wait()

    monkeypatch.setattr(harness.bot.inbox, "_answer", unanswered)
    assert (await harness.send.event(follow_up(1))).status == 200
    rt = harness.runtime
    later_run = Engine(rt.store, rt.model, engine_config(rt.settings))
    assert [(i.event_id, i.text) for i in await later_run.pending()] == [
        (f"C0GENERAL:{THREAD[:-3]}201", "m1")
    ]
    await harness.bot.drain(0)  # the run dies


async def test_a_replay_is_kept_and_answered_once(harness: SlackHarness) -> None:
    harness.claude.add(text("First."), text("Second."))
    harness.claude.default = text("Never sent.")
    await started(harness)
    payload = follow_up(1)
    first, again = await asyncio.gather(
        harness.send.event(payload), harness.send.event(payload, retry_num=1)
    )
    later = await harness.send.event(payload, retry_num=2)
    assert (first.status, again.status, later.status) == (200, 200, 200)
    assert await recorded(harness, THREAD) == ["hi", "First.", "m1", "Second."]


async def test_the_database_away_is_a_503_and_the_retry_is_kept(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.claude.add(text("First."), text("Kept after all."))
    await started(harness)
    receipts_fail_once(monkeypatch, DatabaseUnavailable("the database does not answer"))
    payload = follow_up(1)
    assert (await harness.send.event(payload)).status == 503  # Slack sends it again
    assert (await harness.send.event(payload, retry_num=1)).status == 200
    assert (await recorded(harness, THREAD))[-2:] == ["m1", "Kept after all."]


async def test_shutdown_lets_messages_in_flight_be_kept_and_answered(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopping the listener while a message is being kept: its request is still answered
    200, the message is handed over before the thread ends, and the drain answers it."""
    harness.claude.add(text("First."), text("Answered while stopping."))
    await started(harness)
    keep = Reception.receive
    entered: concurrent.futures.Future[None] = concurrent.futures.Future()
    release: concurrent.futures.Future[None] = concurrent.futures.Future()

    async def held(reception: Reception, inbound: Inbound) -> bool:
        entered.set_result(None)  # on the listener's thread
        await asyncio.wrap_future(release)
        return await keep(reception, inbound)

    monkeypatch.setattr(Reception, "receive", held)
    sending = asyncio.create_task(harness.send.event(follow_up(1)))
    await asyncio.wrap_future(entered)
    stopping = asyncio.create_task(harness.serving.cleanup())
    release.set_result(None)
    assert (await sending).status == 200
    await stopping
    assert LISTENER not in [t.name for t in threading.enumerate()]
    await harness.settle()
    conversation = await harness.runtime.engine.find(thread_key("C0GENERAL", THREAD))
    assert conversation is not None
    messages, _ = await harness.runtime.engine.record(conversation.id)
    assert [m.text for m in messages][-2:] == ["m1", "Answered while stopping."]


async def test_many_threads_interleaved_keep_their_order(harness: SlackHarness) -> None:
    """Twenty threads at once, each person writing on as soon as Slack acknowledged."""
    harness.claude.default = text("ok")
    threads = [f"17000002{t:02d}.000100" for t in range(20)]

    async def talk(thread: str) -> None:
        await harness.send.event(event_callback(mention("m0", ts=thread)))
        for n in range(1, 8):
            assert (await harness.send.event(follow_up(n, thread))).status == 200

    await asyncio.gather(*(talk(thread) for thread in threads))
    await harness.settle()
    for thread in threads:
        conversation = await harness.runtime.engine.find(thread_key("C0GENERAL", thread))
        assert conversation is not None
        messages, _ = await harness.runtime.engine.record(conversation.id)
        said = [m.text for m in messages if m.role == "user"]
        assert said == [f"m{n}" for n in range(8)]


# --- the door on its own: hand-over order when keeping finishes out of order -----------------


class Keeping:
    """Keeps each message once the test lets it, in whatever order the test chooses."""

    def __init__(self, expected: int) -> None:
        self.gates: dict[str, asyncio.Event] = {}
        self.all_in, self._expected = asyncio.Event(), expected

    async def receive(self, inbound: Inbound) -> bool:
        gate = self.gates[inbound.event_id] = asyncio.Event()
        if len(self.gates) == self._expected:
            self.all_in.set()
        await gate.wait()
        return True

    async def in_use(self, key: ConversationKey) -> bool:
        return True


def said(n: int, thread: int) -> SlackMessage:
    thread_ts = f"1700000{thread:03d}.000000"
    return SlackMessage(
        "C1", f"1700000{thread:03d}.{n:06d}", thread_ts, "U1", "T1", f"t{thread} m{n}",
        Place.CHANNEL, mentioned=False, threaded=True,
    )  # fmt: skip


async def test_a_door_hands_over_in_arrival_order_per_thread(
    harness: SlackHarness,
) -> None:
    """Keeping the later messages first does not let them overtake: each thread's are
    handed over in the order they arrived, as soon as every earlier one is settled."""
    arrived = [said(n, t) for n in range(4) for t in range(3)]  # threads interleaved
    keeping, handed = Keeping(len(arrived)), list[tuple[str, bool]]()
    places = SlackPlaces(Deps(harness.bot.deps.settings, harness.bot.deps.client))
    door = Door(places, keeping, lambda m, first: handed.append((m.text, first)))
    receiving = [asyncio.create_task(door.receive(m)) for m in arrived]
    await keeping.all_in.wait()
    for m in reversed(arrived):  # kept last first
        keeping.gates[m.event_id].set()
    assert all(await asyncio.gather(*receiving))
    for t in range(3):
        assert [text for text, _ in handed if text.startswith(f"t{t} ")] == [
            f"t{t} m{n}" for n in range(4)
        ]


async def test_shutdown_in_a_burst_answers_every_message_acknowledged(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages handed over together (one wake of the turns' loop for many) are all there
    when the listener stops in the middle of a burst: each acknowledged is answered once,
    in its thread's order."""
    harness.claude.default = text("ok")
    threads = [f"17000003{t:02d}.000100" for t in range(10)]
    for thread in threads:
        await harness.send.event(event_callback(mention("m0", ts=thread)))
    await harness.settle()
    keep, kept, halfway = Reception.receive, list[str](), concurrent.futures.Future[None]()

    async def counted(reception: Reception, inbound: Inbound) -> bool:
        was_kept = await keep(reception, inbound)
        kept.append(inbound.event_id)  # on the listener's thread
        if len(kept) == 25:
            halfway.set_result(None)
        return was_kept

    monkeypatch.setattr(Reception, "receive", counted)
    acknowledged = 0

    async def talk(thread: str) -> None:  # each message once the one before is acknowledged
        nonlocal acknowledged
        for n in range(1, 9):
            try:
                if (await harness.send.event(follow_up(n, thread))).status != 200:
                    return
            except aiohttp.ClientError:
                return  # the listener stopped
            acknowledged += 1

    talking = asyncio.gather(*(talk(thread) for thread in threads))
    await asyncio.wrap_future(halfway)
    await harness.serving.cleanup()
    await talking
    await harness.settle()
    answered = 0
    for thread in threads:
        conversation = await harness.runtime.engine.find(thread_key("C0GENERAL", thread))
        assert conversation is not None
        messages, _ = await harness.runtime.engine.record(conversation.id)
        said = [m.text for m in messages if m.role == "user"]
        assert said == sorted(said, key=lambda t: int(t[1:]))  # in order, none twice
        assert [m.role for m in messages] == ["user", "assistant"] * len(said)
        answered += len(said) - 1
    assert acknowledged >= 25
    assert answered >= acknowledged
