"""A disputed shut-out in the moderators' review queue (DESIGN.md rule 8): someone other
than the starter, shut out of a conversation that goes on, says "this was a mistake"; a
moderator readmits them or upholds it. Through the flows, on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.flows import Refusal
from bot.review import Decision, MistakeRate, review_queue
from bot.settings import parse_database_url
from bot.store import open_store
from tests.bot.test_flows import ALICE, BOB, HERE, MOD, Setup, make, text
from tests.bot.test_shared_place import bob_is_shut_out, the_starter_earns_the_end


@pytest.fixture
async def shared(database_url: str) -> AsyncIterator[Setup]:
    store = await open_store(parse_database_url(database_url))
    try:
        yield make(store)  # type: ignore[arg-type]  # any Store does
    finally:
        await store.close()


async def disputed(s: Setup) -> str:
    await bob_is_shut_out(s)
    conversation = await s.flows.find(HERE)
    assert conversation is not None
    assert (await s.flows.feedback(conversation.id, BOB, "I was only joking")).ok
    return conversation.id


async def queue(s: Setup) -> list[tuple[str, str | None]]:
    items = (await s.flows.review_queue(is_moderator=True)).items
    return [(item.conversation.id, item.shut_out_user_id) for item in items]


async def test_an_undisputed_shut_out_never_waits(shared: Setup) -> None:
    await bob_is_shut_out(shared)
    assert await queue(shared) == []
    conversation = await shared.flows.find(HERE)
    assert conversation is not None
    await shared.flows.feedback(conversation.id, ALICE, "all fine here")  # not an end, not hers
    assert await queue(shared) == []


async def test_a_disputed_shut_out_waits_with_their_side_of_it(shared: Setup) -> None:
    conversation_id = await disputed(shared)
    [item] = (await shared.flows.review_queue(is_moderator=True)).items
    assert item.conversation.id == conversation_id and not item.conversation.ladder.ended
    assert item.shut_out_user_id == BOB
    assert [(f.user_id, f.text) for f in item.feedback] == [(BOB, "I was only joking")]
    assert item.stated_reason == "kept at it"
    assert [m.text for m in item.last_messages] == ["you are useless", "useless!!"]
    assert item.participants[BOB].ended


async def test_readmitting_lets_them_write_again_and_leaves_the_queue(shared: Setup) -> None:
    conversation_id = await disputed(shared)
    result = await shared.flows.resolve_review(
        conversation_id, MOD, Decision.READMIT, "a joke among friends", is_moderator=True
    )
    assert result.ok, result.text
    assert await queue(shared) == []
    _, events = await shared.flows.engine.record(conversation_id)
    review, readmitted = events[-2:]
    assert review.kind == "review" and review.detail == {
        "participant": BOB,
        "moderator_id": MOD,
        "note": "a joke among friends",
        "decision": "readmitted",
    }
    assert readmitted.kind == "participant_readmitted" and readmitted.detail["moderator_id"] == MOD
    shared.model.script = [text("Welcome back, Bob.")]
    await shared.say("sorry, Porto then?", user=BOB)
    assert "Welcome back, Bob." in "".join(shared.here.replies)
    assert MistakeRate.of(await shared.flows.engine.review_decisions(events[0].at)).readmitted == 1


async def test_upholding_keeps_them_out_and_leaves_the_queue(shared: Setup) -> None:
    conversation_id = await disputed(shared)
    refused = await shared.flows.resolve_review(
        conversation_id, MOD, Decision.UPHOLD, is_moderator=False
    )
    assert refused.refusal is Refusal.NOT_MODERATOR
    result = await shared.flows.resolve_review(
        conversation_id, MOD, Decision.UPHOLD, "it was abuse", is_moderator=True
    )
    assert result.ok, result.text
    assert await queue(shared) == []
    _, events = await shared.flows.engine.record(conversation_id)
    assert events[-1].kind == "review" and events[-1].detail["decision"] == "upheld"
    assert events[-1].detail["participant"] == BOB
    calls = shared.model.calls
    await shared.say("let me back in", user=BOB)
    assert shared.model.calls == calls  # still shut out
    again = await shared.flows.resolve_review(
        conversation_id, MOD, Decision.UPHOLD, is_moderator=True, shut_out_user_id=BOB
    )
    assert again.refusal is Refusal.NOT_FLAGGED  # nobody disputed it since
    await shared.flows.feedback(conversation_id, BOB, "please look again")
    assert await queue(shared) == [(conversation_id, BOB)]


async def test_the_starters_end_is_an_item_of_its_own(shared: Setup) -> None:
    conversation = await the_starter_earns_the_end(shared)
    await shared.flows.feedback(conversation.id, ALICE, "this was a mistake")
    [item] = await review_queue(shared.flows.engine)
    assert item.shut_out_user_id is None and [f.user_id for f in item.feedback] == [ALICE]
    assert item.stated_reason == "kept at it"
    upheld = await shared.flows.resolve_review(
        conversation.id, MOD, Decision.UPHOLD, is_moderator=True
    )
    assert upheld.ok and await queue(shared) == []
