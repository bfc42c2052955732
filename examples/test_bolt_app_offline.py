"""bolt_app.py tested with no token and no internet: the real slack_bolt, slack_sdk and
anthropic SDKs talk to quitbot's fakes of Slack and of Claude's Messages API on 127.0.0.1.

    pip install pytest pytest-asyncio     # and asyncio_mode = "auto" (see the guide, 10)
    pytest test_bolt_app_offline.py
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from bolt_app import Die, my_app, roll_die, tools
from pydantic import ValidationError
from slack_sdk.web.async_client import AsyncWebClient

import quitbot
from quitbot.testing import FakeAnthropic, FakeSlack, SlackSender
from quitbot.testing.anthropic import text, tool
from quitbot.testing.slack import BOT_TOKEN, SIGNING_SECRET
from quitbot.testing.slack_requests import command, serve_app


@pytest_asyncio.fixture
async def claude() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake
        assert fake.unexpected == []  # no request the real API would have refused


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake
        assert fake.unexpected == []  # no call the real Web API would have refused


@pytest_asyncio.fixture
async def send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claude: FakeAnthropic, slack: FakeSlack
) -> AsyncIterator[SlackSender]:
    for name, value in {
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_BASE_URL": claude.base_url,
        "QUITBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'quitbot.db'}",
        "QUITBOT_TOOLS": "roll_die",
    }.items():
        monkeypatch.setenv(name, value)
    settings = quitbot.load_settings(env_file=None)
    app = my_app(AsyncWebClient(token=BOT_TOKEN, base_url=slack.base_url), SIGNING_SECRET)
    async with quitbot.build_runtime(settings, tools=tools()) as runtime:
        conversations = await quitbot.slack.register(app, runtime)
        # The app on a free port of 127.0.0.1; `send` signs requests as Slack does.
        async with serve_app(app, response_urls=slack.response_url) as sender:
            yield sender
        await conversations.close()


async def test_the_slash_command_is_answered_without_claude(
    send: SlackSender, claude: FakeAnthropic
) -> None:
    answered = await send.command(command("20", name="/roll"))
    assert answered.status == 200 and "(d20)" in answered.body
    assert claude.requests == []


async def test_claude_rolls_with_the_tool_in_a_conversation(
    send: SlackSender, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    # What the fake Claude answers, in order: a call of our tool, then the reply.
    claude.add(tool("roll_die", {"sides": 20}), text("A natural twenty!"))
    thread = "1700000000.000100"  # the mention's ts: quitbot answers in its thread
    await send.mention("roll me a d20", ts=thread)
    await slack.wait_until(lambda: "A natural twenty!" in slack.bot_replies(thread_ts=thread))
    assert "roll_die" in [offered["name"] for offered in claude.requests[0]["tools"]]
    [result] = [
        block
        for block in claude.requests[1]["messages"][-1]["content"]
        if block["type"] == "tool_result"
    ]
    assert result["content"].startswith("d20: ") and not result.get("is_error")


async def test_the_tool_alone() -> None:
    context = quitbot.ToolContext("c1", "alice", "", "console")
    assert (await roll_die(context, Die(sides=20))).startswith("d20: ")
    with pytest.raises(ValidationError):
        Die(sides=1)  # Claude's input is checked against the model before the tool runs
