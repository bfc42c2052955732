"""The minimal Claude bot on slack-bolt in HTTP mode that quitbot is measured against.

One AsyncAnthropic client, history in a dict, messages.stream, one reply per message; no
database, rules or streaming. ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL are read by the SDK;
MINIMAL_TRANSPORT=aiohttp puts it on the SDK's aiohttp transport.

The Web API client shares one aiohttp session made at start-up, as a competent bot does:
without `session=`, slack_sdk opens and closes a ClientSession (and a connection) for every
call (`_request_with_session` in slack_sdk/web/async_internal_utils.py), a handicap quitbot
does not carry.
"""

import asyncio
import os
from typing import Any

import aiohttp
from aiohttp import web
from anthropic import AsyncAnthropic, DefaultAioHttpClient
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

aiohttp_transport = os.environ.get("MINIMAL_TRANSPORT") == "aiohttp"
claude = AsyncAnthropic(http_client=DefaultAioHttpClient() if aiohttp_transport else None)
history: dict[str, list[dict[str, str]]] = {}


async def answer(event: dict[str, Any], slack: AsyncWebClient) -> None:
    thread = event.get("thread_ts") or event["ts"]
    turns = history.setdefault(thread, [])
    turns.append({"role": "user", "content": event["text"]})
    async with claude.messages.stream(
        model=os.environ.get("MODEL", "claude-sonnet-4-5"), max_tokens=1024, messages=turns
    ) as stream:
        text = await stream.get_final_text()
    turns.append({"role": "assistant", "content": text})
    await slack.chat_postMessage(channel=event["channel"], thread_ts=thread, text=text)


async def main() -> None:
    async with aiohttp.ClientSession() as session:
        slack = AsyncWebClient(
            token=os.environ["SLACK_BOT_TOKEN"],
            base_url=os.environ["BENCH_SLACK_API"],
            session=session,
        )
        app = AsyncApp(client=slack, signing_secret=os.environ["SLACK_SIGNING_SECRET"])

        @app.event("app_mention")
        async def on_mention(event: dict[str, Any]) -> None:
            await answer(event, slack)

        @app.event("message")
        async def on_message(event: dict[str, Any]) -> None:
            if event.get("thread_ts") and not event.get("bot_id"):
                await answer(event, slack)

        runner = web.AppRunner(app.web_app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", int(os.environ["BENCH_SLACK_PORT"])).start()
        await asyncio.Event().wait()


asyncio.run(main())
