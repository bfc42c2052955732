"""People's messages: kept in the order Slack delivered them, durably received before Slack is
acknowledged, then answered one at a time per thread through the core's flows."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Protocol

from bot.conversation import ConversationKey, Inbound
from bot.flows import Flows
from bot.texts import TextKey
from platforms.lines import Lines
from platforms.recent import Recent
from platforms.slack.handover import HandOver, Handover
from platforms.slack.place import Deps, SlackPlace, SlackPlaces
from platforms.slack.translate import PLATFORM, AssistantThread, Place, SlackMessage

log = logging.getLogger(__name__)

SUGGESTED_PROMPTS = (
    (TextKey.SLACK_PROMPT_1_TITLE, TextKey.SLACK_PROMPT_1),
    (TextKey.SLACK_PROMPT_2_TITLE, TextKey.SLACK_PROMPT_2),
    (TextKey.SLACK_PROMPT_3_TITLE, TextKey.SLACK_PROMPT_3),
)
TITLE_CHARS = 60


class Keeping(Protocol):
    """What a door asks of the core (`Flows` on its loop, `Reception` on any)."""

    async def receive(self, inbound: Inbound) -> bool: ...

    async def in_use(self, key: ConversationKey) -> bool: ...


class Door:
    """Where people's messages come in, on one event loop: Slack's retries and a mention's
    second event dropped, whether each is the app's decided, and each kept (`reception`)
    before Slack hears it arrived; then handed over (`hand_over`) in the order Slack
    delivered them, per thread, however slow an earlier one's lookup or keeping.

    quitbot's HTTP listener has a door of its own, on its own thread, so acknowledging
    never waits for a turn of the conversations' loop; Bolt's listeners use the inbox's.
    What a door remembers is its own; the store dedupes durably across them."""

    def __init__(self, places: SlackPlaces, reception: Keeping, hand_over: HandOver) -> None:
        self._places, self.reception, self._hand_over = places, reception, hand_over
        # Slack's retries and a mention's second event are dropped cheaply; the core dedupes
        # durably. Threads known to hold a conversation spare a lookup.
        self._seen, self.known = Recent[str](10_000), Recent[str](50_000)
        # `known` is also taught from the turns' loop once a conversation is answered
        # (`learn`), while a listener's door reads and adds to it on its own thread.
        self._learning = threading.Lock()
        self._refused: set[str] = set()  # events whose keeping failed: Slack sends them again
        self._passed = Recent[str](10_000)  # events that were not the app's
        self._accepting: dict[str, asyncio.Future[bool | None]] = {}  # being kept right now
        self._arriving: dict[ConversationKey, deque[_Arrival]] = {}  # not handed over yet

    async def receive(self, message: SlackMessage) -> bool:
        """Slack is acknowledged when this returns (issue #9).

        The message takes its place in its thread's order before anything is awaited, so it
        is handed over in the order Slack delivered it. The core keeps it durably first: a
        kill after the 200 loses nothing. If that fails, Slack hears 5xx and sends it again.

        Whether the message is the app's; one that is not (False) is left to the Bolt app's
        other listeners."""
        if message.place is Place.CHANNEL and not (message.mentioned or message.threaded):
            return False  # channel chatter that is not addressed to the app
        event_id = message.event_id
        if not self._seen.add(event_id) and event_id not in self._refused:
            # A retry, or a mention's second event: it gets its 200 only once the first copy
            # is kept, and is handled itself if keeping that one failed.
            if (earlier := self._accepting.get(event_id)) is not None:
                await asyncio.shield(earlier)
            if event_id not in self._refused:
                return event_id not in self._passed
        self._refused.discard(event_id)
        # A DM thread under the app's own message (a new conversation or a branch) looks like
        # an assistant thread in the payload; what the app noted when it made one wins.
        key = message.key  # made anew each time it is read: read once
        place = self._places.kind(key, message.place)
        if place is not message.place:  # a copy only when it differs: nearly never
            message = replace(message, place=place)
        self._places.remember(key, place)
        arrival = _Arrival(message)
        self._arriving.setdefault(key, deque()).append(arrival)
        accepted = self._accepting[event_id] = asyncio.get_running_loop().create_future()
        try:
            known = await self._holds_conversation(message, key)
            # Not in a thread the app was never asked into.
            ours = known or message.mentioned or message.place is not Place.CHANNEL
            arrival.first = await self._accept(message, known) if ours else None
        except BaseException:
            self._refused.add(event_id)
            raise
        finally:
            arrival.settled = True
            accepted.set_result(arrival.first)
            self._accepting.pop(event_id, None)
            self._hand_over_settled(key)
        if not ours:
            self._passed.add(event_id)
        return ours

    def _hand_over_settled(self, key: ConversationKey) -> None:
        """Hand over the thread's messages settled so far, up to the first still unsettled."""
        line = self._arriving[key]
        while line and line[0].settled:
            arrival = line.popleft()
            if arrival.first is not None:
                self._hand_over(arrival.message, arrival.first)
        if not line:
            del self._arriving[key]

    async def _accept(self, message: SlackMessage, known: bool) -> bool | None:
        """Whether the app's message starts a conversation (None: not to be answered here);
        the core keeps it before Slack hears it arrived."""
        if not await self.reception.receive(message.inbound()):
            return None  # received before (a retry after a restart): answered from there
        return not known

    async def _holds_conversation(self, message: SlackMessage, key: ConversationKey) -> bool:
        if key.place in self.known:
            return True
        if any(arrival.message.mentioned for arrival in self._arriving.get(key, ())):
            return True  # an earlier mention in this thread is starting one
        if not message.threaded and message.place is not Place.ASSISTANT:
            return False  # a mention or a DM opens a new thread: spare the lookup
        # A mention handed over is kept until its turn commits the conversation, so the
        # store knows of it either way.
        if not await self.reception.in_use(key):
            return False  # nor a mention waiting to start one, in any process
        self.learn(key)
        return True

    def learn(self, key: ConversationKey) -> None:
        """`key`'s thread holds a conversation: later messages there need no lookup."""
        with self._learning:
            self.known.add(key.place)


@dataclass(eq=False, slots=True)
class _Arrival:
    message: SlackMessage
    settled: bool = False
    first: bool | None = None  # see HandOver; None: not to be answered


@dataclass(eq=False, slots=True)
class _Entry:
    answer: Callable[[bool], Awaitable[None]]
    first: bool


class Inbox:
    def __init__(self, deps: Deps, flows: Flows, places: SlackPlaces) -> None:
        self._deps, self._flows, self._places = deps, flows, places
        self._lines = Lines[_Entry](_take, "answering a Slack message", deps.tasks.spawn)
        self.door = Door(places, flows, self.take)
        self.listener_door: Door | None = None

    async def receive(self, message: SlackMessage) -> bool:
        """Called by Slack's listener on this loop; see `Door.receive`."""
        return await self.door.receive(message)

    def listen_elsewhere(self, reception: Keeping) -> Door:
        """A door for a listener on another thread (`listener_door`): what it keeps is
        handed to these lines through the loop calling this, the one they run on."""
        handover = Handover(asyncio.get_running_loop(), self.take)
        self.listener_door = Door(self._places, reception, handover.hand_over)
        return self.listener_door

    def take(self, message: SlackMessage, first: bool) -> None:
        """Put a kept message last in its thread's line (at once, nothing awaited)."""
        self._lines.add(message.key, _Entry(partial(self._answer, message), first))

    async def _answer(self, message: SlackMessage, first: bool) -> None:
        m = message
        place = SlackPlace(self._deps, m.channel, m.thread_ts, m.place, m.user_id, m.team_id)
        inbound = message.inbound()
        outcome = await self._flows.converse(await self._flows.recall(inbound), place)
        if outcome.conversation is not None:
            # Taught to the door the thread's next message comes through: the listener's,
            # when there is one (Bolt's door then sees no people's messages).
            (self.listener_door or self.door).learn(inbound.key)
            if first and message.place is Place.ASSISTANT and not outcome.duplicate:
                line = " ".join(message.text.split())  # the first question titles the thread
                title = line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"
                await self._deps.set_title(message.channel, message.thread_ts, title)

    async def resume(self) -> int:
        """Queue what a previous run received but never answered (it was killed), ahead of
        anything new, so each thread is still answered in order. How many there were."""
        pending = [i for i in await self._flows.engine.pending() if i.key.platform == PLATFORM]
        for inbound in pending:
            place = self._places.place(inbound.key, inbound.user_id)
            self._lines.add(inbound.key, _Entry(partial(self._converse, inbound, place), False))
        return len(pending)

    async def _converse(self, inbound: Inbound, place: SlackPlace, first: bool) -> None:
        # Kept by a run that stopped: a reply it showed in full is adopted, not given twice.
        await self._flows.converse(await self._flows.recall(inbound), place, recover=True)

    async def greet(self, thread: AssistantThread) -> None:
        """A new assistant thread: a greeting and a few suggested prompts."""
        self._places.remember(thread.key, Place.ASSISTANT)
        client, channel, thread_ts = self._deps.client, thread.channel, thread.thread_ts
        # An app of one workspace (its token's), so that workspace's words.
        words = await self._deps.words(self._deps.team_id)
        greeting = words.get(TextKey.SLACK_GREETING)
        await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=greeting)
        prompts = [{"title": words.get(t), "message": words.get(m)} for t, m in SUGGESTED_PROMPTS]
        await self._deps.attempt(
            "assistant_threads_setSuggestedPrompts",
            channel_id=channel,
            thread_ts=thread_ts,
            prompts=prompts,
        )


async def _take(entry: _Entry) -> None:
    await entry.answer(entry.first)
