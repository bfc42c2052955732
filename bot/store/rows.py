"""Messages and events as database rows, shared by both backends.

The backends differ only in how a time is stored (SQLite: fixed-width UTC text;
PostgreSQL: timestamptz) and in what text a column can hold, so each passes its own codecs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from bot.conversation import (
    Actor,
    AuditEvent,
    ContextEntry,
    Conversation,
    ConversationKey,
    EndReason,
    FileRef,
    Inbound,
    LadderState,
    StoredMessage,
)
from bot.ports import NO_OUTBOX, ListFilter, NewMessage, Outbox, OutboxItem

# The columns both backends select, in the order this module's readers take them.
CONVERSATION_COLUMNS = (
    "id, platform, place, user_id, redirects, warned, crisis, ended, ended_by, ended_reason, "
    "created_at, updated_at, ended_at, branched_from, end_proposed, community"
)
MESSAGE_COLUMNS = "seq, role, text, at, user_id, platform_message_id, in_context, api"
# The same, named for a query that joins conversations as `c`.
QUALIFIED_CONVERSATION_COLUMNS = ", ".join(
    f"c.{column.strip()}" for column in CONVERSATION_COLUMNS.split(",")
)
ACTORS = {actor.value: actor for actor in Actor}
END_REASONS = {reason.value: reason for reason in EndReason}


# A conversation read twice a turn (`at_place`, `commit_turn`) builds a frozen ladder each
# time, ~1.5 µs on SQLite's store thread (bench/README.md, issue 22, fifth round).
_UNTOUCHED = LadderState()


def conversation(row: Sequence[Any], at: Callable[[Any], datetime]) -> Conversation:
    """A row of `CONVERSATION_COLUMNS`, its times read by `at` (SQLite keeps booleans as
    integers)."""
    (
        conversation_id,
        platform,
        place,
        user_id,
        redirects,
        warned,
        crisis,
        ended,
        ended_by,
        ended_reason,
        created_at,
        updated_at,
        ended_at,
        branched_from,
        end_proposed,
        community,
    ) = row
    if not (redirects or warned or crisis or ended or ended_by or ended_reason or end_proposed):
        ladder = _UNTOUCHED  # nearly every conversation's: one immutable value shared
    else:
        ladder = LadderState(
            redirects=redirects,
            warned=bool(warned),
            crisis=bool(crisis),
            ended=bool(ended),
            ended_by=None if ended_by is None else ACTORS[ended_by],
            ended_reason=None if ended_reason is None else END_REASONS[ended_reason],
            end_proposed=bool(end_proposed),
        )
    return Conversation(
        id=conversation_id,
        key=ConversationKey(platform, place),
        user_id=user_id,
        ladder=ladder,
        created_at=at(created_at),
        updated_at=at(updated_at),
        ended_at=None if ended_at is None else at(ended_at),
        branched_from=branched_from,
        community=community,
    )


def list_filter(
    state: str | None,
    platform: str | None,
    community: str | None,
    more: ListFilter,
    placeholder: Callable[[int], str],
    stamp: Callable[[datetime], Any],
) -> tuple[str, list[Any]]:
    """`list_conversations`' WHERE clause and its parameters, in a backend's placeholders
    (`placeholder(n)` for the n-th, from 1) and time codec."""
    if state is not None and state not in {"active", "ended"}:
        raise ValueError(f"state must be 'active' or 'ended', not {state!r}")
    wanted = [
        ("ended =", None if state is None else state == "ended"),
        ("platform =", platform),
        ("community =", community),
        ("ended_reason =", more.ended_reason),
        ("user_id =", more.user_id),
        ("created_at >=", None if more.since is None else stamp(more.since)),
        ("created_at <", None if more.before is None else stamp(more.before)),
    ]
    given = [(test, value) for test, value in wanted if value is not None]
    clauses = [f"{test} {placeholder(n)}" for n, (test, _) in enumerate(given, start=1)]
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    return where, [value for _, value in given]


encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _same(text: str) -> str:
    return text


def json_list(texts: list[str]) -> list[Any]:
    """Decode many stored JSON values with one json.loads call (they are valid JSON each)."""
    if not texts:
        return []
    decoded: list[Any] = json.loads("[" + ",".join(texts) + "]")
    return decoded


NO_FILES = "[]"  # most messages come without files: no JSON work for them either way


def files_json(files: Sequence[FileRef]) -> str:
    """A received message's file references as the inbox keeps them."""
    if not files:
        return NO_FILES
    return encode_json([asdict(file) for file in files])  # by field name: a new field is no break


def files_from_json(text: str) -> tuple[FileRef, ...]:
    if text == NO_FILES:
        return ()
    return tuple(FileRef(**fields) for fields in json.loads(text))


# The inbox columns `received` reads, in its order; both stores select them so.
INBOX_COLUMNS = "platform, event_id, place, user_id, text, message_id, community, files"


def received(rows: Sequence[Any]) -> list[Inbound]:
    """Inbox rows of INBOX_COLUMNS as the messages they keep."""
    return [
        Inbound(
            ConversationKey(platform, place),
            event_id,
            user_id,
            text,
            message_id,
            community=community,
            files=files_from_json(files),
        )
        for platform, event_id, place, user_id, text, message_id, community, files in rows
    ]


def message_values(
    message: NewMessage, at: Callable[[datetime], Any], text: Callable[[str], str] = _same
) -> tuple[Any, ...]:
    """(role, text, api, at, user_id, platform_message_id, in_context) for an insert."""
    return (
        message.role,
        text(message.text),
        encode_json(message.api),
        at(message.at),
        message.user_id,
        message.platform_message_id,
        message.in_context,
    )


def message_rows(
    messages: Sequence[NewMessage],
    at: Callable[[datetime], Any],
    text: Callable[[str], str] = _same,
) -> list[tuple[Any, ...]]:
    return [message_values(message, at, text) for message in messages]


def event_rows(
    events: Sequence[AuditEvent], at: Callable[[datetime], Any], outbox: Outbox = NO_OUTBOX
) -> list[tuple[Any, ...]]:
    """(kind, at, actor, detail, targets) for each event: `targets` are the outbox's
    destinations it is queued for, in the transaction that records it."""
    queued = outbox.targets_for(events)
    return [
        (e.kind, at(e.at), e.actor.value, encode_json(e.detail), targets)
        for e, targets in zip(events, queued, strict=True)
    ]


def queued(rows: Sequence[tuple[Any, ...]]) -> bool:
    """Whether any of these `event_rows` goes to the outbox."""
    return any(row[4] for row in rows)


def stored(seq: int, message: NewMessage) -> StoredMessage:
    """The message as stored under `seq`, without reading it back."""
    return StoredMessage(
        seq=seq,
        role=message.role,
        text=message.text,
        api=message.api,
        at=message.at.astimezone(UTC),
        user_id=message.user_id,
        platform_message_id=message.platform_message_id,
        in_context=message.in_context,
    )


# The columns `context_entries` reads, in its order.
CONTEXT_COLUMNS = "seq, role, in_context, api"


def context_entries(rows: Sequence[Any]) -> list[ContextEntry]:
    """Rows of CONTEXT_COLUMNS; the API JSON is left as text (bot/context.py reads it)."""
    # tuple.__new__ skips the named tuple's own __new__, a Python call per row.
    return [
        _tuple(ContextEntry, (seq, role, api, bool(in_context)))
        for seq, role, in_context, api in rows
    ]


_tuple = tuple.__new__


def messages(rows: Sequence[Any], at: Callable[[Any], datetime]) -> list[StoredMessage]:
    """Rows of (seq, role, text, at, user_id, platform_message_id, in_context, api)."""
    apis = json_list([row[7] for row in rows])
    return [
        StoredMessage(seq, role, text, api, at(when), user_id, pmid, bool(in_context))
        for (seq, role, text, when, user_id, pmid, in_context, _), api in zip(
            rows, apis, strict=True
        )
    ]


# The participants' columns `participant_ladders` reads, in its order. A participant is
# anyone but the starter who wrote in a conversation; the starter's ladder is the
# conversation's own. Shut out is their ended ladder (only the model shuts anyone out).
PARTICIPANT_COLUMNS = "user_id, redirects, warned, crisis, shut_out, shut_out_reason"


def participant_ladders(rows: Sequence[Any]) -> dict[str, LadderState]:
    """Rows of PARTICIPANT_COLUMNS as each participant's ladder."""
    return {
        user_id: LadderState(
            redirects=redirects,
            warned=bool(warned),
            crisis=bool(crisis),
            ended=bool(shut_out),
            ended_by=Actor.MODEL if shut_out else None,
            ended_reason=None if reason is None else EndReason(reason),
        )
        for user_id, redirects, warned, crisis, shut_out, reason in rows
    }


def participant_values(
    conversation_id: str, user_id: str, ladder: LadderState, at: Any
) -> tuple[Any, ...]:
    """(conversation_id, user_id, redirects, warned, crisis, shut_out, reason, at)."""
    reason = None if ladder.ended_reason is None else ladder.ended_reason.value
    return (
        conversation_id,
        user_id,
        ladder.redirects,
        ladder.warned,
        ladder.crisis,
        ladder.ended,
        reason,
        at,
    )


# What a claim reads of each outbox row, in `outbox_items`' order: the row, its event and
# the event's conversation, from OUTBOX_JOIN (the outbox as `o`).
OUTBOX_COLUMNS = (
    "o.event_n, o.target, o.attempts, e.kind, e.at, e.actor, e.detail, "
    "c.id, c.platform, c.place, c.community"
)
OUTBOX_JOIN = (
    "outbox o JOIN events e ON e.n = o.event_n JOIN conversations c ON c.id = e.conversation_id"
)


def outbox_items(rows: Sequence[Any], at: Callable[[Any], datetime]) -> list[OutboxItem]:
    """Rows of OUTBOX_COLUMNS as claimed items."""
    details = json_list([row[6] for row in rows])
    return [
        OutboxItem(
            event_n,
            target,
            attempts,
            conversation_id,
            ConversationKey(platform, place),
            community,
            AuditEvent(kind, at(when), Actor(actor), detail),
        )
        for (
            event_n,
            target,
            attempts,
            kind,
            when,
            actor,
            _,
            conversation_id,
            platform,
            place,
            community,
        ), detail in zip(rows, details, strict=True)
    ]
