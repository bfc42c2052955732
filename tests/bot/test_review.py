"""The review queue in the core, as the adapters' moderator commands will use it."""

from __future__ import annotations

from bot.flows import Refusal
from bot.notices import NoticeKind
from bot.review import Decision
from tests.bot.test_flows import ALICE, HERE, MOD, Setup, end_by_ladder, setup, text

__all__ = ["setup"]


async def ended_and_disputed(s: Setup) -> str:
    await s.say("hello")
    await end_by_ladder(s)
    conversation = await s.flows.find(HERE)
    assert conversation is not None and conversation.ladder.ended
    await s.flows.feedback(conversation.id, ALICE, "this was a mistake")
    return conversation.id


async def test_the_queue_shows_what_a_moderator_needs(setup: Setup) -> None:
    conversation_id = await ended_and_disputed(setup)
    refused = await setup.flows.review_queue(is_moderator=False)
    assert refused.refusal is Refusal.NOT_MODERATOR and refused.items == ()

    queue = await setup.flows.review_queue(is_moderator=True)
    [item] = queue.items
    assert item.conversation.id == conversation_id
    assert [f.text for f in item.feedback] == ["this was a mistake"]
    assert item.redirects == item.conversation.ladder.redirects >= 1
    assert item.last_messages and item.last_messages[0].seq <= item.last_messages[-1].seq
    assert item.waiting_since == item.feedback[0].at
    assert item.stated_reason == "kept on"  # the model's own words when it ended it


async def test_upholding_takes_it_off_the_queue_and_keeps_it_ended(setup: Setup) -> None:
    conversation_id = await ended_and_disputed(setup)
    result = await setup.flows.resolve_review(
        conversation_id, MOD, Decision.UPHOLD, "the warning was clear", is_moderator=True
    )
    assert result.ok and result.conversation is not None and result.conversation.ladder.ended
    assert (await setup.flows.review_queue(is_moderator=True)).items == ()
    kinds = await setup.kinds()
    assert kinds[-1] == "review"
    _, events = await setup.flows.engine.record(conversation_id)
    assert events[-1].detail == {
        "moderator_id": MOD,
        "decision": "upheld",
        "note": "the warning was clear",
    }
    assert setup.here.reopened == 0


async def test_reopening_records_both_and_tells_the_place(setup: Setup) -> None:
    conversation_id = await ended_and_disputed(setup)
    result = await setup.flows.resolve_review(
        conversation_id, MOD, Decision.REOPEN, "too strict", is_moderator=True
    )
    assert result.ok and result.conversation is not None
    assert not result.conversation.ladder.ended
    assert (await setup.kinds())[-2:] == ["review", "reopen"]
    assert setup.here.reopened == 1 and setup.here.kinds()[-1] is NoticeKind.REOPENED
    assert (await setup.flows.review_queue(is_moderator=True)).items == ()
    setup.model.script = [text("Welcome back.")]
    await setup.say("hi again")
    assert "Welcome back." in "".join(setup.here.replies)


async def test_resolving_is_for_moderators_and_ended_conversations(setup: Setup) -> None:
    conversation_id = await ended_and_disputed(setup)
    refused = await setup.flows.resolve_review(
        conversation_id, ALICE, Decision.REOPEN, is_moderator=False
    )
    assert refused.refusal is Refusal.NOT_MODERATOR
    missing = await setup.flows.resolve_review("cnope", MOD, Decision.UPHOLD, is_moderator=True)
    assert missing.refusal is Refusal.NOT_FOUND
    await setup.flows.resolve_review(conversation_id, MOD, Decision.REOPEN, is_moderator=True)
    again = await setup.flows.resolve_review(
        conversation_id, MOD, Decision.UPHOLD, is_moderator=True
    )
    assert again.refusal is Refusal.NOT_ENDED


def test_one_mistake_rate_counts_reopened_ends_and_would_be_ends_marked_wrong() -> None:
    from bot.review import MistakeRate

    assert MistakeRate.of({}).rate is None
    rate = MistakeRate.of(
        {"upheld": 5, "reopened": 1, "would_end_right": 2, "would_end_wrong": 2, "other": 9}
    )
    assert (rate.decided, rate.mistakes, rate.rate) == (10, 3, 0.3)


async def test_an_end_nobody_disputed_cannot_be_upheld(setup: Setup) -> None:
    await setup.say("hello")
    await end_by_ladder(setup)
    conversation = await setup.flows.find(HERE)
    assert conversation is not None
    refused = await setup.flows.resolve_review(
        conversation.id, MOD, Decision.UPHOLD, "fine", is_moderator=True
    )
    assert refused.refusal is Refusal.NOT_FLAGGED and "nothing to uphold" in refused.text
    assert "review" not in await setup.kinds()
    await setup.flows.feedback(conversation.id, ALICE, "this was a mistake")
    upheld = await setup.flows.resolve_review(
        conversation.id, MOD, Decision.UPHOLD, "fine", is_moderator=True
    )
    assert upheld.ok
    again = await setup.flows.resolve_review(
        conversation.id, MOD, Decision.UPHOLD, "twice", is_moderator=True
    )
    assert again.refusal is Refusal.NOT_FLAGGED  # decided since
