"""Discord shards spread over two real `quitbot run` processes on one database (issue 7).

Each process runs one of two shards. The fake gateway sends each server's events only on
the shard Discord would ((guild_id >> 22) % shard_count; DMs on shard 0), so each process
sees its own servers. Runs on SQLite (two processes on one host) and on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import build_runtime
from bot.conversation import ConversationKey
from tests import fakes
from tests.conftest import make_settings
from tests.discord_processes import echo, key_of, quitbot_discord, tokens
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.helpers import after_end, bot_messages, dm_id, wait_bot_message

PER_SERVER = 4  # conversations opened by a mention in each shard's server
KEYS = {0: "key-shard-0", 1: "key-shard-1"}  # each process's API key tells its calls apart


@pytest.fixture(autouse=True)
def _patient_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes on a loaded machine answer slower than one bot in the test's loop:
    the fake's waits get a longer guard (a guard against hanging, not a measurement)."""
    monkeypatch.setattr(fakes.discord, "WAIT_SECONDS", 60.0)


def answered(fake: FakeDiscord, channel_id: int | str, token: str) -> int:
    return sum(m["content"] == f"re: {token}" for m in bot_messages(fake, channel_id))


async def test_two_processes_serve_one_shard_each_on_one_database(
    tmp_path: Path, fake_anthropic: FakeAnthropic, database_url: str
) -> None:
    fake_anthropic.responder = echo
    async with FakeDiscord(shard_count=2) as discord:
        servers = {0: (discord.guild_id, discord.channel_id)}
        servers[1] = discord.add_guild("Shard One", shard=1)
        assert [discord.shard_of_guild(servers[s][0]) for s in (0, 1)] == [0, 1]
        async with (
            quitbot_discord(
                tmp_path, fake_anthropic, discord, database_url, shard=0, api_key=KEYS[0]
            ) as first,
            quitbot_discord(
                tmp_path, fake_anthropic, discord, database_url, shard=1, api_key=KEYS[1]
            ) as second,
        ):
            # Each process identified with its own shard of two, and got only its server.
            assert sorted(i["shard"] for i in discord.identifies) == [[0, 2], [1, 2]]
            sent_guilds = {
                (shard, payload["id"])
                for shard, event, payload in discord.dispatched
                if event == "GUILD_CREATE"
            }
            assert sent_guilds == {(s, str(servers[s][0])) for s in (0, 1)}

            # Conversations in both servers at once, each mention opening a thread.
            threads: dict[str, tuple[int, str]] = {}  # token -> (shard, thread id)
            for i in range(PER_SERVER):
                for shard, (_, channel_id) in servers.items():
                    token = f"m-s{shard}-{i}"
                    opening = await discord.post(
                        channel_id,
                        discord.alice,
                        f"<@{discord.bot_id}> {token}",
                        mention_bot=True,
                    )
                    threads[token] = (shard, opening["id"])
            for token, (_, thread_id) in threads.items():
                await wait_bot_message(
                    discord, thread_id, lambda m, t=token: m["content"] == f"re: {t}"
                )
            # One follow-up in each thread, without a mention: a known conversation.
            for token, (shard, thread_id) in list(threads.items()):
                await discord.post(int(thread_id), discord.alice, f"{token}-again")
                threads[f"{token}-again"] = (shard, thread_id)
            for token, (_, thread_id) in threads.items():
                await wait_bot_message(
                    discord, thread_id, lambda m, t=token: m["content"] == f"re: {t}"
                )
            # A DM: Discord sends it on shard 0.
            await discord.dm(discord.alice, "m-dm-0")
            await wait_bot_message(
                discord, dm_id(discord, discord.alice), lambda m: m["content"] == "re: m-dm-0"
            )
            dm = str(dm_id(discord, discord.alice))
            threads["m-dm-0"] = (0, dm)

            # The second process ends one of its conversations (/end, then confirm)...
            ended_thread = threads["m-s1-0"][1]
            asked = await discord.slash("end", channel_id=int(ended_thread), author=discord.alice)
            confirm = (await discord.response(asked)).response["resource"]["message"]
            pressed = await discord.press("quitbot:end", message=confirm, author=discord.alice)
            await discord.response(pressed)
            await discord.wait_call("PATCH", rf"/channels/{ended_thread}")
            # ...and offers a new start by DM, where the press goes to shard 0: the first
            # process opens the new conversation in the second process's server...
            offer = await after_end(discord, discord.alice)
            _, shard_one_channel = servers[1]
            new = await discord.press(
                f"quitbot:new:{shard_one_channel}", message=offer, author=discord.alice
            )
            opened = await discord.wait_call("POST", rf"/channels/{shard_one_channel}/threads")
            new_thread = opened.response["id"]
            assert new_thread in (await discord.followup(new)).body["content"]
            # ...and the second process answers in it: it finds the record the first wrote.
            await discord.post(int(new_thread), discord.alice, "m-new-0")
            await wait_bot_message(discord, new_thread, lambda m: m["content"] == "re: m-new-0")
            threads["m-new-0"] = (1, new_thread)
            # The ended one stays ended: a private notice (its thread is locked), no model call.
            calls = len(fake_anthropic.requests)
            await discord.post(int(ended_thread), discord.alice, "m-blocked-0")
            await wait_bot_message(
                discord, dm_id(discord, discord.alice), lambda m: "won't reply here" in m["content"]
            )
            assert len(fake_anthropic.requests) == calls
        logs = {0: first.log, 1: second.log}

    for shard in (0, 1):
        assert "Traceback" not in logs[shard], logs[shard]
    # Every event went only to the shard Discord's formula names.
    for shard, event, payload in discord.dispatched:
        if event == "GUILD_CREATE":
            assert shard == discord.shard_of_guild(int(payload["id"]))
        elif event != "READY":
            assert shard == discord.shard_for(payload)
    interactions = [(s, p["type"]) for s, e, p in discord.dispatched if e == "INTERACTION_CREATE"]
    assert interactions == [(1, 2), (1, 3), (0, 3)]  # /end and its confirm; "new" in the DM
    # Each message reached the model once, from the process of its shard, and was answered
    # once in its place.
    asked = [
        (token, key_of(headers))
        for body, headers in zip(
            fake_anthropic.requests, fake_anthropic.request_headers, strict=True
        )
        for token in tokens(body["messages"][-1]["content"])[-1:]
    ]
    by_shard = {s: sum(1 for _, k in asked if k == KEYS[s]) for s in (0, 1)}
    wrong = [t for t, k in asked if k != KEYS[threads[t][0]]]
    once = [t for t, (_, place) in threads.items() if answered(discord, place, t) == 1]
    print(
        f"shard test ({database_url.split(':')[0]}): sent {len(threads) + 1} (1 to an ended "
        f"conversation), model calls {len(asked)} (shard 0: {by_shard[0]}, shard 1: "
        f"{by_shard[1]}), answered once {len(once)}, by the wrong process {len(wrong)}, "
        f"duplicates {len(asked) - len(set(asked))}"
    )
    assert sorted(asked) == sorted((token, KEYS[shard]) for token, (shard, _) in threads.items())
    for token, (_, place) in threads.items():
        assert answered(discord, place, token) == 1, token
    assert discord.unexpected == []

    # One database holds both processes' conversations.
    async with build_runtime(
        make_settings(tmp_path, fake_anthropic, database_url=database_url)
    ) as runtime:
        conversations = {c.key.place: c for c in await runtime.store.list_conversations()}
        assert conversations[ended_thread].state == "ended"
        assert conversations[new_thread].state == "active"
        created = conversations[new_thread].created_at
        assert created >= conversations[ended_thread].ended_at  # type: ignore[operator]
        places = {f"dm:{dm}" if place == dm else place for _, place in threads.values()}
        assert set(conversations) == places
        new_key = ConversationKey("discord", new_thread)
        messages, _ = await runtime.engine.record(conversations[new_key.place].id)
        assert [m.text for m in messages if m.role == "user"] == ["m-new-0"]
