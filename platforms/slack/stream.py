"""One streamed reply in a Slack thread: Slack's chat streaming, or one message edited in pace.

Slack's own streaming (`chat.startStream`/`appendStream`/`stopStream` through slack_sdk's
`chat_stream` helper) is used while the workspace accepts it; after it fails once the adapter
falls back to posting a message and updating it no faster than `interval`, splitting long
replies into several messages. A reply that is complete before its first render is posted as
one message. The pace is decided by an injected clock, so tests never sleep.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from platforms.slack.render import MESSAGE_LIMIT, STREAM_APPEND_LIMIT, split_text, to_mrkdwn
from platforms.slack.translate import Place

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# Slack allows about one chat.update per second per message (Tier 3 for the workspace).
DEFAULT_INTERVAL = 1.0
# A streamed message is closed and a new one begun before it gets unwieldy to read.
STREAM_MESSAGE_LIMIT = 36_000
THINKING_STATUS = "is thinking..."
# Like slack_sdk's stream helper (256 characters), the first render waits for a little text
# or one interval: a short reply then becomes one message instead of three stream calls.
FIRST_RENDER_CHARS = 256


class Throttle:
    """Says when enough time has passed to render again; the first render is due at once."""

    def __init__(self, interval: float, clock: Clock) -> None:
        self._interval = interval
        self._clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        return self._last is None or self._clock() - self._last >= self._interval

    def mark(self) -> None:
        self._last = self._clock()


@dataclass
class StreamingSupport:
    """Whether this workspace accepts chat streaming; learnt once, shared by every reply."""

    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Target:
    """Where a reply goes and who it answers (streaming in channels needs the recipient)."""

    channel: str
    thread_ts: str
    user_id: str
    team_id: str
    place: Place


@dataclass
class _Messages:
    """The fallback: the reply as a row of ordinary messages, each edited in place."""

    ts: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)


class SlackReply:
    """The engine's ReplyStream for one Slack thread."""

    def __init__(
        self,
        client: AsyncWebClient,
        target: Target,
        support: StreamingSupport,
        *,
        clock: Clock = time.monotonic,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self._client = client
        self._target = target
        self._support = support
        self._throttle = Throttle(interval, clock)
        self._text = ""  # everything the model said so far
        self._sent = 0  # how much of it went into streams
        self._stream: AsyncChatStream | None = None
        self._stream_size = 0
        self._first_ts = ""
        self._messages: _Messages | None = None
        self._status_shown = False

    async def thinking(self) -> None:
        if self._target.place is Place.ASSISTANT:
            await self._set_status(THINKING_STATUS)
            self._status_shown = True

    async def text(self, delta: str) -> None:
        if not self._text:
            self._throttle.mark()  # the first render waits for more text, as below
        self._text += delta
        shown = self._first_ts or self._messages is not None
        if self._throttle.due() or (not shown and len(self._text) >= FIRST_RENDER_CHARS):
            await self._render()

    async def done(self) -> str:
        if self._text.strip():
            await self._render(final=True)
        elif self._status_shown:
            await self._set_status("")  # Slack clears it only when a reply is posted
        return self._first_ts

    async def close(self) -> None:
        return None

    # --- rendering ---------------------------------------------------------------------

    async def _render(self, final: bool = False) -> None:
        self._throttle.mark()
        if self._messages is None and self._support.enabled:
            try:
                if final and not self._first_ts and len(self._text) <= STREAM_APPEND_LIMIT:
                    await self._post_whole()
                else:
                    await self._stream_pending(final)
                return
            except SlackApiError as exc:
                self._fall_back(exc)
        await self._show_messages()

    async def _post_whole(self) -> None:
        """A reply complete before its first render needs no stream: one message says it."""
        response = await self._client.chat_postMessage(
            channel=self._target.channel,
            thread_ts=self._target.thread_ts,
            markdown_text=self._text,
        )
        self._first_ts = str(response["ts"])
        self._sent = len(self._text)

    async def _stream_pending(self, final: bool) -> None:
        pending = self._text[self._sent :]
        pieces = split_text(pending, STREAM_APPEND_LIMIT) if pending else []
        for index, piece in enumerate(pieces):
            stream = await self._stream_with_room(len(piece))
            if final and index == len(pieces) - 1:
                await stream.stop(markdown_text=piece)  # the last piece rides on the stop
                self._stream = None
            else:
                await stream.append(markdown_text=piece)
            self._first_ts = self._first_ts or (stream.ts or "")
            self._stream_size += len(piece)
        self._sent = len(self._text)
        if final and self._stream is not None:
            await self._stream.stop()
            self._stream = None

    async def _stream_with_room(self, size: int) -> AsyncChatStream:
        """The open stream, or a new one when this piece would make the message too long."""
        if self._stream is not None and self._stream_size + size > STREAM_MESSAGE_LIMIT:
            await self._stream.stop()
            self._stream = None
        if self._stream is None:
            self._stream = await self._open_stream()
            self._stream_size = 0
        return self._stream

    async def _open_stream(self) -> AsyncChatStream:
        return await self._client.chat_stream(
            channel=self._target.channel,
            thread_ts=self._target.thread_ts,
            recipient_team_id=self._target.team_id or None,
            recipient_user_id=self._target.user_id,
            buffer_size=1,  # the throttle decides when to send, not the helper's buffer
        )

    def _fall_back(self, exc: SlackApiError) -> None:
        error = exc.response.get("error") if exc.response is not None else exc
        started = self._stream.ts if self._stream is not None else None
        if started is None:
            # Streaming was refused outright: this workspace does not support it.
            self._support.enabled = False
            log.warning("Slack chat streaming unavailable (%s); editing messages instead", error)
        else:
            log.warning("Slack stream %s failed (%s); finishing it by editing", started, error)
        self._stream = None
        self._messages = _Messages(ts=[started] if started else [], shown=[""] if started else [])
        if started:
            self._first_ts = self._first_ts or started

    async def _show_messages(self) -> None:
        messages = self._messages = self._messages or _Messages()
        for index, piece in enumerate(split_text(self._text, MESSAGE_LIMIT)):
            body = to_mrkdwn(piece)
            if index < len(messages.ts):
                if messages.shown[index] != body:
                    await self._client.chat_update(
                        channel=self._target.channel, ts=messages.ts[index], text=body
                    )
                    messages.shown[index] = body
                continue
            response = await self._client.chat_postMessage(
                channel=self._target.channel, thread_ts=self._target.thread_ts, text=body
            )
            messages.ts.append(str(response["ts"]))
            messages.shown.append(body)
        self._first_ts = self._first_ts or (messages.ts[0] if messages.ts else "")

    async def _set_status(self, status: str) -> None:
        try:
            await self._client.assistant_threads_setStatus(
                channel_id=self._target.channel, thread_ts=self._target.thread_ts, status=status
            )
        except SlackApiError as exc:
            log.info("could not set the assistant thread status: %s", exc.response.get("error"))
