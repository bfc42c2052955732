"""What a Slack thread already shows after a message: the bot's reply a stopped run left
there, read with `conversations.replies`, and marked as cut short when it was left half."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from platforms.slack.place import SlackPlace

log = logging.getLogger(__name__)

# conversations.replies: "We recommend no more than 200 results at a time", and apps
# distributed outside the Marketplace may get no more than 15 a call and one call a minute
# (https://docs.slack.dev/reference/methods/conversations.replies). A reply is found in the
# first few messages after the one it answers, so pages are small and few.
PAGE = 15
MAX_PAGES = 10
CUT_SHORT_MARK = "\n\n_(cut short: answered again below)_"
# What chat.appendStream / stopStream answer for a stream Slack already closed, by a stop or
# after minutes without an append (slackapi/python-slack-sdk#1859).
NOT_STREAMING = "message_not_in_streaming_state"


# Message metadata (https://docs.slack.dev/messaging/message-metadata): an event_type and a
# free-form event_payload, kept with the message and returned by conversations.replies with
# `include_all_metadata`. quitbot puts it on the message that completes a reply (a whole post,
# a stream's stop), so the thread itself says which message a complete reply answers.
MARK_TYPE = "quitbot_reply"


def answer_mark(answering: str) -> dict[str, object]:
    """The metadata that marks a complete reply to the message `answering`."""
    return {"event_type": MARK_TYPE, "event_payload": {"answers": answering}}


def answers(message: dict[str, Any]) -> str:
    """The message a complete reply answers, by its mark; "" for anything else."""
    mark = message.get("metadata") or {}
    if mark.get("event_type") != MARK_TYPE:
        return ""
    return str((mark.get("event_payload") or {}).get("answers") or "")


def _ts(value: object) -> Decimal:
    """A Slack ts as a number, so that "1.10" follows "1.9"; an unreadable one sorts first."""
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(-1)


def reply_parts(messages: Sequence[dict[str, Any]], reply_id: str) -> list[dict[str, Any]]:
    """The messages of the reply beginning with `reply_id`: it and the messages by the same
    bot straight after it (a long reply's later parts), oldest first."""
    ordered = sorted(messages, key=lambda m: _ts(m.get("ts")))
    start = next((i for i, m in enumerate(ordered) if str(m.get("ts")) == reply_id), None)
    if start is None:
        return []
    author = _author(ordered[start])
    parts = [ordered[start]]
    for message in ordered[start + 1 :]:
        if _author(message) != author:
            break
        parts.append(message)
    return parts


def _author(message: dict[str, Any]) -> str:
    return str(message.get("bot_id") or message.get("user") or "")


async def after(
    place: SlackPlace, message_id: str, reply_id: str = ""
) -> list[dict[str, Any]] | None:
    """The thread's messages after `message_id`, oldest first, with their metadata, read
    page by page until the reply beginning with `reply_id` is over (without one: until a
    reply marked as answering `message_id` is found); None when Slack would not say."""
    found: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(MAX_PAGES):
        data, error = await place.deps.attempt(
            "conversations_replies",
            channel=place.channel,
            ts=place.thread_ts,
            oldest=message_id,
            inclusive=False,
            limit=PAGE,
            cursor=cursor or None,
            include_all_metadata=True,
        )
        if error:
            return None
        # The thread's first message may come back whatever `oldest` says; only what is
        # later than the message answered counts.
        later = [m for m in data.get("messages") or [] if _ts(m.get("ts")) > _ts(message_id)]
        found.extend(later)
        cursor = str((data.get("response_metadata") or {}).get("next_cursor") or "")
        if reply_id:
            parts = reply_parts(found, reply_id)
            over = bool(parts) and len(_from(found, reply_id)) > len(parts)  # someone else
        else:
            over = any(answers(m) == message_id for m in found)
        if over or not cursor:
            break
    return found


def _from(messages: list[dict[str, Any]], reply_id: str) -> list[dict[str, Any]]:
    """The messages from `reply_id` on."""
    start = _ts(reply_id)
    return [m for m in messages if _ts(m.get("ts")) >= start]


async def reply_text(place: SlackPlace, message_id: str, reply_id: str) -> str | None:
    messages = await after(place, message_id, reply_id)
    parts = reply_parts(messages or [], reply_id)
    return "".join(str(m.get("text") or "") for m in parts) or None


async def marked_reply(place: SlackPlace, message_id: str) -> tuple[str, str] | None:
    """A complete reply to `message_id` found by its mark: (its first message's ts, its
    text). A long reply's earlier parts are the same bot's messages straight before the
    marked one, back to anything else (a person, a half reply marked as cut short)."""
    me = place.deps.bot_user_id
    if not me:
        return None  # whose message is whose is not known yet: adopt nothing
    ordered = sorted(await after(place, message_id) or [], key=lambda m: _ts(m.get("ts")))
    # Only our own messages count: any app may post metadata of the same shape.
    ours = (i for i, m in enumerate(ordered) if answers(m) == message_id and m.get("user") == me)
    end = next(ours, None)
    if end is None:
        return None
    start = end
    while start > 0 and _author(ordered[start - 1]) == _author(ordered[end]):
        earlier = ordered[start - 1]
        if answers(earlier) or str(earlier.get("text") or "").endswith(CUT_SHORT_MARK):
            break
        start -= 1
    parts = ordered[start : end + 1]
    return str(parts[0]["ts"]), "".join(str(m.get("text") or "") for m in parts)


async def cut_short(place: SlackPlace, message_id: str, reply_id: str) -> None:
    """Stop a stream left open (Slack keeps it open a few minutes) with the mark as its
    last words; a stream already closed, or a posted message, is edited to carry it."""
    stop = {"channel": place.channel, "ts": reply_id, "markdown_text": CUT_SHORT_MARK.strip()}
    _, error = await place.deps.attempt("chat_stopStream", frozenset({NOT_STREAMING}), **stop)
    if not error:
        return
    messages = await after(place, message_id, reply_id)
    parts = reply_parts(messages or [], reply_id)
    if not parts:
        log.info("Slack reply %s cut short is not in the thread any more", reply_id)
        return
    last = parts[-1]
    text = str(last.get("text") or "") + CUT_SHORT_MARK
    await place.deps.attempt("chat_update", channel=place.channel, ts=str(last["ts"]), text=text)
