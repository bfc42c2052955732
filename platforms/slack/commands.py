"""`/quitbot`: end my conversation (after confirming); reopen, status and audit for moderators."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError

from bot.conversation import Conversation
from bot.engine import may_end
from platforms.slack.deps import Deps
from platforms.slack.moderation import (
    ModLog,
    audit_text,
    is_moderator,
    resolve,
    status_text,
    thread_link,
)
from platforms.slack.render import ENDED_REACTION, end_confirmation
from platforms.slack.threads import Threads
from platforms.slack.translate import Command, parse_command, split_key, thread_key

log = logging.getLogger(__name__)


class Tell(Protocol):
    """Answer the person who ran the command, visible to them only."""

    async def __call__(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None: ...


HELP = (
    "*/quitbot end* ends your conversation (run it in the conversation's thread, or add the "
    "thread's link); you will be asked to confirm.\n"
    "Moderators: */quitbot reopen <thread link or id> [note]*, */quitbot status <link or id>*, "
    "*/quitbot audit <link or id>*."
)
NOT_A_MODERATOR = "Only moderators can use that command."
NOT_FOUND = "I can't find a quitbot conversation there. Use a thread link or a conversation id."
NO_TARGET = (
    "Run `/quitbot end` in the conversation's thread, or add the thread's link: "
    "`/quitbot end <link>`."
)
REOPENED_IN_THREAD = "A moderator reopened this conversation. You can continue here."


class Commands:
    def __init__(self, deps: Deps, threads: Threads, modlog: ModLog) -> None:
        self._deps = deps
        self._threads = threads
        self._modlog = modlog

    async def run(self, payload: dict[str, Any]) -> None:
        """One `/quitbot` invocation, already acknowledged; every answer is ephemeral."""
        command = parse_command(str(payload.get("text") or ""))
        user = str(payload.get("user_id"))
        channel = str(payload.get("channel_id"))
        thread_ts = str(payload.get("thread_ts") or "")

        async def tell(text: str, blocks: list[dict[str, Any]] | None = None) -> None:
            await self._deps.ephemeral(channel, user, text, blocks, thread_ts)

        if command.verb == "end":
            await self._end(command, user, channel, thread_ts, tell)
        elif command.verb in {"reopen", "status", "audit"}:
            if not await is_moderator(self._deps, user):
                log.info("refused /quitbot %s to %s: not a moderator", command.verb, user)
                await tell(NOT_A_MODERATOR)
                return
            conversation = await resolve(self._deps, command.target)
            if conversation is None:
                await tell(NOT_FOUND)
                return
            await getattr(self, f"_{command.verb}")(conversation, command, user, tell)
        else:
            await tell(HELP)

    async def _end(
        self, command: Command, user: str, channel: str, thread_ts: str, tell: Tell
    ) -> None:
        if command.target:
            conversation = await resolve(self._deps, command.target)
        elif thread_ts:
            conversation = await self._deps.engine.find(thread_key(channel, thread_ts))
        else:
            await tell(NO_TARGET)
            return
        if conversation is None:
            await tell(NOT_FOUND)
        elif not may_end(conversation, user):
            await tell("Only the person who started this conversation can end it.")
        elif conversation.ladder.ended:
            await tell("This conversation has already ended.")
        else:
            text, blocks = end_confirmation(
                conversation.id, self._threads.place_of(conversation.key)
            )
            await tell(text, blocks)

    async def _reopen(
        self, conversation: Conversation, command: Command, user: str, tell: Tell
    ) -> None:
        if not conversation.ladder.ended:
            await tell(f"`{conversation.id}` is not ended; nothing to reopen.")
            return
        reopened = await self._deps.engine.reopen(conversation.id, user, command.note)
        channel, thread_ts = split_key(reopened.key)
        client = self._deps.client
        try:
            await client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, text=REOPENED_IN_THREAD
            )
            await client.reactions_remove(channel=channel, timestamp=thread_ts, name=ENDED_REACTION)
        except SlackApiError as exc:
            log.warning(
                "reopened %s but could not update its thread: %s", reopened.id, exc.response
            )
        await self._modlog.reopened(reopened, user, command.note)
        await tell(f"Reopened `{reopened.id}`.")

    async def _status(
        self, conversation: Conversation, command: Command, user: str, tell: Tell
    ) -> None:
        await tell(status_text(conversation, await thread_link(self._deps, conversation.key)))

    async def _audit(
        self, conversation: Conversation, command: Command, user: str, tell: Tell
    ) -> None:
        _, events = await self._deps.engine.record(conversation.id)
        await tell(audit_text(conversation, events))
