"""/quitbot reopen | status | audit: refused to plain members, ephemeral for moderators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.conversation import ConversationKey
from platforms.discord.app import QuitBot
from tests.fakes import discord_payloads as p
from tests.fakes.anthropic import FakeAnthropic, text
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.conftest import running_bot, settings_for
from tests.platforms.discord.helpers import converse_until_ended, wait_bot_message

MODERATOR = p.MEMBER_PERMISSIONS | p.MANAGE_THREADS


def sub(name: str, *options: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": 1, "name": name, "options": list(options)}]


async def answer(fake: FakeDiscord, interaction: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = (await fake.response(interaction)).body["data"]
    assert data["flags"] & 64, "moderator answers are ephemeral"
    return data


async def test_moderator_commands_are_refused_to_a_plain_member(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id = await converse_until_ended(fake, fake_anthropic)
    for command in ("status", "audit", "reopen"):
        asked = await fake.slash(
            "quitbot", sub(command), channel_id=int(thread_id), author=fake.bob
        )
        assert "Only moderators" in (await answer(fake, asked))["content"]
    conversation = await bot.flows.engine.find(ConversationKey("discord", thread_id))
    assert conversation is not None and conversation.ladder.ended


async def test_status_and_audit_for_a_moderator(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    thread_id = await converse_until_ended(fake, fake_anthropic)
    asked = await fake.slash(
        "quitbot", sub("status"), channel_id=int(thread_id), author=fake.bob, permissions=MODERATOR
    )
    status = (await answer(fake, asked))["content"]
    assert "ended" in status and "Redirects: 3" in status and "persistent_abuse" in status

    asked = await fake.slash(
        "quitbot", sub("audit"), channel_id=fake.channel_id, author=fake.bob, permissions=MODERATOR
    )
    assert "inside a conversation's thread" in (await answer(fake, asked))["content"]

    thread_option = {"name": "thread", "type": 7, "value": thread_id}
    asked = await fake.slash(
        "quitbot",
        sub("audit", thread_option),
        channel_id=fake.channel_id,
        author=fake.bob,
        permissions=MODERATOR,
        resolved={"channels": {thread_id: fake.channels[int(thread_id)] | {"permissions": "0"}}},
    )
    audit = (await answer(fake, asked))["content"]
    assert "warn" in audit and "end" in audit


async def test_reopen_by_the_moderator_role_unlocks_and_the_conversation_goes_on(
    tmp_path: Path, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    settings = settings_for(
        tmp_path, fake_anthropic, fake, moderator_role_id=fake.moderator_role_id
    )
    async with running_bot(fake, settings):
        thread_id = await converse_until_ended(fake, fake_anthropic)
        await fake.wait_call("PATCH", rf"/channels/{thread_id}")
        note = {"name": "note", "type": 3, "value": "it was a misunderstanding"}
        asked = await fake.slash(
            "quitbot",
            sub("reopen", note),
            channel_id=int(thread_id),
            author=fake.bob,
            roles=(fake.moderator_role_id,),
        )
        assert (await fake.response(asked)).body["type"] == 5  # deferred: unlocking is slow
        assert "Reopened" in (await fake.followup(asked)).body["content"]
        unlock = await fake.wait_call("PATCH", rf"/channels/{thread_id}", count=2)
        assert unlock.body == {"archived": False, "locked": False}
        await wait_bot_message(fake, thread_id, lambda m: "moderator reopened" in m["content"])

        fake_anthropic.add(text("Welcome back."))
        await fake.post(int(thread_id), fake.alice, "sorry about that")
        await wait_bot_message(fake, thread_id, lambda m: m["content"] == "Welcome back.")
        assert len(fake.calls_to("PATCH", rf"/channels/{thread_id}")) == 2  # not re-locked
