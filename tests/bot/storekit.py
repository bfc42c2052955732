"""What the store tests share: fixed times, keys, and builders of messages and events."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bot.conversation import (
    Actor,
    AuditEvent,
    ConversationKey,
    EndReason,
    Inbound,
    LadderState,
)
from bot.ports import NewMessage

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
KEY = ConversationKey("discord", "thread-1")
QUIET = timedelta(seconds=60)
ENDED = LadderState(
    redirects=3,
    warned=True,
    ended=True,
    ended_by=Actor.MODEL,
    ended_reason=EndReason.PERSISTENT_ABUSE,
)
# What a broken constraint raises, by backend.
INTEGRITY = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def user_message(text: str, when: datetime = T0, **kwargs: object) -> NewMessage:
    api = [{"role": "user", "content": [{"type": "text", "text": text}]}]
    return NewMessage("user", text, api, when, **kwargs)  # type: ignore[arg-type]


def assistant_message(text: str, when: datetime = T0) -> NewMessage:
    api = [{"role": "assistant", "content": [{"type": "text", "text": text}]}]
    return NewMessage("assistant", text, api, when)


def inbound(event_id: str, user_id: str = "u1", key: ConversationKey = KEY) -> Inbound:
    return Inbound(key=key, event_id=event_id, user_id=user_id, text="hello")


def event(kind: str, when: datetime = T0, **detail: object) -> AuditEvent:
    return AuditEvent(kind, when, Actor.MODEL, dict(detail))


async def ended_conversation(store: Any) -> str:
    conversation = await store.create(KEY, "u1", T0)
    await store.commit_turn(conversation.id, ENDED, T0)
    return conversation.id
