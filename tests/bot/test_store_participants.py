"""Each participant's ladder in a shared place, on both backends: kept with the turn that
climbed it, shut out once, and counted against the person who earned it."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from bot.communities import CommunitySettings
from bot.conversation import Conversation, ConversationKey, Inbound, LadderState
from bot.ports import AtPlace
from tests.bot.storekit import ENDED, T0, at, event, inbound, user_message
from tests.bot.storekit import at as at_time
from tests.bot.test_store import AnyStore, store  # noqa: F401 - `store` is a fixture


@pytest.fixture
def db(store: AnyStore) -> AnyStore:  # noqa: F811 - test_store's fixture: each backend, empty
    return store


SHUT_OUT = ENDED  # a participant shut out: their own ladder, ended


async def turn_of(
    db: AnyStore, conversation_id: str, who: str, n: int, ladder: LadderState
) -> Conversation:
    key = (await db.get(conversation_id)).key
    message = user_message("hey", at(n), user_id=who)
    assert await db.begin_turn(conversation_id, inbound(f"e{n}", who, key), message)
    starter = (await db.get(conversation_id)).ladder
    return await db.commit_turn(
        conversation_id, starter, at(n), (), [event("redirect", at(n))], participant=(who, ladder)
    )


async def test_someone_elses_ladder_is_theirs_and_the_conversation_keeps_its_own(
    db: AnyStore,
) -> None:
    conversation = await db.create(ConversationKey("discord", "t1"), "alice", T0)
    assert await db.participants(conversation.id) == {}
    warned = LadderState(redirects=2, warned=True)
    after = await turn_of(db, conversation.id, "bob", 1, warned)
    assert after.ladder == LadderState() and not after.ladder.ended
    assert await db.participants(conversation.id) == {"bob": warned}
    await turn_of(db, conversation.id, "bob", 2, SHUT_OUT)
    await turn_of(db, conversation.id, "carol", 3, LadderState(crisis=True))
    assert await db.participants(conversation.id) == {
        "bob": SHUT_OUT,
        "carol": LadderState(crisis=True),
    }
    assert not (await db.get(conversation.id)).ladder.ended


async def test_ends_count_against_who_earned_them(db: AnyStore) -> None:
    alices = await db.create(ConversationKey("discord", "t1"), "alice", T0)
    await turn_of(db, alices.id, "bob", 1, SHUT_OUT)
    assert await db.ended_count("discord", "alice", T0) == 0
    assert await db.ended_count("discord", "bob", T0) == 1
    assert await db.ended_count("slack", "bob", T0) == 0
    assert await db.ended_count("discord", "bob", at(2)) == 0  # earned before `since`
    # Shut out is stamped once: another turn of the same ladder does not move it.
    await turn_of(db, alices.id, "bob", 5, SHUT_OUT)
    assert await db.ended_count("discord", "bob", at(2)) == 0
    # Let back in (a moderator), then shut out again: stamped anew.
    await turn_of(db, alices.id, "bob", 6, replace(SHUT_OUT, ended=False))
    await turn_of(db, alices.id, "bob", 7, SHUT_OUT)
    assert await db.ended_count("discord", "bob", at(6)) == 1


async def test_what_a_turn_starts_from_is_read_together(db: AnyStore) -> None:
    key = ConversationKey("discord", "t1")
    hello = inbound("e1", "alice", key)
    assert await db.at_place(hello) == AtPlace(None)
    first = await db.create(key, "alice", T0)
    assert await db.at_place(hello) == AtPlace(first)
    await turn_of(db, first.id, "bob", 1, SHUT_OUT)
    await turn_of(db, first.id, "carol", 2, LadderState(crisis=True))
    at = await db.at_place(hello)
    assert at.conversation == await db.current(key)
    assert at.others == {"bob": SHUT_OUT, "carol": LadderState(crisis=True)}
    newer = await db.create(key, "dave", at_time(3))  # a new conversation at the same place
    assert await db.at_place(hello) == AtPlace(newer)


async def test_messages_received_before_are_named_oldest_first(db: AnyStore) -> None:
    key, elsewhere = ConversationKey("slack", "C1:1.0"), ConversationKey("slack", "C1:2.0")
    received = [inbound(f"r{n}", "alice", key) for n in range(3)]
    for n, message in enumerate(received):
        assert await db.receive(message, at_time(n))
    assert await db.receive(inbound("x", "alice", elsewhere), at_time(4))
    assert (await db.at_place(received[0])).earlier == ()
    assert [i.event_id for i in (await db.at_place(received[2])).earlier] == ["r0", "r1"]
    assert (await db.at_place(inbound("never-received", "alice", key))).earlier == ()
    await db.settle(received[0])  # answered (or given up): no longer waiting
    assert [i.event_id for i in (await db.at_place(received[2])).earlier] == ["r1"]


async def test_a_place_is_in_use_with_a_conversation_or_a_message_waiting_there(
    db: AnyStore,
) -> None:
    """A follow-up reaching another process before the mention's conversation is made must
    still be taken: the mention waits in the inbox, in use."""
    key = ConversationKey("slack", "C1:1.0")
    assert not await db.in_use(key)
    mention = inbound("m1", "alice", key)
    assert await db.receive(mention, T0)
    assert await db.in_use(key)
    assert not await db.in_use(ConversationKey("slack", "C1:2.0"))
    await db.settle(mention)
    assert not await db.in_use(key)
    await db.create(key, "alice", T0)
    assert await db.in_use(key)


async def test_a_turn_starts_from_its_communitys_own_settings(db: AnyStore) -> None:
    key = ConversationKey("discord", "t1")
    hello = replace(inbound("e1", "alice", key), community="g1")
    assert (await db.at_place(hello)).community is None  # none of its own: the defaults
    own = CommunitySettings(redirects_before_warning=1, redirects_before_end=2)
    await db.set_community_settings("discord", "g1", own, T0, "mod")
    await db.set_community_settings("discord", "g2", CommunitySettings(crisis_message="x"), T0, "m")
    assert (await db.at_place(hello)).community == own  # before the conversation: the message's
    await db.create(key, "alice", T0, community="g2")
    assert (await db.at_place(hello)).community == CommunitySettings(crisis_message="x")
    await turn_of(db, (await db.current(key)).id, "bob", 1, SHUT_OUT)  # a row per participant
    assert (await db.at_place(hello)).community == CommunitySettings(crisis_message="x")
    elsewhere = await db.create(ConversationKey("discord", "t2"), "alice", T0)
    assert (await db.at_place(inbound("e2", "alice", elsewhere.key))).community is None


async def test_places_read_together_each_get_their_own(db: AnyStore) -> None:
    keys = [ConversationKey("discord", f"t{n}") for n in range(6)]
    started = [await db.create(key, "alice", T0) for key in keys[:4]]
    await turn_of(db, started[1].id, "bob", 1, SHUT_OUT)
    await turn_of(db, started[1].id, "carol", 2, LadderState(crisis=True))
    started = [await db.get(conversation.id) for conversation in started]
    waiting = [inbound(f"w{n}", "alice", keys[5]) for n in range(2)]
    for n, message in enumerate(waiting):
        assert await db.receive(message, at_time(n))
    asked = [inbound(f"x{n}", "alice", key) for n, key in enumerate(keys)] + waiting[1:]
    places = await asyncio.gather(*(db.at_place(message) for message in asked))
    assert [place.conversation for place in places] == [*started, None, None, None]
    assert places[1].others == {"bob": SHUT_OUT, "carol": LadderState(crisis=True)}
    assert [place.others for n, place in enumerate(places) if n != 1] == [{}] * 6
    assert [i.event_id for i in places[-1].earlier] == ["w0"]
    assert all(place.earlier == () for place in places[:-1])


async def test_turns_held_together_each_start_from_their_own(db: AnyStore) -> None:
    """`serialised_at` gives each turn what `at_place` reads, once its conversation is held
    (on PostgreSQL read in the lock's own round trip, several turns' in one)."""
    keys = [ConversationKey("discord", f"t{n}") for n in range(6)]
    started = [await db.create(key, "alice", T0) for key in keys[:4]]
    await turn_of(db, started[1].id, "bob", 1, SHUT_OUT)
    own = CommunitySettings(crisis_message="x")
    await db.set_community_settings("discord", "g1", own, T0, "mod")
    waiting = [replace(inbound(f"w{n}", "alice", keys[5]), community="g1") for n in range(2)]
    for n, message in enumerate(waiting):
        assert await db.receive(message, at_time(n))
    asked = [inbound(f"x{n}", "alice", key) for n, key in enumerate(keys)] + waiting[1:]
    expected = [await db.at_place(message) for message in asked]
    assert expected[1].others == {"bob": SHUT_OUT}
    assert [i.event_id for i in expected[-1].earlier] == ["w0"]
    assert expected[-1].community == own

    async def turn(message: Inbound) -> AtPlace:
        async with db.serialised_at(message) as at:
            return at

    assert await asyncio.gather(*(turn(message) for message in asked)) == expected
