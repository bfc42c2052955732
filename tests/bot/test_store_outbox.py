"""The webhook outbox on both backends: queued with the events it carries, claimed by one
claimer at a time, leased, retried and forgotten once delivered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.conversation import LadderState
from bot.ports import Outbox
from bot.settings import parse_database_url
from bot.store import open_store
from tests.bot.storekit import ENDED, KEY, T0, at, event, inbound, user_message
from tests.bot.test_store import AnyStore

OUTBOX = Outbox(targets=("hook-a", "hook-b"), kinds=frozenset({"end", "feedback", "redirect"}))
LEASE = timedelta(seconds=60)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[AnyStore]:
    store = await open_store(parse_database_url(database_url), outbox=OUTBOX)
    try:
        yield store  # type: ignore[misc]
    finally:
        await store.close()


async def test_events_of_the_outbox_kinds_are_queued_for_every_target(db: AnyStore) -> None:
    conversation = await db.create(KEY, "u1", T0, events=[event("branched")])
    await db.commit_turn(
        conversation.id, ENDED, at(1), (), [event("warning", at(1)), event("end", at(1))]
    )
    await db.add_feedback(conversation.id, "u1", "a mistake", at(2), [event("feedback", at(2))])
    items = await db.claim_outbox(["hook-a", "hook-b"], at(5), LEASE, 10)
    assert [(i.event.kind, i.target) for i in items] == [
        ("end", "hook-a"),
        ("end", "hook-b"),
        ("feedback", "hook-a"),
        ("feedback", "hook-b"),
    ]
    first = items[0]
    assert first.conversation_id == conversation.id and first.key == KEY
    assert first.event.at == at(1) and first.attempts == 1
    assert first.event_id < items[2].event_id
    assert items[2].event.detail == {}


async def test_a_turn_that_answers_a_message_queues_its_events_in_its_transaction(
    db: AnyStore,
) -> None:
    conversation = await db.create(KEY, "u1", T0)
    message = inbound("e1")
    assert await db.begin_turn(conversation.id, message, user_message("hi"))
    await db.commit_turn(
        conversation.id,
        LadderState(redirects=1),
        at(1),
        (),
        [event("redirect", at(1), redirects=1)],
        answered=message,
    )
    items = await db.claim_outbox(["hook-a"], at(1), LEASE, 10)
    assert [(i.event.kind, i.event.detail) for i in items] == [("redirect", {"redirects": 1})]


async def test_a_claim_holds_rows_for_its_lease_and_only_its_targets(db: AnyStore) -> None:
    conversation = await db.create(KEY, "u1", T0)
    await db.add_events(conversation.id, [event("end", at(1)), event("redirect", at(2))])
    assert await db.claim_outbox(["hook-a"], at(0), LEASE, 10) == []  # not due yet
    taken = await db.claim_outbox(["hook-a"], at(3), LEASE, 1)
    assert [i.event.kind for i in taken] == ["end"]
    rest = await db.claim_outbox(["hook-a"], at(3), LEASE, 10)
    assert [i.event.kind for i in rest] == ["redirect"]
    assert await db.claim_outbox(["hook-a"], at(30), LEASE, 10) == []  # leased
    again = await db.claim_outbox(["hook-a"], at(3) + LEASE, LEASE, 10)
    assert [(i.event.kind, i.attempts) for i in again] == [("end", 2), ("redirect", 2)]
    assert len(await db.claim_outbox(["hook-b"], at(3), LEASE, 10)) == 2


async def test_done_rows_go_and_retried_rows_come_back_when_due(db: AnyStore) -> None:
    conversation = await db.create(KEY, "u1", T0)
    await db.add_events(conversation.id, [event("end", at(1)), event("feedback", at(1))])
    end, feedback = await db.claim_outbox(["hook-a"], at(1), LEASE, 10)
    await db.outbox_done([(end.event_id, end.target)])
    await db.outbox_retry([(feedback.event_id, feedback.target)], at(10))
    assert await db.claim_outbox(["hook-a"], at(9), LEASE, 10) == []
    (back,) = await db.claim_outbox(["hook-a"], at(10), LEASE, 10)
    assert (back.event_id, back.attempts) == (feedback.event_id, 2)
    await db.outbox_done([(back.event_id, back.target)])
    assert await db.claim_outbox(["hook-a"], at(10_000), LEASE, 10) == []


async def test_a_store_without_an_outbox_queues_nothing(database_url: str) -> None:
    store = await open_store(parse_database_url(database_url))
    try:
        conversation = await store.create(KEY, "u1", T0)
        await store.add_events(conversation.id, [event("end", at(1))])
        assert await store.claim_outbox(["hook-a"], at(5), LEASE, 10) == []
    finally:
        await store.close()


async def test_concurrent_claims_never_take_one_row_twice(database_url: str) -> None:
    stores = [await open_store(parse_database_url(database_url), outbox=OUTBOX) for _ in range(3)]
    try:
        conversation = await stores[0].create(KEY, "u1", T0)
        await stores[0].add_events(conversation.id, [event("end", at(n)) for n in range(40)])
        claims = await asyncio.gather(
            *(s.claim_outbox(["hook-a"], at(100), LEASE, 7) for s in stores for _ in range(3))
        )
        taken = [item.event_id for claim in claims for item in claim]
        assert len(taken) == len(set(taken)) == 40
    finally:
        for store in stores:
            await store.close()
