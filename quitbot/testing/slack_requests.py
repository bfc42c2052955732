"""Signed requests as Slack sends them to an app in HTTP mode: events, commands, interactivity.

Builders return the payload dicts; `SlackSender` signs and posts them to `/slack/events`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from quitbot.testing.slack import APP_TOKEN, BOT_USER_ID, SIGNING_SECRET, TEAM_ID

if TYPE_CHECKING:  # slack-bolt is your app's; these fakes need aiohttp only
    from slack_bolt.async_app import AsyncApp

_ids = itertools.count(1)
# The builders' response_url: it reaches nothing. A SlackSender with `response_urls` puts a
# working one in its place (a test that sets its own keeps it).
PLACEHOLDER = "https://hooks.slack.invalid/"


def sign(body: str, secret: str = SIGNING_SECRET, at: int | None = None) -> dict[str, str]:
    timestamp = str(int(time.time()) if at is None else at)
    digest = hmac.new(
        secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256
    ).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}


# --- payload builders ----------------------------------------------------------------------


def event_callback(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """An event (`mention(...)`, `message(...)`) in the envelope Slack posts it in, for
    `SlackSender.event`: `await send.event(event_callback(mention("hi", ts=...)))`."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": "A0QUITBOT",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_ids):08d}",
        "event_time": int(time.time()),
        "authorizations": [
            {
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
    }


def message(
    text: str,
    *,
    ts: str,
    user: str = "U0ALICE",
    channel: str = "C0GENERAL",
    thread_ts: str | None = None,
    channel_type: str = "channel",
    **extra: Any,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "channel_type": channel_type,
        "event_ts": ts,
        "team": TEAM_ID,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    event.update(extra)
    return event


def mention(
    text: str, *, ts: str, user: str = "U0ALICE", channel: str = "C0GENERAL", **extra: Any
) -> dict[str, Any]:
    event = message(f"<@{BOT_USER_ID}> {text}", ts=ts, user=user, channel=channel, **extra)
    event["type"] = "app_mention"
    event.pop("channel_type")
    return event


def command(
    text: str, name: str = "/quitbot", *, user: str = "U0ALICE", channel: str = "C0GENERAL"
) -> dict[str, str]:
    """A slash command's invocation as Slack posts it (form fields): `/quitbot`'s, or your
    app's own with `name` ("/roll").

    It never has `thread_ts`: Slack does not run slash commands inside threads ("/quitbot is
    not supported in threads", slackapi/bolt-python#873), so a command cannot tell which
    thread a person is looking at. From a thread, people use a message shortcut.
    """
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "team_domain": "fake",
        "channel_id": channel,
        "channel_name": "general",
        "user_id": user,
        "user_name": user.lower(),
        "command": name,
        "text": text,
        "api_app_id": "A0QUITBOT",
        "response_url": f"{PLACEHOLDER}commands/1",
        "trigger_id": f"trigger-{next(_ids)}",
    }


def button(
    action_id: str,
    value: str,
    *,
    user: str = "U0ALICE",
    channel: str = "C0GENERAL",
    message_ts: str = "1700000000.999999",
    thread_ts: str | None = None,
    container_channel_type: str = "channel",
    ephemeral: bool = False,
) -> dict[str, Any]:
    """A click on a button (type `block_actions`); `ephemeral` for one on a message shown
    to that person only (the end command's confirmation).

    Shape per https://docs.slack.dev/reference/interaction-payloads/block_actions-payload:
    `user` {id, team_id}, `container` {type: message, message_ts, channel_id, is_ephemeral,
    thread_ts when in a thread}, `channel`, `message`, `actions` [{action_id, block_id,
    value, type, action_ts}].
    """
    msg: dict[str, Any] = {"type": "message", "ts": message_ts, "text": "", "user": BOT_USER_ID}
    if thread_ts:
        msg["thread_ts"] = thread_ts
    return {
        "type": "block_actions",
        "user": {"id": user, "team_id": TEAM_ID},
        "team": {"id": TEAM_ID, "domain": "fake"},
        "api_app_id": "A0QUITBOT",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": ephemeral,
            "thread_ts": thread_ts,
        },
        "trigger_id": f"trigger-{next(_ids)}",
        "channel": {"id": channel, "name": "general"},
        "message": msg,
        "response_url": f"{PLACEHOLDER}actions/1",
        "actions": [
            {
                "action_id": action_id,
                "block_id": "quitbot",
                "value": value,
                "type": "button",
                "action_ts": "1700000001.000000",
            }
        ],
    }


def message_shortcut(
    callback_id: str,
    *,
    ts: str,
    thread_ts: str | None,
    user: str = "U0ALICE",
    channel: str = "C0GENERAL",
    author: str | None = None,
) -> dict[str, Any]:
    """A message shortcut used on message `ts` (type `message_action`).

    Shape per https://api.slack.com/reference/interaction-payloads/shortcuts and Bolt-JS's
    MessageShortcut type: `callback_id`, `trigger_id`, `message_ts`, `response_url`, `user`
    {id, team_id}, `channel` {id, name}, `team`, and `message`: the whole message the
    shortcut was used on, whose `thread_ts` names its thread when it is in one (a reply, or
    a thread's first message once it has replies). Unlike a slash command it works in threads.
    """
    msg: dict[str, Any] = {"type": "message", "ts": ts, "user": author or user, "text": "x"}
    if thread_ts:
        msg["thread_ts"] = thread_ts
    return {
        "type": "message_action",
        "token": "legacy-verification-token",
        "action_ts": "1700000002.000000",
        "team": {"id": TEAM_ID, "domain": "fake"},
        "user": {"id": user, "team_id": TEAM_ID},
        "channel": {"id": channel, "name": "general"},
        "callback_id": callback_id,
        "trigger_id": f"trigger-{next(_ids)}",
        "message_ts": ts,
        "message": msg,
        "response_url": f"{PLACEHOLDER}actions/2",
    }


# --- sending -------------------------------------------------------------------------------


@dataclass
class Sent:
    status: int
    body: str
    response_url: str = ""  # the one the request carried, when the fake handed one out


@dataclass
class SlackSender:
    """Posts signed requests to an app's `/slack/events` over real HTTP."""

    url: str
    session: aiohttp.ClientSession
    secret: str = SIGNING_SECRET
    sent: list[Sent] = field(default_factory=list)
    # Given (the fake's `response_url`): each command and interaction carries a new
    # response_url that works, as Slack's do, in place of the builders' placeholder.
    response_urls: Callable[[], str] | None = None

    async def event(
        self, payload: dict[str, Any], *, retry_num: int | None = None, secret: str | None = None
    ) -> Sent:
        body = json.dumps(payload)
        headers = {"Content-Type": "application/json", **sign(body, secret or self.secret)}
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return await self._post(body, headers)

    async def mention(
        self, text: str, *, ts: str | None = None, user: str = "U0ALICE", channel: str = "C0GENERAL"
    ) -> Sent:
        """`text` said to the bot with a mention (an `app_mention` event); `ts` is the
        message's, which starts the thread a reply goes to (a fresh one if not given)."""
        ts = ts or f"{int(time.time())}.{next(_ids):06d}"
        return await self.event(event_callback(mention(text, ts=ts, user=user, channel=channel)))

    async def command(self, fields: dict[str, str]) -> Sent:
        # Slack never sends one (bolt-python#873); a test that adds it tests nothing real.
        assert "thread_ts" not in fields, "Slack sends no thread_ts with a slash command"
        fields, url = self._hooked(fields)
        return await self._form(fields, url)

    async def interaction(self, payload: dict[str, Any]) -> Sent:
        payload, url = self._hooked(payload)
        return await self._form({"payload": json.dumps(payload)}, url)

    def _hooked(self, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
        url = str(payload.get("response_url") or "")
        if self.response_urls is None or not url.startswith(PLACEHOLDER):
            return payload, url
        url = self.response_urls()
        return {**payload, "response_url": url}, url

    async def _form(self, fields: dict[str, str], response_url: str = "") -> Sent:
        body = urlencode(fields)
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body, self.secret)}
        return await self._post(body, headers, response_url)

    async def _post(self, body: str, headers: dict[str, str], response_url: str = "") -> Sent:
        async with self.session.post(self.url, data=body.encode(), headers=headers) as response:
            sent = Sent(response.status, await response.text(), response_url)
        self.sent.append(sent)
        return sent


@asynccontextmanager
async def serve_app(
    app: AsyncApp,
    *,
    response_urls: Callable[[], str] | None = None,
    path: str = "/slack/events",
) -> AsyncIterator[SlackSender]:
    """Your Bolt app served over HTTP on a free port of 127.0.0.1, as `app.web_app()`
    serves it in production, and a `SlackSender` posting to it (`sender.url`); pass
    `response_urls=fake.response_url` for commands' and buttons' replies to reach FakeSlack.
    """
    runner = web.AppRunner(app.web_app(path=path), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        async with aiohttp.ClientSession() as session:
            yield SlackSender(f"http://{host}:{port}{path}", session, response_urls=response_urls)
    finally:
        await runner.cleanup()


__all__ = [
    "APP_TOKEN",
    "SlackSender",
    "button",
    "command",
    "event_callback",
    "mention",
    "message",
    "serve_app",
]
