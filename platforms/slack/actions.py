"""Buttons and the message shortcut: start again, "this was a mistake", confirm an end, branch."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError

from bot.conversation import Conversation
from bot.engine import LimitReached, NotTheStarter, may_end
from bot.notices import LIMIT_TEXT, Notice, NoticeKind, Outcome
from platforms.slack.deps import Deps
from platforms.slack.moderation import ModLog
from platforms.slack.render import end_confirmation, how_to_start_again, parse_action_value
from platforms.slack.threads import Threads, Where
from platforms.slack.translate import Place, split_key, thread_key

log = logging.getLogger(__name__)

THANKS = "Thanks for telling us. A moderator will look at how this conversation ended."
KEEP_GOING = "OK, the conversation goes on."
NOT_YOURS = "Only the person who started this conversation can end it."
NOT_IN_CONVERSATION = "That message isn't part of a quitbot conversation."
PICK_A_MESSAGE = "Pick a message from the conversation itself (yours or mine) to branch from."
ALREADY_ENDED = "This conversation has already ended."
NO_CONVERSATION_HERE = "I can't find a quitbot conversation there."


class Tell(Protocol):
    """Answer one person, visible to them only."""

    async def __call__(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None: ...


class Actions:
    def __init__(self, deps: Deps, threads: Threads, modlog: ModLog) -> None:
        self._deps = deps
        self._threads = threads
        self._modlog = modlog

    async def start_new(self, body: dict[str, Any]) -> None:
        """ "Start a new conversation": a fresh thread, or directions in the assistant pane."""
        user, channel, (_, place) = _who(body), _channel(body), _value(body)
        if place is Place.ASSISTANT:
            await self._deps.ephemeral(channel, user, how_to_start_again(place, ""))
            return
        intro = (
            "New conversation: reply in this thread."
            if place is Place.DM
            else f"<@{user}> started a new conversation with me. Reply in this thread."
        )
        ts = await self._root(channel, intro)
        key = thread_key(channel, ts)
        self._threads.remember(key, place)
        outcome = await self._deps.engine.start_new(key, user)
        if outcome.conversation is None:
            await self._abandon(channel, ts, user, outcome)

    async def mistake(self, body: dict[str, Any]) -> None:
        """ "This was a mistake": the person's feedback, on the record and in the mod-log."""
        user, channel, (conversation_id, _) = _who(body), _channel(body), _value(body)
        conversation = await self._deps.engine.get(conversation_id)
        if conversation is None:
            return
        text = "This was a mistake"
        await self._deps.engine.feedback(conversation.id, user, text)
        await self._modlog.feedback(conversation, user, text)
        await self._deps.ephemeral(channel, user, THANKS, thread_ts=_thread(body))

    async def end_confirmed(self, body: dict[str, Any]) -> None:
        user, (conversation_id, place) = _who(body), _value(body)
        conversation = await self._deps.engine.get(conversation_id)
        if conversation is None or conversation.ladder.ended:
            return
        channel, thread_ts = split_key(conversation.key)
        try:
            outcome = await self._deps.engine.end_by_user(conversation.key, user)
        except NotTheStarter:
            await self._deps.ephemeral(channel, user, NOT_YOURS, thread_ts=thread_ts)
            return
        await self._threads.show(outcome, Where(channel, thread_ts, user, place))

    async def end_shortcut(self, body: dict[str, Any]) -> None:
        """ "End this conversation", a message shortcut: it works inside a thread, where Slack
        runs no slash command. The message it was used on names the thread."""
        user, channel = _who(body), _channel(body)
        message = body.get("message") or {}
        thread_ts = str(message.get("thread_ts") or message.get("ts") or body.get("message_ts"))
        conversation = await self._deps.engine.find(thread_key(channel, thread_ts))

        async def tell(text: str, blocks: list[dict[str, Any]] | None = None) -> None:
            await self._deps.ephemeral(channel, user, text, blocks, thread_ts)

        await self.ask_to_end(conversation, user, tell)

    async def ask_to_end(self, conversation: Conversation | None, user: str, tell: Tell) -> None:
        """Show the person the end confirmation, or why they cannot end this conversation."""
        if conversation is None:
            await tell(NO_CONVERSATION_HERE)
        elif not may_end(conversation, user):
            await tell(NOT_YOURS)
        elif conversation.ladder.ended:
            await tell(ALREADY_ENDED)
        else:
            place = self._threads.place_of(conversation.key)
            await tell(*end_confirmation(conversation.id, place))

    async def end_cancelled(self, body: dict[str, Any]) -> None:
        await self._deps.ephemeral(_channel(body), _who(body), KEEP_GOING, thread_ts=_thread(body))

    async def branch(self, body: dict[str, Any]) -> None:
        """ "Branch from here": a new thread carrying the history up to the chosen message."""
        user, channel = _who(body), _channel(body)
        message = body.get("message") or {}
        ts = str(message.get("ts") or body.get("message_ts") or "")
        source = await self._deps.engine.find(thread_key(channel, message.get("thread_ts") or ts))
        if source is None:
            await self._deps.ephemeral(channel, user, NOT_IN_CONVERSATION)
            return
        messages, _ = await self._deps.engine.record(source.id)
        if ts not in {m.platform_message_id for m in messages}:
            await self._deps.ephemeral(channel, user, PICK_A_MESSAGE)
            return
        link = await self._deps.permalink(channel, ts)
        picked = f"<{link}|this message>" if link else "an earlier message"
        root = await self._root(
            channel,
            f"<@{user}> branched a conversation from {picked}. Reply in this thread to go on.",
        )
        new_key = thread_key(channel, root)
        in_channel = self._threads.place_of(source.key) is Place.CHANNEL
        self._threads.remember(new_key, Place.CHANNEL if in_channel else Place.DM)
        try:
            await self._deps.engine.branch(source.id, new_key, user, upto_platform_message_id=ts)
        except LimitReached:
            await self._abandon(channel, root, user, Outcome(None, notices=(_limit(),)))

    async def _root(self, channel: str, text: str) -> str:
        response = await self._deps.client.chat_postMessage(channel=channel, text=text)
        return str(response["ts"])

    async def _abandon(self, channel: str, ts: str, user: str, outcome: Outcome) -> None:
        """The engine would not start it (the operator's limit): take the empty thread back."""
        try:
            await self._deps.client.chat_delete(channel=channel, ts=ts)
        except SlackApiError as exc:
            log.warning("could not delete unused thread %s: %s", ts, exc.response)
        for notice in outcome.notices:
            await self._deps.ephemeral(channel, user, notice.text)


def _limit() -> Notice:
    return Notice(NoticeKind.LIMIT, LIMIT_TEXT)


def _who(body: dict[str, Any]) -> str:
    return str((body.get("user") or {}).get("id") or "")


def _channel(body: dict[str, Any]) -> str:
    channel = (body.get("channel") or {}).get("id")
    return str(channel or (body.get("container") or {}).get("channel_id") or "")


def _thread(body: dict[str, Any]) -> str:
    container = body.get("container") or {}
    message = body.get("message") or {}
    return str(container.get("thread_ts") or message.get("thread_ts") or "")


def _value(body: dict[str, Any]) -> tuple[str, Place]:
    actions = body.get("actions") or [{}]
    return parse_action_value(str(actions[0].get("value") or ""))
