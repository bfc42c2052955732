"""A person's message in a thread -> the engine -> a streamed reply and the notices after it."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import aiohttp
from slack_sdk.errors import SlackApiError

from bot.conversation import Attachment, Conversation, ConversationKey, Inbound
from bot.notices import NoticeKind, Outcome
from platforms.recent import Recent
from platforms.slack.deps import Deps
from platforms.slack.files import fetch_attachments
from platforms.slack.moderation import ModLog
from platforms.slack.render import (
    ENDED_REACTION,
    ENDED_TITLE,
    EPHEMERAL,
    render_notice,
)
from platforms.slack.stream import SlackReply, Target
from platforms.slack.translate import AssistantThread, Place, SlackMessage, split_key

log = logging.getLogger(__name__)

GREETING = "Hi! I'm quitbot, an assistant backed by Claude. What can I help you with?"
SUGGESTED_PROMPTS = (
    ("Explain something", "Explain how public-key cryptography works, simply."),
    ("Help me write", "Help me write a friendly reminder to my team about a deadline."),
    ("Brainstorm", "Give me five ideas for a team offsite activity."),
)
TITLE_CHARS = 60
PLACES_REMEMBERED = 50_000
# Slack retries and the second event of a mention: dropped cheaply; the engine dedupes durably.
SEEN_REMEMBERED = 10_000


Accept = Callable[[Inbound], Awaitable[None]]


async def accept_nothing(inbound: Inbound) -> None:
    """Today's `accept`: nothing is recorded before Slack's acknowledgement.

    The core is to offer one quick durable call (claim the event and store the message)
    for exactly this step; then an acknowledged message survives a kill (issue #9,
    "delivered means kept"). Pass it to SlackBot as `accept` when it lands.
    """


@dataclass(frozen=True, slots=True)
class Where:
    """The thread an outcome is shown in, and who wrote the message it answers."""

    channel: str
    thread_ts: str
    user_id: str
    place: Place


class Threads:
    """Answers messages in threads and shows what the engine decided."""

    def __init__(self, deps: Deps, modlog: ModLog, accept: Accept = accept_nothing) -> None:
        self._deps = deps
        self._modlog = modlog
        self._seen = Recent[str](SEEN_REMEMBERED)
        self._places: dict[ConversationKey, Place] = {}
        self._conversations = Recent[str](PLACES_REMEMBERED)  # threads known to hold one
        self._refused: set[str] = set()  # events whose `accept` failed: Slack sends them again
        self._queues: dict[ConversationKey, deque[tuple[SlackMessage, asyncio.Future[bool]]]] = {}
        self._accept = accept

    def place_of(self, key: ConversationKey) -> Place:
        """Where a conversation lives; learnt from its messages, else guessed from its channel."""
        known = self._places.get(key)
        if known is not None:
            return known
        channel, _ = split_key(key)
        return Place.DM if channel.startswith("D") else Place.CHANNEL

    def seen(self, event_id: str) -> bool:
        return event_id in self._seen

    def remember(self, key: ConversationKey, place: Place) -> None:
        """Note where a conversation lives, e.g. a thread the app itself just started."""
        self._places[key] = place
        if len(self._places) > PLACES_REMEMBERED:
            self._places.pop(next(iter(self._places)))

    async def receive(self, message: SlackMessage) -> None:
        """Called by Slack's listener; Slack is acknowledged when this returns.

        The message takes its place in its thread's queue before anything is awaited, so
        messages are answered in the order Slack delivered them, whichever of them needs a
        slower lookup (issue #9: a cache miss used to be overtaken by a later cache hit).
        Then the one awaited step before the acknowledgement, `accept`, runs; if it fails
        the exception reaches Bolt, Slack gets no 200 and sends the event again.
        """
        if message.place is Place.CHANNEL and not (message.mentioned or message.threaded):
            return  # channel chatter that is not addressed to the app
        if not self._seen.add(message.event_id) and message.event_id not in self._refused:
            return  # a retry, or the second event for one mention
        self._refused.discard(message.event_id)
        # A DM thread under the app's own message (a new conversation or a branch) looks like
        # an assistant thread in the payload; what the app noted when it made one wins.
        place = self._places.get(message.key, message.place)
        message = replace(message, place=place)
        self.remember(message.key, place)
        accepted = self._queue(message)
        try:
            await self._accept(message.inbound())
        except BaseException:
            self._refused.add(message.event_id)  # Slack's retry must not be taken for a repeat
            accepted.set_result(False)
            raise
        accepted.set_result(True)

    def _queue(self, message: SlackMessage) -> asyncio.Future[bool]:
        """Put a message last in its thread's queue (synchronously); its answer waits for
        every earlier one in that thread, and for the returned future to say it was accepted."""
        accepted: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(message.key)
        if queue is None:
            queue = self._queues[message.key] = deque()
            self._deps.tasks.spawn(self._work_through(message.key, queue), f"thread {message.key}")
        queue.append((message, accepted))
        return accepted

    async def _work_through(
        self, key: ConversationKey, queue: deque[tuple[SlackMessage, asyncio.Future[bool]]]
    ) -> None:
        """Answer one thread's messages one after another, until its queue is empty."""
        try:
            while queue:
                message, accepted = queue[0]
                if await accepted:
                    try:
                        await self._answer(message)
                    except Exception:
                        log.exception("Slack answer to %s failed", message.event_id)
                queue.popleft()
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key]

    async def _answer(self, message: SlackMessage) -> None:
        engine = self._deps.engine
        # Only an unmentioned channel reply and an assistant thread's title need to know
        # whether the thread already holds a conversation; skip the lookup otherwise.
        lookup = message.place is Place.ASSISTANT or not (
            message.mentioned or message.place is Place.DM
        )
        known = await self._known(message) if lookup else True
        if not known and message.place is Place.CHANNEL:
            return  # a thread the app was never asked into
        attachments = await self._attachments(message) if message.files else ()
        target = Target(
            message.channel, message.thread_ts, message.user_id, message.team_id, message.place
        )
        reply = SlackReply(
            self._deps.client,
            target,
            self._deps.support,
            clock=self._deps.clock,
            interval=self._deps.interval,
        )
        outcome = await engine.handle(message.inbound(attachments), reply)
        if outcome.conversation is not None:
            self._conversations.add(message.key.place)
        if not known and message.place is Place.ASSISTANT and outcome.conversation:
            await self._set_title(message.channel, message.thread_ts, _title(message.text))
        where = Where(message.channel, message.thread_ts, message.user_id, message.place)
        await self.show(outcome, where)

    async def _known(self, message: SlackMessage) -> bool:
        """Whether a conversation lives in this thread; remembered, as none is ever deleted."""
        if message.key.place in self._conversations:
            return True
        if await self._deps.engine.find(message.key) is None:
            return False
        self._conversations.add(message.key.place)
        return True

    async def _attachments(self, message: SlackMessage) -> tuple[Attachment, ...]:
        limit = self._deps.settings.slack.max_attachment_bytes
        if self._deps.session is not None:
            return await fetch_attachments(
                self._deps.session, self._deps.token, message.files, limit
            )
        async with aiohttp.ClientSession() as session:
            return await fetch_attachments(session, self._deps.token, message.files, limit)

    async def show(self, outcome: Outcome, where: Where) -> None:
        """Post an outcome's notices in order; an END notice also closes the thread."""
        conversation_id = outcome.conversation.id if outcome.conversation else ""
        for notice in outcome.notices:
            text, blocks = render_notice(
                notice, where.place, self._deps.bot_user_id, conversation_id
            )
            if notice.kind in EPHEMERAL:
                await self._deps.ephemeral(
                    where.channel, where.user_id, text, blocks, where.thread_ts
                )
                continue
            ts = await self._post(where, text, blocks)
            if notice.kind is NoticeKind.END and outcome.conversation is not None:
                await self._closed(outcome.conversation, where, ts)

    async def _post(self, where: Where, text: str, blocks: list[dict[str, object]]) -> str:
        response = await self._deps.client.chat_postMessage(
            channel=where.channel, thread_ts=where.thread_ts, text=text, blocks=blocks
        )
        return str(response.get("ts") or "")

    async def _closed(self, conversation: Conversation, where: Where, end_ts: str) -> None:
        """Slack cannot lock a thread: mark it, and the engine keeps it closed to the model."""
        try:
            await self._deps.client.reactions_add(
                channel=where.channel, timestamp=where.thread_ts, name=ENDED_REACTION
            )
        except SlackApiError as exc:
            if exc.response.get("error") != "already_reacted":
                log.warning("could not mark ended thread %s: %s", where.thread_ts, exc.response)
        if where.place is Place.ASSISTANT:
            await self._set_title(where.channel, where.thread_ts, ENDED_TITLE)
        log.info(
            "Slack thread %s:%s closed: its conversation ended", where.channel, where.thread_ts
        )
        await self._modlog.ended(conversation, end_ts)

    async def _set_title(self, channel: str, thread_ts: str, title: str) -> None:
        try:
            await self._deps.client.assistant_threads_setTitle(
                channel_id=channel, thread_ts=thread_ts, title=title
            )
        except SlackApiError as exc:
            log.info("could not title assistant thread %s: %s", thread_ts, exc.response)

    async def greet(self, thread: AssistantThread) -> None:
        """A new assistant thread: a greeting and a few suggested prompts."""
        self.remember(thread.key, Place.ASSISTANT)
        client = self._deps.client
        await client.chat_postMessage(
            channel=thread.channel, thread_ts=thread.thread_ts, text=GREETING
        )
        prompts = [{"title": title, "message": text} for title, text in SUGGESTED_PROMPTS]
        try:
            await client.assistant_threads_setSuggestedPrompts(
                channel_id=thread.channel, thread_ts=thread.thread_ts, prompts=prompts
            )
        except SlackApiError as exc:
            log.info("could not suggest prompts: %s", exc.response.get("error"))


def _title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"
