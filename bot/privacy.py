"""A person's data: forgetting it and exporting it (`quitbot users forget|export`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.conversation import Actor, AuditEvent
from bot.ports import PersonRecord, Purged, Store


async def forget(store: Store, platform: str, user_id: str, by: str, now: datetime) -> Purged:
    """Delete what this person wrote; each conversation touched records that it happened
    (who asked and whom it was about), never what was deleted."""
    event = AuditEvent(
        "user_forgotten", now, Actor.MODERATOR, {"user_id": user_id, "platform": platform, "by": by}
    )
    return await store.forget_user(platform, user_id, event)


async def export(store: Store, platform: str, user_id: str, now: datetime) -> dict[str, Any]:
    """Everything kept about this person, as one JSON-ready object: the conversations they
    started (with every message and audit event), what they wrote elsewhere, their feedback,
    and what they sent that is kept but not answered yet."""
    # Imported here: the operator module pulls in the adapters' registry.
    from bot.operator import conversation_json, event_json, message_json

    record = await store.person(platform, user_id)
    conversations = []
    for conversation in record.conversations:
        conversations.append(
            {
                **conversation_json(conversation),
                "messages": [message_json(m) for m in await store.messages(conversation.id)],
                "events": [event_json(e) for e in await store.events(conversation.id)],
            }
        )
    started = {c.id for c in record.conversations}
    return {
        "platform": platform,
        "user_id": user_id,
        "exported_at": now.isoformat(),
        "conversations_started": conversations,
        "messages_elsewhere": [
            {"conversation_id": cid, **message_json(m)}
            for cid, m in record.messages
            if cid not in started
        ],
        "feedback": [
            {"conversation_id": cid, "text": text, "at": at.isoformat()}
            for cid, text, at in record.feedback
        ],
        "messages_waiting": [
            {
                "place": inbound.key.place,
                "text": inbound.text,
                "files": [file.name for file in inbound.files],
                "community": inbound.community,
            }
            for inbound in record.waiting
        ],
    }


def on_record(record: PersonRecord) -> bool:
    """Whether the store keeps anything that names this person."""
    return bool(record.conversations or record.messages or record.feedback or record.waiting)
