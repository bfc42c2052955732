"""A conversation as a readable Markdown transcript, its audit events in place, for a
moderator to read or attach to a report."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.conversation import AuditEvent, Conversation, LadderState, StoredMessage

# Detail keys shown on an event's line, in this order; the rest (ids) are for `show --json`.
_SHOWN = (
    "participant",
    "kind",
    "reason",
    "why",
    "decision",
    "redirects",
    "explanation",
    "note",
    "text",
    "error",
)


def markdown(
    conversation: Conversation,
    messages: list[StoredMessage],
    events: list[AuditEvent],
    participants: Mapping[str, LadderState] | None = None,
) -> str:
    """The transcript: a header with the conversation's state (and the ladder of everyone
    else who wrote in it), then its messages and audit events in time order (an event at the
    same instant as a message comes after it)."""
    ladder = conversation.ladder
    lines = [
        f"# Conversation {conversation.id}",
        "",
        f"- Platform: {conversation.key.platform} (`{conversation.key.place}`)",
        f"- Started by: `{conversation.user_id}` at {_when(conversation.created_at)}",
    ]
    if ladder.ended:
        by = ladder.ended_by.value if ladder.ended_by else "?"
        reason = ladder.ended_reason.value if ladder.ended_reason else "?"
        ended_at = _when(conversation.ended_at) if conversation.ended_at else "?"
        lines.append(f"- State: **ended** by {by} ({reason}) at {ended_at}")
    else:
        lines.append("- State: active")
    lines.append(
        f"- Redirects: {ladder.redirects}; warned: {_yes(ladder.warned)}; "
        f"crisis: {_yes(ladder.crisis)}"
    )
    for user_id, theirs in sorted((participants or {}).items()):
        out = f"; **shut out** ({theirs.ended_reason})" if theirs.ended else ""
        lines.append(
            f"- Also writing: `{user_id}`: redirects {theirs.redirects}; warned: "
            f"{_yes(theirs.warned)}; crisis: {_yes(theirs.crisis)}{out}"
        )
    if conversation.branched_from:
        lines.append(f"- Branched from: {conversation.branched_from}")
    lines += ["", "## Transcript", ""]
    for item in timeline(messages, events):
        lines += _message(item) if isinstance(item, StoredMessage) else _event(item)
    return "\n".join(lines).rstrip() + "\n"


def timeline(
    messages: list[StoredMessage], events: list[AuditEvent]
) -> list[StoredMessage | AuditEvent]:
    """Messages and audit events in time order; an event at the same instant as a message
    comes after it."""
    entries: list[tuple[datetime, int, int, StoredMessage | AuditEvent]] = [
        (m.at, 0, i, m) for i, m in enumerate(messages)
    ]
    entries += [(e.at, 1, i, e) for i, e in enumerate(events)]
    return [item for *_, item in sorted(entries, key=lambda entry: entry[:3])]


def event_parts(event: AuditEvent) -> list[tuple[str, str]]:
    """What an event's line shows: (key, value on one line), the ids left out."""
    return [(key, _plain(event.detail[key])) for key in _SHOWN if key in event.detail]


def _message(message: StoredMessage) -> list[str]:
    who = "assistant" if message.role == "assistant" else f"user `{message.user_id or '?'}`"
    left_out = " (left out of the model's context)" if not message.in_context else ""
    body = message.text if message.text else "_(text removed)_"
    quoted = "\n".join(f"> {line}" if line else ">" for line in body.splitlines() or [""])
    return [f"**{who}** · {_when(message.at)}{left_out}", "", quoted, ""]


def _event(event: AuditEvent) -> list[str]:
    parts = [f"{key}: {value}" for key, value in event_parts(event)]
    said = f" — {'; '.join(parts)}" if parts else ""
    return [f"- 🛈 _{event.kind}_ by {event.actor.value} · {_when(event.at)}{said}", ""]


def _plain(value: Any) -> str:
    return " ".join(str(value).split())  # one line, whatever the note held


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
