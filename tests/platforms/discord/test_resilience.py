"""What goes wrong on Discord: replays after RESUME, 429s, a missing permission, other bots."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from bot.app import build_runtime
from bot.conversation import Inbound
from bot.settings import Settings
from platforms.discord import doctor, translate
from platforms.discord.app import QuitBot
from platforms.discord.cog import ConversationCog, Kept
from tests.fakes.anthropic import FakeAnthropic, hold, text
from tests.fakes.discord import CDN_URL_SECONDS, FakeDiscord, Json
from tests.platforms.discord.conftest import running_bot, settings_for
from tests.platforms.discord.helpers import (
    ENDED_TITLE,
    bot_messages,
    converse_until_ended,
    dm_id,
    mention,
    opened_thread,
    wait_bot_message,
)


async def test_a_message_replayed_after_resume_is_answered_once(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    fake_anthropic.add(text("First answer."), text("Second answer."))
    opening = await mention(fake, "hello")
    thread_id = opening["id"]
    await wait_bot_message(fake, thread_id, lambda m: m["content"] == "First answer.")
    follow_up = await fake.post(int(thread_id), fake.alice, "and another thing")
    await wait_bot_message(fake, thread_id, lambda m: m["content"] == "Second answer.")

    await fake.reconnect(replay=opening)  # resends the mention and the follow-up
    fake_anthropic.add(text("Third answer."))
    await fake.post(int(thread_id), fake.alice, "one more")
    await wait_bot_message(fake, thread_id, lambda m: m["content"] == "Third answer.")

    assert fake.resumes == 1 and len(fake.identifies) == 1
    threads = fake.calls_to("POST", rf"/channels/{fake.channel_id}/messages/{thread_id}/threads")
    # A thread opened from a message has its id: the replay is known without asking Discord.
    assert [c.status for c in threads] == [201]
    assert [m["content"] for m in bot_messages(fake, thread_id)] == [
        "First answer.",
        "Second answer.",
        "Third answer.",
    ]
    assert len(fake_anthropic.requests) == 3
    assert follow_up["id"] in {m["id"] for m in fake.messages.values()}


async def test_a_429_from_discord_is_waited_out_and_the_reply_still_arrives(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    fake_anthropic.add(text("Patience pays."))
    opening = await mention(fake, "hello")
    thread_id = opening["id"]
    fake.limit_next("POST", rf"/channels/{thread_id}/messages", retry_after=0.01)
    await wait_bot_message(fake, thread_id, lambda m: m["content"] == "Patience pays.")
    posts = fake.calls_to("POST", rf"/channels/{thread_id}/messages")
    assert [c.status for c in posts] == [429, 200]
    assert len(bot_messages(fake, thread_id)) == 1


async def test_other_bots_and_itself_are_ignored(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    await mention(fake, "answer me, bot", author=fake.other_bot)
    await fake.post(
        fake.channel_id, fake.bot, f"<@{fake.bot_id}> talking to myself", mention_bot=True
    )
    await fake.post(fake.channel_id, fake.alice, "no mention, no answer")
    fake_anthropic.add(text("Only for you."))
    opening = await mention(fake, "hello")
    await wait_bot_message(fake, opening["id"], lambda m: m["content"] == "Only for you.")
    assert len(fake.calls_to("POST", r"/channels/\d+/messages/\d+/threads")) == 1
    assert len(fake_anthropic.requests) == 1


async def test_without_manage_threads_the_end_holds_and_the_operator_is_told_once(
    tmp_path: Path, fake_anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeDiscord(bot_can_manage_threads=False) as fake:
        settings = settings_for(tmp_path, fake_anthropic, fake)
        caplog.set_level(logging.WARNING, logger="platforms.discord")
        async with running_bot(fake, settings):
            thread_id = await opened_thread(fake, fake_anthropic)
            asked = await fake.slash("end", channel_id=int(thread_id), author=fake.alice)
            confirm = (await fake.response(asked)).response["resource"]["message"]
            await fake.press("quitbot:end", message=confirm, author=fake.alice)
            await wait_bot_message(
                fake, thread_id, lambda m: any(e["title"] == ENDED_TITLE for e in m["embeds"])
            )
            for words in ("still there?", "hello?"):
                await fake.post(int(thread_id), fake.alice, words)
            await wait_bot_message(fake, dm_id(fake, fake.alice), lambda m: "won't" in m["content"])
            await fake.set_thread(int(thread_id), archived=False, locked=False)
            fake_anthropic.add(text("New thread, new talk."))
            other = await mention(fake, "a fresh question")
            await wait_bot_message(
                fake, other["id"], lambda m: m["content"] == "New thread, new talk."
            )

        assert not fake.calls_to("PATCH", rf"/channels/{thread_id}")
        assert len(fake_anthropic.requests) == 2
        warnings = [r.getMessage() for r in caplog.records if "Manage Threads" in r.getMessage()]
        assert len(warnings) == 1 and str(fake.guild_id) in warnings[0]
        checks = await doctor(settings)
        [(status, line)] = [check for check in checks if "Manage Threads" in check[1]]
        assert status == "warn" and "threads stay open" in line  # optional: not a failure
        assert fake.unexpected == []


async def test_after_a_restart_an_ended_thread_stays_ended(
    tmp_path: Path, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    settings = settings_for(tmp_path, fake_anthropic, fake)
    async with running_bot(fake, settings):
        thread_id = await converse_until_ended(fake, fake_anthropic)
        await fake.wait_call("PATCH", rf"/channels/{thread_id}")
    requests = len(fake_anthropic.requests)
    async with running_bot(fake, settings):
        await fake.set_thread(int(thread_id), archived=False, locked=False)
        relock = await fake.wait_call("PATCH", rf"/channels/{thread_id}", count=2)
        assert relock.body == {"archived": True, "locked": True}
        await fake.post(int(thread_id), fake.alice, "remember me?")
        await wait_bot_message(fake, dm_id(fake, fake.alice), lambda m: "won't" in m["content"])
    assert len(fake_anthropic.requests) == requests and len(fake.identifies) == 2


async def test_editing_or_deleting_earlier_messages_reopens_nothing(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id = await converse_until_ended(fake, fake_anthropic)
    await fake.wait_call("PATCH", rf"/channels/{thread_id}")
    calls, requests = len(fake.calls), len(fake_anthropic.requests)
    opening = fake.messages[int(thread_id)]
    await fake.dispatch(
        "MESSAGE_UPDATE",
        opening | {"content": "I take it back", "edited_timestamp": opening["timestamp"]},
    )
    await fake.dispatch(
        "MESSAGE_DELETE",
        {"id": opening["id"], "channel_id": thread_id, "guild_id": str(fake.guild_id)},
    )
    fake_anthropic.add(text("Hello again."))
    other = await mention(fake, "new topic")
    await wait_bot_message(fake, other["id"], lambda m: m["content"] == "Hello again.")
    assert not [c for c in fake.calls[calls:] if thread_id in c.path]
    assert len(fake_anthropic.requests) == requests + 1


# --- issue 9: every fault ends in an answer or a notice --------------------------------------


def _closed_port() -> int:
    """A local port nobody listens on: connecting is refused at once, no network needed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_file_that_cannot_be_downloaded_never_drops_the_message(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    unreachable = fake.add_file("notes.txt", "text/plain", b"never read")
    unreachable["url"] = unreachable["proxy_url"] = f"http://127.0.0.1:{_closed_port()}/notes.txt"
    fake_anthropic.add(text("I could not open your file, but here goes."))
    opening = await mention(fake, "read this", files=[unreachable])
    await wait_bot_message(fake, opening["id"], lambda m: "here goes" in m["content"])
    sent = str(fake_anthropic.requests[0]["messages"][-1]["content"])
    assert "read this" in sent and "notes.txt" in sent and "not read" in sent
    conversation = await bot.flows.engine.find(translate.thread_key(int(opening["id"])))
    assert conversation is not None


@pytest.mark.parametrize(
    ("name", "options"),
    [("retired", []), ("quitbot", [{"type": 1, "name": "retired", "options": []}])],
)
async def test_an_unknown_or_stale_command_is_answered_without_a_traceback(
    bot: QuitBot,
    fake_discord: FakeDiscord,
    caplog: pytest.LogCaptureFixture,
    name: str,
    options: list[dict[str, object]],
) -> None:
    fake = fake_discord
    caplog.set_level(logging.INFO)
    asked = await fake.slash(name, options, channel_id=fake.channel_id, author=fake.alice)
    answer = (await fake.response(asked)).body["data"]
    assert answer["content"] == "This command is no longer available." and answer["flags"] & 64
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_when_the_first_send_of_a_reply_fails_the_rest_still_arrives(
    bot: QuitBot,
    fake_discord: FakeDiscord,
    fake_anthropic: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = fake_discord
    asked, midway = asyncio.Event(), asyncio.Event()
    reply = "The first half of the answer, and then the second half of it."
    fake_anthropic.add(hold(text(reply), before=asked, midway=midway))
    opening = await mention(fake, "tell me")
    thread_id = opening["id"]
    fake.fail_next("POST", rf"/channels/{thread_id}/messages", status=403, code=50001)
    asked.set()
    await fake.wait_call("POST", rf"/channels/{thread_id}/messages", ok_only=False)
    midway.set()
    await wait_bot_message(fake, thread_id, lambda m: m["content"] == reply)
    await bot.flows.drain(grace=30)  # the turn's commit comes after the reply's last edit
    assert not [r for r in caplog.records if r.exc_info]
    conversation = await bot.flows.engine.find(translate.thread_key(int(thread_id)))
    assert conversation is not None
    messages, _ = await bot.flows.engine.record(conversation.id)
    shown = next(m for m in bot_messages(fake, thread_id) if m["content"] == reply)
    assert messages[-1].platform_message_id == shown["id"]


async def test_a_message_kept_but_never_answered_is_answered_after_a_restart(
    tmp_path: Path, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    settings = settings_for(tmp_path, fake_anthropic, fake)
    async with running_bot(fake, settings):
        thread_id = await opened_thread(fake, fake_anthropic)
    # The process kept the next message, then died before answering it.
    key = translate.thread_key(int(thread_id))
    kept = Inbound(key, "message:4242", fake.alice["id"], "are you still there?", "4242")
    async with build_runtime(settings) as runtime:
        assert await runtime.engine.receive(kept)
    fake_anthropic.add(text("Still here."))
    async with running_bot(fake, settings):
        await wait_bot_message(fake, thread_id, lambda m: m["content"] == "Still here.")
    assert "are you still there?" in str(fake_anthropic.requests[-1]["messages"][-1])


async def test_messages_are_answered_in_the_order_they_arrived_even_if_a_file_is_slow(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id = await opened_thread(fake, fake_anthropic)
    fake_anthropic.add(text("One."), text("Two."), text("Elsewhere."))
    slow = asyncio.Event()
    notes = fake.add_file("notes.txt", "text/plain", b"first file", held=slow)
    await fake.post(int(thread_id), fake.alice, "first, with a file", attachments=[notes])
    await fake.wait_until(lambda: bool(fake.downloads))  # its file is being read
    await fake.post(int(thread_id), fake.alice, "second, right after")
    # A round trip through the gateway: by the time another thread is answered, the
    # second message has long been dispatched (and, unordered, would have overtaken).
    other = await mention(fake, "meanwhile, elsewhere")
    await wait_bot_message(fake, other["id"], lambda m: bool(m["content"]))
    slow.set()
    await fake_anthropic.wait_requests(4)
    asked = [str(r["messages"][-1]["content"]) for r in fake_anthropic.requests]
    first = next(i for i, words in enumerate(asked) if "first, with a file" in words)
    second = next(i for i, words in enumerate(asked) if "second, right after" in words)
    assert first < second
    assert "first file" in asked[first]


async def kept_then_stopped(
    fake: FakeDiscord, settings: Settings, monkeypatch: pytest.MonkeyPatch, file: Json
) -> str:
    """A run keeps a mention with a file and stops before answering it (no file is read
    yet); the id of the thread it opened."""
    answer = ConversationCog._answer
    reached, stopped = asyncio.Event(), asyncio.Event()

    async def stop_first(cog: ConversationCog, kept: Kept) -> None:
        reached.set()  # kept: answering comes next, and the run stops here
        await stopped.wait()

    monkeypatch.setattr(ConversationCog, "_answer", stop_first)
    async with running_bot(fake, settings):
        opening = await mention(fake, "sum this up", files=[file])
        await reached.wait()
    stopped.set()
    monkeypatch.setattr(ConversationCog, "_answer", answer)
    assert fake.downloads == []
    return str(opening["id"])


async def test_a_kept_messages_file_is_read_by_the_next_run(
    tmp_path: Path,
    fake_discord: FakeDiscord,
    fake_anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the file's address was kept; the next run reads it from the CDN and the model
    gets its contents."""
    fake = fake_discord
    settings = settings_for(tmp_path, fake_anthropic, fake)
    agenda = fake.add_file("agenda.txt", "text/plain", b"1. budget 2. hiring")
    thread_id = await kept_then_stopped(fake, settings, monkeypatch, agenda)
    fake_anthropic.add(text("Budget, then hiring."))
    async with running_bot(fake, settings):
        await wait_bot_message(fake, thread_id, lambda m: m["content"] == "Budget, then hiring.")
    [asked] = fake_anthropic.requests
    told = asked["messages"][-1]["content"][-1]["text"]
    assert told == 'sum this up\n\n<file name="agenda.txt">\n1. budget 2. hiring\n</file>'
    assert len(fake.downloads) == 1


async def told_after_a_long_stop(
    tmp_path: Path,
    fake: FakeDiscord,
    fake_anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
    reply: str,
) -> tuple[Json, str]:
    """A message with a file, kept by a run that stopped for longer than the file's CDN
    address lives, answered (`reply`) by the next run: the file, and what the model read."""
    settings = settings_for(tmp_path, fake_anthropic, fake)
    agenda = fake.add_file("agenda.txt", "text/plain", b"1. budget 2. hiring")
    thread_id = await kept_then_stopped(fake, settings, monkeypatch, agenda)
    fake.clock.advance(CDN_URL_SECONDS + 1)
    fake_anthropic.add(text(reply))
    async with running_bot(fake, settings):
        await wait_bot_message(fake, thread_id, lambda m: m["content"] == reply)
    [asked] = fake_anthropic.requests
    return agenda, asked["messages"][-1]["content"][-1]["text"]


async def test_a_file_whose_address_expired_before_the_next_run_is_read_anew(
    tmp_path: Path,
    fake_discord: FakeDiscord,
    fake_anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Discord's CDN addresses expire: after a long stop the kept one answers 404, a fresh
    one is asked for, and the model gets the file's contents."""
    fake = fake_discord
    agenda, told = await told_after_a_long_stop(
        tmp_path, fake, fake_anthropic, monkeypatch, "Budget, then hiring."
    )
    assert told.endswith('<file name="agenda.txt">\n1. budget 2. hiring\n</file>')
    [refresh] = fake.calls_to("POST", r"/attachments/refresh-urls")
    assert refresh.body == {"attachment_urls": [agenda["url"]]}
    assert len(fake.downloads) == 2  # the expired address, refused; then the fresh one


async def test_a_file_whose_address_cannot_be_refreshed_is_named(
    tmp_path: Path,
    fake_discord: FakeDiscord,
    fake_anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past its expiry and with no fresh address to be had, the file is out of reach; the
    message is still answered, the model told the file's name."""
    fake = fake_discord
    fake.fail_next("POST", r"/attachments/refresh-urls")
    _, told = await told_after_a_long_stop(
        tmp_path, fake, fake_anthropic, monkeypatch, "I could not open it."
    )
    assert told.startswith("sum this up")
    assert "agenda.txt (text/plain, 19 bytes); it was not read" in told
    assert len(fake.downloads) == 1  # tried, and refused with a 404
