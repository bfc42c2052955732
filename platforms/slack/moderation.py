"""Moderators: who counts as one, the mod-log channel, and the words for status and audit."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot.conversation import AuditEvent, Conversation, ConversationKey
from platforms.slack.deps import Deps
from platforms.slack.render import escape
from platforms.slack.translate import key_from_link, split_key

log = logging.getLogger(__name__)

AUDIT_LINES = 30


async def is_moderator(deps: Deps, user_id: str) -> bool:
    """A configured admin id, or a workspace admin or owner (users.info)."""
    if user_id in deps.settings.slack.admin_user_ids:
        return True
    try:
        response = await deps.client.users_info(user=user_id)
    except SlackApiError as exc:
        log.warning("users.info for %s failed: %s", user_id, exc.response.get("error"))
        return False
    user = response.get("user") or {}
    return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))


async def resolve(deps: Deps, target: str) -> Conversation | None:
    """A conversation named by a thread link or by its id."""
    if not target:
        return None
    key = key_from_link(target)
    if key is not None:
        return await deps.engine.find(key)
    return await deps.engine.get(target)


async def thread_link(deps: Deps, key: ConversationKey) -> str:
    channel, thread_ts = split_key(key)
    return await deps.permalink(channel, thread_ts)


def status_text(conversation: Conversation, link: str) -> str:
    ladder = conversation.ladder
    lines = [
        f"*Conversation* `{conversation.id}` ({_linked('thread', link)}), "
        f"started by <@{conversation.user_id}>",
        f"State: *{conversation.state}*; redirects: {ladder.redirects}; "
        f"warned: {'yes' if ladder.warned else 'no'}; crisis: {'yes' if ladder.crisis else 'no'}",
    ]
    if ladder.ended:
        lines.append(f"Ended by {ladder.ended_by}: {ladder.ended_reason}")
    if conversation.branched_from:
        lines.append(f"Branched from `{conversation.branched_from}`")
    return "\n".join(lines)


def audit_text(conversation: Conversation, events: list[AuditEvent]) -> str:
    if not events:
        return f"No events recorded for `{conversation.id}`."
    shown = events[-AUDIT_LINES:]
    lines = [f"*Audit trail* of `{conversation.id}` (last {len(shown)} of {len(events)}):"]
    for event in shown:
        detail = ", ".join(f"{k}={v}" for k, v in event.detail.items() if v not in ("", None))
        when = event.at.strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"• {when} *{event.kind}* by {event.actor}" + (f": {escape(detail)}" if detail else "")
        )
    return "\n".join(lines)


def _linked(label: str, link: str) -> str:
    return f"<{link}|{label}>" if link else label


class ModLog:
    """Posts ends, reopens and feedback to the configured mod-log channel, with permalinks."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._channel = deps.settings.slack.modlog_channel

    async def ended(self, conversation: Conversation, message_ts: str) -> None:
        channel, _ = split_key(conversation.key)
        link = await self._deps.permalink(channel, message_ts) if self._channel else ""
        ladder = conversation.ladder
        await self._post(
            f":no_entry_sign: Conversation `{conversation.id}` with <@{conversation.user_id}> "
            f"ended by {ladder.ended_by} ({ladder.ended_reason}). {_linked('View', link)}"
        )

    async def reopened(self, conversation: Conversation, moderator_id: str, note: str) -> None:
        link = await thread_link(self._deps, conversation.key) if self._channel else ""
        why = f": {escape(note)}" if note else ""
        await self._post(
            f":arrows_counterclockwise: <@{moderator_id}> reopened `{conversation.id}`{why}. "
            f"{_linked('View', link)}"
        )

    async def feedback(self, conversation: Conversation, user_id: str, text: str) -> None:
        link = await thread_link(self._deps, conversation.key) if self._channel else ""
        await self._post(
            f":speech_balloon: <@{user_id}> on `{conversation.id}`: {escape(text)} "
            f"{_linked('View', link)}"
        )

    async def _post(self, text: str) -> None:
        if not self._channel:
            return
        try:
            await self._deps.client.chat_postMessage(channel=self._channel, text=text)
        except SlackApiError as exc:
            log.warning("mod-log post to %s failed: %s", self._channel, exc.response.get("error"))
