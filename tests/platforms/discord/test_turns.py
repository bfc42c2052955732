"""The per-conversation line the Discord cog answers messages in (no network)."""

from __future__ import annotations

import asyncio
import contextlib

from bot.conversation import ConversationKey
from platforms.discord.cog import Turns

HERE = ConversationKey("discord", "1")
THERE = ConversationKey("discord", "2")


async def test_turns_come_in_the_order_tickets_were_drawn_per_place() -> None:
    line = Turns()
    first, second, elsewhere = line.draw(HERE), line.draw(HERE), line.draw(THERE)
    assert first.done() and not second.done() and elsewhere.done()
    line.leave(HERE, first)
    assert second.done()
    line.leave(HERE, second)
    line.leave(THERE, elsewhere)
    assert line.draw(HERE).done()  # nothing stays behind once everyone has left


async def test_a_waiter_given_up_passes_its_turn_on() -> None:
    line = Turns()
    first, second, third = line.draw(HERE), line.draw(HERE), line.draw(HERE)
    waiting = asyncio.ensure_future(second)
    waiting.cancel()  # e.g. the bot shutting down while the message waited
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    line.leave(HERE, first)  # its turn goes to the one that gave up...
    assert not third.done()
    line.leave(HERE, second)  # ...which passes it on as it leaves
    assert third.done()
    line.leave(HERE, third)
