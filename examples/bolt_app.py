"""A Bolt app of your own, with its own `/roll` command and a "ping" listener, and quitbot's
conversations registered on it: one app, one token, one endpoint.

    SLACK_BOT_TOKEN=xoxb-... SLACK_SIGNING_SECRET=... ANTHROPIC_API_KEY=sk-ant-... \\
        QUITBOT_SLACK_HTTP_PORT=3000 python examples/bolt_app.py

Slack's request URL is then http(s)://YOUR-HOST:3000/slack/events. The app needs quitbot's
scopes, events, `/quitbot` command and shortcuts beside its own (deploy/slack-manifest.yml).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

from aiohttp import web
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncSay
from slack_sdk.web.async_client import AsyncWebClient

import quitbot


def my_app(client: AsyncWebClient, signing_secret: str) -> AsyncApp:
    """The app as it was before quitbot: its client, its signing, its listeners."""
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


async def main() -> None:
    settings = quitbot.load_settings()  # .env and the environment, as `quitbot run` reads them
    slack = settings.slack
    token = slack.bot_token.get_secret_value() if slack.bot_token else None
    secret = slack.signing_secret.get_secret_value() if slack.signing_secret else ""
    client = AsyncWebClient(token=token, base_url=slack.api_url or AsyncWebClient.BASE_URL)
    app = my_app(client, secret)

    async with quitbot.build_runtime(settings) as runtime:
        conversations = await quitbot.slack.register(app, runtime)
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
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: main's cleanup has run
        asyncio.run(main())
