"""Alert-only mode's would-be ends awaiting a moderator's mark, and the review decisions
counted for the mistake rate, on both backends."""

from __future__ import annotations

import pytest

from bot.conversation import Actor, AuditEvent, ConversationKey
from tests.bot.storekit import T0, at
from tests.bot.test_store import AnyStore, store  # noqa: F401 - a fixture


@pytest.fixture
def db(store: AnyStore) -> AnyStore:  # noqa: F811 - test_store's fixture: each backend, empty
    return store


def review(decision: str, seconds: float) -> AuditEvent:
    return AuditEvent("review", at(seconds), Actor.MODERATOR, {"decision": decision})


async def test_would_be_ends_wait_for_a_mark_and_decisions_are_counted(db: AnyStore) -> None:
    first = await db.create(ConversationKey("discord", "t1"), "alice", T0, community="g1")
    second = await db.create(ConversationKey("slack", "C1:1.0"), "bob", T0, community="T1")
    would = AuditEvent("would_end", at(1), Actor.MODEL, {"reason": "persistent_abuse"})
    await db.add_events(first.id, [would])
    await db.add_events(second.id, [AuditEvent("would_end", at(2), Actor.MODEL, {})])
    assert [c.id for c in await db.awaiting_marks()] == [first.id, second.id]
    assert [c.id for c in await db.awaiting_marks("slack")] == [second.id]
    assert [c.id for c in await db.awaiting_marks(community="g1")] == [first.id]
    assert [c.id for c in await db.awaiting_marks(limit=1)] == [first.id]
    await db.add_events(first.id, [review("would_end_wrong", 3)])
    assert [c.id for c in await db.awaiting_marks()] == [second.id]
    await db.add_events(first.id, [AuditEvent("would_end", at(4), Actor.MODEL, {})])
    assert [c.id for c in await db.awaiting_marks()] == [second.id, first.id]  # a new one

    await db.add_events(second.id, [review("upheld", 5), review("would_end_right", 6)])
    assert await db.review_decisions(T0) == {
        "would_end_wrong": 1,
        "upheld": 1,
        "would_end_right": 1,
    }
    assert await db.review_decisions(at(5.5)) == {"would_end_right": 1}
