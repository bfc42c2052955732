"""The store's retention, forgetting, data export and review queue (store contract: every
backend must pass these)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.conversation import Actor, AuditEvent, ConversationKey, LadderState
from bot.ports import NewMessage, Purged
from bot.settings import parse_database_url
from bot.store import open_store

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
KEY = ConversationKey("discord", "thread-1")
ENDED = LadderState(redirects=3, warned=True, ended=True, ended_by=Actor.MODEL)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Any]:
    """An empty store of each backend (SQLite, PostgreSQL)."""
    opened = await open_store(parse_database_url(database_url))
    try:
        yield opened
    finally:
        await opened.close()


def said(text: str, at: datetime, user_id: str = "alice") -> NewMessage:
    api = [{"role": "user", "content": [{"type": "text", "text": text}]}]
    return NewMessage("user", text, api, at, user_id=user_id, platform_message_id=f"m-{text}")


def answered(text: str, at: datetime) -> NewMessage:
    api = [{"role": "assistant", "content": [{"type": "text", "text": text}]}]
    return NewMessage("assistant", text, api, at)


def event(name: str, at: datetime, actor: Actor = Actor.MODEL, **detail: object) -> AuditEvent:
    return AuditEvent(name, at, actor, dict(detail))


async def test_purge_empties_old_text_and_keeps_the_rest(store: Any) -> None:
    conversation = await store.create(KEY, "alice", T0)
    old = [said("my secret plan", T0), answered("I can't help with that", T0)]
    await store.commit_turn(
        conversation.id,
        LadderState(redirects=1),
        T0,
        old,
        [event("redirect", T0, kind="harmful_request", note="asked for a plan", redirects=1)],
    )
    await store.add_feedback(
        conversation.id, "alice", "unfair!", T0, [event("feedback", T0, Actor.USER, text="unfair!")]
    )
    await store.commit_turn(
        conversation.id, LadderState(redirects=1), T0 + 3 * DAY, [said("new words", T0 + 3 * DAY)]
    )

    purged = await store.purge_text(T0 + DAY)
    assert purged == Purged(messages=2, feedback=1, events=2, pending=0)

    messages = await store.messages(conversation.id)
    assert [(m.seq, m.role, m.text, m.api, m.in_context) for m in messages[:2]] == [
        (1, "user", "", [], False),
        (2, "assistant", "", [], False),
    ]
    assert messages[0].user_id == "alice" and messages[0].platform_message_id == "m-my secret plan"
    assert messages[2].text == "new words" and messages[2].in_context
    redirect, feedback = await store.events(conversation.id)
    assert redirect.kind == "redirect"
    assert redirect.detail == {"kind": "harmful_request", "redirects": 1}
    assert feedback.detail == {}
    assert await store.feedback(conversation.id) == [("alice", "", T0)]
    assert (await store.get(conversation.id)).ladder.redirects == 1
    assert await store.purge_text(T0 + DAY) == Purged()  # nothing left to do


async def test_purge_drops_old_unhandled_messages(store: Any) -> None:
    from bot.conversation import Inbound

    await store.receive(Inbound(KEY, "e1", "alice", "kept too long"), T0)
    await store.receive(Inbound(KEY, "e2", "alice", "recent"), T0 + 2 * DAY)
    assert (await store.purge_text(T0 + DAY)).pending == 1
    assert [i.text for i in await store.pending(T0 + 3 * DAY)] == ["recent"]


async def test_forget_deletes_a_persons_words_everywhere_and_audits_it(store: Any) -> None:
    mine = await store.create(KEY, "alice", T0)
    await store.commit_turn(
        mine.id,
        ENDED,
        T0,
        [said("alice here", T0), answered("hello alice", T0), said("bob chimes in", T0, "bob")],
        [event("end", T0, reason="persistent_abuse", explanation="alice kept at it")],
    )
    theirs = await store.create(ConversationKey("discord", "thread-2"), "bob", T0)
    await store.commit_turn(
        theirs.id,
        LadderState(),
        T0,
        [said("bob's question", T0, "bob"), said("alice butts in", T0), answered("hi both", T0)],
    )
    await store.add_feedback(
        theirs.id,
        "alice",
        "mistake",
        T0,
        [event("feedback", T0, Actor.USER, user_id="alice", text="mistake")],
    )
    elsewhere = await store.create(ConversationKey("slack", "C1:1"), "alice", T0)
    await store.commit_turn(elsewhere.id, LadderState(), T0, [said("on slack", T0)])

    forgotten = event("user_forgotten", T0 + DAY, Actor.MODERATOR, by="cli-operator")
    result = await store.forget_user("discord", "alice", forgotten)
    assert (result.messages, result.feedback) == (3, 1)

    assert [m.text for m in await store.messages(mine.id)] == ["bob chimes in"]
    assert [m.text for m in await store.messages(theirs.id)] == ["bob's question", "hi both"]
    assert await store.feedback(theirs.id) == []
    assert [m.text for m in await store.messages(elsewhere.id)] == ["on slack"]  # other platform
    mine_events = await store.events(mine.id)
    assert mine_events[0].detail == {"reason": "persistent_abuse"}
    assert mine_events[-1] == forgotten
    theirs_events = await store.events(theirs.id)
    assert theirs_events[0].detail == {"user_id": "alice"}
    assert theirs_events[-1] == forgotten
    assert await store.events(elsewhere.id) == []
    record = await store.person("discord", "alice")
    assert record.messages == [] and record.feedback == []


async def test_person_gathers_everything_kept_about_someone(store: Any) -> None:
    mine = await store.create(KEY, "alice", T0)
    await store.commit_turn(mine.id, LadderState(), T0, [said("one", T0), answered("two", T0)])
    theirs = await store.create(ConversationKey("discord", "thread-2"), "bob", T0 + DAY)
    await store.commit_turn(
        theirs.id, LadderState(), T0 + DAY, [said("three", T0 + DAY), said("bob", T0, "bob")]
    )
    await store.add_feedback(theirs.id, "alice", "hm", T0 + DAY)
    await store.create(ConversationKey("slack", "x"), "alice", T0)

    record = await store.person("discord", "alice")
    assert [c.id for c in record.conversations] == [mine.id]
    assert [(cid, m.text) for cid, m in record.messages] == [(mine.id, "one"), (theirs.id, "three")]
    assert record.feedback == [(theirs.id, "hm", T0 + DAY)]


async def test_the_review_queue_holds_ended_conversations_with_unanswered_feedback(
    store: Any,
) -> None:
    async def ended_with_feedback(place: str, at: datetime, platform: str = "discord") -> str:
        conversation = await store.create(ConversationKey(platform, place), "alice", at)
        await store.commit_turn(conversation.id, ENDED, at)
        await store.add_feedback(conversation.id, "alice", "mistake", at)
        return str(conversation.id)

    later = await ended_with_feedback("later", T0 + DAY)
    first = await ended_with_feedback("first", T0)
    on_slack = await ended_with_feedback("s", T0 + 2 * DAY, "slack")
    no_feedback = await store.create(ConversationKey("discord", "quiet"), "alice", T0)
    await store.commit_turn(no_feedback.id, ENDED, T0)
    active = await store.create(ConversationKey("discord", "active"), "alice", T0)
    await store.add_feedback(active.id, "alice", "huh", T0)

    assert [c.id for c in await store.awaiting_review()] == [first, later, on_slack]
    assert [c.id for c in await store.awaiting_review("discord")] == [first, later]
    assert [c.id for c in await store.awaiting_review(limit=1)] == [first]

    decided = event("review", T0 + 3 * DAY, Actor.MODERATOR, decision="upheld")
    await store.add_events(first, [decided])
    assert [c.id for c in await store.awaiting_review()] == [later, on_slack]
    # New feedback after the decision puts it back, at the time of that feedback.
    await store.add_feedback(first, "alice", "still a mistake", T0 + 4 * DAY)
    assert [c.id for c in await store.awaiting_review()] == [later, on_slack, first]
