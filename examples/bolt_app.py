"""A Bolt app of your own, with its own `/roll` command and a "ping" listener, and quitbot's
conversations registered on it: one app, one token, one endpoint. In those conversations
Claude may roll a die too, with the `roll_die` tool.

    SLACK_BOT_TOKEN=xoxb-... SLACK_SIGNING_SECRET=... ANTHROPIC_API_KEY=sk-ant-... \\
        QUITBOT_SLACK_MODE=http QUITBOT_SLACK_HTTP_PORT=3000 QUITBOT_TOOLS=roll_die \\
        python examples/bolt_app.py

Slack's request URL is then http(s)://YOUR-HOST:3000/slack/events. The app needs quitbot's
scopes, events, `/quitbot` command and shortcuts beside its own (deploy/slack-manifest.yml).
Its tests, with no token: test_bolt_app_offline.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncSay
from slack_sdk.web.async_client import AsyncWebClient

import quitbot


class Die(BaseModel):
    sides: int = Field(6, ge=2, le=1000, description="How many sides the die has")


@quitbot.tool(timeout_seconds=2)
async def roll_die(context: quitbot.ToolContext, request: Die) -> str:
    """Roll one die when someone asks for a roll; tell them what it shows."""
    return f"d{request.sides}: {random.randint(1, request.sides)}"


def tools() -> quitbot.ToolRegistry:
    return quitbot.ToolRegistry([roll_die])


def my_app(client: AsyncWebClient, signing_secret: str) -> AsyncApp:
    """The app as it was before quitbot: its client, its signing, its listeners."""
    with quitbot.slack.without_token_warning():  # Bolt's, as it reads SLACK_BOT_TOKEN too
        app = AsyncApp(client=client, signing_secret=signing_secret, process_before_response=True)

    @app.command("/roll")
    async def roll(ack: AsyncAck, command: dict[str, Any]) -> None:
        text = str(command.get("text") or "").strip()
        sides = int(text) if text.isdigit() and 1 < int(text) <= 1000 else 6
        await ack(f"<@{command['user_id']}> rolled {random.randint(1, sides)} (d{sides})")

    @app.message("ping")
    async def ping(message: dict[str, Any], say: AsyncSay) -> None:
        await say(text="pong", thread_ts=message.get("thread_ts"))

    return app


def slack_settings() -> tuple[quitbot.Settings, str, str]:
    """The settings, the bot token and the signing secret, or one line saying what to set."""
    try:
        settings = quitbot.load_settings()  # .env and the environment, as `quitbot run` reads them
    except quitbot.SettingsError as error:
        raise SystemExit("; ".join(error.lines)) from None
    slack = settings.slack
    if slack.bot_token is None or not slack.bot_token.get_secret_value():
        raise SystemExit("set SLACK_BOT_TOKEN (in the environment or .env)")
    if slack.mode != "http":
        raise SystemExit("set QUITBOT_SLACK_MODE=http: this app serves Slack's HTTP requests")
    assert slack.signing_secret is not None  # http mode has one, or load_settings refused
    return settings, slack.bot_token.get_secret_value(), slack.signing_secret.get_secret_value()


async def main() -> None:
    settings, token, secret = slack_settings()
    slack = settings.slack
    client = AsyncWebClient(token=token, base_url=slack.api_url or AsyncWebClient.BASE_URL)
    app = my_app(client, secret)

    async with quitbot.build_runtime(settings, tools=tools()) as runtime:
        try:
            conversations = await quitbot.slack.register(app, runtime)
        except ValueError as error:  # Slack refused the token, or a listener takes quitbot's
            raise SystemExit(str(error)) from None
        runner = web.AppRunner(app.web_app(path="/slack/events"))
        await runner.setup()
        await web.TCPSite(runner, slack.http_host, slack.http_port).start()
        print(f"listening on {slack.http_host}:{slack.http_port}/slack/events", flush=True)
        try:
            await asyncio.Event().wait()  # until Ctrl-C
        finally:
            await runner.cleanup()  # no more requests, then quitbot's replies finish
            await conversations.close()


if __name__ == "__main__":
    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: main's cleanup has run
            asyncio.run(main())
    except quitbot.ToolError as error:  # QUITBOT_TOOLS names a tool this app has not
        raise SystemExit(str(error)) from None
