"""Order at scale (issue 9): many conversations, many messages each, all dispatched back to
back, some with files that download slowly. Each conversation's messages are stored, put in
the model's context and answered in the order Discord delivered them."""

from __future__ import annotations

import asyncio

import pytest

from platforms.discord import translate
from platforms.discord.app import QuitBot
from tests import fakes
from tests.discord_processes import echo, tokens
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.discord import FakeDiscord
from tests.platforms.discord.helpers import bot_messages

THREADS = 20
MESSAGES = 10  # per thread, the opening mention included
HELD = 3  # this message of every thread has a file that downloads only once all are sent
FILED = 6  # and this one a file that downloads at once


@pytest.fixture(autouse=True)
def _patient_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two hundred turns on a loaded machine: a longer guard against hanging."""
    monkeypatch.setattr(fakes.discord, "WAIT_SECONDS", 120.0)


async def test_many_conversations_keep_their_order_in_store_context_and_answers(
    bot: QuitBot, fake_discord: FakeDiscord, fake_anthropic: FakeAnthropic
) -> None:
    fake = fake_discord
    fake_anthropic.responder = echo
    slow = asyncio.Event()
    threads: list[str] = []
    sent: dict[str, list[str]] = {}
    for t in range(THREADS):
        token = f"m-t{t}-0"
        opening = await fake.post(
            fake.channel_id, fake.alice, f"<@{fake.bot_id}> {token}", mention_bot=True
        )
        threads.append(opening["id"])
        sent[opening["id"]] = [token]
    # A person writes in a thread once it exists: the bot makes each from its mention.
    await fake.wait_call(
        "POST", rf"/channels/{fake.channel_id}/messages/\d+/threads", count=THREADS
    )
    for i in range(1, MESSAGES):  # round robin: every thread's i-th, then the next
        for t, thread in enumerate(threads):
            token = f"m-t{t}-{i}"
            files = []
            if i == HELD:
                files = [fake.add_file(f"slow-{t}.txt", "text/plain", b"held file", held=slow)]
            elif i == FILED:
                files = [fake.add_file(f"quick-{t}.txt", "text/plain", b"quick file")]
            await fake.post(int(thread), fake.alice, token, attachments=files)
            sent[thread].append(token)
    slow.set()  # every message has been dispatched

    def replies() -> list[str]:
        return [
            m["content"].removeprefix("re: ")
            for thread in threads
            for m in bot_messages(fake, thread)
            if m["content"].startswith("re: ")
        ]

    await fake.wait_until(lambda: len(replies()) >= THREADS * MESSAGES)
    everything = [token for thread in threads for token in sent[thread]]
    answered = replies()

    stored: dict[str, list[str]] = {}
    for thread in threads:
        conversation = await bot.flows.engine.find(translate.thread_key(int(thread)))
        assert conversation is not None
        messages, _ = await bot.flows.engine.record(conversation.id)
        stored[thread] = tokens([m.text for m in messages if m.role == "user"])
    # The model's context when it answered each thread's last message.
    contexts: dict[str, list[str]] = {}
    for body in fake_anthropic.requests:
        said = [tokens(m["content"]) for m in body["messages"] if m["role"] == "user"]
        last = said[-1][-1] if said and said[-1] else ""
        for thread in threads:
            if last == sent[thread][-1]:
                contexts[thread] = [t for words in said for t in words]
    answer_order = {
        thread: [
            m["content"].removeprefix("re: ")
            for m in bot_messages(fake, thread)
            if m["content"].startswith("re: ")
        ]
        for thread in threads
    }
    out_of_order = {
        "stored": [t for t in threads if stored[t] != sent[t]],
        "context": [t for t in threads if contexts.get(t) != sent[t]],
        "answered": [t for t in threads if answer_order[t] != sent[t]],
    }
    duplicates = sorted({t for t in answered if answered.count(t) > 1})
    print(
        f"order test: sent {len(everything)} ({THREADS} threads x {MESSAGES}), kept "
        f"{sum(len(s) for s in stored.values())}, answered {len(set(answered))}, out of order "
        f"{ {k: len(v) for k, v in out_of_order.items()} }, duplicates {len(duplicates)}, "
        f"held downloads {THREADS}"
    )
    assert out_of_order == {"stored": [], "context": [], "answered": []}
    assert duplicates == [] and sorted(answered) == sorted(everything)
    # The files were read and went to the model with their own messages.
    held = [
        body
        for body in fake_anthropic.requests
        if any(t.endswith(f"-{HELD}") for t in tokens(body["messages"][-1]["content"]))
    ]
    assert len(held) == THREADS and all("held file" in str(b["messages"][-1]) for b in held)
