"""Discord's limits and refusals, as the fake enforces them, and the adapter keeping to them.

Each rule's source is cited beside it in tests/fakes/discord.py.
"""

from __future__ import annotations

import aiohttp
import discord
import pytest

from bot.conversation import ConversationKey
from platforms.discord.app import QuitBot
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.discord import CDN_URL_SECONDS, REFRESH_URLS_LIMIT, FakeDiscord, Unusable
from tests.platforms.discord.helpers import (
    converse_until_ended,
    mention,
    opened_thread,
    wait_bot_message,
)

# --- the fake refuses what Discord refuses ---------------------------------------------------


async def test_the_fake_refuses_over_long_content_and_embeds(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    channel = bot.get_channel(fake_discord.channel_id)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException) as refused:
        await channel.send("x" * 2001)
    assert refused.value.status == 400 and refused.value.code == 50035
    with pytest.raises(discord.HTTPException) as refused:
        await channel.send(embed=discord.Embed(description="x" * 4097))
    assert refused.value.code == 50035
    await channel.send("x" * 2000, embed=discord.Embed(description="y" * 4096))


async def test_the_fake_refuses_a_thread_name_over_100_characters_and_the_bot_cuts_to_it(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    channel = bot.get_channel(fake_discord.channel_id)
    assert isinstance(channel, discord.TextChannel)
    for name in ("x" * 101, ""):
        with pytest.raises(discord.HTTPException) as refused:
            await channel.create_thread(name=name, type=discord.ChannelType.public_thread)
        assert refused.value.status == 400 and refused.value.code == 50035
    await channel.create_thread(name="x" * 100, type=discord.ChannelType.public_thread)
    fake_anthropic.add(text("Hello."))
    thread_id = (await mention(fake_discord, "word " * 60))["id"]
    await wait_bot_message(fake_discord, thread_id, lambda m: m["content"] == "Hello.")
    assert 90 < len(fake_discord.channels[int(thread_id)]["name"]) <= 100


async def test_the_fake_cdn_refuses_an_expired_address_and_refreshes_it_in_batches(
    bot: QuitBot, fake_discord: FakeDiscord
) -> None:
    fake = fake_discord
    url = fake.add_file("a.txt", "text/plain", b"hello")["url"]
    fake.clock.advance(CDN_URL_SECONDS + 1)
    with pytest.raises(discord.NotFound):
        await bot.http.get_from_cdn(url)
    route = discord.http.Route("POST", "/attachments/refresh-urls")
    too_many = {"attachment_urls": [url] * (REFRESH_URLS_LIMIT + 1)}
    with pytest.raises(discord.HTTPException) as refused:
        await bot.http.request(route, json=too_many)
    assert refused.value.status == 400 and refused.value.code == 50035
    answer = await bot.http.request(route, json={"attachment_urls": [url]})
    [item] = answer["refreshed_urls"]
    assert item["original"] == url
    assert await bot.http.get_from_cdn(item["refreshed"]) == b"hello"
    # Any CDN attachment path is signed anew, its other parameters kept; off the CDN, none.
    unknown = f"{url.partition('?')[0]}-gone?size=64"
    answer = await bot.http.request(route, json={"attachment_urls": [unknown, "https://x.test/a"]})
    [item] = answer["refreshed_urls"]
    assert item["original"] == unknown and item["refreshed"].endswith("&size=64")
    with pytest.raises(discord.NotFound):
        await bot.http.get_from_cdn(item["refreshed"])


async def test_the_fake_refuses_edits_to_an_archived_thread_except_unarchiving(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id = int(await opened_thread(fake, fake_anthropic))
    await fake.set_thread(thread_id, archived=True, locked=False)
    thread = await bot.fetch_channel(thread_id)
    assert isinstance(thread, discord.Thread)
    with pytest.raises(discord.HTTPException) as refused:
        await thread.edit(archived=True, locked=True)
    assert refused.value.status == 400 and refused.value.code == 50083
    thread = await thread.edit(archived=False)
    await thread.edit(archived=True, locked=True)
    meta = fake.channels[thread_id]["thread_metadata"]
    assert meta["archived"] and meta["locked"]


async def test_the_fake_disables_buttons_in_locked_threads_and_hides_ephemeral_ones(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id = await opened_thread(fake, fake_anthropic)
    asked = await fake.slash("end", channel_id=int(thread_id), author=fake.alice)
    answer = await fake.response(asked)
    confirm = answer.response["resource"]["message"]
    with pytest.raises(Unusable):  # only the person it answered sees an ephemeral message
        await fake.press("quitbot:end", message=confirm, author=fake.bob)
    await fake.set_thread(int(thread_id), archived=True, locked=True)
    assert fake.clickable(confirm) == []
    with pytest.raises(Unusable):  # the client disables it in a locked thread
        await fake.press("quitbot:end", message=confirm, author=fake.alice)


# --- the adapter keeps to them (issue 10, items 3, 4 and 8) ---------------------------------


async def test_a_long_chat_prompt_is_shown_within_the_limits_and_sent_whole(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    prompt = " ".join(f"word{n}" for n in range(500))  # about 3,400 characters
    assert 2000 < len(prompt) <= 4000
    fake_anthropic.add(text("That is a lot of words."))
    asked = await fake.slash(
        "chat",
        [{"name": "prompt", "type": 3, "value": prompt}],
        channel_id=fake.channel_id,
        author=fake.alice,
    )
    answer = await fake.response(asked, ok_only=False)
    assert answer.status == 200, answer.response  # not "interaction failed"
    shown = answer.response["resource"]["message"]
    assert shown["embeds"][0]["description"] == prompt
    await wait_bot_message(fake, shown["id"], lambda m: m["content"] == "That is a lot of words.")
    assert prompt in str(fake_anthropic.requests[0]["messages"][-1])


async def test_an_ended_thread_a_moderator_left_archived_is_unarchived_then_locked(
    bot: QuitBot,
    fake_discord: FakeDiscord,
    fake_anthropic: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = fake_discord
    thread_id = await converse_until_ended(fake, fake_anthropic)
    await fake.wait_call("PATCH", rf"/channels/{thread_id}")
    await fake.set_thread(int(thread_id), archived=True, locked=False)  # "close", not lock

    relock = await fake.wait_call("PATCH", rf"/channels/{thread_id}", count=3)
    patches = fake.calls_to("PATCH", rf"/channels/{thread_id}")
    assert [c.status for c in patches] == [200, 200, 200]
    assert [c.body for c in patches[1:]] == [
        {"archived": False},
        {"archived": True, "locked": True},
    ]
    assert relock is patches[-1]
    meta = fake.channels[int(thread_id)]["thread_metadata"]
    assert meta["archived"] and meta["locked"]
    # Our own unarchive step looks like a reopening; it must not start a second lock.
    fake_anthropic.add(text("Elsewhere."))
    elsewhere = await mention(fake, "a round trip through the gateway")
    await wait_bot_message(fake, elsewhere["id"], lambda m: m["content"] == "Elsewhere.")
    assert len(fake.calls_to("PATCH", rf"/channels/{thread_id}")) == 3
    assert not [r for r in caplog.records if r.exc_info]


async def test_new_answers_in_time_when_opening_the_thread_is_slow(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    fake.slow("POST", rf"/channels/{fake.channel_id}/threads", seconds=5)  # rate-limited
    asked = await fake.slash("new", channel_id=fake.channel_id, author=fake.alice)
    deferred = await fake.response(asked, ok_only=False)
    assert deferred.status == 200 and deferred.body["type"] == 5
    answer = await fake.followup(asked)
    created = await fake.wait_call("POST", rf"/channels/{fake.channel_id}/threads")
    assert created.response["id"] in answer.body["content"]
    assert await bot.flows.engine.find(ConversationKey("discord", created.response["id"]))


async def test_branching_answers_in_time_when_opening_the_thread_is_slow(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id = await converse_until_ended(fake, fake_anthropic)
    record = await bot.flows.engine.find(ConversationKey("discord", thread_id))
    assert record is not None
    messages, _ = await bot.flows.engine.record(record.id)
    first_reply = next(m for m in messages if m.role == "assistant")
    reply = fake.messages[int(first_reply.platform_message_id)]
    fake.slow("POST", rf"/channels/{fake.channel_id}/threads", seconds=5)
    asked = await fake.message_command("Branch from here", reply, author=fake.alice)
    deferred = await fake.response(asked, ok_only=False)
    assert deferred.status == 200 and deferred.body["type"] == 5
    answer = await fake.followup(asked)
    created = await fake.wait_call("POST", rf"/channels/{fake.channel_id}/threads")
    assert created.response["id"] in answer.body["content"]


async def test_the_fake_answers_interaction_callbacks_as_discord_does() -> None:
    """Raw HTTP, no bot: the callback's body only with ?with_response, one answer per
    interaction, follow-ups only after it, and nothing after the deadline."""
    async with FakeDiscord() as fake, aiohttp.ClientSession() as http:
        first = await fake.slash("new", channel_id=fake.channel_id, author=fake.alice)
        callback = f"{fake.api_base}/interactions/{first['id']}/{first['token']}/callback"
        followup = f"{fake.api_base}/webhooks/{fake.app_id}/{first['token']}"
        message = {"type": 4, "data": {"content": "hi"}}
        async with http.post(followup, json={"content": "too early"}) as early:
            assert early.status == 404 and (await early.json())["code"] == 10015
        async with http.post(callback, json=message) as plain:
            assert plain.status == 204 and not await plain.read()
        async with http.post(callback, params={"with_response": "1"}, json=message) as again:
            assert again.status == 400 and (await again.json())["code"] == 40060
        async with http.post(followup, json={"content": "later"}) as later:
            assert later.status == 200

        second = await fake.slash("new", channel_id=fake.channel_id, author=fake.alice)
        fake.clock.advance(3.01)
        callback = f"{fake.api_base}/interactions/{second['id']}/{second['token']}/callback"
        async with http.post(callback, params={"with_response": "1"}, json=message) as late:
            assert late.status == 404 and (await late.json())["code"] == 10062


async def test_the_fake_keeps_a_nonce_once_as_discord_does_with_enforce_nonce(
    bot: QuitBot, fake_discord: FakeDiscord
) -> None:
    channel = bot.get_channel(fake_discord.channel_id)
    assert isinstance(channel, discord.TextChannel)
    first = await channel.send("once", nonce=12345)  # discord.py sends enforce_nonce with it
    again = await channel.send("twice", nonce=12345)
    other = await channel.send("other", nonce=54321)
    assert again.id == first.id and again.content == "once" and other.id != first.id
    assert fake_discord.messages[first.id]["nonce"] == "12345"
    with pytest.raises(discord.HTTPException) as refused:
        await channel.send("long", nonce="x" * 26)
    assert refused.value.status == 400 and refused.value.code == 50035
