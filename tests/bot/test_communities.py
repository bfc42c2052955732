"""Per-community settings: one community's thresholds, crisis message and instructions
differ, another's do not; moderators change them through the flows, operators with the CLI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.app import build_runtime
from bot.communities import CommunitySettings
from bot.conversation import ConversationKey, Inbound
from bot.engine import Engine, EngineConfig
from bot.flows import Flows, Refusal
from bot.notices import NoticeKind
from bot.policy import Rules
from bot.review import Decision
from bot.settings import parse_database_url
from bot.store import open_store
from tests.bot.test_flows import Reply, ScriptedModel, World, text, tool
from tests.conftest import make_settings
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.anthropic import text as api_text
from tests.processes import clean_env, quitbot

ABUSE = {"kind": "abuse", "note": "insults"}
END = {"reason": "persistent_abuse", "explanation": "kept on"}
STRICT = CommunitySettings(
    redirects_before_warning=1,
    redirects_before_end=1,
    crisis_message="Call 112 or the guild's own helpline.",
    system_prompt_extra="This server is about gardening.",
)


class Rig:
    def __init__(self, store: Any) -> None:
        self.model = ScriptedModel()
        self.extras: list[str] = []
        self.world = World()

        def with_extra(extra: str) -> ScriptedModel:
            self.extras.append(extra)
            return self.model

        engine = Engine(
            store,
            self.model,
            EngineConfig(rules=Rules(2, 3), crisis_message="default helplines"),
            model_for=lambda extra, _tools: with_extra(extra or ""),
        )
        self.flows = Flows(engine, "discord", self.world, self.world)
        self.n = 0

    async def say(self, words: str, place: str, community: str) -> Any:
        self.n += 1
        key = ConversationKey("discord", place)
        inbound = Inbound(key, f"e{self.n}", "alice", words, f"m{self.n}", community=community)
        return await self.flows.converse(inbound, self.world.place(key))


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    store = await open_store(parse_database_url(database_url))
    try:
        yield Rig(store)
    finally:
        await store.close()


async def test_one_communitys_thresholds_differ_and_anothers_do_not(rig: Rig) -> None:
    result = await rig.flows.set_community_settings("g1", STRICT, "mod", is_moderator=True)
    assert result.ok and result.settings == STRICT

    for place, community in (("strict", "g1"), ("lenient", "g2")):
        rig.model.script = [tool("note_concern", ABUSE), text("Let's keep it civil.")]
        await rig.say("you are useless", place, community)
        rig.model.script = [tool("end_conversation", END), text("Let's go on.")]
        await rig.say("still useless", place, community)

    strict = rig.world.place(ConversationKey("discord", "strict"))
    lenient = rig.world.place(ConversationKey("discord", "lenient"))
    # g1 warns after one redirect and then may end; g2 keeps the process-wide 2 and 3.
    assert strict.kinds() == [NoticeKind.WARNING, NoticeKind.END]
    assert lenient.kinds() == []
    ended = await rig.flows.find(ConversationKey("discord", "strict"))
    going = await rig.flows.find(ConversationKey("discord", "lenient"))
    assert ended is not None and ended.ladder.ended and ended.community == "g1"
    assert going is not None and not going.ladder.ended and going.community == "g2"
    # Its own instructions went to the model for g1's turns only.
    assert rig.extras == ["This server is about gardening."] * 2


async def test_a_communitys_crisis_message_is_its_own(rig: Rig) -> None:
    await rig.flows.set_community_settings("g1", STRICT, "mod", is_moderator=True)
    for place, community in (("a", "g1"), ("b", "g2")):
        rig.model.script = [tool("note_concern", {"kind": "self_harm_risk", "note": "?"})]
        await rig.say("I want to disappear", place, community)
    [in_g1] = rig.world.place(ConversationKey("discord", "a")).posted
    [in_g2] = rig.world.place(ConversationKey("discord", "b")).posted
    assert in_g1.text == STRICT.crisis_message and in_g2.text == "default helplines"
    # The person may still leave; the final notice repeats the community's resources.
    await rig.flows.confirm_end(
        ConversationKey("discord", "a"), "alice", rig.world.place(ConversationKey("discord", "a"))
    )
    final = rig.world.place(ConversationKey("discord", "a")).posted[-1]
    assert final.kind is NoticeKind.END and STRICT.crisis_message in final.resources


async def test_moderators_change_settings_within_the_ladder_rules(rig: Rig) -> None:
    refused = await rig.flows.set_community_settings("g1", STRICT, "bob", is_moderator=False)
    assert refused.refusal is Refusal.NOT_MODERATOR
    assert (await rig.flows.community_settings("g1", is_moderator=False)).refusal is (
        Refusal.NOT_MODERATOR
    )
    bad = await rig.flows.set_community_settings(
        "g1", CommunitySettings(redirects_before_warning=5), "mod", is_moderator=True
    )
    assert bad.refusal is Refusal.BAD_SETTINGS and "redirects_before_end (3)" in bad.text
    await rig.flows.set_community_settings(
        "g1", CommunitySettings(redirects_before_end=6), "mod", is_moderator=True
    )
    both = await rig.flows.set_community_settings(
        "g1", CommunitySettings(redirects_before_warning=5), "mod", is_moderator=True
    )
    assert both.settings == CommunitySettings(redirects_before_warning=5, redirects_before_end=6)
    shown = await rig.flows.community_settings("g1", is_moderator=True)
    assert shown.settings == both.settings
    assert (await rig.flows.community_settings("g2", is_moderator=True)).settings == (
        CommunitySettings()
    )


async def test_moderators_reset_one_setting_or_all_within_the_ladder_rules(rig: Rig) -> None:
    own = CommunitySettings(5, 6, "Call 112.", "Gardening only.")
    await rig.flows.set_community_settings("g1", own, "mod", is_moderator=True)
    refused = await rig.flows.reset_community_settings(
        "g1", "redirects_before_warning", "bob", is_moderator=False
    )
    assert refused.refusal is Refusal.NOT_MODERATOR
    unknown = await rig.flows.reset_community_settings("g1", "colour", "mod", is_moderator=True)
    assert unknown.refusal is Refusal.UNKNOWN_SETTING and "crisis_message" in unknown.text
    # Back to the default end (3) would end before this community's warning (5).
    bad = await rig.flows.reset_community_settings(
        "g1", "redirects_before_end", "mod", is_moderator=True
    )
    assert bad.refusal is Refusal.BAD_SETTINGS and "redirects_before_end (3)" in bad.text
    one = await rig.flows.reset_community_settings("g1", "crisis_message", "mod", is_moderator=True)
    assert one.settings == CommunitySettings(5, 6, None, "Gardening only.")
    assert (await rig.flows.community_settings("g1", is_moderator=True)).settings == one.settings
    every = await rig.flows.reset_community_settings("g1", None, "mod", is_moderator=True)
    assert every.settings == CommunitySettings()
    assert (await rig.flows.community_settings("g1", is_moderator=True)).settings == (
        CommunitySettings()
    )


async def test_the_store_keeps_communities_apart(database_url: str) -> None:
    store = await open_store(parse_database_url(database_url))
    at = datetime(2026, 3, 1, tzinfo=UTC)
    try:
        assert await store.community_settings("discord", "g1") is None
        await store.set_community_settings("discord", "g1", STRICT, at, "mod")
        await store.set_community_settings("slack", "g1", CommunitySettings(), at, "admin")
        assert await store.community_settings("discord", "g1") == STRICT
        assert await store.community_settings("slack", "g1") == CommunitySettings()
        assert await store.community_settings("discord", "g2") is None
        records = await store.communities()
        assert [(r.platform, r.community, r.updated_by) for r in records] == [
            ("discord", "g1", "mod"),
            ("slack", "g1", "admin"),
        ]
        assert records[0].updated_at == at
        assert [r.platform for r in await store.communities("slack")] == ["slack"]
        created = await store.create(ConversationKey("discord", "t"), "u", at, community="g1")
        assert created.community == "g1"
        assert (await store.get(created.id)).community == "g1"
    finally:
        await store.close()


async def test_the_real_model_gets_the_communitys_instructions(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    settings = make_settings(tmp_path, fake_anthropic, system_prompt_extra="Be brief.")
    fake_anthropic.add(api_text("Hello gardener."), api_text("Hello."))
    async with build_runtime(settings) as runtime:
        await runtime.engine.set_community_settings("discord", "g1", STRICT, "mod")
        for place, community in (("a", "g1"), ("b", "g2")):
            inbound = Inbound(
                ConversationKey("discord", place), place, "u", "hi", "", (), community
            )
            await runtime.engine.handle(inbound, Reply([]))
    first, second = (json.dumps(r["system"]) for r in fake_anthropic.requests)
    assert "This server is about gardening." in first and "Be brief." not in first
    assert "Be brief." in second and "gardening" not in second


async def test_communities_from_the_command_line(tmp_path: Path) -> None:
    env = clean_env(tmp_path, None)
    code, out, _ = await quitbot(tmp_path, env, "communities", "show")
    assert code == 0 and "No community has settings of its own" in out
    code, out, err = await quitbot(
        tmp_path,
        env,
        "communities",
        "set",
        "discord:1234",
        "--redirects-before-warning",
        "1",
        "--crisis-message",
        "Call 112.",
    )
    assert code == 0, err
    code, out, _ = await quitbot(tmp_path, env, "communities", "show", "--json")
    [shown] = json.loads(out)
    assert (shown["platform"], shown["community"]) == ("discord", "1234")
    assert shown["own"] == {"redirects_before_warning": 1, "crisis_message": "Call 112."}
    assert shown["effective"]["redirects_before_end"] == 3  # the process-wide value
    code, _, err = await quitbot(
        tmp_path, env, "communities", "set", "discord:1234", "--redirects-before-warning", "4"
    )
    assert code == 1 and "redirects_before_end" in err
    code, out, _ = await quitbot(tmp_path, env, "communities", "show", "discord:1234")
    assert (
        "redirects_before_warning = 1 (own)" in out and "redirects_before_end = 3 (default)" in out
    )
    reset = ("communities", "reset", "discord:1234")
    code, out, err = await quitbot(tmp_path, env, *reset, "--setting", "crisis_message")
    assert code == 0 and "process-wide crisis_message" in out, err
    code, out, _ = await quitbot(tmp_path, env, "communities", "show", "--json")
    assert json.loads(out)[0]["own"] == {"redirects_before_warning": 1}
    code, _, err = await quitbot(tmp_path, env, *reset, "--setting", "crisis")
    assert code == 2 and "invalid choice: 'crisis'" in err
    changing = ("communities", "set", "discord:1234")
    code, _, err = await quitbot(tmp_path, env, *changing, "--redirects-before-end", "1")
    assert code == 0, err
    # The process-wide warning threshold (2) would come after this community's end (1).
    code, _, err = await quitbot(tmp_path, env, *reset, "--setting", "redirects_before_warning")
    assert code == 1 and "redirects_before_warning cannot go back" in err
    code, out, _ = await quitbot(tmp_path, env, "communities", "show", "--json")
    assert json.loads(out)[0]["own"] == {"redirects_before_warning": 1, "redirects_before_end": 1}
    code, out, _ = await quitbot(tmp_path, env, *reset)
    assert code == 0
    code, out, _ = await quitbot(tmp_path, env, "communities", "show", "--json")
    assert json.loads(out)[0]["own"] == {}


async def test_a_kept_message_remembers_its_community(database_url: str) -> None:
    """A message received before a crash starts its conversation in the right community."""
    store = await open_store(parse_database_url(database_url))
    try:
        key = ConversationKey("discord", "t")
        kept = Inbound(key, "e1", "alice", "hi", "m1", community="g1")
        assert await store.receive(kept, datetime(2026, 3, 1, tzinfo=UTC))
        assert await store.pending(datetime(2026, 3, 2, tzinfo=UTC)) == [kept]
    finally:
        await store.close()


async def test_a_moderator_reviews_only_their_own_communitys_conversations(rig: Rig) -> None:
    for place, community in (("a", "g1"), ("b", "g2")):
        await rig.say("hello", place, community)
        await rig.flows.confirm_end(
            ConversationKey("discord", place),
            "alice",
            rig.world.place(ConversationKey("discord", place)),
        )
        ended = await rig.flows.find(ConversationKey("discord", place))
        assert ended is not None
        await rig.flows.feedback(ended.id, "alice", "mistake")
    everything = await rig.flows.review_queue(is_moderator=True)
    assert len(everything.items) == 2
    mine = await rig.flows.review_queue(is_moderator=True, community="g1")
    [item] = mine.items
    assert item.conversation.community == "g1"
    other = await rig.flows.find(ConversationKey("discord", "b"))
    assert other is not None
    refused = await rig.flows.resolve_review(
        other.id, "mod", Decision.REOPEN, "x", is_moderator=True, community="g1"
    )
    assert refused.refusal is Refusal.NOT_FOUND
    done = await rig.flows.resolve_review(
        item.conversation.id, "mod", Decision.UPHOLD, "fair", is_moderator=True, community="g1"
    )
    assert done.ok
    assert (await rig.flows.review_queue(is_moderator=True, community="g1")).items == ()
