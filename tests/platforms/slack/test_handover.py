"""Issue 22, third round: the listener's thread hands kept messages to the turns' loop with
one wake for all those kept until it runs, in the order they were kept."""

from __future__ import annotations

import asyncio
import threading

from platforms.slack.handover import Handover
from platforms.slack.translate import Place, SlackMessage
from tests.wakes import CountedLoop

MESSAGES, THREADS = 300, 7


def kept(n: int) -> SlackMessage:
    thread_ts = f"1700000{n % THREADS:03d}.000000"  # Slack threads interleaved
    return SlackMessage(
        "C1", f"1700000{n % THREADS:03d}.{n:06d}", thread_ts, "U1", "T1", f"m{n}",
        Place.CHANNEL, mentioned=False, threaded=True,
    )  # fmt: skip


def test_messages_kept_while_the_turns_loop_is_busy_arrive_in_order_with_one_wake() -> None:
    loop = CountedLoop()
    taken: list[tuple[str, bool]] = []
    everything = loop.create_future()

    def take(message: SlackMessage, first: bool) -> None:
        taken.append((message.text, first))
        if len(taken) == MESSAGES:
            everything.set_result(None)

    handover = Handover(loop, take)

    def listen() -> None:
        for n in range(MESSAGES):
            handover.hand_over(kept(n), n < THREADS)

    listener = threading.Thread(target=listen)
    listener.start()  # the turns' loop is not running: busy, as in a burst
    listener.join()
    try:
        loop.run_until_complete(asyncio.wait_for(everything, 10))
    finally:
        loop.close()
    assert taken == [(f"m{n}", n < THREADS) for n in range(MESSAGES)]
    assert loop.wakes == 1


async def test_messages_handed_over_while_the_loop_takes_are_all_taken_in_order() -> None:
    """The listener keeps handing over while the turns' loop runs and takes: a message
    handed over just as a wake starts taking is taken by it or by the next wake, once."""
    taken: list[str] = []
    everything = asyncio.get_running_loop().create_future()

    def take(message: SlackMessage, first: bool) -> None:
        taken.append(message.text)
        if len(taken) == MESSAGES * 10:
            everything.set_result(None)

    handover = Handover(asyncio.get_running_loop(), take)

    def listen() -> None:
        for n in range(MESSAGES * 10):
            handover.hand_over(kept(n), False)

    listener = threading.Thread(target=listen)
    listener.start()
    await asyncio.wait_for(everything, 10)
    listener.join()
    assert taken == [f"m{n}" for n in range(MESSAGES * 10)]
