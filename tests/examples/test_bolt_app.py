"""examples/bolt_app.py run as a developer runs it: a Bolt app of its own (`/roll`, "ping")
with quitbot registered on it, in one process, against the fake Slack and Claude API."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from platforms.slack.render import END_CONFIRM
from tests.fakes.anthropic import FakeAnthropic, text, tool
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_requests import (
    SlackSender,
    button,
    command,
    event_callback,
    mention,
    message,
)
from tests.processes import clean_env, free_port, reaching_slack_http, read_until, start_quitbot

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bolt_app.py"
THREAD = "1700000100.000100"
ASKED = {"reason": "user_requested", "explanation": "they asked to stop"}


def pongs(slack: FakeSlack) -> int:
    return sum(c.get("text") == "pong" for c in slack.calls_to("chat.postMessage"))


def with_blocks(slack: FakeSlack) -> list[dict[str, Any]]:
    return [c for c in slack.calls_to("chat.postMessage") if c.get("blocks")]


async def roll(send: SlackSender) -> str:
    rolled = await send.command({**command("20"), "command": "/roll"})
    assert rolled.status == 200
    return rolled.body


async def test_the_hosts_command_and_listener_and_quitbots_conversation_in_one_app(
    tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.add(tool("end_conversation", ASKED, text="Okay."), text("Confirm above."))
    port = free_port()
    async with FakeSlack() as slack, aiohttp.ClientSession() as http:
        env = clean_env(tmp_path, fake_anthropic, **reaching_slack_http(slack, port))
        process = await start_quitbot(tmp_path, env, script=EXAMPLE)
        assert process.stdout is not None and process.stderr is not None
        try:
            await read_until(process.stdout, "listening on", [])
            url = f"http://127.0.0.1:{port}/slack/events"
            send = SlackSender(url, http, response_urls=slack.response_url)
            assert "rolled" in await roll(send)
            await send.event(event_callback(message("ping", ts="1.1")))
            await slack.wait_until(lambda: pongs(slack) == 1)

            # quitbot's conversation: the person asks to end it and confirms.
            await send.event(event_callback(mention("please end this", ts=THREAD)))
            await slack.wait_until(lambda: len(with_blocks(slack)) == 1)
            [proposal] = with_blocks(slack)
            assert proposal["thread_ts"] == THREAD
            [value] = [
                e["value"]
                for b in proposal["blocks"]
                if b["type"] == "actions"
                for e in b["elements"]
                if e["action_id"] == END_CONFIRM
            ]
            await send.interaction(button(END_CONFIRM, value, thread_ts=THREAD))
            await slack.wait_until(lambda: len(with_blocks(slack)) == 2)
            assert "you asked to end it" in with_blocks(slack)[-1]["text"]

            # The end is quitbot's conversation's, not the app's.
            assert "rolled" in await roll(send)
            await send.event(event_callback(message("ping", ts="1.2")))
            await slack.wait_until(lambda: pongs(slack) == 2)
        finally:
            process.send_signal(signal.SIGINT)
            await process.wait()
        errors = (await process.stderr.read()).decode()
    assert process.returncode == 0, errors
    assert "Traceback" not in errors, errors
    assert "will be unused" not in errors, errors  # Bolt's warning about the same token
    assert len(fake_anthropic.requests) == 2  # quitbot's one turn; /roll and ping asked nobody


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"SLACK_BOT_TOKEN": ""}, "set SLACK_BOT_TOKEN (in the environment or .env)"),
        (
            {"QUITBOT_SLACK_MODE": "socket", "SLACK_APP_TOKEN": "xapp-1-A0-1-x"},
            "set QUITBOT_SLACK_MODE=http: this app serves Slack's HTTP requests",
        ),
        ({"SLACK_SIGNING_SECRET": ""}, "QUITBOT_SLACK_MODE=http needs SLACK_SIGNING_SECRET"),
        ({"SLACK_BOT_TOKEN": "xoxb-wrong"}, "Slack refused the app's token (invalid_auth)"),
        ({"QUITBOT_TOOLS": "roll_die,weather"}, "no tool named 'weather' is installed"),
    ],
)
async def test_a_start_up_error_is_one_line_saying_what_to_set(
    tmp_path: Path, fake_anthropic: FakeAnthropic, settings: dict[str, str], said: str
) -> None:
    async with FakeSlack() as slack:
        env = clean_env(tmp_path, fake_anthropic, **reaching_slack_http(slack, free_port()))
        process = await start_quitbot(tmp_path, {**env, **settings}, script=EXAMPLE)
        _, errors = await process.communicate()
    assert process.returncode == 1
    assert errors.decode().startswith(said) and errors.decode().count("\n") == 1, errors


def test_the_guide_shows_the_examples_own_lines() -> None:
    guide = (EXAMPLE.parents[1] / "docs" / "build-on-quitbot.md").read_text()
    section = guide[guide.index("## 8. Register quitbot on your Bolt app") :]
    shown = section.split("```python\n", 1)[1].split("```", 1)[0].splitlines()
    lines = EXAMPLE.read_text().splitlines()
    assert [line for line in shown if line.strip() not in {"", "..."} and line not in lines] == []
