"""/quitbot review | review-resolve | settings | settings-set: the server's review queue and
its own settings, for its moderators, end to end against the fake Discord."""

from __future__ import annotations

from typing import Any

from bot.communities import CommunitySettings
from bot.conversation import ConversationKey
from platforms.discord.app import QuitBot
from tests.fakes.anthropic import FakeAnthropic, text, tool
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.helpers import (
    ABUSE,
    after_end,
    buttons,
    converse_until_ended,
    dm_id,
    mention,
    titles,
    wait_bot_message,
)
from tests.platforms.discord.test_moderation import MODERATOR, answer, sub

Json = dict[str, Any]


def option(name: str, value: object) -> Json:
    return {"name": name, "type": 4 if isinstance(value, int) else 3, "value": value}


async def moderator(fake: FakeDiscord, command: str, *options: Json, **kw: Any) -> Json:
    """A moderator runs `/quitbot command` in the server's channel."""
    return await fake.slash(
        "quitbot",
        sub(command, *options),
        channel_id=fake.channel_id,
        author=kw.get("author", fake.bob),
        permissions=kw.get("permissions", MODERATOR),
    )


async def resolved(fake: FakeDiscord, interaction: Json) -> str:
    """The private answer to a deferred /quitbot review-resolve."""
    deferred = (await fake.response(interaction)).body
    assert deferred["type"] == 5 and deferred["data"]["flags"] & 64
    content: str = (await fake.followup(interaction)).body["content"]
    return content


async def called_a_mistake(fake: FakeDiscord, anthropic: FakeAnthropic) -> tuple[str, str]:
    """A conversation ended by the model, then Alice presses "This was a mistake" and says
    why; the thread id and the conversation id."""
    thread_id = await converse_until_ended(fake, anthropic)
    await fake.wait_call("PATCH", rf"/channels/{thread_id}")  # locked
    offer = await after_end(fake, fake.alice)
    mistake = buttons(offer)[1]
    pressed = await fake.press(mistake, message=offer, author=fake.alice)
    modal = (await fake.response(pressed)).body["data"]
    submitted = await fake.submit(
        modal["custom_id"],
        "quitbot:feedback-text",
        "I was quoting a song",
        channel_id=int(offer["channel_id"]),
        author=fake.alice,
    )
    await fake.followup(submitted)  # the thanks: the feedback is on the record
    return thread_id, mistake.rsplit(":", 1)[1]


async def test_a_mistake_press_lands_in_the_review_queue_and_reopen_unlocks_and_tells(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id, conversation_id = await called_a_mistake(fake, fake_anthropic)

    listed = await answer(fake, await moderator(fake, "review"))
    assert "1 to review" in listed["content"]
    queue = listed["embeds"][0]["description"]
    assert conversation_id in queue
    assert f"https://discord.com/channels/{fake.guild_id}/{thread_id}" in queue
    assert "kept insulting after a warning" in queue  # the model's stated reason
    assert "redirects: 3" in queue and "persistent_abuse" in queue
    assert "I was quoting a song" in queue and "idiot idiot idiot" in queue

    note = option("note", "a song lyric, not abuse")
    asked = await moderator(
        fake,
        "review-resolve",
        option("conversation", conversation_id),
        option("decision", "reopen"),
        note,
    )
    assert "Reopened" in await resolved(fake, asked)
    unlock = await fake.wait_call("PATCH", rf"/channels/{thread_id}", count=2)
    assert unlock.body == {"archived": False, "locked": False}
    await wait_bot_message(fake, thread_id, lambda m: "moderator reopened" in m["content"])
    conversation = await bot.flows.engine.get(conversation_id)
    assert conversation is not None and not conversation.ladder.ended

    emptied = await answer(fake, await moderator(fake, "review"))
    assert "Nothing to review" in emptied["content"]
    fake_anthropic.add(text("Welcome back."))
    await fake.post(int(thread_id), fake.alice, "thanks")
    await wait_bot_message(fake, thread_id, lambda m: m["content"] == "Welcome back.")


async def test_uphold_records_the_decision_and_leaves_the_thread_locked(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id, conversation_id = await called_a_mistake(fake, fake_anthropic)
    asked = await moderator(
        fake,
        "review-resolve",
        option("conversation", f"<#{thread_id}>"),  # by its thread, as a moderator sees it
        option("decision", "uphold"),
        option("note", "it was abuse"),
    )
    assert "Upheld" in await resolved(fake, asked)
    _, events = await bot.flows.engine.record(conversation_id)
    assert [e.kind for e in events][-1] == "review"
    conversation = await bot.flows.engine.get(conversation_id)
    assert conversation is not None and conversation.ladder.ended
    assert len(fake.calls_to("PATCH", rf"/channels/{thread_id}")) == 1  # only the lock
    assert "Nothing to review" in (await answer(fake, await moderator(fake, "review")))["content"]

    again = await moderator(
        fake, "review-resolve", option("conversation", "no-such-id"), option("decision", "reopen")
    )
    assert "no conversation" in await resolved(fake, again)


async def test_plain_members_are_refused_review_and_settings(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    _, conversation_id = await called_a_mistake(fake, fake_anthropic)
    member = {"author": fake.alice, "permissions": 0}
    for command, options in (
        ("review", ()),
        ("settings", ()),
        ("settings-set", (option("redirects_before_warning", 1),)),
        ("settings-reset", (option("setting", "all"),)),
    ):
        asked = await moderator(fake, command, *options, **member)
        assert "Only moderators" in (await answer(fake, asked))["content"]
    asked = await moderator(
        fake,
        "review-resolve",
        option("conversation", conversation_id),
        option("decision", "reopen"),
        **member,
    )
    assert "Only moderators" in await resolved(fake, asked)
    conversation = await bot.flows.engine.get(conversation_id)
    assert conversation is not None and conversation.ladder.ended
    own = await bot.flows.engine.community_settings("discord", str(fake.guild_id))
    assert own == CommunitySettings()


def one_redirect(anthropic: FakeAnthropic) -> None:
    anthropic.add(tool("note_concern", ABUSE, text="I won't respond to that."), text("Moving on."))


async def redirected_once(fake: FakeDiscord, anthropic: FakeAnthropic, channel_id: int) -> None:
    """One redirected message, then a plain one (so any warning has been posted by then)."""
    one_redirect(anthropic)
    anthropic.add(text("Sure."))
    await fake.post(channel_id, fake.alice, "you are useless")
    await wait_bot_message(fake, channel_id, lambda m: "Moving on." in m["content"])
    await fake.post(channel_id, fake.alice, "ok, what is 2+2?")
    await wait_bot_message(fake, channel_id, lambda m: m["content"] == "Sure.")


async def test_a_servers_own_thresholds_apply_there_only(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake, guild = fake_discord, str(fake_discord.guild_id)
    engine = bot.flows.engine
    # Another server warns after one redirect: this one keeps the default (two).
    await engine.set_community_settings("discord", "1234", CommunitySettings(1), "someone")
    fake_anthropic.add(text("Hello."))
    before = int((await mention(fake, "hi"))["id"])
    await wait_bot_message(fake, before, lambda m: m["content"] == "Hello.")
    await redirected_once(fake, fake_anthropic, before)
    assert "Warning" not in titles(fake, before)
    found = await engine.find(ConversationKey("discord", str(before)))
    assert found is not None and found.community == guild

    refused = await moderator(fake, "settings-set", option("redirects_before_warning", 5))
    assert "redirects_before_end (3) must be at least" in (await answer(fake, refused))["content"]
    changed = await answer(
        fake, await moderator(fake, "settings-set", option("redirects_before_warning", 1))
    )
    assert "`redirects_before_warning`: 1" in changed["content"]
    assert "`redirects_before_end`: default" in changed["content"]
    shown = await answer(fake, await moderator(fake, "settings"))
    assert shown["content"] == changed["content"]

    # Here now: the warning comes with the first redirect ...
    one_redirect(fake_anthropic)
    after = int((await mention(fake, "you are useless"))["id"])
    await wait_bot_message(fake, after, lambda m: "Warning" in titles(fake, after))
    # ... while a DM (no server) keeps the default.
    dm = dm_id(fake, fake.alice)
    await redirected_once(fake, fake_anthropic, dm)
    assert "Warning" not in titles(fake, dm)
    in_dm = await engine.find(ConversationKey("discord", f"dm:{dm}"))
    assert in_dm is not None and in_dm.community == ""


async def test_a_moderator_resets_one_setting_or_all(
    bot: QuitBot, fake_discord: FakeDiscord
) -> None:
    fake = fake_discord
    own = await answer(
        fake,
        await moderator(
            fake,
            "settings-set",
            option("redirects_before_warning", 4),
            option("redirects_before_end", 5),
            option("crisis_message", "Call 116 123, any time."),
        ),
    )
    assert "`redirects_before_end`: 5" in own["content"]

    async def reset(setting: str) -> str:
        asked = await moderator(fake, "settings-reset", option("setting", setting))
        shown = await answer(fake, asked)
        assert shown["flags"] & 64
        return str(shown["content"])

    # The bot's default (3) would end before this server's warning (4): refused, unchanged.
    assert "redirects_before_end (3) must be at least" in await reset("redirects_before_end")
    one = await reset("redirects_before_warning")
    assert "`redirects_before_warning`: default" in one and "`redirects_before_end`: 5" in one
    assert "Call 116 123, any time." in one
    assert "There is no setting 'colour'" in await reset("colour")
    every = await reset("all")
    assert "Call 116 123" not in every and "`redirects_before_end`: default" in every
    assert (
        await bot.flows.engine.community_settings("discord", str(fake.guild_id))
        == CommunitySettings()
    )
