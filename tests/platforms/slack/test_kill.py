"""Issue #9, "delivered means kept", with the real process: `quitbot run` in HTTP mode is
SIGKILLed right after Slack's 200s while its replies are under way; the next run keeps every
acknowledged message, answers nothing twice and leaves the database intact."""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
from pathlib import Path

import aiohttp

from tests.fakes.anthropic import FakeAnthropic, hold, text
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_requests import SlackSender, event_callback, mention, message
from tests.processes import clean_env, reaching_slack_http, start_quitbot

THREADS = 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def started(tmp_path: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    """`quitbot run`, once it says it is listening (read from its log, no polling)."""
    process = await start_quitbot(tmp_path, env, "run")
    assert process.stderr is not None
    async with asyncio.timeout(20):
        while b"listening for events" not in (line := await process.stderr.readline()):
            assert line, "quitbot exited before listening"
    return process


async def test_a_kill_right_after_the_acks_loses_nothing(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    port = free_port()
    release = asyncio.Event()  # the model answers nothing until the first run is dead
    fake_anthropic.default = hold(text("Answered."), before=release)
    async with FakeSlack() as slack, aiohttp.ClientSession() as session:
        env = clean_env(
            tmp_path,
            fake_anthropic,
            **reaching_slack_http(slack, port),
        )
        send = SlackSender(f"http://127.0.0.1:{port}/slack/events", session)
        first = await started(tmp_path, env)
        sent = []
        for t in range(THREADS):
            root = f"1700002{t:03d}.000100"
            for payload in (
                mention(f"t{t} first", ts=root),
                message(f"t{t} second", ts=f"1700002{t:03d}.000200", thread_ts=root),
            ):
                assert (await send.event(event_callback(payload))).status == 200
                sent.append(payload["text"].split("> ")[-1])
        first.kill()  # SIGKILL: no shutdown, no drain
        await first.wait()
        assert first.returncode == -signal.SIGKILL
        with sqlite3.connect(tmp_path / "cli.db") as db:
            waiting = [row[0] for row in db.execute("SELECT text FROM inbox")]
            begun = [row[0] for row in db.execute("SELECT text FROM messages WHERE role = 'user'")]
        assert sorted(waiting) == sorted(sent)  # every acknowledged message was kept
        assert set(begun) <= set(waiting)  # a begun turn stays pending until it commits

        second = await started(tmp_path, env)
        release.set()
        try:  # what the killed run never answered is answered now, begun or not
            await slack.wait_for("chat.postMessage", len(waiting), within=20)
        finally:
            second.send_signal(signal.SIGTERM)
            _, err = await second.communicate()
        assert "Traceback" not in err.decode()

    with sqlite3.connect(tmp_path / "cli.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        kept = [row[0] for row in db.execute("SELECT text FROM messages WHERE role = 'user'")]
        answers = db.execute("SELECT count(*) FROM messages WHERE role = 'assistant'").fetchone()
        assert db.execute("SELECT count(*) FROM inbox").fetchone() == (0,)
    assert sorted(kept) == sorted(sent)  # each acknowledged message stored once
    posted = [c for c in slack.calls_to("chat.postMessage") if c.get("markdown_text")]
    assert len(posted) == answers[0] == len(waiting)  # nothing answered twice
    assert not slack.unexpected
    print(
        f"sent {len(sent)}, kept {len(kept)}, begun before the kill {len(begun)}, "
        f"answered after it {len(posted)}, answered twice 0"
    )
