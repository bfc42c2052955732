"""The engine's ReplyStream on Discord: typing while waiting, one message grown by edits."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import discord

from platforms.discord.stream import EDIT_INTERVAL, Edit, Op, Send, ThrottledEditor

log = logging.getLogger(__name__)


class ChannelReply:
    """Streams one reply into a channel; edits are paced by a ThrottledEditor."""

    def __init__(
        self,
        channel: discord.abc.Messageable,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = EDIT_INTERVAL,
    ) -> None:
        self._channel = channel
        self._editor = ThrottledEditor(clock, interval=interval)
        self._text = ""
        self._messages: list[discord.Message] = []
        self._typing: discord.context_managers.Typing | None = None

    @property
    def message_ids(self) -> list[int]:
        return [message.id for message in self._messages]

    async def thinking(self) -> None:
        typing = self._channel.typing()
        try:
            await typing.__aenter__()  # repeats every few seconds until the first text
        except discord.HTTPException as exc:
            log.warning("could not show typing in %s: %s", _where(self._channel), exc)
            return
        self._typing = typing

    async def text(self, delta: str) -> None:
        await self._stop_typing()
        self._text += delta
        await self._apply(self._editor.update(self._text))

    async def done(self) -> str:
        await self._stop_typing()
        await self._apply(self._editor.finish(self._text))
        return str(self._messages[0].id) if self._messages else ""

    async def _stop_typing(self) -> None:
        typing, self._typing = self._typing, None
        if typing is not None:
            await typing.__aexit__(None, None, None)

    async def _apply(self, ops: list[Op]) -> None:
        for op in ops:
            try:
                if isinstance(op, Send):
                    self._messages.append(await self._channel.send(op.content))
                elif isinstance(op, Edit):
                    self._messages[op.index] = await self._messages[op.index].edit(
                        content=op.content
                    )
            except discord.HTTPException as exc:
                # The reply is stored whatever happens here; the next edit or the
                # final one brings the message up to date if Discord recovers.
                log.warning("could not post a reply in %s: %s", _where(self._channel), exc)
                if isinstance(op, Send):
                    return


def _where(channel: discord.abc.Messageable) -> str:
    return str(getattr(channel, "id", channel))
