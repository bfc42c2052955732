"""The helpers a bot's own tests drive a Bolt app with: a slash command of its own, a
mention, the bot's replies as text, the app served on a free port; and Bolt's same-token
warning kept out of the log."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncSay
from slack_sdk.web.async_client import AsyncWebClient

import quitbot
from quitbot.testing import FakeSlack
from quitbot.testing.slack import BOT_TOKEN, SIGNING_SECRET
from quitbot.testing.slack_requests import command, serve_app


def echo_app(slack: FakeSlack) -> AsyncApp:
    client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.base_url)
    app = AsyncApp(client=client, signing_secret=SIGNING_SECRET, process_before_response=True)

    @app.command("/echo")
    async def echo(ack: AsyncAck, command: dict[str, Any]) -> None:
        await ack(f"{command['command']} {command['text']}")

    @app.event("app_mention")
    async def mentioned(event: dict[str, Any], say: AsyncSay) -> None:
        await say(text=f"heard: {event['text']}", thread_ts=event["ts"])
        await say(text="and again", thread_ts=event["ts"])

    return app


def test_a_command_is_quitbots_unless_named() -> None:
    assert command("help")["command"] == "/quitbot"
    assert command("hi", name="/echo")["command"] == "/echo"
    assert command("hi", "/echo", user="U0BOB")["user_id"] == "U0BOB"


async def test_a_served_app_answers_its_command_and_a_mention_in_its_thread() -> None:
    async with FakeSlack() as slack, serve_app(echo_app(slack)) as send:
        assert send.url.startswith("http://127.0.0.1:") and send.url.endswith("/slack/events")
        answered = await send.command(command("hi", name="/echo"))
        assert (answered.status, answered.body) == (200, "/echo hi")

        assert (await send.mention("hello", ts="1700000000.000100")).status == 200
        await send.mention("elsewhere", ts="1700000000.000200", channel="C0OTHER")
        await slack.wait_until(lambda: len(slack.bot_replies()) == 4)
        heard = f"heard: <@{quitbot.testing.slack.BOT_USER_ID}> hello"
        assert slack.bot_replies(thread_ts="1700000000.000100") == [heard, "and again"]
        assert slack.bot_replies(channel="C0OTHER")[1:] == ["and again"]
        assert slack.unexpected == []


async def test_a_mention_without_a_ts_gets_a_fresh_one() -> None:
    async with FakeSlack() as slack, serve_app(echo_app(slack)) as send:
        await send.mention("one")
        await send.mention("two")
        await slack.wait_until(lambda: len(slack.bot_replies()) == 4)
        threads = {c["thread_ts"] for c in slack.calls_to("chat.postMessage")}
        assert len(threads) == 2


async def test_the_bots_replies_show_edits_and_leave_out_deleted_ones() -> None:
    async with FakeSlack() as slack:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.base_url)
        first = await client.chat_postMessage(channel="C0GENERAL", text="draft")
        gone = await client.chat_postMessage(channel="C0GENERAL", text="oops")
        await client.chat_update(channel="C0GENERAL", ts=first["ts"], text="final")
        await client.chat_delete(channel="C0GENERAL", ts=gone["ts"])
        slack.person_said("C0GENERAL", slack.next_ts(), "a person's", "U0ALICE")
        assert slack.bot_replies() == ["final"]


@pytest.mark.parametrize("logger", [None, logging.getLogger("my.bolt")])
def test_bolts_same_token_warning_is_kept_out_only_inside(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, logger: logging.Logger | None
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    client = AsyncWebClient(token=BOT_TOKEN)

    def build() -> None:
        AsyncApp(client=client, signing_secret=SIGNING_SECRET, logger=logger)

    with caplog.at_level(logging.WARNING), quitbot.slack.without_token_warning(logger):
        build()
    assert [r for r in caplog.records if "unused" in r.getMessage()] == []
    with caplog.at_level(logging.WARNING):
        build()
    assert [r for r in caplog.records if "unused" in r.getMessage()] != []
