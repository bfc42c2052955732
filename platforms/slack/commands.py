"""`/quitbot`: end my conversation (after confirming); reopen, status and audit for moderators."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.conversation import Conversation
from platforms.slack.actions import Actions, Tell
from platforms.slack.deps import Deps
from platforms.slack.moderation import (
    ModLog,
    audit_text,
    is_moderator,
    resolve,
    status_text,
    thread_link,
)
from platforms.slack.render import ENDED_REACTION
from platforms.slack.translate import Command, parse_command, split_key

log = logging.getLogger(__name__)


# Slack runs no slash command inside a thread (bolt-python#873), so the words never send
# anyone to run one there: in a thread it is the message shortcut.
HELP = (
    "To end your conversation, use *End this conversation* on any message in its thread "
    "(the message's ⋮ menu), or run */quitbot end <thread link>* in a channel; you will be "
    "asked to confirm.\n"
    "Moderators: */quitbot reopen <thread link or id> [note]*, */quitbot status <link or id>*, "
    "*/quitbot audit <link or id>*."
)
NOT_A_MODERATOR = "Only moderators can use that command."
NOT_FOUND = "I can't find a quitbot conversation there. Use a thread link or a conversation id."
NO_TARGET = (
    "Which conversation? In its thread, use *End this conversation* from a message's ⋮ menu; "
    "or add the thread's link here: `/quitbot end <link>`."
)
REOPENED_IN_THREAD = "A moderator reopened this conversation. You can continue here."


class Commands:
    def __init__(self, deps: Deps, actions: Actions, modlog: ModLog) -> None:
        self._deps = deps
        self._actions = actions
        self._modlog = modlog

    async def run(self, payload: dict[str, Any]) -> None:
        """One `/quitbot` invocation, already acknowledged; every answer is ephemeral."""
        command = parse_command(str(payload.get("text") or ""))
        user = str(payload.get("user_id"))
        channel = str(payload.get("channel_id"))

        async def tell(text: str, blocks: list[dict[str, Any]] | None = None) -> None:
            await self._deps.ephemeral(channel, user, text, blocks)

        if command.verb == "end":
            await self._end(command, user, tell)
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

    async def _end(self, command: Command, user: str, tell: Tell) -> None:
        if not command.target:
            await tell(NO_TARGET)
            return
        conversation = await resolve(self._deps, command.target)
        await self._actions.ask_to_end(conversation, user, tell)

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
