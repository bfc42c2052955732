"""Alert-only mode (DESIGN.md rule 9), through the flows: the ladder runs as in end mode,
but where it would end, the moderators are alerted and `would_end` is recorded; nothing is
closed and nobody is told it will end. Per community, taking effect at the next message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from bot.communities import CommunitySettings
from bot.conversation import ConversationKey, Inbound
from bot.notices import WARNING_TEXT, NoticeKind
from bot.policy import Rules
from bot.ports import ModLogKind
from tests.bot.test_flows import ALICE, BOB, Setup, await_store, make, tool
from tests.bot.test_shared_place import abuse, end

GUILD = "g1"
HERE = ConversationKey("test", "alert-here")


@pytest_asyncio.fixture
async def alerting(tmp_path: Path) -> AsyncIterator[Setup]:
    """Alert-only for the whole process."""
    async with await_store(tmp_path) as store:
        yield make(store, rules=Rules(1, 1, alert_only=True))


async def say(s: Setup, words: str, user: str = ALICE) -> None:
    s.seq += 1
    inbound = Inbound(HERE, f"ev{s.seq}", user, words, message_id=f"m{s.seq}", community=GUILD)
    await s.flows.converse(inbound, s.world.place(HERE))


async def test_where_it_would_end_the_moderators_are_alerted_and_it_goes_on(
    alerting: Setup,
) -> None:
    s = alerting
    s.model.script = [*abuse(), *end(), tool("note_concern", {"kind": "abuse", "note": "x"}, 3)]
    await say(s, "you are useless")
    await say(s, "useless!!")
    place = s.world.place(HERE)
    conversation = await s.flows.find(HERE)
    assert conversation is not None and not conversation.ladder.ended
    assert place.closed == 0 and NoticeKind.END not in place.kinds()
    [warning] = [n for n in place.posted if n.kind is NoticeKind.WARNING]
    assert warning.text != WARNING_TEXT and "end" not in warning.text  # no threat of an end
    _, events = await s.flows.engine.record(conversation.id)
    [would] = [e for e in events if e.kind == "would_end"]
    assert would.detail["reason"] == "persistent_abuse" and would.detail["explanation"]
    assert "end" not in [e.kind for e in events]
    [alert] = s.world.modlog
    assert alert.kind is ModLogKind.WOULD_END and alert.actor_id == ALICE
    assert alert.text == "persistent_abuse: kept at it"
    asked = s.model.calls
    await say(s, "and again")
    assert s.model.calls == asked + 1  # still answered


async def test_someone_else_is_not_shut_out_either(alerting: Setup) -> None:
    s = alerting
    await say(s, "hi")
    s.model.script = [*abuse(), *end()]
    await say(s, "you are useless", user=BOB)
    await say(s, "useless!!", user=BOB)
    [alert] = s.world.modlog
    assert alert.kind is ModLogKind.WOULD_END and alert.actor_id == BOB
    others = await s.flows.engine.participants((await s.flows.find(HERE)).id)  # type: ignore[union-attr]
    assert not others[BOB].ended
    assert not [n for _, n in s.world.place(HERE).told if n.kind is NoticeKind.SHUT_OUT]


async def test_the_persons_own_end_and_the_crisis_rule_work_as_in_end_mode(
    alerting: Setup,
) -> None:
    s = alerting
    s.model.script = [tool("note_concern", {"kind": "self_harm_risk", "note": "x"})]
    await say(s, "I can't go on")
    assert NoticeKind.CRISIS in s.world.place(HERE).kinds()
    assert (await s.flows.confirm_end(HERE, ALICE, s.world.place(HERE))).ok
    conversation = await s.flows.find(HERE)
    assert conversation is not None and conversation.ladder.ended


async def test_a_community_switching_from_alert_to_end_applies_at_the_next_message(
    tmp_path: Path,
) -> None:
    async with await_store(tmp_path) as store:
        s = make(store)  # end mode for the process; the community chooses alert
        engine = s.flows.engine
        await engine.set_community_settings(
            "test", GUILD, CommunitySettings(enforcement="alert"), "mod"
        )
        s.model.script = [*abuse(), *end()]
        await say(s, "you are useless")
        await say(s, "useless!!")
        assert [e.kind for e in s.world.modlog] == [ModLogKind.WOULD_END]
        await engine.set_community_settings(
            "test", GUILD, CommunitySettings(enforcement="end"), "mod"
        )
        s.model.script = [*end(4)]
        await say(s, "useless!!!")
        conversation = await s.flows.find(HERE)
        assert conversation is not None and conversation.ladder.ended
        assert s.world.modlog[-1].kind is ModLogKind.ENDED


async def test_a_switch_made_in_one_process_applies_in_another_at_its_next_message(
    tmp_path: Path,
) -> None:
    """Two engines on one database, as two processes: the community's enforcement is read
    at every turn, never kept."""
    async with await_store(tmp_path) as first_store, await_store(tmp_path) as second_store:
        first, second = make(first_store), make(second_store)
        await first.flows.engine.set_community_settings(
            "test", GUILD, CommunitySettings(enforcement="alert"), "mod"
        )
        second.model.script = [*abuse(), *end()]
        await say(second, "you are useless")
        await say(second, "useless!!")
        assert [e.kind for e in second.world.modlog] == [ModLogKind.WOULD_END]
        await first.flows.engine.set_community_settings(
            "test", GUILD, CommunitySettings(enforcement="end"), "mod"
        )
        second.model.script = [*end(4)]
        await say(second, "useless!!!")
        conversation = await second.flows.find(HERE)
        assert conversation is not None and conversation.ladder.ended
