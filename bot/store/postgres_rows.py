"""Rows and values of the PostgreSQL store: what asyncpg gives back made the core's types,
and the core's values made fit for PostgreSQL (timezone-aware times, no NUL in text). The
shared codec (bot/store/rows.py) does the rest, as it does for SQLite's."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.communities import CommunitySettings
from bot.conversation import Conversation, Inbound, StoredMessage
from bot.ports import AtPlace, NewMessage
from bot.store import postgres_sql as sql
from bot.store import rows as codec


def why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: the store takes timezone-aware times")
    return at


def utc(at: datetime) -> datetime:
    return at if at.tzinfo is UTC else at.astimezone(UTC)


def text(value: str) -> str:
    """PostgreSQL text cannot hold NUL, which SQLite keeps; U+FFFD stands in for it."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as `width` column arrays, for unnest()."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


def quiet_until(at: datetime, quiet: timedelta) -> datetime | None:
    """The time a person's last notice must be at or before to be notified again; None for
    never again (SQLite's text times order the same way at the calendar's ends)."""
    try:
        return at - quiet
    except OverflowError:
        return None if quiet > timedelta(0) else datetime.max.replace(tzinfo=UTC)


def claim_params(conversation_id: str, inbound: Inbound, at: datetime) -> tuple[Any, ...]:
    if not inbound.event_id:
        raise ValueError("inbound.event_id is empty; adapters must give every event an id")
    return (inbound.key.platform, inbound.event_id, aware(at), conversation_id)


def first(row: Any) -> Any:
    return row[0]


def at_place(rows: list[Any]) -> AtPlace:
    """One place's rows of sql.AT_PLACES."""
    first = tuple(rows[0])
    columns = first[1 : sql.EARLIER]
    earlier = tuple(codec.received(list(zip(*columns, strict=True)))) if columns[0] else ()
    settings = first[sql.SETTINGS]
    own = None if settings is None else CommunitySettings.from_json(settings)
    if first[sql.EARLIER] is None:
        return AtPlace(None, {}, earlier, own)
    others = [
        tuple(row)[sql.PARTICIPANT_AT : sql.SETTINGS] for row in rows if row["p_user"] is not None
    ]
    found = conversation(first[sql.EARLIER : sql.PARTICIPANT_AT])
    return AtPlace(found, codec.participant_ladders(others), earlier, own)


def conversation(row: Any) -> Conversation:
    """A row of `CONVERSATION_COLUMNS`; a ladder update's row also ends with `last_seq`."""
    return codec.conversation(tuple(row)[:16], utc)


def count(status: str) -> int:
    """The row count of a command status such as "UPDATE 3"."""
    return int(status.rsplit(" ", 1)[-1])


# --- rows: the shared codec (bot/store/rows.py) with this backend's time format ----------


def message_values(message: NewMessage) -> tuple[Any, ...]:
    return codec.message_values(message, aware, text)


def message_rows(messages: Sequence[NewMessage]) -> list[tuple[Any, ...]]:
    return codec.message_rows(messages, aware, text)


def messages(found: Sequence[Any]) -> list[StoredMessage]:
    return codec.messages(found, utc)
