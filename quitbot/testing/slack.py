"""A fake Slack Web API (and Socket Mode server) on 127.0.0.1 that records every call.

The real slack_sdk talks to it over HTTP: point `AsyncWebClient(base_url=fake.base_url)` at it.
Unknown methods, bad tokens and malformed calls fail loudly: they are answered with an error
and listed in `fake.unexpected`, which the `fake_slack` fixture checks is empty at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-test-token"
SIGNING_SECRET = "test-signing-secret"
TEAM_ID = "T0FAKE"
BOT_USER_ID = "U0QUITBOT"
BOT_ID = "B0QUITBOT"
APP_ID = "A0QUITBOT"
DEFAULT_SCOPES = (
    "app_mentions:read,assistant:write,channels:history,chat:write,commands,files:read,"
    "groups:history,im:history,mpim:history,reactions:write,users:read"
)

WAIT = 5.0  # seconds before a wait fails the test loudly

# "You can use response_url to publish up to 5 times within 30 minutes of receiving the
# payload" (https://docs.slack.dev/interactivity/handling-user-interaction).
RESPONSE_URL_USES = 5
RESPONSE_URL_SECONDS = 30 * 60

Handler = Callable[[dict[str, Any]], dict[str, Any]]
Lost = Literal["drop", "close", "silent"]  # how a Socket Mode connection can be lost


@dataclass
class Call:
    """One Web API call as the fake received it."""

    method: str
    args: dict[str, Any]
    token: str
    result: dict[str, Any] = field(default_factory=dict)  # what the fake answered


@dataclass
class _Failure:
    error: str
    times: int | None  # None: every call

    def take(self) -> bool:
        """Whether this call fails; counts a limited failure down."""
        if self.times is None:
            return True
        if self.times <= 0:
            return False
        self.times -= 1
        return True


@dataclass
class Hook:
    """One response_url handed out with a payload, and what was posted to it."""

    url: str
    issued_at: float
    posts: list[dict[str, Any]] = field(default_factory=list)  # accepted ones only
    refused: list[str] = field(default_factory=list)


@dataclass
class _RateLimit:
    times: int
    retry_after: int


@dataclass
class FakeSlack:
    """`async with FakeSlack() as fake:`; then `fake.base_url` is the Web API base."""

    streaming: bool = True  # False: chat.startStream answers as in a workspace without it
    scopes: str = DEFAULT_SCOPES
    admins: set[str] = field(default_factory=set)
    files: dict[str, bytes] = field(default_factory=dict)
    hold_files: asyncio.Event | None = None  # set: file downloads are answered from then on
    # Set: apps.connections.open is answered from then on (a reconnect that takes a while).
    hold_connections: asyncio.Event | None = None
    # Channels the app is not a member of (every other channel, it is).
    outside: set[str] = field(default_factory=set)
    clock: Callable[[], float] = time.monotonic  # response_url's 30 minutes, injectable
    calls: list[Call] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    hooks: dict[str, Hook] = field(default_factory=dict)
    ephemeral_ts: set[str] = field(default_factory=set)  # ts of every ephemeral message
    _rate_limits: dict[str, _RateLimit] = field(default_factory=dict)
    _failures: dict[str, _Failure] = field(default_factory=dict)
    # Every message the workspace keeps (not ephemeral ones), as conversations.replies reads
    # them: the bot's as it posts and streams them, people's as a test says they were sent.
    said: list[dict[str, Any]] = field(default_factory=list)
    _last_us: int = 0
    _ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))  # envelope ids
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None
    _links: list[_Link] = field(default_factory=list)
    _tickets: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _issued: set[str] = field(default_factory=set)
    connections: int = 0  # Socket Mode connections opened so far (each got its hello)
    _acks: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _socket_open: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    # --- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_get("/files/{name}", self._file)
        app.router.add_get("/link/", self._socket)
        app.router.add_post("/hooks/{hook}", self._hook)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)  # 0: any free port
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        for link in list(self._links):
            await link.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def file_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/files/{name}"

    # --- scripting ---------------------------------------------------------------------

    def rate_limit(self, method: str, *, times: int = 1, retry_after: int = 0) -> None:
        """Answer the next `times` calls of `method` with 429 and `Retry-After`."""
        self._rate_limits[method] = _RateLimit(times, retry_after)

    def fail(self, method: str, error: str, *, times: int | None = None) -> None:
        """Answer later calls of `method` with `{"ok": false, "error": error}`: all of them,
        or only the next `times`: a transient failure, such as `internal_error` (Slack's
        method pages warn that errors beyond their table come "in the case where the service
        is down", e.g. https://docs.slack.dev/reference/methods/conversations.archive)."""
        self._failures[method] = _Failure(error, times)

    def response_url(self) -> str:
        """A new response_url, as Slack puts one in each command and interaction payload."""
        hook = Hook(f"http://127.0.0.1:{self.port}/hooks/{next(self._tickets)}", self.clock())
        self.hooks[hook.url] = hook
        return hook.url

    # --- inspecting --------------------------------------------------------------------

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [call.args for call in self.calls if call.method == method]

    def results_of(self, method: str) -> list[dict[str, Any]]:
        return [call.result for call in self.calls if call.method == method]

    def posted_to(self, url: str) -> list[dict[str, Any]]:
        """What the app posted to one response_url, and Slack accepted."""
        return self.hooks[url].posts

    async def wait_hook(self, url: str, count: int = 1, within: float = WAIT) -> None:
        """Wait until `url` was posted to `count` times (accepted or refused)."""
        hook = self.hooks[url]
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(hook.posts) + len(hook.refused) >= count)

    async def wait_until(self, done: Callable[[], bool], within: float = WAIT) -> None:
        """Wait until `done()` says so after some call; fail loudly after `within` seconds."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(done)

    def methods(self) -> list[str]:
        return [call.method for call in self.calls]

    async def wait_socket_open(self, within: float = WAIT) -> None:
        """Wait until the app has connected over Socket Mode."""
        async with asyncio.timeout(within):
            await self._socket_open.wait()

    async def wait_for(
        self, method: str, count: int = 1, within: float = WAIT
    ) -> list[dict[str, Any]]:
        """Wait until `method` was called `count` times; fail loudly after `within` seconds."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.calls_to(method)) >= count)
        return self.calls_to(method)

    # --- the Web API -------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args = await _arguments(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        in_body = str(args.pop("token", ""))
        if method != "apps.connections.open":
            # apps.connections.open takes its token in the Authorization header only:
            # "Passing it as a POST parameter will result in an error" (its method page,
            # https://docs.slack.dev/reference/methods/apps.connections.open).
            token = token or in_body
        limit = self._rate_limits.get(method)
        if limit is not None and limit.times > 0:
            limit.times -= 1
            await self._record(Call(f"{method}:429", args, token))
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(limit.retry_after)},
            )
        call = Call(method, args, token)
        await self._record(call)
        if method == "apps.connections.open" and self.hold_connections is not None:
            await self.hold_connections.wait()
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            self.unexpected.append(f"{method} with token {token!r}")
            # https://docs.slack.dev/reference/methods/apps.connections.open: an app-level
            # token only; another kind of token is not_allowed_token_type
            # (github.com/slack-ruby/slack-ruby-client/issues/363), a bad one invalid_auth,
            # none not_authed (the method's error list, github.com/slack-ruby/slack-api-ref);
            # one sent as a POST parameter is invalid_auth (issue 363 again).
            known = token in (APP_TOKEN, BOT_TOKEN)
            sent = token or in_body
            error = "not_allowed_token_type" if known else "invalid_auth" if sent else "not_authed"
            return web.json_response({"ok": False, "error": error})
        failure = self._failures.get(method)
        if failure is not None and failure.take():
            call.result = {"ok": False, "error": failure.error}
            return web.json_response(call.result)
        handler = self._handlers().get(method)
        if handler is None:
            self.unexpected.append(f"unexpected method {method}")
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        headers = {"x-oauth-scopes": self.scopes} if method == "auth.test" else {}
        if not _blocks_fit(args.get("blocks")):
            call.result = {"ok": False, "error": "invalid_blocks"}
            return web.json_response(call.result)
        call.result = {"ok": True, **handler(args)}  # a handler's refusal says "ok": false
        return web.json_response(call.result, headers=headers)

    async def _record(self, call: Call) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    def _handlers(self) -> dict[str, Handler]:
        return {
            "auth.test": lambda a: {
                "url": "https://fake.slack.com/",
                "team": "Fake",
                "user": "quitbot",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            },
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.delete": self._delete,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.startStream": self._start_stream,
            "chat.appendStream": self._append_stream,
            "chat.stopStream": lambda a: self._append_stream(a, stop=True),
            "conversations.replies": self._replies,
            "chat.getPermalink": lambda a: {
                "channel": a.get("channel"),
                "permalink": permalink(str(a.get("channel")), str(a.get("message_ts"))),
            },
            "reactions.add": lambda a: {},
            "reactions.remove": lambda a: {},
            "assistant.threads.setStatus": lambda a: {},
            "assistant.threads.setTitle": lambda a: {},
            "assistant.threads.setSuggestedPrompts": lambda a: {},
            "users.info": lambda a: {
                "user": {
                    "id": a.get("user"),
                    "is_admin": a.get("user") in self.admins,
                    "is_owner": False,
                }
            },
            "apps.connections.open": lambda a: {"url": self._link_url()},
        }

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel") or "")
        if channel in self.outside:
            # An app that is not in the channel cannot post an ephemeral message there:
            # not_in_channel in a public channel (github.com/ifvictr/prox/issues/30), and
            # channel_not_found in a DM or private channel it cannot see, as for a slash
            # command run in a DM (slackapi/python-slack-sdk#734); both are in the method's
            # error list (https://docs.slack.dev/reference/methods/chat.postEphemeral). Which
            # one a private channel gets is a guess from #734.
            error = "not_in_channel" if channel.startswith("C") else "channel_not_found"
            return {"ok": False, "error": error}
        ts = self.next_ts()
        self.ephemeral_ts.add(ts)
        return {"message_ts": ts}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        if str(args.get("ts")) in self.ephemeral_ts:
            # "Ephemeral messages can't be updated in this way" (chat.update;
            # https://docs.slack.dev/messaging/modifying-messages): only an interaction's
            # response_url can replace one. The error is a guess: message_not_found, from
            # chat.update's error list, since Slack keeps no ephemeral message to find.
            return {"ok": False, "error": "message_not_found"}
        found = self._kept(args)
        if found is not None:
            found["text"] = str(args.get("markdown_text") or args.get("text") or "")
        return {"channel": args.get("channel"), "ts": args.get("ts")}

    def _start_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.streaming:
            # What Slack answers for a method this workspace or token does not have.
            return {"ok": False, "error": "unknown_method"}
        # https://docs.slack.dev/reference/methods/chat.startStream: recipient_team_id and
        # recipient_user_id are "required when streaming to channels" (not in DMs).
        channel = str(args.get("channel") or "")
        in_channel = channel.startswith(("C", "G"))
        if in_channel and not (args.get("recipient_team_id") and args.get("recipient_user_id")):
            self.unexpected.append(f"chat.startStream in {channel} without its recipient")
        ts = self._keep(args, streaming=True)
        return {"channel": channel, "ts": ts}

    def next_ts(self) -> str:
        """Slack's ts is when a message was posted: later than every ts seen here before."""
        self._last_us = max(time.time_ns() // 1000, self._last_us + 1)
        return f"{self._last_us // 1_000_000}.{self._last_us % 1_000_000:06d}"

    def person_said(self, channel: str, ts: str, text: str, user: str, thread_ts: str = "") -> None:
        """A person's message, as Slack keeps it (a test sends its event to the bot itself)."""
        self.said.append(
            {"channel": channel, "ts": ts, "thread_ts": thread_ts or ts, "text": text, "user": user}
        )

    def in_thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """The thread's messages, oldest first."""
        kept = [m for m in self.said if m["channel"] == channel and m["thread_ts"] == thread_ts]
        return sorted(kept, key=lambda m: Decimal(m["ts"]))

    def bot_replies(self, channel: str | None = None, thread_ts: str | None = None) -> list[str]:
        """The text of each message the bot posted (or streamed, so far) and still shows,
        oldest first; in `channel`, in the thread started by `thread_ts`, when given.
        Ephemeral messages and command replies (`fake.posted_to(url)`) are not here."""
        return [
            m["text"]
            for m in sorted(self.said, key=lambda m: Decimal(m["ts"]))
            if m["user"] == BOT_USER_ID
            and channel in (None, m["channel"])
            and thread_ts in (None, m["thread_ts"])
        ]

    def _keep(self, args: dict[str, Any], *, streaming: bool = False) -> str:
        ts = self.next_ts()
        message = {
            "channel": str(args.get("channel") or ""),
            "ts": ts,
            "thread_ts": str(args.get("thread_ts") or ts),
            "text": _text_of(args),
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "streaming": streaming,
        }
        if args.get("metadata"):
            message["metadata"] = _metadata(args["metadata"])
        self.said.append(message)
        return ts

    def _kept(self, args: dict[str, Any]) -> dict[str, Any] | None:
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        return next((m for m in self.said if m["channel"] == channel and m["ts"] == ts), None)

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"channel": args.get("channel"), "ts": self._keep(args)}

    def _delete(self, args: dict[str, Any]) -> dict[str, Any]:
        found = self._kept(args)
        if found is not None:
            self.said.remove(found)
        return {"channel": args.get("channel"), "ts": args.get("ts")}

    def _append_stream(self, args: dict[str, Any], stop: bool = False) -> dict[str, Any]:
        found = self._kept(args)
        # A stream Slack closed (stopped, or left minutes without an append) refuses more:
        # message_not_in_streaming_state (slackapi/python-slack-sdk#1859). A ts this fake
        # never made is let through, as before it kept messages (older tests stream to none).
        if found is not None and not found["streaming"]:
            return {"ok": False, "error": "message_not_in_streaming_state"}
        if found is not None:
            found["text"] += _text_of(args)
            found["streaming"] = not stop
            if stop and args.get("metadata"):  # chat.stopStream takes `metadata` (its page)
                found["metadata"] = _metadata(args["metadata"])
        return {"channel": args.get("channel"), "ts": args.get("ts")}

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """conversations.replies (https://docs.slack.dev/reference/methods/conversations.
        replies): `channel` and `ts` (a thread's first message, or one in the thread); a
        `limit` up to 1,000 (default 1,000, the method's published default; apps sold
        outside the Marketplace get at most 15, which this fake does not play), `oldest` /
        `latest` bounds exclusive unless `inclusive`, and a cursor. An unknown ts is
        thread_not_found. That the first message comes back whatever `oldest` says is a
        guess from developers' reports; a reader must not count on either."""
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        root = self._kept(args)
        thread = self.in_thread(channel, root["thread_ts"] if root else ts)
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        inclusive = str(args.get("inclusive")).lower() in ("1", "true")
        # Metadata comes back only when asked for ("include_all_metadata: Return all
        # metadata associated with this message", the method's page).
        metadata = str(args.get("include_all_metadata")).lower() in ("1", "true")
        oldest = Decimal(str(args.get("oldest") or 0))
        latest = Decimal(str(args.get("latest") or "9" * 12))
        has_root = thread[0]["ts"] == thread[0]["thread_ts"]
        first, rest = (thread[0], thread[1:]) if has_root else (None, thread)
        inside = [
            m
            for m in rest
            if (oldest <= Decimal(m["ts"]) <= latest)
            and (inclusive or Decimal(m["ts"]) not in (oldest, latest))
        ]
        start = int(str(args.get("cursor") or "0").removeprefix("next:") or 0)
        limit = min(int(args.get("limit") or 1000), 1000)
        page = inside[start : start + limit]
        more = start + limit < len(inside)
        shown = [_shown(m, metadata) for m in ([first] if first is not None else []) + page]
        cursor = f"next:{start + limit}" if more else ""
        return {"messages": shown, "has_more": more, "response_metadata": {"next_cursor": cursor}}

    async def _file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if request.headers.get("Authorization") != f"Bearer {BOT_TOKEN}":
            self.unexpected.append(f"file {name} fetched without the bot token")
            return web.Response(status=403)
        await self._record(Call(f"files:{name}", {}, BOT_TOKEN))
        if self.hold_files is not None:
            await self.hold_files.wait()
        if name not in self.files:
            self.unexpected.append(f"unknown file {name}")
            return web.Response(status=404)
        return web.Response(body=self.files[name])

    # --- response_url (https://docs.slack.dev/interactivity/handling-user-interaction) -------

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        url = f"http://127.0.0.1:{self.port}/hooks/{request.match_info['hook']}"
        hook = self.hooks.get(url)
        if hook is None:
            self.unexpected.append(f"response_url {url} that was never handed out")
            return web.Response(status=404, text="no_active_hooks")  # a guess
        body = await request.json()
        # Slack's answers to a spent or expired response_url are not documented: a 404 with
        # these words is a guess; the limits themselves are the docs' (5 uses, 30 minutes).
        if len(hook.posts) >= RESPONSE_URL_USES:
            refusal = "used_url"
        elif self.clock() - hook.issued_at > RESPONSE_URL_SECONDS:
            refusal = "expired_url"
        else:
            refusal = ""
        async with self._changed:
            if refusal:
                hook.refused.append(refusal)
            else:
                hook.posts.append(body)
            self._changed.notify_all()
        if refusal:
            return web.Response(status=404, text=refusal)
        # An incoming webhook answers a plain "ok" (https://docs.slack.dev/messaging/
        # sending-messages-using-incoming-webhooks); a response_url alike is a guess.
        return web.Response(text="ok")

    # --- Socket Mode (https://api.slack.com/apis/socket-mode) ---------------------------

    def _link_url(self) -> str:
        # Slack answers a URL of this shape, wss://wss-....slack.com/link/?ticket=...&app_id=...
        # (https://docs.slack.dev/reference/methods/apps.connections.open), made for this
        # call. Here it is ws:// on loopback: the SDK connects to either alike.
        ticket = f"ticket-{next(self._tickets)}"
        self._issued.add(ticket)
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={APP_ID}"

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") not in self._issued:
            # What Slack answers a ticket it never issued is not documented; 401 is a guess.
            self.unexpected.append(f"Socket Mode connection to {request.path_qs}")
            return web.Response(status=401)
        ws = web.WebSocketResponse(autoping=False)  # pongs are the fake's, so it can stop
        await ws.prepare(request)
        link = _Link(ws, request.transport)
        self._links.append(link)
        # Slack's first message on every connection, with these fields; events come only
        # after it (https://api.slack.com/apis/socket-mode).
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self._links),
                "debug_info": {
                    "host": "applink-fake",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": APP_ID},
            }
        )
        async with self._changed:
            self.connections += 1
            self._changed.notify_all()
        self._socket_open.set()
        try:
            await self._receive(link)
        finally:
            self._links.remove(link)
        return ws

    async def _receive(self, link: _Link) -> None:
        async for message in link.ws:
            if message.type is WSMsgType.PING and not link.silent:
                await link.ws.pong(message.data)
            if message.type is not WSMsgType.TEXT:
                continue
            ack = json.loads(message.data)
            future = self._acks.pop(str(ack.get("envelope_id")), None)
            if future is None:
                self.unexpected.append(f"socket message {message.data}")
            elif not future.done():
                future.set_result(ack)

    async def wait_connections(self, count: int, within: float = WAIT) -> None:
        """Wait until the app has opened `count` Socket Mode connections in all."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: self.connections >= count)

    async def socket_send(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one envelope on the newest connection; return its acknowledgement."""
        async with asyncio.timeout(WAIT):
            await self._socket_open.wait()
        envelope_id = f"env-{next(self._ts)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = future
        await self._links[-1].ws.send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": kind != "events_api",
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        async with asyncio.timeout(WAIT):
            return await future

    async def disconnect(self, reason: str) -> None:
        """Close the newest connection as Slack does: a `disconnect` message first
        (https://api.slack.com/apis/socket-mode, "disconnect" and its reasons).

        `warning`: the connection closes in a while, so it stays open here (the app replaces
        it). `refresh_requested`: it closes now. `link_disabled`: Socket Mode was turned off in
        the app's settings; it closes and no new connection is granted. The docs do not say
        what apps.connections.open answers then; the fake uses `access_denied` from its
        documented errors.
        """
        link = self._links[-1]
        if reason == "link_disabled":
            self.fail("apps.connections.open", "access_denied")
        await link.ws.send_json(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}
        )
        if reason != "warning":
            await link.ws.close()

    async def lose(self, how: Lost) -> None:
        """Lose the newest connection without a `disconnect` message: `drop` it (the TCP
        connection ends, no close frame), `close` it (a close frame, as a server going away
        sends), or fall `silent` (nothing arrives any more, not even pongs: a dead network)."""
        link = self._links[-1]
        if how == "silent":
            link.silent = True
        elif how == "close":
            await link.ws.close()
        else:  # drop
            assert link.transport is not None, "the connection has no transport to drop"
            link.transport.abort()


@dataclass
class _Link:
    """One open Socket Mode connection."""

    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    silent: bool = False


def permalink(channel: str, ts: str) -> str:
    return f"https://fake.slack.com/archives/{channel}/p{ts.replace('.', '')}"


# A button element's text is at most 75 characters (docs.slack.dev, Block Kit "Button
# element"); blocks Slack cannot take are refused with invalid_blocks (chat.postMessage's
# error list, https://docs.slack.dev/reference/methods/chat.postMessage).
BUTTON_TEXT_LIMIT = 75


def _blocks_fit(blocks: Any) -> bool:
    if isinstance(blocks, str):
        blocks = _maybe_json(blocks)
    elements = [
        element
        for block in (blocks if isinstance(blocks, list) else [])
        if isinstance(block, dict)
        for element in block.get("elements") or []
        if isinstance(element, dict) and element.get("type") == "button"
    ]
    return all(len((e.get("text") or {}).get("text") or "") <= BUTTON_TEXT_LIMIT for e in elements)


async def _arguments(request: web.Request) -> dict[str, Any]:
    """slack_sdk sends JSON for some methods and form fields for others."""
    args: dict[str, Any] = dict(request.query)
    if not request.can_read_body:
        return args
    if request.content_type == "application/json":
        args.update(await request.json())
        return args
    for name, value in (await request.post()).items():
        args[name] = _maybe_json(value) if isinstance(value, str) else value
    return args


def _text_of(args: dict[str, Any]) -> str:
    """The text a post or a stream call adds: `markdown_text`, `text`, or markdown chunks."""
    chunks = args.get("chunks") or []
    pieces = [str(c.get("text") or "") for c in chunks if c.get("type") == "markdown_text"]
    return str(args.get("markdown_text") or args.get("text") or "") + "".join(pieces)


def _shown(message: dict[str, Any], metadata: bool) -> dict[str, Any]:
    """A kept message as the Web API shows it. What Slack puts in `text` for a message
    posted or streamed as `markdown_text` is a guess: the markdown as sent."""
    shown = {"type": "message", **message}
    shown.pop("channel")
    shown.pop("streaming", None)
    if not metadata:
        shown.pop("metadata", None)
    return shown


def _metadata(sent: Any) -> dict[str, Any]:
    """Message metadata as sent (a JSON object, or its text in a form field), which must
    have an event_type and an event_payload (https://docs.slack.dev/messaging/message-
    metadata); anything else is kept as it came, for a test to see."""
    value = json.loads(sent) if isinstance(sent, str) else sent
    return dict(value) if isinstance(value, dict) else {"unreadable": sent}


def _maybe_json(value: str) -> Any:
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
