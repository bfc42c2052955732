"""Issue #22, "a reply given twice after a kill", with the real process on Slack HTTP:
`quitbot run` is SIGKILLed with one thread's short answer posted whole (the issue's own case)
but its turn not committed, and another thread's reply half-streamed. The next run adopts
the first by the metadata its post carries (the model is not asked again) and marks the
second as cut short before answering it anew: every message has exactly one complete answer
in the thread and in the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import aiohttp

from platforms.slack import history
from tests.discord_processes import Running, watched
from tests.fakes.anthropic import FakeAnthropic, hold, text
from tests.fakes.slack import BOT_ID, FakeSlack
from tests.fakes.slack_requests import SlackSender, event_callback, mention
from tests.held_commit import (
    AT_LENGTH,
    BRIEFLY,
    Stored,
    commits_held,
    kill_between_reply_and_commit,
    stored_by_place,
)
from tests.processes import clean_env, free_port, reaching_slack_http, start_quitbot

CHANNEL = "C0GENERAL"
WHOLE, HALF = "1700003001.000100", "1700003002.000100"  # the two threads' first messages
# One long first word: the reply's first render (a stream) goes out with the first delta.
LONG = "x" * 300 + " and the rest of a long answer"


@asynccontextmanager
async def slack_run(tmp_path: Path, env: dict[str, str]) -> AsyncIterator[Running]:
    """`quitbot run` in HTTP mode once it listens, its log read as it comes."""
    async with watched(await start_quitbot(tmp_path, env, "run")) as running:
        await running.wait_output(lambda: "listening for events" in running.log)
        yield running


def reaching(
    tmp_path: Path,
    anthropic: FakeAnthropic,
    slack: FakeSlack,
    session: aiohttp.ClientSession,
    database_url: str,
) -> tuple[dict[str, str], SlackSender]:
    """A run's settings (logging at DEBUG, which says when a reply's note is kept), and a
    sender of events to it."""
    port = free_port()
    env = clean_env(
        tmp_path,
        anthropic,
        **reaching_slack_http(slack, port),
        QUITBOT_DATABASE_URL=database_url,
        QUITBOT_LOG_LEVEL="DEBUG",
    )
    return env, SlackSender(f"http://127.0.0.1:{port}/slack/events", session)


async def test_a_kill_before_the_commit_answers_each_message_once(
    tmp_path: Path, fake_anthropic: FakeAnthropic, database_url: str
) -> None:
    never = asyncio.Event()  # the half thread's model never finishes in the first run
    fake_anthropic.add(hold(text(LONG), midway=never), text("Answered in full."))
    async with FakeSlack() as slack, aiohttp.ClientSession() as session:
        env, send = reaching(tmp_path, fake_anthropic, slack, session, database_url)

        async def ask(words: str, root: str) -> None:
            slack.person_said(CHANNEL, root, words, "U0ALICE")
            assert (await send.event(event_callback(mention(words, ts=root)))).status == 200

        async with slack_run(tmp_path, env) as first, commits_held(database_url):
            roots = iter((HALF, WHOLE))
            # The brief answer is posted whole, its metadata naming the message it answers:
            # no note goes to the store; the kill comes with the post, its commit held.
            posted = partial(slack.wait_for, "chat.postMessage")
            await kill_between_reply_and_commit(
                first, lambda words: ask(words, next(roots)), posted
            )
        never.set()  # the dead run's model request may end now
        asked_before = len(fake_anthropic.requests)

        fake_anthropic.add(text("A fresh answer."))
        async with slack_run(tmp_path, env) as second:
            await slack.wait_for("chat.postMessage", 2, within=30)
        assert "Traceback" not in second.log, second.log

    whole = [m for m in slack.in_thread(CHANNEL, WHOLE) if m.get("bot_id") == BOT_ID]
    half = [m for m in slack.in_thread(CHANNEL, HALF) if m.get("bot_id") == BOT_ID]
    assert [m["text"] for m in whole] == ["Answered in full."]  # once: adopted, not again
    assert whole[0]["metadata"] == history.answer_mark(WHOLE)
    assert [m["text"] for m in half][1:] == ["A fresh answer."]
    assert half[0]["text"].startswith("x" * 300)
    assert half[0]["text"].endswith("_(cut short: answered again below)_")
    assert not half[0]["streaming"]
    asked_again = fake_anthropic.requests[asked_before:]
    assert len(asked_again) == 1  # the half thread only
    assert AT_LENGTH in str(asked_again[0]["messages"][-1]["content"])

    stored = await stored_by_place(tmp_path, fake_anthropic, database_url)
    assert stored == {
        f"{CHANNEL}:{HALF}": Stored(
            [("user", AT_LENGTH), ("assistant", "A fresh answer.")], adopted=0
        ),
        f"{CHANNEL}:{WHOLE}": Stored(
            [("user", BRIEFLY), ("assistant", "Answered in full.")], adopted=1
        ),
    }
