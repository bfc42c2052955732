"""One streamed reply in a Slack thread: Slack's chat streaming (slack_sdk's `chat_stream`),
or, when a stream cannot start or breaks, messages posted and edited no faster than `interval`
(an injected clock sets the pace, so tests never sleep). A reply complete before its first
render is posted as one message."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_chat_stream import AsyncChatStream

from bot.ports import ReplyShown
from platforms.slack.history import answer_mark
from platforms.slack.render import (
    MESSAGE_LIMIT,
    STREAM_APPEND_LIMIT,
    neutral,
    split_text,
    to_mrkdwn,
)
from platforms.slack.translate import Place

if TYPE_CHECKING:
    from platforms.slack.place import SlackPlace

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# Slack allows about one chat.update per second per message (Tier 3 for the workspace).
DEFAULT_INTERVAL = 1.0
# A streamed message is closed and a new one begun before it gets unwieldy to read.
STREAM_MESSAGE_LIMIT = 36_000
THINKING_STATUS = "is thinking..."
# chat.startStream errors saying the method is not there for this app at all (issue #10);
# only these switch streaming off until restart, any other is about one reply or moment.
STREAMING_UNAVAILABLE = frozenset(
    {"unknown_method", "missing_scope", "not_allowed_token_type", "feature_not_enabled"}
)
# Like slack_sdk's stream helper (256 characters), the first render waits for a little text
# or one interval: a short reply then becomes one message instead of three stream calls.
FIRST_RENDER_CHARS = 256


@dataclass
class StreamingSupport:  # whether this app may stream at all: learnt once, for every reply
    enabled: bool = True


class SlackReply:
    """The engine's ReplyStream for one Slack thread."""

    def __init__(self, target: SlackPlace) -> None:
        """`target`: where the reply goes and whom it answers; its deps hold the rest."""
        deps = target.deps
        self._client, self._target, self._support = deps.client, target, deps.support
        self._clock, self._interval = deps.clock, deps.interval
        self._rendered_at: float | None = None
        self._text = ""  # everything the model said so far
        self._sent = 0  # how much of it went into streams
        self._stream: AsyncChatStream | None = None
        self._stream_size = 0
        self._first_ts = ""
        # The fallback: the reply as a row of ordinary messages, each edited in place.
        self._posted: list[str] | None = None  # their ts
        self._shown: list[str] = []  # what each shows now
        self._status_shown = False
        self._on_shown: ReplyShown | None = None
        self._told_begun = False
        self._mark: dict[str, object] | None = None
        self._marked = False  # the message completing the reply carries the mark

    def track(self, answering: str, shown: ReplyShown) -> None:
        self._on_shown = shown
        if answering:
            self._mark = answer_mark(answering)

    async def thinking(self) -> None:
        if self._target.kind is Place.ASSISTANT:
            await self._set_status(THINKING_STATUS)
            self._status_shown = True

    async def text(self, delta: str) -> None:
        if not self._text:
            self._rendered_at = self._clock()  # the first render waits for more text, as below
        self._text += delta
        due = self._rendered_at is None or self._clock() - self._rendered_at >= self._interval
        shown = self._first_ts or self._posted is not None
        if due or (not shown and len(self._text) >= FIRST_RENDER_CHARS):
            await self._render()
            if self._first_ts and not self._told_begun and self._on_shown is not None:
                self._told_begun = True  # the first message is there, the rest is to come
                await self._on_shown(self._first_ts, False)

    async def done(self) -> str:
        if self._text.strip():
            await self._render(final=True)
            # Every piece went out and the stream was stopped (or the last edit made). The
            # thread says so itself when the mark went with it: no store write is needed.
            if self._first_ts and self._on_shown is not None and not self._marked:
                await self._on_shown(self._first_ts, True)
        elif self._status_shown:
            await self._set_status("")  # Slack clears it only when a reply is posted
        return self._first_ts

    async def close(self) -> None:
        return None

    # --- rendering ---------------------------------------------------------------------

    async def _render(self, final: bool = False) -> None:
        self._rendered_at = self._clock()
        if self._posted is None and self._support.enabled:
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
        shown = neutral(self._text, final=True)
        response = await self._client.chat_postMessage(
            channel=self._target.channel,
            thread_ts=self._target.thread_ts,
            markdown_text=shown,
            metadata=self._mark,
        )
        self._first_ts = str(response["ts"])
        self._sent = len(shown)
        self._marked = self._mark is not None

    async def _stream_pending(self, final: bool) -> None:
        # Markdown goes out as written, so a special mention would notify: `neutral` writes
        # it as plain text, holding back what may still become one until it is complete.
        shown = neutral(self._text, final)
        pending = shown[self._sent :]
        pieces = split_text(pending, STREAM_APPEND_LIMIT) if pending else []
        for index, piece in enumerate(pieces):
            stream = await self._stream_with_room(len(piece))
            if final and index == len(pieces) - 1:
                # The last piece rides on the stop, and the mark that the reply is whole.
                await stream.stop(markdown_text=piece, metadata=self._mark)
                self._stream = None
                self._marked = self._mark is not None
            else:
                await stream.append(markdown_text=piece)
            self._first_ts = self._first_ts or (stream.ts or "")
            self._stream_size += len(piece)
        # What may still become a mention can be held back again after it was shown as
        # text; what was sent stays sent.
        self._sent = max(self._sent, len(shown))
        if final and self._stream is not None:
            await self._stream.stop(metadata=self._mark)
            self._stream = None
            self._marked = self._mark is not None

    async def _stream_with_room(self, size: int) -> AsyncChatStream:
        """The open stream, or a new one when this piece would make the message too long."""
        if self._stream is not None and self._stream_size + size > STREAM_MESSAGE_LIMIT:
            await self._stream.stop()
            self._stream = None
        if self._stream is None:
            self._stream = await self._client.chat_stream(
                channel=self._target.channel,
                thread_ts=self._target.thread_ts,
                recipient_team_id=self._target.team_id or self._target.deps.team_id or None,
                recipient_user_id=self._target.user_id,
                buffer_size=1,  # the throttle decides when to send, not the helper's buffer
            )
            self._stream_size = 0
        return self._stream

    def _fall_back(self, exc: SlackApiError) -> None:
        error = str(exc.response.get("error") if exc.response is not None else exc)
        started = self._stream.ts if self._stream is not None else None
        if started is None and error in STREAMING_UNAVAILABLE:
            # Streaming itself is not there for this app: learnt once, for every thread.
            self._support.enabled = False
            log.warning("Slack chat streaming unavailable (%s); editing messages instead", error)
        elif started is None:
            # Anything else (internal_error, ratelimited, an archived channel...) is about this
            # reply or this moment: this reply is posted and edited, the next one streams.
            log.warning("Slack could not start a stream (%s); this reply is edited instead", error)
        else:
            log.warning("Slack stream %s failed (%s); finishing it by editing", started, error)
        self._stream = None
        self._posted, self._shown = ([started], [""]) if started else ([], [])
        self._first_ts = self._first_ts or (started or "")

    async def _show_messages(self) -> None:
        posted = self._posted = self._posted if self._posted is not None else []
        channel, thread_ts = self._target.channel, self._target.thread_ts
        for index, piece in enumerate(split_text(self._text, MESSAGE_LIMIT)):
            body = to_mrkdwn(piece)
            if index >= len(posted):
                response = await self._client.chat_postMessage(
                    channel=channel, thread_ts=thread_ts, text=body
                )
                posted.append(str(response["ts"]))
                self._shown.append(body)
            elif self._shown[index] != body:
                await self._client.chat_update(channel=channel, ts=posted[index], text=body)
                self._shown[index] = body
        self._first_ts = self._first_ts or (posted[0] if posted else "")

    async def _set_status(self, status: str) -> None:
        target = self._target
        await target.deps.attempt(
            "assistant_threads_setStatus",
            channel_id=target.channel,
            thread_ts=target.thread_ts,
            status=status,
        )
