"""Shared moves for the Discord end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.fakes.anthropic import FakeAnthropic, Response, text, tool, tools
from tests.fakes.discord import FakeDiscord

Json = dict[str, Any]
ABUSE = {"kind": "abuse", "note": "insults"}
END_ABUSE = {"reason": "persistent_abuse", "explanation": "kept insulting after a warning"}
ENDED_TITLE = "This conversation has ended"


def bot_messages(fake: FakeDiscord, channel_id: int | str) -> list[Json]:
    """What the bot posted in a channel (ephemeral answers included), oldest first."""
    return [
        m
        for m in fake.messages.values()
        if m["channel_id"] == str(channel_id) and m["author"]["id"] == fake.bot["id"]
    ]


def titles(fake: FakeDiscord, channel_id: int | str) -> list[str]:
    return [e.get("title", "") for m in bot_messages(fake, channel_id) for e in m["embeds"]]


def buttons(message: Json) -> list[str]:
    return [c["custom_id"] for row in message["components"] for c in row["components"]]


async def wait_bot_message(
    fake: FakeDiscord, channel_id: int | str, check: Callable[[Json], bool]
) -> Json:
    found: list[Json] = []

    def seen() -> bool:
        found[:] = [m for m in bot_messages(fake, channel_id) if check(m)]
        return bool(found)

    await fake.wait_until(seen)
    return found[0]


def dm_id(fake: FakeDiscord, user: Json) -> int:
    """The DM channel between the bot and `user`."""
    return int(fake.dm_channel_of(user)["id"])


async def after_end(fake: FakeDiscord, user: Json) -> Json:
    """The private "start again / this was a mistake" message the bot DMs a starter."""
    return await wait_bot_message(
        fake, dm_id(fake, user), lambda m: "Your conversation has ended" in m["content"]
    )


async def mention(
    fake: FakeDiscord, words: str, author: Json | None = None, files: list[Json] | None = None
) -> Json:
    return await fake.post(
        fake.channel_id,
        author or fake.alice,
        f"<@{fake.bot_id}> {words}",
        mention_bot=True,
        attachments=files,
    )


async def opened_thread(fake: FakeDiscord, anthropic: FakeAnthropic) -> str:
    """Mention the bot with "hi" and wait for its "Hello." in the new thread; the thread id."""
    anthropic.add(text("Hello."))
    thread_id = (await mention(fake, "hi"))["id"]
    await wait_bot_message(fake, thread_id, lambda m: m["content"] == "Hello.")
    return str(thread_id)


def abusive_turns(anthropic: FakeAnthropic) -> None:
    """Three redirected turns: the second brings the warning, the third ends it."""
    redirect = [
        tool("note_concern", ABUSE, text="I won't respond to that."),
        text("Let's move on."),
    ]
    ending: Response = tools(
        [("note_concern", ABUSE), ("end_conversation", END_ABUSE)], text="I'm ending this."
    )
    anthropic.add(*redirect, *redirect, ending)


async def converse_until_ended(fake: FakeDiscord, anthropic: FakeAnthropic) -> str:
    """Open a thread by mention, abuse the bot until it ends it; the thread id."""
    abusive_turns(anthropic)
    first = await mention(fake, "you are useless")
    thread_id = first["id"]
    await anthropic.wait_requests(2)
    await wait_bot_message(fake, thread_id, lambda m: "Let's move on." in m["content"])
    await fake.post(int(thread_id), fake.alice, "you are useless, idiot")
    await wait_bot_message(fake, thread_id, lambda m: _titled(m, "Warning"))
    await fake.post(int(thread_id), fake.alice, "idiot idiot idiot")
    await wait_bot_message(fake, thread_id, lambda m: _titled(m, ENDED_TITLE))
    return str(thread_id)


def _titled(message: Json, title: str) -> bool:
    return any(e.get("title") == title for e in message["embeds"])
