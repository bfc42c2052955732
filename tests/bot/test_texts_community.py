"""A community's own words beat the operator's, in that community only; the notice carries
them to the adapter (for its buttons), and a bad template is refused when saved."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.communities import CommunitySettings
from bot.conversation import ConversationKey, Inbound
from bot.engine import Engine, EngineConfig
from bot.flows import REFUSAL_KEY, REFUSAL_TEXT, Flows, Refusal, Result
from bot.notices import NoticeKind
from bot.policy import Rules
from bot.ports import DatabaseUnavailable
from bot.settings import parse_database_url
from bot.store import open_store
from bot.texts import TEXTS, TextKey, Texts
from tests.bot.test_flows import ScriptedModel, World, text, tool

OPERATOR = Texts(
    {
        "end_persistent_abuse": "Operator: this one is over.",
        "started": "Operator: hello.",
        "discord.button_new": "Operator: again",
    }
)
OWN = CommunitySettings(
    texts={"end_persistent_abuse": "Guild one: we stop here.", "discord.button_new": "Anew"}
)
ABUSE = {"kind": "abuse", "note": "insults"}
END = {"reason": "persistent_abuse", "explanation": "kept on"}


class Rig:
    def __init__(self, store: Any, max_ended_per_day: int = 0) -> None:
        self.model = ScriptedModel()
        self.world = World()
        config = EngineConfig(Rules(1, 1), max_ended_per_day=max_ended_per_day, texts=OPERATOR)
        self.flows = Flows(Engine(store, self.model, config), "discord", self.world, self.world)
        self.n = 0

    async def end_in(self, place: str, community: str) -> None:
        for script in (
            [tool("note_concern", ABUSE), text("Keep it civil.")],
            [tool("end_conversation", END), text("")],
        ):
            self.model.script = script
            self.n += 1
            key = ConversationKey("discord", place)
            inbound = Inbound(key, f"e{self.n}", "alice", "rude", f"m{self.n}", community=community)
            await self.flows.converse(inbound, self.world.place(key))


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Any]:
    store = await open_store(parse_database_url(database_url))
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def rig(store: Any) -> Rig:
    return Rig(store)


async def test_a_community_s_own_words_beat_the_operator_s_only_there(rig: Rig) -> None:
    saved = await rig.flows.set_community_settings("g1", OWN, "mod", is_moderator=True)
    assert saved.ok
    await rig.end_in("in-g1", "g1")
    await rig.end_in("in-g2", "g2")
    [*_, ended_g1] = rig.world.place(ConversationKey("discord", "in-g1")).posted
    [*_, ended_g2] = rig.world.place(ConversationKey("discord", "in-g2")).posted
    assert ended_g1.kind is ended_g2.kind is NoticeKind.END
    assert ended_g1.text == "Guild one: we stop here."
    assert ended_g2.text == "Operator: this one is over."
    # The adapter's own parts come with the notice, in the same community's words.
    assert ended_g1.words.get(TextKey.DISCORD_BUTTON_NEW) == "Anew"
    assert ended_g2.words.get(TextKey.DISCORD_BUTTON_NEW) == "Operator: again"
    [(_, offer)] = rig.world.place(ConversationKey("discord", "in-g1")).told
    assert (
        offer.kind is NoticeKind.AFTER_END and offer.words.get(TextKey.DISCORD_BUTTON_NEW) == "Anew"
    )
    # A text the community did not set is the operator's.
    assert ended_g1.words.get(TextKey.STARTED) == "Operator: hello."


async def test_a_fresh_start_is_greeted_in_the_community_s_words(rig: Rig) -> None:
    own = CommunitySettings(texts={"started": "Guild one: welcome."})
    await rig.flows.set_community_settings("g1", own, "mod", is_moderator=True)
    for community in ("g1", "g2"):
        await rig.flows.start_new("discord", "alice", rig.world.open_place, community=community)
    greetings = [p.posted[0].text for p in rig.world.places.values()]
    assert greetings == ["Guild one: welcome.", "Operator: hello."]


async def test_a_bad_template_is_refused_when_saved_and_nothing_is_lost(rig: Rig) -> None:
    await rig.flows.set_community_settings("g1", OWN, "mod", is_moderator=True)
    bad = CommunitySettings(texts={"warning": "Careful, {name}."})
    refused = await rig.flows.set_community_settings("g1", bad, "mod", is_moderator=True)
    assert refused.refusal is Refusal.BAD_SETTINGS
    assert "warning: unknown placeholder {name}" in refused.text
    kept = await rig.flows.community_settings("g1", is_moderator=True)
    assert kept.settings == OWN


async def test_one_text_is_reset_and_the_operator_s_applies_again(rig: Rig) -> None:
    await rig.flows.set_community_settings("g1", OWN, "mod", is_moderator=True)
    reset = await rig.flows.reset_community_settings(
        "g1", "texts.end_persistent_abuse", "mod", is_moderator=True
    )
    assert reset.ok and reset.settings is not None
    assert reset.settings.texts == {"discord.button_new": "Anew"}
    await rig.end_in("in-g1", "g1")
    [*_, ended] = rig.world.place(ConversationKey("discord", "in-g1")).posted
    assert ended.text == "Operator: this one is over."


class DownStore:
    async def community_settings(self, platform: str, community: str) -> None:
        raise DatabaseUnavailable("the database is down")


async def test_the_operator_s_words_stand_in_while_the_database_cannot_say() -> None:
    engine = Engine(DownStore(), ScriptedModel(), EngineConfig(texts=OPERATOR))  # type: ignore[arg-type]
    assert await engine.words("discord", "g1") == OPERATOR


async def test_a_refusal_is_said_in_the_community_s_words_and_the_limit_s_is_the_limit_text(
    store: Any,
) -> None:
    rig = Rig(store, max_ended_per_day=1)
    own = CommunitySettings(texts={"limit": "Guild one: take a break first."})
    await rig.flows.set_community_settings("g1", own, "mod", is_moderator=True)
    await rig.end_in("in-g1", "g1")
    refused = await rig.flows.start_new("discord", "alice", rig.world.open_place, community="g1")
    assert refused.refusal is Refusal.LIMIT
    engine = rig.flows.engine
    assert refused.said(await engine.words("discord", "g1")) == "Guild one: take a break first."
    operator = Texts({**OPERATOR.overrides, "limit": "Operator: not now."})
    assert refused.said(operator) == "Operator: not now."
    # Without words: the bot's own, the same as before refusals became texts.
    assert refused.text == TEXTS[TextKey.LIMIT].default == REFUSAL_TEXT[Refusal.LIMIT]
    assert set(REFUSAL_KEY) == set(Refusal)
    moderators_only = Texts({"refused.not_moderator": "Mods only."})
    assert Result(refusal=Refusal.NOT_MODERATOR).said(moderators_only) == "Mods only."
    assert Result(conversation=None).said(moderators_only) == ""
