"""The real `quitbot run` on Discord, SIGKILLed with turns in flight, then started again
(issue 9): nothing it kept is lost, everything kept is answered once and in order, and the
SQLite database is intact."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from bot.app import build_runtime
from tests import fakes
from tests.conftest import make_settings
from tests.discord_processes import echo, key_of, quitbot_discord, tokens
from tests.fakes.anthropic import FakeAnthropic, hold
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.helpers import bot_messages, dm_id

THREADS = 4  # conversations opened by a mention
FOLLOW_UPS = 4  # messages after the first in each conversation, sent back to back
BURST = 12  # more, back to back; the kill comes once the process has kept one of them


@pytest.fixture(autouse=True)
def _patient_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fakes.discord, "WAIT_SECONDS", 60.0)


async def test_a_kill_with_turns_in_flight_loses_nothing_kept_and_answers_once(
    tmp_path: Path, fake_anthropic: FakeAnthropic, database_url: str
) -> None:
    url = database_url
    never = asyncio.Event()  # the first run's model never answers: its turns stay in flight
    fake_anthropic.responder = lambda body: hold(echo(body), before=never)
    sent: dict[str, list[str]] = {}  # conversation place -> tokens, in dispatch order
    ids: dict[str, str] = {}  # token -> Discord message id
    async with FakeDiscord() as discord:
        dm = str(dm_id(discord, discord.alice))
        async with quitbot_discord(
            tmp_path, fake_anthropic, discord, url, api_key="run-1", QUITBOT_LOG_LEVEL="DEBUG"
        ) as first:

            async def say(channel: int | str, place: str, token: str, **how: object) -> None:
                message = await discord.post(int(channel), discord.alice, token, **how)  # type: ignore[arg-type]
                sent.setdefault(place, []).append(token)
                ids[token] = message["id"]

            for t in range(THREADS):
                token = f"m-t{t}-0"
                opening = await discord.post(
                    discord.channel_id,
                    discord.alice,
                    f"<@{discord.bot_id}> {token}",
                    mention_bot=True,
                )
                # The thread has the mention's id; a person can write there once it exists.
                place = ids[token] = opening["id"]
                sent[place] = [token]
                await discord.wait_call(
                    "POST", rf"/channels/{discord.channel_id}/messages/{place}/threads"
                )
                for i in range(1, FOLLOW_UPS + 1):
                    await say(place, place, f"m-t{t}-{i}")
            for i in range(FOLLOW_UPS + 1):
                await say(dm, f"dm:{dm}", f"m-dm-{i}")
            first_part = [token for tokens_ in sent.values() for token in tokens_]
            # Every message kept, and each conversation's first turn waiting on the model.
            await first.wait_output(
                lambda: {f"message:{ids[t]}" for t in first_part} <= set(first.kept)
            )
            await fake_anthropic.wait_requests(THREADS + 1)
            # More, back to back; the kill comes as soon as the process has kept one of
            # them, with the others somewhere between the wire and the database.
            places = [p for p in sent if not p.startswith("dm:")]
            burst: list[str] = []
            one_kept = asyncio.create_task(
                first.wait_output(lambda: not set(burst).isdisjoint(first.kept))
            )
            for n in range(BURST):
                if one_kept.done():
                    break
                place = places[n % len(places)]
                await say(place, place, f"m-b{n}")
                burst.append(f"message:{ids[f'm-b{n}']}")
            await one_kept
            first.process.kill()
            await first.process.wait()
        kept_by_first = set(first.kept)
        in_flight = len(fake_anthropic.requests)

        fake_anthropic.responder = echo
        async with quitbot_discord(
            tmp_path, fake_anthropic, discord, url, api_key="run-2"
        ) as second:
            pass  # its start-up answers what the first kept (before the gateway connects)
        never.set()

    assert "Traceback" not in second.log, second.log
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    async with build_runtime(make_settings(tmp_path, fake_anthropic, database_url=url)) as rt:
        stored: dict[str, list[str]] = {}
        for conversation in await rt.store.list_conversations():
            messages, _ = await rt.engine.record(conversation.id)
            stored[conversation.key.place] = [m.text for m in messages if m.role == "user"]

    everything = [token for tokens_ in sent.values() for token in tokens_]
    kept = [t for place in stored.values() for t in tokens(place)]
    replies = [
        m["content"].removeprefix("re: ")
        for place in sent
        for m in bot_messages(discord, place.removeprefix("dm:"))
        if m["content"].startswith("re: ")
    ]
    answered = {t for t in everything if replies.count(t) == 1}
    duplicates = sorted({t for t in replies if replies.count(t) > 1})
    out_of_order = [
        place
        for place, order in stored.items()
        if tokens(order) != [t for t in sent[place] if t in set(tokens(order))]
    ]
    asked_again = [
        t
        for body, headers in zip(
            fake_anthropic.requests, fake_anthropic.request_headers, strict=True
        )
        if key_of(headers) == "run-2"
        for t in tokens(body["messages"][-1]["content"])[-1:]
    ]
    print(
        f"kill test ({url.split(':')[0]}): sent {len(everything)}, kept {len(kept)} "
        f"(the first run logged "
        f"{len(kept_by_first)}), answered once {len(answered)}, duplicates {len(duplicates)}, "
        f"out of order {len(out_of_order)}, turns in flight at the kill {in_flight}, "
        f"answered after the restart {len(asked_again)}"
    )
    # Nothing the first run kept is lost, nothing is stored or answered twice, and each
    # conversation keeps the order its messages were sent in.
    lost = [t for t in everything if f"message:{ids[t]}" in kept_by_first and t not in kept]
    assert lost == []
    assert set(first_part) <= set(kept)
    assert sorted(kept) == sorted(set(kept)), "a message was stored twice"
    assert duplicates == [] and out_of_order == []
    assert sorted(asked_again) == sorted(set(asked_again))
    # Everything kept is answered once: what waited in line, and the turns in flight.
    assert sorted(answered) == sorted(kept)
