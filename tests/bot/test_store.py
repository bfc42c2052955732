"""The store contract: every test here runs against SQLite and against PostgreSQL.

What only one backend has (SQLite's thread and group commit, PostgreSQL's pool and
migrations lock) is tested in test_store_sqlite.py and test_store_postgres.py.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bot.conversation import (
    Actor,
    Attachment,
    AuditEvent,
    ContextEntry,
    ConversationKey,
    EndReason,
    FileRef,
    LadderState,
)
from bot.ports import BlockedOutcome, ListFilter, NewMessage, ShownReply
from bot.settings import parse_database_url
from bot.store import SqliteStore, UnknownConversation
from bot.store.postgres import PostgresStore
from tests.bot.storekit import (
    ENDED,
    INTEGRITY,
    KEY,
    QUIET,
    T0,
    assistant_message,
    at,
    ended_conversation,
    event,
    inbound,
    user_message,
)

# Later than anything a test receives: every kept message is pending before it.
LATER = datetime(2999, 1, 1, tzinfo=UTC)

AnyStore = SqliteStore | PostgresStore


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[AnyStore]:
    target = parse_database_url(database_url)
    opened: AnyStore
    if target.backend == "sqlite":
        opened = await SqliteStore.open(target.path)
    else:
        opened = await PostgresStore.open(target.url)
    async with opened:
        yield opened


# --- conversations -----------------------------------------------------------------------


async def test_create_starts_an_active_conversation_with_a_typable_id(store: AnyStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    assert re.fullmatch(r"c[2-9a-hj-km-np-z]{9}", conversation.id)
    assert conversation.key == KEY
    assert conversation.user_id == "u1"
    assert conversation.ladder == LadderState()
    assert conversation.state == "active"
    assert (conversation.created_at, conversation.updated_at) == (T0, T0)
    assert conversation.ended_at is None
    assert conversation.branched_from is None


async def test_ids_are_unique(store: AnyStore) -> None:
    conversations = [await store.create(KEY, "u1", T0) for _ in range(50)]
    assert len({c.id for c in conversations}) == 50


async def test_create_can_carry_history_and_events_for_a_branch(store: AnyStore) -> None:
    original = await store.create(KEY, "u1", T0)
    history = [user_message("one"), assistant_message("two")]
    branch = await store.create(
        ConversationKey("discord", "thread-2"),
        "u1",
        at(5),
        branched_from=original.id,
        history=history,
        events=[event("branched", at(5), source=original.id)],
    )
    assert branch.branched_from == original.id
    messages = await store.messages(branch.id)
    assert [(m.seq, m.role, m.text) for m in messages] == [
        (1, "user", "one"),
        (2, "assistant", "two"),
    ]
    assert await store.events(branch.id) == [event("branched", at(5), source=original.id)]


async def test_current_is_the_newest_conversation_at_a_place(store: AnyStore) -> None:
    assert await store.current(KEY) is None
    await store.create(KEY, "u1", at(10))
    newer = await store.create(KEY, "u1", at(0))  # created later, whatever its clock says
    await store.create(ConversationKey("slack", KEY.place), "u1", at(20))
    await store.create(ConversationKey("discord", "elsewhere"), "u1", at(30))
    assert await store.current(KEY) == newer


async def test_get_an_unknown_id_is_none(store: AnyStore) -> None:
    assert await store.get("cnothere22") is None


# --- turns -------------------------------------------------------------------------------


async def test_begin_turn_numbers_the_message_and_touches_the_conversation(
    store: AnyStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)
    first = await store.begin_turn(conversation.id, inbound("e1"), user_message("a", at(1)))
    second = await store.begin_turn(
        conversation.id, inbound("e2"), user_message("b", at(2), platform_message_id="m2")
    )
    assert first is not None and second is not None
    assert (first.seq, second.seq) == (1, 2)
    assert second.platform_message_id == "m2"
    assert await store.messages(conversation.id) == [first, second]
    touched = await store.get(conversation.id)
    assert touched is not None and touched.updated_at == at(2)


async def test_begin_turn_handles_a_platform_event_once(store: AnyStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    assert await store.begin_turn(conversation.id, inbound("e1"), user_message("a")) is not None
    again = await store.begin_turn(conversation.id, inbound("e1"), user_message("a again", at(9)))
    assert again is None
    assert [m.text for m in await store.messages(conversation.id)] == ["a"]
    unchanged = await store.get(conversation.id)
    assert unchanged is not None and unchanged.updated_at == T0


async def test_a_received_event_is_kept_until_a_turn_takes_it(store: AnyStore) -> None:
    assert await store.receive(inbound("e1"), at(1))
    assert not await store.receive(inbound("e1"), at(2))  # a retry is not kept twice
    [kept] = await store.pending(LATER)
    assert (kept.key, kept.event_id, kept.user_id, kept.text) == (KEY, "e1", "u1", "hello")
    conversation = await store.create(KEY, "u1", T0)
    taken = await store.begin_turn(conversation.id, inbound("e1"), user_message("hi"))
    assert taken is not None and taken.seq == 1
    # Until the turn commits, the message stays received: a process dying mid-turn
    # leaves it to the next start-up, which answers it without storing it again.
    assert [i.event_id for i in await store.pending(LATER)] == ["e1"]
    answered = await store.commit_turn(
        conversation.id, LadderState(), at(3), [assistant_message("hello")], answered=inbound("e1")
    )
    assert answered.id == conversation.id and await store.pending(LATER) == []
    again = await store.begin_turn(conversation.id, inbound("e1"), user_message("hi"))
    assert again is None


async def test_a_received_messages_files_are_kept_by_reference_until_its_turn(
    store: AnyStore,
) -> None:
    """Where to read them again, never their contents: a restart reads them afresh."""
    files = (
        FileRef("notes.txt", "text/plain", 12, "https://cdn.example/a/notes.txt?ex=1&hm=f"),
        FileRef("naïve\x00 \ud83d.png", "image/png"),  # NUL, and half an emoji
    )
    read = (Attachment("notes.txt", "text/plain", b"the contents", 12),)
    assert await store.receive(replace(inbound("e1"), files=files, attachments=read), at(1))
    assert await store.receive(inbound("e2"), at(2))
    with_files, without = await store.pending(LATER)
    assert with_files.files == (
        files[0],
        FileRef("naïve\x00 \ufffd.png", "image/png", 0, ""),
    )
    assert with_files.attachments == () and without.files == ()


async def test_a_turn_begun_by_a_process_that_died_is_taken_up_once(store: AnyStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    received = replace(inbound("e1"), message_id="m1")
    assert await store.receive(received, at(1))
    message = user_message("hi", platform_message_id="m1")
    first = await store.begin_turn(conversation.id, received, message)
    # The process died here; the next one's start-up takes the message up again.
    [pending] = await store.pending(LATER)
    again = await store.begin_turn(conversation.id, pending, message)
    assert first is not None and again is not None and again.seq == first.seq
    await store.commit_turn(
        conversation.id, LadderState(), at(3), [assistant_message("hello")], answered=pending
    )
    messages = await store.messages(conversation.id)
    assert [(m.role, m.text) for m in messages] == [("user", "hi"), ("assistant", "hello")]
    assert await store.pending(LATER) == []
    assert await store.begin_turn(conversation.id, pending, message) is None


async def test_a_received_event_to_an_ended_conversation_is_taken_once(
    store: AnyStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)
    assert await store.receive(inbound("e1"), at(1))
    quiet = timedelta(minutes=1)
    assert await store.record_blocked(conversation.id, inbound("e1"), at(1), quiet) is (
        BlockedOutcome.NOTIFY
    )
    assert await store.record_blocked(conversation.id, inbound("e1"), at(2), quiet) is (
        BlockedOutcome.DUPLICATE
    )
    assert await store.pending(LATER) == []


async def test_settle_forgets_a_received_event(store: AnyStore) -> None:
    assert await store.receive(inbound("e1"), at(1))
    await store.settle(inbound("e1"))
    assert await store.pending(LATER) == []
    assert not await store.receive(inbound("e1"), at(2))  # still handled once


async def test_event_ids_are_per_platform(store: AnyStore) -> None:
    slack = ConversationKey("slack", "C1:1.0")
    discord_conversation = await store.create(KEY, "u1", T0)
    slack_conversation = await store.create(slack, "u1", T0)
    assert await store.begin_turn(discord_conversation.id, inbound("e1"), user_message("a"))
    assert await store.begin_turn(
        slack_conversation.id, inbound("e1", key=slack), user_message("b")
    )


async def test_begin_turn_in_an_unknown_conversation_claims_nothing(store: AnyStore) -> None:
    with pytest.raises(UnknownConversation):
        await store.begin_turn("cnothere22", inbound("e1"), user_message("a"))
    conversation = await store.create(KEY, "u1", T0)
    assert await store.begin_turn(conversation.id, inbound("e1"), user_message("a"))


async def test_a_failed_begin_turn_leaves_the_event_unclaimed(store: AnyStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    bad = replace(user_message("a"), role="system")
    with pytest.raises(INTEGRITY):
        await store.begin_turn(conversation.id, inbound("e1"), bad)
    assert await store.begin_turn(conversation.id, inbound("e1"), user_message("a"))
    assert [m.seq for m in await store.messages(conversation.id)] == [1]


async def test_an_event_without_an_id_is_refused(store: AnyStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    with pytest.raises(ValueError, match="event_id"):
        await store.begin_turn(conversation.id, inbound(""), user_message("a"))


async def test_commit_turn_stores_ladder_messages_and_events_together(
    store: AnyStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)
    await store.begin_turn(conversation.id, inbound("e1"), user_message("bad request", at(1)))
    ladder = LadderState(redirects=1)
    after = await store.commit_turn(
        conversation.id,
        ladder,
        at(2),
        messages=[assistant_message("I can't help with that.", at(2))],
        events=[event("redirect", at(2), note="asked for malware", message_ids=["m1"])],
        exclude_seq=1,
    )
    assert after.ladder == ladder
    assert after.updated_at == at(2)
    assert await store.get(conversation.id) == after
    messages = await store.messages(conversation.id)
    assert [(m.seq, m.role, m.in_context) for m in messages] == [
        (1, "user", False),
        (2, "assistant", True),
    ]
    assert await store.events(conversation.id) == [
        event("redirect", at(2), note="asked for malware", message_ids=["m1"])
    ]


async def test_ending_stamps_ended_at_once_and_reopening_clears_it(store: AnyStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    ended = await store.commit_turn(conversation.id, ENDED, at(5))
    assert ended.state == "ended"
    assert ended.ladder == ENDED
    assert ended.ended_at == at(5)
    still_ended = await store.commit_turn(conversation.id, ENDED, at(9))
    assert still_ended.ended_at == at(5)
    reopened = await store.commit_turn(
        conversation.id, LadderState(redirects=3, warned=True), at(20)
    )
    assert reopened.state == "active"
    assert reopened.ended_at is None


async def test_commit_turn_on_an_unknown_conversation_fails(store: AnyStore) -> None:
    with pytest.raises(UnknownConversation):
        await store.commit_turn("cnothere22", LadderState(), T0)


async def test_a_failure_mid_commit_leaves_nothing_half_written(store: AnyStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    await store.begin_turn(conversation.id, inbound("e1"), user_message("a"))
    bad = replace(assistant_message("oops"), role="system")
    with pytest.raises(INTEGRITY):
        await store.commit_turn(
            conversation.id,
            ENDED,
            at(5),
            messages=[assistant_message("fine"), bad],
            events=[event("end")],
        )
    with pytest.raises(LookupError, match="no message 7"):
        await store.commit_turn(
            conversation.id,
            ENDED,
            at(5),
            messages=[assistant_message("fine")],
            events=[event("end")],
            exclude_seq=7,
        )
    assert await store.get(conversation.id) == conversation
    assert [m.text for m in await store.messages(conversation.id)] == ["a"]
    assert await store.events(conversation.id) == []


async def test_the_first_blocked_message_notifies_then_quiet_until_the_interval_passes(
    store: AnyStore,
) -> None:
    conversation_id = await ended_conversation(store)

    async def blocked(event_id: str, seconds: float, user_id: str = "u1") -> BlockedOutcome:
        return await store.record_blocked(
            conversation_id, inbound(event_id, user_id), at(seconds), QUIET
        )

    assert await blocked("e1", 1) is BlockedOutcome.NOTIFY
    assert await blocked("e2", 30) is BlockedOutcome.QUIET
    assert await blocked("e3", 60.999) is BlockedOutcome.QUIET
    assert await blocked("e4", 61) is BlockedOutcome.NOTIFY  # a full interval after e1
    assert await blocked("e5", 62, user_id="u2") is BlockedOutcome.NOTIFY
    assert await blocked("e6", 63, user_id="u2") is BlockedOutcome.QUIET
    assert await blocked("e4", 500) is BlockedOutcome.DUPLICATE


async def test_a_zero_interval_notifies_every_time(store: AnyStore) -> None:
    conversation_id = await ended_conversation(store)
    for n in range(3):
        outcome = await store.record_blocked(conversation_id, inbound(f"e{n}"), T0, timedelta(0))
        assert outcome is BlockedOutcome.NOTIFY


async def test_a_later_end_notifies_again_at_once(store: AnyStore) -> None:
    conversation_id = await ended_conversation(store)
    assert await store.record_blocked(conversation_id, inbound("e1"), at(1), QUIET) == "notify"
    await store.commit_turn(conversation_id, LadderState(redirects=3, warned=True), at(2))
    await store.commit_turn(conversation_id, ENDED, at(3))
    assert await store.record_blocked(conversation_id, inbound("e2"), at(4), QUIET) == "notify"


async def test_blocked_messages_share_dedupe_with_turns(store: AnyStore) -> None:
    conversation_id = await ended_conversation(store)
    other = await store.create(ConversationKey("discord", "t2"), "u1", T0)
    assert await store.begin_turn(other.id, inbound("e1"), user_message("a"))
    outcome = await store.record_blocked(conversation_id, inbound("e1"), at(1), QUIET)
    assert outcome is BlockedOutcome.DUPLICATE


async def test_record_blocked_in_an_unknown_conversation_claims_nothing(
    store: AnyStore,
) -> None:
    with pytest.raises(UnknownConversation):
        await store.record_blocked("cnothere22", inbound("e1"), T0, QUIET)
    conversation_id = await ended_conversation(store)
    assert await store.record_blocked(conversation_id, inbound("e1"), T0, QUIET) == "notify"


# --- reading -----------------------------------------------------------------------------


async def test_recent_context_is_the_newest_oldest_first_as_stored_text(
    store: AnyStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)
    for n in range(1, 11):
        await store.begin_turn(conversation.id, inbound(f"e{n}"), user_message(f"m{n}", at(n)))
    await store.commit_turn(conversation.id, LadderState(), at(11), [assistant_message("é\n")])
    recent = await store.recent_context(conversation.id, 3)
    assert [json.loads(m.api_json)[0]["content"][0]["text"] for m in recent] == ["m9", "m10", "é\n"]
    # As the store wrote it (compact, UTF-8): what bot/context sends on without decoding.
    assert recent[-1] == ContextEntry(
        11, "assistant", '[{"role":"assistant","content":[{"type":"text","text":"é\\n"}]}]'
    )
    assert [m.seq for m in await store.recent_context(conversation.id, 50)] == list(range(1, 12))
    assert await store.recent_context(conversation.id, 0) == []
    assert await store.recent_context("cnothere22", 5) == []


async def test_recent_context_entries_are_context_entries_with_a_boolean_in_context(
    store: AnyStore,
) -> None:
    """Built from rows without the named tuple's own constructor (rows.context_entries):
    still ContextEntry, its fields by name, and a refused turn's flag a bool, not 0."""
    conversation = await store.create(KEY, "u1", T0)
    for n in (1, 2):
        await store.begin_turn(conversation.id, inbound(f"e{n}"), user_message(f"m{n}", at(n)))
    await store.commit_turn(conversation.id, LadderState(), at(3), exclude_seq=1)
    refused, kept = await store.recent_context(conversation.id, 5)
    assert type(refused) is ContextEntry and type(kept) is ContextEntry
    assert (refused.seq, refused.role, refused.in_context) == (1, "user", False)
    assert (kept.seq, kept.in_context) == (2, True)
    assert refused.in_context is False and kept.in_context is True
    assert json.loads(kept.api_json)[0]["content"][0]["text"] == "m2"


async def test_a_turn_begins_with_its_context_as_recent_context_would_read_it(
    store: AnyStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)
    for n in range(1, 6):
        message = user_message(f"m{n}", at(n), platform_message_id=f"m{n}")
        begun = await store.begin_turn_with_context(conversation.id, inbound(f"e{n}"), message, 3)
        assert begun is not None
        stored, context = begun
        assert context == await store.recent_context(conversation.id, 3)
        assert context[-1].seq == stored.seq == n
    assert await store.begin_turn_with_context(conversation.id, inbound("e5"), message, 3) is None
    # A turn begun by a process that died: its message, not stored again, ends the context.
    received = replace(inbound("e6"), message_id="m6")
    assert await store.receive(received, at(6))
    again = user_message("m6", at(6), platform_message_id="m6")
    first = await store.begin_turn_with_context(conversation.id, received, again, 2)
    second = await store.begin_turn_with_context(conversation.id, received, again, 2)
    assert first is not None and second == first and [e.seq for e in first[1]] == [5, 6]
    assert await store.begin_turn_with_context(conversation.id, inbound("e7"), again, 0) == (
        replace(first[0], seq=7),
        [],
    )
    with pytest.raises(UnknownConversation):
        await store.begin_turn_with_context("cnothere22", inbound("e8"), again, 3)


async def test_no_lock_of_any_conversation_stays_behind(store: AnyStore) -> None:
    """Many conversations held, some of them waited for, then given back: the store keeps
    nothing per conversation once no turn holds or waits for it."""
    keys = [ConversationKey("slack", f"C1:{n}.0") for n in range(500)]
    for round_ in range(2):
        held = [store.serialised(key) for key in keys]
        for lock in held:
            await lock.__aenter__()
        waiting = [asyncio.ensure_future(hold_once(store, key)) for key in keys[:50]]
        for lock in held:
            await lock.__aexit__(None, None, None)
        await asyncio.gather(*waiting)
        assert len(store._locks) == 0, round_
    if isinstance(store, PostgresStore):
        assert store._advisory._own == {}  # no connection of its own left open
        async with store.serialised(KEY):  # every lock given back went before this one
            assert store._advisory._asked == []


async def hold_once(store: AnyStore, key: ConversationKey) -> None:
    async with store.serialised(key):
        pass


async def test_messages_received_together_are_kept_once_in_the_order_they_came(
    store: AnyStore,
) -> None:
    messages = [inbound(f"e{n}") for n in (1, 2, 1, 3, 2)]  # two copies each of e1 and e2
    kept = await asyncio.gather(*(store.receive(m, at(n)) for n, m in enumerate(messages)))
    assert kept == [True, True, False, True, False]
    assert [m.event_id for m in await store.pending(LATER)] == ["e1", "e2", "e3"]
    again = await asyncio.gather(*(store.receive(m, at(9)) for m in messages[:2]))
    assert again == [False, False]


async def test_events_keep_their_order_and_detail(store: AnyStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    first = [event("redirect", at(1), count=1), event("warning", at(1))]
    later = [AuditEvent("reopen", at(0), Actor.MODERATOR, {"note": "ok", "by": ["mod", 1]})]
    await store.add_events(conversation.id, first)
    await store.add_events(conversation.id, later)
    assert await store.events(conversation.id) == first + later


async def test_add_events_to_an_unknown_conversation_fails(store: AnyStore) -> None:
    with pytest.raises(UnknownConversation):
        await store.add_events("cnothere22", [event("x")])


async def test_list_conversations_filters_by_state_and_platform_newest_first(
    store: AnyStore,
) -> None:
    a = await store.create(KEY, "u1", T0)
    b = await store.create(ConversationKey("slack", "C1:1.0"), "u1", T0)
    c = await store.create(ConversationKey("discord", "t3"), "u2", T0)
    b = await store.commit_turn(b.id, ENDED, at(1))
    assert [x.id for x in await store.list_conversations()] == [c.id, b.id, a.id]
    assert [x.id for x in await store.list_conversations(state="ended")] == [b.id]
    assert [x.id for x in await store.list_conversations(state="active")] == [c.id, a.id]
    assert [x.id for x in await store.list_conversations(platform="discord")] == [c.id, a.id]
    assert await store.list_conversations(state="ended", platform="discord") == []
    assert [x.id for x in await store.list_conversations(limit=1)] == [c.id]
    with pytest.raises(ValueError, match="state"):
        await store.list_conversations(state="closed")


async def test_list_conversations_of_one_community_a_page_at_a_time(store: AnyStore) -> None:
    ours = [
        await store.create(ConversationKey("discord", f"t{i}"), "u1", T0, community="g1")
        for i in range(3)
    ]
    await store.create(ConversationKey("discord", "other"), "u1", T0, community="g2")
    newest = [c.id for c in reversed(ours)]
    page = await store.list_conversations(platform="discord", community="g1", limit=2)
    assert [c.id for c in page] == newest[:2]
    rest = await store.list_conversations(community="g1", limit=2, offset=2)
    assert [c.id for c in rest] == newest[2:]


async def test_list_conversations_by_reason_starter_and_time(store: AnyStore) -> None:
    early = await store.create(ConversationKey("discord", "a"), "ann", T0, community="g1")
    later = await store.create(ConversationKey("discord", "b"), "bob", at(3600), community="g1")
    await store.commit_turn(later.id, ENDED, at(3600))

    async def listed(**more: Any) -> list[str]:
        found = await store.list_conversations(community="g1", more=ListFilter(**more))
        return [c.id for c in found]

    assert await listed(ended_reason="persistent_abuse") == [later.id]
    assert await listed(user_id="ann") == [early.id]
    assert await listed(since=at(1)) == [later.id]
    assert await listed(before=at(3600)) == [early.id]
    assert await listed(since=T0, before=at(3601)) == [later.id, early.id]


async def test_ended_count_counts_ends_the_user_did_not_ask_for(store: AnyStore) -> None:
    since = at(100)

    async def conversation_ended(
        user_id: str, when: float, ladder: LadderState = ENDED, key: ConversationKey = KEY
    ) -> str:
        conversation = await store.create(key, user_id, T0)
        await store.commit_turn(conversation.id, ladder, at(when))
        return conversation.id

    await conversation_ended("u1", 150)
    await conversation_ended("u1", 100)  # exactly at `since`
    await conversation_ended("u1", 99)  # before
    await conversation_ended(
        "u1", 150, replace(ENDED, ended_by=Actor.USER, ended_reason=EndReason.USER_REQUESTED)
    )
    await conversation_ended("u2", 150)
    await conversation_ended("u1", 150, key=ConversationKey("slack", "C1:1.0"))
    reopened = await conversation_ended("u1", 150)
    await store.commit_turn(reopened, LadderState(redirects=3, warned=True), at(160))
    await store.create(KEY, "u1", at(150))  # still active
    assert await store.ended_count("discord", "u1", since) == 2
    assert await store.ended_count("slack", "u1", since) == 1
    assert await store.ended_count("discord", "u3", since) == 0


async def test_feedback_is_kept(store: AnyStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    await store.add_feedback(conversation.id, "u1", "this was a mistake", at(3))
    await store.add_feedback(conversation.id, "u1", "really", at(4))
    assert await store.feedback(conversation.id) == [
        ("u1", "this was a mistake", at(3)),
        ("u1", "really", at(4)),
    ]
    with pytest.raises(UnknownConversation):
        await store.add_feedback("cnothere22", "u1", "?", T0)


async def test_feedback_and_its_audit_event_are_written_together(store: AnyStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    event = AuditEvent("feedback", at(3), Actor.USER, {"text": "this was a mistake"})
    await store.add_feedback(conversation.id, "u1", "this was a mistake", at(3), (event,))
    assert await store.events(conversation.id) == [event]
    assert len(await store.feedback(conversation.id)) == 1


# --- values ------------------------------------------------------------------------------


async def test_times_come_back_as_the_same_instant_in_utc(store: AnyStore) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    local = datetime(2026, 3, 1, 17, 30, 0, 123456, tzinfo=india)
    conversation = await store.create(KEY, "u1", local)
    await store.begin_turn(conversation.id, inbound("e1"), user_message("a", local))
    await store.add_events(conversation.id, [event("x", local)])
    stored = await store.get(conversation.id)
    assert stored is not None
    times = [
        stored.created_at,
        (await store.messages(conversation.id))[0].at,
        (await store.events(conversation.id))[0].at,
    ]
    for time in times:
        assert time == local
        assert time.tzinfo is UTC
        assert time.microsecond == 123456


async def test_naive_times_are_refused(store: AnyStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.create(KEY, "u1", datetime(2026, 3, 1, 12, 0))
    assert await store.current(KEY) is None


async def test_api_json_and_text_round_trip(store: AnyStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    api: list[dict[str, Any]] = [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": 'Ça va? 🚫 \u0000 "quoted"'},
                {"type": "tool_use", "id": "tu_1", "name": "note_concern", "input": {"n": 1.5}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1"}]},
    ]
    message = NewMessage("assistant", "Ça va? 🚫", api, T0, user_id="", in_context=True)
    await store.commit_turn(conversation.id, LadderState(), T0, messages=[message])
    (stored,) = await store.messages(conversation.id)
    assert stored.api == api
    assert stored.text == "Ça va? 🚫"


# --- concurrency and cancellation --------------------------------------------------------


async def test_many_coroutines_committing_at_once_never_interleave(store: AnyStore) -> None:
    conversations = [
        await store.create(ConversationKey("discord", f"t{n}"), "u1", T0) for n in range(5)
    ]

    async def turn(conversation_id: str, n: int) -> None:
        started = await store.begin_turn(
            conversation_id, inbound(f"{conversation_id}-{n}"), user_message(f"q{n}", at(n))
        )
        assert started is not None
        await store.commit_turn(
            conversation_id,
            LadderState(redirects=n),
            at(n),
            messages=[assistant_message(f"a{n}", at(n))],
            events=[event("turn", at(n), n=n)],
        )

    await asyncio.gather(*(turn(c.id, n) for c in conversations for n in range(20)))
    duplicates = await asyncio.gather(
        *(store.begin_turn(c.id, inbound(f"{c.id}-0"), user_message("x")) for c in conversations)
    )
    assert duplicates == [None] * 5
    for conversation in conversations:
        messages = await store.messages(conversation.id)
        assert [m.seq for m in messages] == list(range(1, 41))
        assert sorted(m.text for m in messages) == sorted(
            [f"q{n}" for n in range(20)] + [f"a{n}" for n in range(20)]
        )
        assert len(await store.events(conversation.id)) == 20


async def test_a_handled_event_is_a_duplicate_even_in_an_unknown_conversation(
    store: AnyStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)
    assert await store.begin_turn(conversation.id, inbound("e1"), user_message("a"))
    assert await store.begin_turn("cnothere22", inbound("e1"), user_message("a")) is None
    outcome = await store.record_blocked("cnothere22", inbound("e1"), T0, QUIET)
    assert outcome is BlockedOutcome.DUPLICATE


async def test_quiet_intervals_beyond_the_calendar_do_not_overflow(store: AnyStore) -> None:
    conversation_id = await ended_conversation(store)

    async def blocked(event_id: str, quiet: timedelta) -> BlockedOutcome:
        return await store.record_blocked(conversation_id, inbound(event_id), at(1), quiet)

    assert await blocked("e1", timedelta.max) is BlockedOutcome.NOTIFY
    assert await blocked("e2", timedelta.max) is BlockedOutcome.QUIET
    assert await blocked("e3", timedelta.min) is BlockedOutcome.NOTIFY
    assert await blocked("e4", timedelta(days=-1)) is BlockedOutcome.NOTIFY
    with pytest.raises(ValueError, match="naive"):
        await store.record_blocked(conversation_id, inbound("e5"), datetime(2026, 1, 1), QUIET)


async def test_adding_no_events_still_requires_the_conversation(store: AnyStore) -> None:
    conversation = await store.create(KEY, "u1", T0)
    await store.add_events(conversation.id, [])
    with pytest.raises(UnknownConversation):
        await store.add_events("cnothere22", [])
    await store.add_events(conversation.id, [event("a"), event("b")])
    assert [e.kind for e in await store.events(conversation.id)] == ["a", "b"]


async def test_old_event_ids_are_forgotten_recent_ones_still_deduplicate(
    store: AnyStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)
    assert await store.begin_turn(conversation.id, inbound("old"), user_message("a", at(0)))
    assert await store.begin_turn(conversation.id, inbound("new"), user_message("b", at(100)))
    assert await store.forget_events_before(at(50)) == 1
    assert (
        await store.begin_turn(conversation.id, inbound("new"), user_message("b", at(101))) is None
    )
    assert await store.begin_turn(conversation.id, inbound("old"), user_message("a", at(102)))
    assert await store.forget_events_before(at(50)) == 0


# --- serialisation across stores (as across processes) ---------------------------------


async def test_serialised_holds_a_conversation_against_a_second_store(database_url: str) -> None:
    first = await open_any(database_url)
    second = await open_any(database_url)
    try:
        order: list[str] = []
        inside = asyncio.Event()

        async def other() -> None:
            async with second.serialised(KEY):
                order.append("second")

        async with first.serialised(KEY):
            inside.set()
            waiting = asyncio.create_task(other())
            async with second.serialised(ConversationKey("discord", "elsewhere")):
                order.append("elsewhere")  # another conversation is not held up
            for _ in range(20):
                await asyncio.sleep(0)  # every chance to slip in, were the lock broken
            order.append("first")
        await asyncio.wait_for(waiting, 30)
        assert order == ["elsewhere", "first", "second"]
        assert len(first._locks) == len(second._locks) == 0  # nothing stays behind
    finally:
        await first.close()
        await second.close()


async def test_a_cancelled_waiter_leaves_the_conversation_free(database_url: str) -> None:
    first = await open_any(database_url)
    second = await open_any(database_url)
    try:

        async def wait_for_it() -> None:
            async with second.serialised(KEY):
                raise AssertionError("the holder never let go")

        async with first.serialised(KEY):
            waiting = asyncio.create_task(wait_for_it())
            for _ in range(20):
                await asyncio.sleep(0)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        for store in (second, first):
            async with asyncio.timeout(30), store.serialised(KEY):
                pass
    finally:
        await first.close()
        await second.close()


async def open_any(url: str) -> AnyStore:
    target = parse_database_url(url)
    if target.backend == "sqlite":
        return await SqliteStore.open(target.path)
    return await PostgresStore.open(target.url)


async def test_daily_activity_counts_one_communitys_days(store: AnyStore) -> None:
    ours = await store.create(KEY, "u1", T0, community="g1")
    theirs = await store.create(ConversationKey("discord", "t9"), "u2", T0, community="g2")
    next_day = at(24 * 3600)
    await store.add_events(ours.id, [event("redirect", T0), event("redirect", T0)])
    await store.add_events(
        ours.id,
        [event("warning", next_day), event("end", next_day, reason="persistent_abuse")],
    )
    await store.add_events(
        ours.id,
        [event("feedback", next_day), event("review", next_day, decision="reopened")],
    )
    await store.add_events(
        ours.id, [event("would_end", next_day), event("model_unavailable", next_day)]
    )
    await store.add_events(ours.id, [event("end_declined", next_day)])  # not a series
    await store.add_events(theirs.id, [event("redirect", T0)])
    found = sorted(await store.daily_activity("discord", "g1", T0))
    assert found == [
        ("2026-03-01", "conversation", 1),
        ("2026-03-01", "redirect", 2),
        ("2026-03-02", "end:persistent_abuse", 1),
        ("2026-03-02", "feedback", 1),
        ("2026-03-02", "model_unavailable", 1),
        ("2026-03-02", "review:reopened", 1),
        ("2026-03-02", "warning", 1),
        ("2026-03-02", "would_end", 1),
    ]
    assert await store.daily_activity("discord", "g1", at(2 * 24 * 3600)) == []


# --- the reply shown for a received message (issue #22) ------------------------------------


async def test_the_reply_shown_is_kept_with_its_message_until_the_commit(
    store: AnyStore,
) -> None:
    conversation = await store.create(KEY, "u1", T0)
    message = inbound("e1")
    assert await store.receive(message, at(1))
    await store.begin_turn(conversation.id, message, user_message("hello", at(1)))
    assert await store.shown(message) is None  # nothing shown yet
    await store.reply_shown(message, "r1", False)
    assert await store.shown(message) == ShownReply("r1", complete=False)
    await store.reply_shown(message, "r1", True)
    assert await store.shown(message) == ShownReply("r1", complete=True)
    await store.commit_turn(
        conversation.id, LadderState(), at(2), [assistant_message("hi", at(2))], answered=message
    )
    assert await store.shown(message) is None  # gone with the commit
    await store.reply_shown(message, "r1", True)  # a late word changes nothing
    assert await store.shown(message) is None
    assert await store.shown(inbound("never-received")) is None


async def test_turns_begun_and_committed_together_each_get_their_own_outcome(
    store: AnyStore,
) -> None:
    """What goes to the database together (one batch, one round trip) must never let one
    turn's refusal fail another's or be kept with it."""
    good = [await store.create(ConversationKey("discord", f"t{n}"), "u1", T0) for n in range(3)]
    refused = await store.create(KEY, "u1", T0)
    bad = replace(user_message("x"), role="system")

    def begin(conversation_id: str, event_id: str, message: NewMessage) -> Any:
        return store.begin_turn_with_context(conversation_id, inbound(event_id), message, 5)

    begun = await asyncio.gather(
        *(begin(c.id, f"b{c.id}", user_message("q")) for c in good),
        begin(refused.id, "b-refused", bad),
        begin("cnothere22", "b-unknown", user_message("q")),
        return_exceptions=True,
    )
    assert [b[0].seq for b in begun[:3] if isinstance(b, tuple)] == [1, 1, 1]
    assert isinstance(begun[3], INTEGRITY) and isinstance(begun[4], UnknownConversation)
    committed = await asyncio.gather(
        *(
            store.commit_turn(c.id, LadderState(redirects=1), at(1), [assistant_message("a")])
            for c in good
        ),
        store.commit_turn(refused.id, LadderState(redirects=1), at(1), [bad]),
        store.commit_turn("cnothere22", LadderState(), at(1)),
        return_exceptions=True,
    )
    assert [c.ladder.redirects for c in committed[:3] if not isinstance(c, BaseException)] == [
        1,
        1,
        1,
    ]
    assert isinstance(committed[3], INTEGRITY)
    assert isinstance(committed[4], UnknownConversation)
    for conversation in good:
        assert [m.text for m in await store.messages(conversation.id)] == ["q", "a"]
    assert await store.get(refused.id) == refused
    assert await store.messages(refused.id) == []
    # The refused event was never claimed: it can still begin a turn.
    assert await store.begin_turn(refused.id, inbound("b-refused"), user_message("q"))
