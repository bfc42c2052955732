"""The engine's ReplyStream on Discord: typing while waiting, one message grown by edits.

Discord calls happen in a background flusher, so a slow Discord never slows the model's
stream: text() only records the text, and the flusher posts the newest text whenever the
ThrottledEditor allows. A reply that arrives all at once is posted as one message.
A part whose first send failed is posted anew at its next change (or when the reply is
done), so one refused call never loses the rest of the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

import discord
from discord.http import HTTPClient, handle_message_parameters

from bot.ports import ReplyShown
from platforms.discord.stream import EDIT_INTERVAL, Edit, Op, Send, ThrottledEditor

log = logging.getLogger(__name__)

# Every message quitbot sends says whom it may ping, whatever the client's default (a bot
# quitbot is embedded in may allow every mention): the model's words, or a person's words
# shown back, could hold @everyone or a role. Only what quitbot addresses to someone pings.
NO_MENTIONS = discord.AllowedMentions.none()
TYPING_REPEAT = 8.0  # seconds; Discord shows typing for about ten seconds per call
TYPING_DELAY = 0.3  # seconds; an answer faster than this needs no typing indicator


def nonce() -> int:
    """A post's nonce: with it Discord returns the message already made rather than a
    second one when discord.py retries the same post (after a 5xx or a dropped
    connection). It must be unique among the bot's recent messages, not unguessable, so
    not `secrets` (as discord.py's `send` does: the OS's random source, read with the GIL
    let go); `random` is reseeded in a forked child."""
    return random.getrandbits(64)


class ChannelReply:
    """Streams one reply into a channel. Call `close()` when the turn is over, whatever happened."""

    def __init__(
        self,
        channel: discord.abc.Messageable,
        http: HTTPClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = EDIT_INTERVAL,
        typing_delay: float = TYPING_DELAY,
    ) -> None:
        self._channel = channel
        self._http, self._channel_id = http, _id_of(channel)
        self._typing_delay = typing_delay
        self._interval = interval
        self._editor = ThrottledEditor(clock, interval=interval)
        self._text = ""
        # One message id per part the editor planned; None while that part's send has failed.
        self._messages: list[int | None] = []
        # Typing waits on a timer, not in a task of its own: most answers come before it
        # fires, and a task started, parked and cancelled for each of them cost more than
        # the rest of this class (issue 22).
        self._typing_due: asyncio.TimerHandle | None = None
        self._typing: asyncio.Task[None] | None = None
        self._typing_sent = asyncio.Event()
        self._typing_sent.set()
        # Likewise the flusher: it starts on the loop's next turn, and a reply that was
        # whole by then is posted by `done` itself.
        self._flush_due: asyncio.Handle | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._more = asyncio.Event()
        self._finished = asyncio.Event()
        self._on_shown: ReplyShown | None = None
        self._told_begun = False

    def track(self, answering: str, shown: ReplyShown) -> None:
        self._on_shown = shown

    async def thinking(self) -> None:
        # In the background: the model request should not wait for Discord.
        if self._typing_delay:
            loop = asyncio.get_running_loop()
            self._typing_due = loop.call_later(self._typing_delay, self._start_typing)
        else:
            self._start_typing()

    def _start_typing(self) -> None:
        self._typing_due = None
        self._typing = asyncio.create_task(self._show_typing())

    async def text(self, delta: str) -> None:
        self._text += delta
        self._more.set()
        if self._flusher is None and self._flush_due is None:
            self._flush_due = asyncio.get_running_loop().call_soon(self._start_flushing)

    def _start_flushing(self) -> None:
        self._flush_due = None
        self._flusher = asyncio.create_task(self._flush())

    async def done(self) -> str:
        self._finished.set()
        self._more.set()
        _cancel_soon(self._flush_due)
        self._flush_due = None
        await (self._flush() if self._flusher is None else self._flusher)
        for index, message in enumerate(self._messages):
            if message is None:  # a part that never got out: one more try
                self._messages[index] = await self._send(self._editor.shown[index])
        first = next((message for message in self._messages if message is not None), None)
        if first is not None and None not in self._messages and self._on_shown is not None:
            await self._on_shown(str(first), True)  # every part is there, the last edit made
        return str(first) if first is not None else ""

    async def close(self) -> None:
        """Stop typing and any flushing still running (after an error or a cancel)."""
        await self._stop_typing()
        _cancel_soon(self._flush_due)
        self._flush_due = None
        await _cancel(self._flusher)

    async def _show_typing(self) -> None:
        while True:
            self._typing_sent = asyncio.Event()
            try:
                await self._channel.typing()  # one call shows it for about ten seconds
            except discord.HTTPException as exc:
                log.warning("could not show typing in %s: %s", self._channel_id, exc)
                return
            finally:
                self._typing_sent.set()
            await asyncio.sleep(TYPING_REPEAT)

    async def _stop_typing(self) -> None:
        """Let a typing call in flight finish (cancelling it would drop the connection, and
        a typing call arriving after our message would show typing again), then stop."""
        _cancel_soon(self._typing_due)
        self._typing_due = None
        if self._typing is None:
            return
        await self._typing_sent.wait()
        await _cancel(self._typing)
        self._typing = None

    async def _flush(self) -> None:
        while not self._finished.is_set():
            await self._more.wait()
            self._more.clear()
            if self._finished.is_set():
                break
            await self._post(self._editor.update(self._text))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._finished.wait()
        await self._post(self._editor.finish(self._text))

    async def _post(self, ops: list[Op]) -> None:
        if ops:
            await self._stop_typing()
        for op in ops:
            if isinstance(op, Send):
                self._messages.append(await self._send(op.content))
            elif isinstance(op, Edit):
                await self._edit(op)
        first = self._messages[0] if self._messages else None
        # A reply posted whole at the end is told of once, complete, by `done`.
        if first is not None and not self._told_begun and not self._finished.is_set():
            self._told_begun = True
            if self._on_shown is not None:
                await self._on_shown(str(first), False)

    # A part is posted and edited through discord.py's HTTP client (its routes, rate limits
    # and errors), not `Messageable.send` / `Message.edit`: those build a `discord.Message`
    # from each answer only for its id to be read, ~10 µs a call against ~3 (issue 22).
    # The body is the one `send` makes.
    async def _send(self, content: str) -> int | None:
        try:
            posted = handle_message_parameters(
                content, nonce=nonce(), allowed_mentions=NO_MENTIONS, view=None
            )
            with posted as params:
                sent = await self._http.send_message(self._channel_id, params=params)
            return int(sent["id"])
        except discord.HTTPException as exc:
            # The reply is stored whatever happens here; the part is posted anew later.
            log.warning("could not post a reply in %s: %s", self._channel_id, exc)
            return None

    async def _edit(self, op: Edit) -> None:
        message_id = self._messages[op.index]
        if message_id is None:  # its first send failed: the rest goes out as a new message
            self._messages[op.index] = await self._send(op.content)
            return
        try:
            with handle_message_parameters(op.content, allowed_mentions=NO_MENTIONS) as params:
                await self._http.edit_message(self._channel_id, message_id, params=params)
        except discord.HTTPException as exc:
            # The next edit brings the message up to date.
            log.warning("could not edit a reply in %s: %s", self._channel_id, exc)


def _id_of(channel: discord.abc.Messageable) -> int:
    """The id of a channel a reply is posted in (every kind that holds messages has one;
    `Messageable` itself does not say so)."""
    channel_id = getattr(channel, "id", None)
    if not isinstance(channel_id, int):
        raise TypeError(f"a reply needs a channel with an id, not {channel!r}")
    return channel_id


def _cancel_soon(handle: asyncio.Handle | None) -> None:
    if handle is not None:
        handle.cancel()


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
