"""A DM is one conversation: /end with confirmation, blocked notices, "Start a new conversation"."""

from __future__ import annotations

from platforms.discord.app import QuitBot
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.helpers import ENDED_TITLE, bot_messages, buttons, wait_bot_message


async def test_dm_conversation_end_blocked_notices_and_a_fresh_start(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    fake_anthropic.add(text("Hi Alice!"))
    await fake.dm(fake.alice, "hello")
    dm_id = int(fake.dm_channel_of(fake.alice)["id"])
    await wait_bot_message(fake, dm_id, lambda m: m["content"] == "Hi Alice!")

    asked = await fake.slash("end", channel_id=dm_id, author=fake.alice)
    confirm = (await fake.response(asked)).response["resource"]["message"]
    assert confirm["flags"] & 64 and buttons(confirm) == ["quitbot:end", "quitbot:keep"]
    pressed = await fake.press("quitbot:end", message=confirm, author=fake.alice)
    assert (await fake.response(pressed)).body["type"] == 7  # the confirmation is updated
    final = await wait_bot_message(fake, dm_id, lambda m: bool(m["embeds"]))
    assert final["embeds"][0]["title"] == ENDED_TITLE
    assert "you asked" in final["embeds"][0]["description"]
    assert "/new" in final["embeds"][0]["description"]
    assert not fake.calls_to("PATCH", rf"/channels/{dm_id}")  # nothing to lock in a DM
    # The way on comes as the answer to the press that ended it: private, and usable.
    offer = (await fake.followup(pressed)).response
    assert offer["flags"] & 64 and buttons(offer)[0] == "quitbot:new"

    await fake.dm(fake.alice, "are you there?")
    blocked = await wait_bot_message(fake, dm_id, lambda m: "won't reply" in m["content"])
    assert "/new" in blocked["content"]
    await fake.dm(fake.alice, "hello??")  # within the minute: no second notice

    pressed = await fake.press("quitbot:new", message=offer, author=fake.alice)
    assert (await fake.response(pressed)).body["type"] == 5  # deferred before the slow part
    started = await fake.followup(pressed)
    assert "new conversation" in started.body["content"]
    fake_anthropic.add(text("Fresh start!"))
    await fake.dm(fake.alice, "hello again")
    await wait_bot_message(fake, dm_id, lambda m: m["content"] == "Fresh start!")

    assert sum("won't reply" in m["content"] for m in bot_messages(fake, dm_id)) == 1
    assert len(fake_anthropic.requests) == 2
    assert len(fake_anthropic.requests[1]["messages"]) == 1  # the old history stays behind
