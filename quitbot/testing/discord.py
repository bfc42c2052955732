"""A fake Discord on 127.0.0.1: REST (API v10) and the gateway websocket, for the real discord.py.

    async with FakeDiscord() as fake:
        client.http.Route.BASE = fake.api_base  # the adapter does this from settings
        ...
        message = await fake.post(fake.channel_id, fake.alice, "<@bot> hi", mention_bot=True)
        call = await fake.wait_call("POST", r"/channels/\\d+/messages")

Every REST call is recorded in `calls`; a route the fake does not know answers 404 and is
also recorded in `unexpected`, so a test can assert that nothing unexpected happened.
Gateway: HELLO, IDENTIFY -> READY (with resume_gateway_url) + GUILD_CREATE, heartbeat/ACK,
RESUME (replays what the client missed, or on request events it already saw), and the
dispatches a test drives: MESSAGE_CREATE, THREAD_UPDATE, INTERACTION_CREATE. With
`shard_count`, each shard has its own session and connection, and every dispatch goes only
to the shard Discord would send it on (`shard_for`); `add_guild` adds a server on a shard.

It refuses what Discord refuses (each rule cites its source beside it): over-long content
and embeds, edits to an archived thread, late or repeated interaction answers, presses
on components a Discord client would not let a person use, downloads of attachments
whose signed address has expired, plain messages to a forum or media channel and a post
there without its first message, and threads in a voice channel's text chat. Discord's
clock here is a `ManualClock` that only moves when a test moves it (directly, or with
`slow()`), so the 3-second interaction deadline is tested without sleeping.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from quitbot.testing import discord_payloads as p

Json = dict[str, Any]
Handler = Callable[["re.Match[str]", Any, dict[str, str]], Awaitable[tuple[int, Any]]]
WAIT_SECONDS = 10.0

# https://discord.com/developers/docs/resources/message#create-message: content is "up to
# 2000 characters"; https://discord.com/developers/docs/resources/message#embed-object-embed-limits
# lists the embed limits. Past any of them Discord answers 400, code 50035 Invalid Form Body.
CONTENT_LIMIT = 2000
EMBED_LIMITS = {"title": 256, "description": 4096}
EMBED_FIELD_VALUE_LIMIT = 1024
EMBED_TOTAL_LIMIT = 6000
# A button's label is at most 80 characters (Discord Docs, "Components": Button; the same
# figure in twilight-validate's COMPONENT_BUTTON_LABEL_LENGTH); past it, 400 / 50035.
BUTTON_LABEL_LIMIT = 80
# https://discord.com/developers/docs/interactions/receiving-and-responding#responding-to-an-interaction:
# "you must send an initial response within 3 seconds of receiving the event"; a late one
# gets 404, code 10062 Unknown interaction. Follow-ups work for 15 minutes afterwards.
INTERACTION_DEADLINE = 3.0
FOLLOWUP_WINDOW = 15 * 60.0
DEFERRED_TYPES = (5, 6)  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE, DEFERRED_UPDATE_MESSAGE
# https://discord.com/developers/docs/reference#signed-attachment-cdn-urls: attachment CDN
# addresses are signed, `ex` (hex Unix time it expires), `is` (hex time issued) and `hm`
# (the signature); an expired or unsigned one answers 404 "This content is no longer
# available." (github.com/useapi/discord-cdn-proxy shows the answer). The lifetime is not
# documented; a day is what people see (ClearURLs/Rules#312).
CDN_URL_SECONDS = 24 * 3600.0
CDN_EXPIRED = "This content is no longer available."
# `attachment_urls` takes 1-50 addresses (discord-userdoccers, "Refresh Attachment URLs":
# https://docs.discord.food/resources/message#refresh-attachment-urls).
REFRESH_URLS_LIMIT = 50
# https://discord.com/developers/docs/resources/message#create-message: a nonce is "up to 25
# characters" and "will appear in the Message Create event"; with enforce_nonce, "if another
# message was created by the same author with the same nonce, that message will be returned
# and no new message will be created" (Discord checks "the past few minutes"; the fake
# remembers every nonce, which refuses no more than Discord does within a test).
NONCE_LIMIT = 25
# Forum and media channels hold posts (threads) only: "Channel that can only contain
# threads" (https://discord.com/developers/docs/resources/channel#channel-object-channel-types).
# A plain message to one answers 400, code 50008 "Cannot send messages in a non-text
# channel" (the live API's answer, as reported in appwrite/grafana-oncall PR #26; 50008 is
# in https://discord.com/developers/docs/topics/opcodes-and-status-codes#json).
NON_TEXT = (400, 50008, "Cannot send messages in a non-text channel")
# A thread needs a channel that has them: "Start Thread from Message ... Does not work on a
# GUILD_FORUM or a GUILD_MEDIA channel" (docs, resources/channel#start-thread-from-message),
# and voice channels' text chat "do[es] not support threads" (discord-api-docs PR #4829,
# "Text in Voice"). The code Discord answers for either is a guess: 50024 "Cannot execute
# action on this channel type", its code for an action a channel type does not take.
WRONG_CHANNEL_TYPE = (400, 50024, "Cannot execute action on this channel type")
BAD_NAME_LENGTH = "Must be between 1 and 100 in length."
_CDN_EPOCH = 1_700_000_000  # the fake clock's 0, as a Unix time
_SIGNING = frozenset({"ex", "is", "hm"})


@dataclass
class Call:
    """One REST request the fake received."""

    method: str
    path: str  # below /api/v10, e.g. /channels/1/messages
    query: dict[str, str]
    body: Any
    status: int = 200
    response: Any = None
    at: float = field(default_factory=time.perf_counter)  # arrival, for benchmarks


@dataclass
class _Session:
    id: str
    log: list[tuple[int, str, Json]] = field(default_factory=list)
    replay_from: int = 0


class _Waiter:
    """Counts matching successful calls as they arrive (no rescans: benchmarks use it too)."""

    def __init__(
        self, method: str, pattern: re.Pattern[str], count: int, *, ok_only: bool = True
    ) -> None:
        self.method, self.pattern, self.count, self.ok_only = method, pattern, count, ok_only
        self.future: asyncio.Future[Call] = asyncio.get_running_loop().create_future()

    def see(self, call: Call) -> None:
        if self.future.done() or call.method != self.method:
            return
        if self.ok_only and call.status >= 300:
            return
        if self.pattern.fullmatch(call.path):
            self.count -= 1
            if self.count == 0:
                self.future.set_result(call)


class DiscordError(Exception):
    def __init__(self, status: int, code: int, message: str, errors: Json | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors


class Unusable(AssertionError):
    """A test tried to press a component that a person could not use in the Discord client."""


def _cdn_signature(name: str, expires: int, issued: int) -> str:
    return hashlib.sha256(f"fake-cdn:{name}:{expires}:{issued}".encode()).hexdigest()


class ManualClock:
    """Discord's side of time: moves only when a test (or `slow()`) moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class _Interaction:
    """What the fake remembers about an interaction it dispatched."""

    channel_id: int
    user_id: str
    created: float
    message_id: int | None = None
    answered: int | None = None  # the callback type once answered
    response_id: int | None = None  # the message the answer created, if any


class FakeDiscord:
    def __init__(
        self,
        *,
        message_content_intent: bool = True,
        bot_can_manage_threads: bool = True,
        echo_own_messages: bool = True,
        interaction_deadline: float = INTERACTION_DEADLINE,
        shard_count: int = 1,
    ) -> None:
        self.token = "fake-discord-token"
        self.shard_count = shard_count
        self.app_id = p.snowflake()
        self.bot = p.user(p.snowflake(), "quitbot", bot=True)
        self.bot_id = int(self.bot["id"])
        self.alice = p.user(p.snowflake(), "alice")
        self.bob = p.user(p.snowflake(), "bob")
        self.other_bot = p.user(p.snowflake(), "otherbot", bot=True)
        self.guild_id = self._guild_snowflake(0)
        self.channel_id = p.snowflake()
        self.message_content_intent = message_content_intent
        self.echo_own_messages = echo_own_messages
        self.moderator_role_id = p.snowflake()
        self.bot_role_id = p.snowflake()
        bot_permissions = p.BOT_PERMISSIONS
        if not bot_can_manage_threads:
            bot_permissions &= ~p.MANAGE_THREADS
        self.roles = [
            p.role(self.guild_id, "@everyone", p.MEMBER_PERMISSIONS),
            p.role(self.bot_role_id, "quitbot", bot_permissions, position=1),
            p.role(self.moderator_role_id, "helpers", p.MEMBER_PERMISSIONS, position=2),
        ]
        self.channels: dict[int, Json] = {
            self.channel_id: p.text_channel(self.channel_id, self.guild_id, "general")
        }
        self.guilds: dict[int, str] = {self.guild_id: "Test Server"}  # id -> name
        self.messages: dict[int, Json] = {}
        self._nonces: dict[tuple[str, str], int] = {}  # (author id, nonce) -> message id
        self.files: dict[str, tuple[str, bytes]] = {}
        self._held_files: dict[str, asyncio.Event] = {}
        self.downloads: list[str] = []  # file names, as requested
        self.calls: list[Call] = []
        self.unexpected: list[Call] = []
        self.identifies: list[Json] = []
        self.resumes = 0
        self.guild_creates = 0  # one per IDENTIFY and guild: a restarted bot connects anew
        self.ready_shards: list[int] = []  # the shard of each IDENTIFY answered with READY
        # What each shard's connection was sent: (shard id, event, payload), in order.
        self.dispatched: list[tuple[int, str, Json]] = []
        self.guild_ready = asyncio.Event()
        self._changed = asyncio.Condition()
        self._waiters: list[_Waiter] = []
        self._limits: list[tuple[str, re.Pattern[str], float]] = []
        # One gateway session (and connection) per shard, as Discord keeps them.
        self._sessions: dict[int, _Session] = {}
        self._seqs: dict[int, int] = {}
        self._wss: dict[int, web.WebSocketResponse] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self._dms: dict[int, int] = {}
        self.closed_dms: set[int] = set()  # users who do not accept DMs from the bot
        self.clock = ManualClock()
        self.interaction_deadline = interaction_deadline
        self._interactions: dict[str, _Interaction] = {}
        self._slow: list[tuple[str, re.Pattern[str], float]] = []
        self._failures: list[tuple[str, re.Pattern[str], DiscordError]] = []
        self.base_url = ""
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._add_routes()

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application()
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/", self._gateway)
        app.router.add_get("/attachments/{name}", self._file)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.base_url.removeprefix('http://')}/gateway"

    # --- world building -------------------------------------------------------------------

    @property
    def bot_permissions(self) -> int:
        return int(self.roles[0]["permissions"]) | int(self.roles[1]["permissions"])

    def shard_of_guild(self, guild_id: int) -> int:
        """The shard Discord sends a guild's events on.

        https://discord.com/developers/docs/events/gateway#sharding: "shard_id = (guild_id >>
        22) % num_shards"; "DMs will only be sent to shard 0".
        """
        return (guild_id >> 22) % self.shard_count

    def _guild_snowflake(self, shard: int) -> int:
        """A new guild id on `shard` (its timestamp part moved forward by < shard_count ms)."""
        guild_id = p.snowflake()
        stamp = guild_id >> 22
        stamp += (shard - stamp) % self.shard_count
        return (stamp << 22) | (guild_id & 0x3FFFFF)

    def add_guild(self, name: str, *, shard: int) -> tuple[int, int]:
        """Another server with the bot in it, whose events go to `shard`; (guild id, id of
        its text channel). Sent in GUILD_CREATE to that shard's connection."""
        guild_id = self._guild_snowflake(shard)
        channel_id = p.snowflake()
        self.guilds[guild_id] = name
        self.channels[channel_id] = p.text_channel(channel_id, guild_id, "general")
        return guild_id, channel_id

    def add_forum(self, name: str, *, media: bool = False, tags: tuple[str, ...] = ()) -> int:
        """A forum (or media) channel in the first server, known from GUILD_CREATE; its id.
        With `tags`, a post there must carry one (see `forum_channel`)."""
        channel_id = p.snowflake()
        forum = p.forum_channel(channel_id, self.guild_id, name, media=media, tags=tags)
        self.channels[channel_id] = forum
        return channel_id

    def add_voice(self, name: str) -> int:
        """A voice channel in the first server (its text chat takes messages); its id."""
        channel_id = p.snowflake()
        self.channels[channel_id] = p.voice_channel(channel_id, self.guild_id, name)
        return channel_id

    async def open_post(
        self, forum_id: int, author: Json, name: str, content: str, *, mention_bot: bool = False
    ) -> Json:
        """Someone opens a post in a forum: THREAD_CREATE, then MESSAGE_CREATE for its first
        message, whose id is the thread's (a thread's starter message has its id: discord.py's
        `Thread.starter_message`, discord.js's `fetchStarterMessage`). Returns the post."""
        forum = self._channel(forum_id)
        assert forum["type"] in p.THREAD_ONLY, "posts are opened in forum or media channels"
        thread_id = p.snowflake()
        thread = p.thread(thread_id, self.guild_id, forum_id, int(author["id"]), name)
        self.channels[thread_id] = thread
        await self.dispatch("THREAD_CREATE", thread | {"newly_created": True})
        await self._post_as(thread_id, thread, author, content, mention_bot, None)
        return thread

    def add_thread(self, name: str, *, owner_id: int | None = None) -> Json:
        """A thread that exists before the bot connects (sent in GUILD_CREATE)."""
        thread_id = p.snowflake()
        thread = p.thread(thread_id, self.guild_id, self.channel_id, owner_id or 1, name)
        self.channels[thread_id] = thread
        return thread

    def add_file(
        self, filename: str, content_type: str, data: bytes, *, held: asyncio.Event | None = None
    ) -> Json:
        """A file on the CDN; with `held`, downloading it waits until the event is set."""
        name = f"{p.snowflake()}-{filename}"
        self.files[name] = (content_type, data)
        if held is not None:
            self._held_files[name] = held
        url = self._signed_url(name)
        return p.attachment(p.snowflake(), filename, content_type, len(data), url)

    def _signed_url(self, name: str) -> str:
        """A CDN address for file `name`, signed now, expiring CDN_URL_SECONDS later."""
        issued = int(_CDN_EPOCH + self.clock())
        expires = int(issued + CDN_URL_SECONDS)
        signed = f"ex={expires:x}&is={issued:x}&hm={_cdn_signature(name, expires, issued)}&"
        return f"{self.base_url}/attachments/{name}?{signed}"

    def dm_channel_of(self, author: Json) -> Json:
        user_id = int(author["id"])
        if user_id not in self._dms:
            channel_id = p.snowflake()
            self.channels[channel_id] = p.dm_channel(channel_id, author)
            self._dms[user_id] = channel_id
        return self.channels[self._dms[user_id]]

    # --- what people do -------------------------------------------------------------------

    async def post(
        self,
        channel_id: int,
        author: Json,
        content: str,
        *,
        mention_bot: bool = False,
        attachments: list[Json] | None = None,
    ) -> Json:
        """Someone posts a message; the gateway sends MESSAGE_CREATE."""
        channel = self.channels[channel_id]
        # The client has no message box in a forum: only posts are opened there (NON_TEXT).
        assert channel["type"] not in p.THREAD_ONLY, "open a post in a forum instead"
        return await self._post_as(
            p.snowflake(), channel, author, content, mention_bot, attachments
        )

    async def _post_as(
        self,
        message_id: int,
        channel: Json,
        author: Json,
        content: str,
        mention_bot: bool,
        attachments: list[Json] | None,
    ) -> Json:
        message = p.message(
            message_id,
            channel,
            author,
            content,
            mentions=[self.bot] if mention_bot else [],
            attachments=attachments,
        )
        if "guild_id" in channel:
            message["member"] = {
                "roles": [],
                "joined_at": p.now_iso(),
                "deaf": False,
                "mute": False,
                "flags": 0,
            }
        self.messages[int(message["id"])] = message
        await self.dispatch("MESSAGE_CREATE", message)
        return message

    async def dm(self, author: Json, content: str) -> Json:
        return await self.post(int(self.dm_channel_of(author)["id"]), author, content)

    async def set_thread(self, thread_id: int, *, archived: bool, locked: bool) -> None:
        """Someone else (e.g. a moderator in the client) changes a thread."""
        meta = self.channels[thread_id]["thread_metadata"]
        meta.update(archived=archived, locked=locked)
        await self.dispatch("THREAD_UPDATE", self.channels[thread_id])

    async def slash(
        self,
        name: str,
        options: list[Json] | None = None,
        *,
        channel_id: int,
        author: Json,
        permissions: int = p.MEMBER_PERMISSIONS,
        roles: tuple[int, ...] = (),
        resolved: Json | None = None,
    ) -> Json:
        data: Json = {"id": str(p.snowflake()), "name": name, "type": 1, "options": options or []}
        if resolved is not None:
            data["resolved"] = resolved
        return await self.interact(
            2, data, channel_id, author, permissions=permissions, roles=roles
        )

    async def press(
        self,
        custom_id: str,
        *,
        message: Json,
        author: Json,
        permissions: int = p.MEMBER_PERMISSIONS,
    ) -> Json:
        current = self.messages.get(int(message["id"]), message)
        self._check_usable(current, custom_id, author)
        data = {"custom_id": custom_id, "component_type": 2}
        channel_id = int(current["channel_id"])
        return await self.interact(
            3, data, channel_id, author, permissions=permissions, message=current
        )

    def clickable(self, message: Json) -> list[str]:
        """The custom ids of the buttons a person could press on `message` right now."""
        current = self.messages.get(int(message["id"]), message)
        if self._in_locked_thread(current):
            return []
        return [
            c["custom_id"]
            for row in current.get("components") or []
            for c in row.get("components") or []
            if c.get("type") == 2 and c.get("style") != 5 and not c.get("disabled")
        ]

    def _check_usable(self, message: Json, custom_id: str, author: Json) -> None:
        # The Discord client disables every non-link component on a message in a locked
        # thread, ephemeral ones included, whatever the person's permissions
        # (discord-api-docs #6907, #7900), so no interaction can come from it.
        if self._in_locked_thread(message):
            raise Unusable(f"{custom_id!r} is on a message in a locked thread; it is disabled")
        if custom_id not in self.clickable(message):
            raise Unusable(f"no usable button {custom_id!r} on message {message['id']}")
        # An ephemeral message is shown only to the person it answered
        # (https://discord.com/developers/docs/resources/message#message-object-message-flags).
        shown_to = message.get("_shown_to")
        if int(message.get("flags") or 0) & 64 and shown_to and shown_to != author["id"]:
            raise Unusable(
                f"message {message['id']} is ephemeral; {author['username']} cannot see it"
            )

    def _in_locked_thread(self, message: Json) -> bool:
        channel = self.channels.get(int(message["channel_id"]), {})
        return bool((channel.get("thread_metadata") or {}).get("locked"))

    async def submit(
        self, custom_id: str, field_id: str, value: str, *, channel_id: int, author: Json
    ) -> Json:
        row = {"type": 1, "components": [{"type": 4, "custom_id": field_id, "value": value}]}
        data = {"custom_id": custom_id, "components": [row]}
        return await self.interact(5, data, channel_id, author)

    async def message_command(self, name: str, target: Json, *, author: Json) -> Json:
        data = {
            "id": str(p.snowflake()),
            "name": name,
            "type": 3,
            "target_id": target["id"],
            "resolved": {"messages": {target["id"]: target}},
        }
        return await self.interact(2, data, int(target["channel_id"]), author)

    async def interact(
        self,
        kind: int,
        data: Json,
        channel_id: int,
        author: Json,
        *,
        permissions: int = p.MEMBER_PERMISSIONS,
        roles: tuple[int, ...] = (),
        message: Json | None = None,
    ) -> Json:
        """Dispatch INTERACTION_CREATE; await `response(interaction)` for the bot's answer."""
        channel = self.channels[channel_id]
        interaction_id = p.snowflake()
        payload: Json = {
            "id": str(interaction_id),
            "application_id": str(self.app_id),
            "type": kind,
            "data": data,
            "channel_id": str(channel_id),
            "channel": channel,
            "token": f"token-{interaction_id}",
            "version": 1,
            "locale": "en-US",
            "app_permissions": str(self.bot_permissions),
            "entitlements": [],
            "attachment_size_limit": 10_485_760,
        }
        if "guild_id" in channel:
            payload["guild_id"] = channel["guild_id"]
            payload["guild_locale"] = "en-US"
            payload["context"] = 0
            payload["authorizing_integration_owners"] = {"0": channel["guild_id"]}
            payload["member"] = p.member(author, list(roles)) | {"permissions": str(permissions)}
        else:
            payload["context"] = 1
            payload["authorizing_integration_owners"] = {"1": author["id"]}
            payload["user"] = author
        if message is not None:
            payload["message"] = {k: v for k, v in message.items() if not k.startswith("_")}
        self._interactions[str(interaction_id)] = _Interaction(
            channel_id,
            str(author["id"]),
            self.clock(),
            int(message["id"]) if message is not None else None,
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def dispatch_interaction(self, payload: Json, channel_id: int, user_id: str) -> None:
        """Dispatch an INTERACTION_CREATE built elsewhere (a test's odd shapes), answerable
        as if it were the fake's own."""
        self._interactions[str(payload.get("id"))] = _Interaction(channel_id, user_id, self.clock())
        await self.dispatch("INTERACTION_CREATE", payload)

    async def response(self, interaction: Json, *, ok_only: bool = True) -> Call:
        """The bot's callback to an interaction (waits for it); with `ok_only=False` a
        refused one counts too."""
        path = f"/interactions/{interaction['id']}/{interaction['token']}/callback"
        return await self.wait_call("POST", re.escape(path), ok_only=ok_only)

    async def followup(self, interaction: Json, *, count: int = 1) -> Call:
        """The bot's `count`-th follow-up message to an interaction (waits for it)."""
        path = f"/webhooks/{self.app_id}/{interaction['token']}"
        return await self.wait_call("POST", re.escape(path), count=count)

    # --- gateway --------------------------------------------------------------------------

    def shard_for(self, data: Any) -> int:
        """The shard an event goes to: its guild's (see `shard_of_guild`), else shard 0
        (DMs, and anything without a readable guild id)."""
        guild_id = data.get("guild_id") if isinstance(data, dict) else None
        try:
            return self.shard_of_guild(int(guild_id)) if guild_id is not None else 0
        except (TypeError, ValueError):
            return 0

    async def dispatch(self, event: str, data: Json, *, shard: int | None = None) -> None:
        """Send an event to the connection of its shard (see `shard_for`); kept for RESUME
        if that shard's client is not connected."""
        shard = self.shard_for(data) if shard is None else shard
        seq = self._seqs[shard] = self._seqs.get(shard, 0) + 1
        session = self._sessions.get(shard)
        if session is not None:
            session.log.append((seq, event, data))
        ws = self._wss.get(shard)
        if ws is not None and not ws.closed:
            self.dispatched.append((shard, event, data))
            await self._send(ws, {"op": 0, "t": event, "s": seq, "d": data})

    async def reconnect(self, *, replay: Json | None = None, shard: int = 0) -> None:
        """Ask the client to reconnect (op 7); on its RESUME, resend what it missed.

        Discord may deliver an event again after a resume: with `replay` (a message the
        client already got), everything from that message's MESSAGE_CREATE on is resent.
        """
        session, ws = self._sessions[shard], self._wss.pop(shard)
        session.replay_from = self._seqs[shard] + 1
        if replay is not None:
            session.replay_from = next(
                seq
                for seq, event, payload in session.log
                if event == "MESSAGE_CREATE" and payload["id"] == replay["id"]
            )
        await self._send(ws, {"op": 7, "d": None})

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await self._send(ws, {"op": 10, "d": {"heartbeat_interval": 41_250}})
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    break
                await self._on_gateway(ws, json.loads(frame.data))
        finally:
            self._sockets.discard(ws)
            for shard, open_ws in list(self._wss.items()):
                if open_ws is ws:
                    del self._wss[shard]
        return ws

    async def _on_gateway(self, ws: web.WebSocketResponse, message: Json) -> None:
        op, data = message.get("op"), message.get("d") or {}
        if op == 1:
            await self._send(ws, {"op": 11, "d": None})
        elif op == 2:
            await self._identify(ws, data)
        elif op == 6:
            await self._resume(ws, data)
        # op 3 (presence) and op 8 (request members) need no answer here

    async def _identify(self, ws: web.WebSocketResponse, data: Json) -> None:
        self.identifies.append(data)
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        if data.get("intents", 0) & (1 << 15) and not self.message_content_intent:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        shard_id, shard_count = data.get("shard") or (0, 1)
        if shard_count != self.shard_count or not 0 <= shard_id < shard_count:
            # https://discord.com/developers/docs/topics/opcodes-and-status-codes#gateway-gateway-close-event-codes:
            # 4010 Invalid shard; 4011 Sharding required.
            code = 4011 if shard_count < self.shard_count else 4010
            await ws.close(code=code, message=b"Invalid shard.")
            return
        session = self._sessions[shard_id] = _Session(id=f"session-{p.snowflake()}")
        self._wss[shard_id] = ws
        mine = [g for g in self.guilds if self.shard_of_guild(g) == shard_id]
        ready = {
            "v": 10,
            "user": self.bot,
            "guilds": [{"id": str(g), "unavailable": True} for g in mine],
            "session_id": session.id,
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.app_id), "flags": self._app_flags()},
            "private_channels": [],
            "relationships": [],
        }
        if data.get("shard"):
            ready["shard"] = data["shard"]
        await self.dispatch("READY", ready, shard=shard_id)
        for guild_id in mine:
            await self.dispatch("GUILD_CREATE", self._guild_payload(guild_id), shard=shard_id)
            self.guild_creates += 1
        self.ready_shards.append(shard_id)
        self.guild_ready.set()
        async with self._changed:
            self._changed.notify_all()

    async def _resume(self, ws: web.WebSocketResponse, data: Json) -> None:
        shard = next(
            (s for s, session in self._sessions.items() if session.id == data.get("session_id")),
            None,
        )
        if shard is None:
            await self._send(ws, {"op": 9, "d": False})
            return
        session = self._sessions[shard]
        self.resumes += 1
        self._wss[shard] = ws
        seen = int(data.get("seq") or 0)
        first = min(seen + 1, session.replay_from or seen + 1)
        session.replay_from = 0
        for seq, event, payload in list(session.log):
            if seq >= first:
                await self._send(ws, {"op": 0, "t": event, "s": seq, "d": payload})
        self._seqs[shard] += 1
        await self._send(ws, {"op": 0, "t": "RESUMED", "s": self._seqs[shard], "d": {}})

    async def _send(self, ws: web.WebSocketResponse, message: Json) -> None:
        if not ws.closed:
            await ws.send_str(json.dumps(message))

    def _app_flags(self) -> int:
        return p.GATEWAY_MESSAGE_CONTENT if self.message_content_intent else 0

    def _guild_payload(self, guild_id: int) -> Json:
        here = [c for c in self.channels.values() if c.get("guild_id") == str(guild_id)]
        kinds = {p.GUILD_TEXT, *p.VOCAL, *p.THREAD_ONLY}
        channels = [c for c in here if c.get("type") in kinds]
        threads = [c for c in here if c.get("type") == p.PUBLIC_THREAD]
        members = [p.member(self.bot, [self.bot_role_id])]
        # The @everyone role has the guild's id; the other roles are alike in every guild.
        roles = [self.roles[0] | {"id": str(guild_id)}, *self.roles[1:]]
        return p.guild(
            guild_id,
            self.guilds[guild_id],
            owner_id=int(self.alice["id"]),
            roles=roles,
            channels=channels,
            threads=threads,
            members=members,
        )

    # --- REST -----------------------------------------------------------------------------

    def limit_next(self, method: str, path: str, *, retry_after: float = 0.05) -> None:
        """Answer the next matching request with a 429 (with `Via`, as Discord's API does)."""
        self._limits.append((method, re.compile(path), retry_after))

    def slow(self, method: str, path: str, *, seconds: float) -> None:
        """Every matching request takes `seconds` of Discord's time (the clock moves on),
        as calls do under rate limits; nothing really waits."""
        self._slow.append((method, re.compile(path), seconds))

    def fail_next(
        self, method: str, path: str, *, status: int = 403, code: int = 50001,
        message: str = "Missing Access",
    ) -> None:  # fmt: skip
        """Refuse the next matching request (a status discord.py does not retry)."""
        self._failures.append((method, re.compile(path), DiscordError(status, code, message)))

    def calls_to(self, method: str, path: str) -> list[Call]:
        pattern = re.compile(path)
        return [c for c in self.calls if c.method == method and pattern.fullmatch(c.path)]

    async def wait_call(
        self, method: str, path: str, *, count: int = 1, ok_only: bool = True
    ) -> Call:
        """Wait until `count` successful calls match (any calls, with `ok_only=False`);
        return the `count`-th of them."""
        waiter = _Waiter(method, re.compile(path), count, ok_only=ok_only)
        for call in self.calls:
            waiter.see(call)
        if not waiter.future.done():
            self._waiters.append(waiter)
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                return await waiter.future
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def wait_until(
        self, check: Callable[[], bool], *, give_up_after: float | None = None
    ) -> None:
        """Wait until `check()` holds; it is re-checked after every REST call and IDENTIFY."""
        async with asyncio.timeout(give_up_after or WAIT_SECONDS), self._changed:
            await self._changed.wait_for(check)

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        body = (
            await request.json()
            if request.can_read_body and request.content_type == "application/json"
            else None
        )
        call = Call(request.method, path, dict(request.query), body)
        if self._authorised(request, path):
            status, payload, headers = await self._answer(call)
        else:
            status, payload, headers = 401, {"message": "401: Unauthorized", "code": 0}, {}
        call.status, call.response = status, payload
        self.calls.append(call)
        for waiter in self._waiters:
            waiter.see(call)
        async with self._changed:
            self._changed.notify_all()
        if status == 204:
            return web.Response(status=204)
        # discord.py checks the Content-Type for exactly "application/json"
        return web.Response(
            status=status,
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", **headers},
        )

    def _authorised(self, request: web.Request, path: str) -> bool:
        if path.startswith(("/interactions/", "/webhooks/")):
            return True  # these carry the interaction's token in the path instead
        return request.headers.get("Authorization") == f"Bot {self.token}"

    async def _answer(self, call: Call) -> tuple[int, Any, dict[str, str]]:
        for method, pattern, seconds in self._slow:
            if method == call.method and pattern.fullmatch(call.path):
                self.clock.advance(seconds)
        for failure in self._failures:
            method, pattern, error = failure
            if method == call.method and pattern.fullmatch(call.path):
                self._failures.remove(failure)
                return error.status, {"message": error.message, "code": error.code}, {}
        for limit in self._limits:
            method, pattern, retry_after = limit
            if method == call.method and pattern.fullmatch(call.path):
                self._limits.remove(limit)
                limited = {
                    "message": "You are being rate limited.",
                    "retry_after": retry_after,
                    "global": False,
                }
                return (
                    429,
                    limited,
                    {
                        "Via": "1.1 google",
                        "Retry-After": str(retry_after),
                        "X-RateLimit-Scope": "user",
                    },
                )
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(call.path)
            if method == call.method and match:
                try:
                    status, payload = await handler(match, call.body, call.query)
                except DiscordError as exc:
                    body: Json = {"message": exc.message, "code": exc.code}
                    if exc.errors is not None:
                        body["errors"] = exc.errors
                    return exc.status, body, {}
                return status, payload, {}
        self.unexpected.append(call)
        return 404, {"message": "404: Not Found", "code": 0}, {}

    def _add_routes(self) -> None:
        snowflake, token = r"(\d+)", r"([^/]+)"
        table: list[tuple[str, str, Handler]] = [
            ("GET", r"/users/@me", self._me),
            ("GET", r"/oauth2/applications/@me", self._application),
            ("GET", r"/gateway/bot", self._gateway_bot),
            ("GET", r"/users/@me/guilds", self._my_guilds),
            ("POST", r"/users/@me/channels", self._open_dm),
            ("PUT", rf"/applications/{snowflake}/commands", self._sync),
            ("PUT", rf"/applications/{snowflake}/guilds/{snowflake}/commands", self._sync),
            ("POST", rf"/channels/{snowflake}/typing", self._typing),
            ("POST", rf"/channels/{snowflake}/messages", self._create_message),
            ("PATCH", rf"/channels/{snowflake}/messages/{snowflake}", self._edit_message),
            ("GET", rf"/channels/{snowflake}/messages/{snowflake}", self._get_message),
            ("GET", rf"/channels/{snowflake}/messages", self._history),
            (
                "POST",
                rf"/channels/{snowflake}/messages/{snowflake}/threads",
                self._thread_from_message,
            ),
            ("POST", rf"/channels/{snowflake}/threads", self._thread_alone),
            ("PATCH", rf"/channels/{snowflake}", self._edit_channel),
            ("GET", rf"/channels/{snowflake}", self._get_channel),
            ("DELETE", rf"/channels/{snowflake}", self._delete_channel),
            ("POST", rf"/interactions/{snowflake}/{token}/callback", self._callback),
            ("POST", rf"/webhooks/{snowflake}/{token}", self._followup),
            ("POST", r"/attachments/refresh-urls", self._refresh_urls),
            ("PATCH", rf"/webhooks/{snowflake}/{token}/messages/@original", self._edit_original),
        ]
        self._routes = [(m, re.compile(path), handler) for m, path, handler in table]

    async def _me(self, match: re.Match[str], body: Any, query: dict[str, str]) -> tuple[int, Any]:
        return 200, self.bot

    async def _application(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        return 200, {
            "id": str(self.app_id),
            "name": "quitbot",
            "icon": None,
            "description": "",
            "summary": "",
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": self.alice,
            "team": None,
            "flags": self._app_flags(),
            "bot": self.bot,
        }

    async def _gateway_bot(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return 200, {
            "url": self.gateway_url,
            "shards": self.shard_count,
            "session_start_limit": limit,
        }

    async def _my_guilds(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        return 200, [
            {"id": str(guild_id), "name": name, "icon": None, "owner": False}
            | {"permissions": str(self.bot_permissions), "features": []}
            for guild_id, name in self.guilds.items()
        ]

    async def _open_dm(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        recipient = next(
            (u for u in (self.alice, self.bob) if u["id"] == str(body["recipient_id"])), None
        )
        if recipient is None:
            raise DiscordError(404, 10013, "Unknown User")
        return 200, self.dm_channel_of(recipient)

    async def _sync(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        synced = [
            {"description": "", "options": []}
            | command
            | {"id": str(p.snowflake()), "application_id": str(self.app_id), "version": "1"}
            for command in body
        ]
        return 200, synced

    async def _typing(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        self._channel(int(match[1]))
        return 204, None

    async def _create_message(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        channel = self._channel(int(match[1]))
        body = body or {}
        _check_message(body)
        await self._may_post(channel)
        nonce = body.get("nonce")
        enforced = (self.bot["id"], str(nonce))
        earlier = self._nonces.get(enforced) if body.get("enforce_nonce") else None
        if nonce is not None and earlier in self.messages:
            return 200, self.messages[earlier]
        message = self._bot_message(channel, body)
        if nonce is not None:
            message["nonce"] = nonce
            self._nonces[enforced] = int(message["id"])
        if self.echo_own_messages:
            await self.dispatch("MESSAGE_CREATE", message)
        return 200, message

    async def _may_post(self, channel: Json) -> None:
        if channel.get("type") in p.THREAD_ONLY:  # see NON_TEXT
            raise DiscordError(*NON_TEXT)
        if channel.get("type") == 1 and int(channel["recipients"][0]["id"]) in self.closed_dms:
            # https://discord.com/developers/docs/topics/opcodes-and-status-codes#json
            raise DiscordError(403, 50007, "Cannot send messages to this user")
        meta = channel.get("thread_metadata")
        if meta is None:
            return
        if meta["locked"] and not self._can_manage_threads():
            raise DiscordError(403, 50083, "Thread is archived")
        if meta["archived"]:  # posting into an archived thread unarchives it
            meta["archived"] = False
            await self.dispatch("THREAD_UPDATE", channel)

    def _bot_message(
        self, channel: Json, body: Json, *, flags: int = 0, message_id: int | None = None
    ) -> Json:
        message_id = message_id or p.snowflake()
        message = p.message(message_id, channel, self.bot, body.get("content") or "")
        message["embeds"] = body.get("embeds") or []
        message["components"] = body.get("components") or []
        message["flags"] = flags | int(body.get("flags") or 0)
        self.messages[int(message["id"])] = message
        return message

    async def _edit_message(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        message = self._message(int(match[2]))
        _check_message(body or {})
        _update(message, body or {})
        return 200, message

    async def _refresh_urls(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        """Attachment addresses signed anew, expired or not: `attachment_urls` in,
        `refreshed_urls` of {original, refreshed} out. Not in Discord's published route
        list; the shape is discord-userdoccers' and Oceanic's
        (RawRefreshAttachmentURLsResponse), and bots call it with their token
        (pypi.org/project/discord-cdn-link-refresher). Per discord-userdoccers an address
        need not be valid or signed, and its other query parameters are kept: any CDN
        attachment path is signed anew (reading it still fails if there is no such file).
        What Discord does with an address off its CDN is not known; here it is left out."""
        urls = body.get("attachment_urls") if isinstance(body, dict) else None
        if (
            not isinstance(urls, list)
            or not all(isinstance(url, str) for url in urls)
            or not 0 < len(urls) <= REFRESH_URLS_LIMIT
        ):
            errors = {"attachment_urls": _too_long(REFRESH_URLS_LIMIT)}
            raise DiscordError(400, 50035, "Invalid Form Body", errors)
        prefix = f"{self.base_url}/attachments/"
        refreshed = []
        for url in urls:
            if not url.startswith(prefix):
                continue
            name, _, signature = url.removeprefix(prefix).partition("?")
            kept = [part for part in signature.split("&") if part.split("=")[0] not in _SIGNING]
            signed = self._signed_url(name) + "&".join(part for part in kept if part)
            refreshed.append({"original": url, "refreshed": signed})
        return 200, {"refreshed_urls": refreshed}

    async def _get_message(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        return 200, self._message(int(match[2]))

    async def _history(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        """Get Channel Messages (https://discord.com/developers/docs/resources/message#get-
        channel-messages): `limit` 1-100, default 50; at most one of `around`, `before`,
        `after`, else 400 (the doc says "mutually exclusive"; the error code 50035 is a guess,
        Discord's usual one for a bad query). Newest first, whichever of them is given, as
        discord.py's history reads them (it takes the first as the newest after `after`).
        `around` is not faked: no test needs it, so it is refused."""
        channel = self._channel(int(match[1]))
        given = [name for name in ("around", "before", "after") if name in query]
        limit = int(query.get("limit") or 50)
        if len(given) > 1 or not 1 <= limit <= 100 or given == ["around"]:
            raise DiscordError(400, 50035, "Invalid Form Body")
        mine = sorted(
            (m for m in self.messages.values() if m["channel_id"] == channel["id"]),
            key=lambda m: int(m["id"]),
        )
        if given == ["after"]:
            after = int(query["after"])
            page = [m for m in mine if int(m["id"]) > after][:limit]
        else:
            before = int(query.get("before") or 1 << 63)
            page = [m for m in mine if int(m["id"]) < before][-limit:]
        return 200, list(reversed(page))

    async def _thread_from_message(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        parent = self._channel(int(match[1]))
        self._message(int(match[2]))
        if parent.get("type") in p.THREAD_ONLY:  # see WRONG_CHANNEL_TYPE
            raise DiscordError(*WRONG_CHANNEL_TYPE)
        if int(match[2]) in self.channels:
            raise DiscordError(400, 160004, "A thread has already been created for this message")
        thread = await self._new_thread(parent, body["name"], thread_id=int(match[2]))
        return 201, thread

    async def _thread_alone(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        parent = self._channel(int(match[1]))
        if parent.get("type") in p.THREAD_ONLY:
            return 201, await self._forum_post(parent, body or {})
        return 201, await self._new_thread(parent, body["name"], thread_id=p.snowflake())

    async def _forum_post(self, forum: Json, body: Json) -> Json:
        """Start Thread in Forum or Media Channel: a post with its first message, sent in
        `message` (https://discord.com/developers/docs/resources/channel#start-thread-in-forum-or-media-channel).
        Without one Discord answered 500 until it was made a 400 (discord-api-docs #5210);
        its form error is "This field is required" (openclaw/openclaw #6601). The message
        needs one of content, embeds, sticker_ids, components or files (same page), else
        50006 "Cannot send an empty message" (opcodes-and-status-codes#json)."""
        first = body.get("message")
        if not isinstance(first, dict):
            required = {
                "_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]
            }
            raise DiscordError(400, 50035, "Invalid Form Body", {"message": required})
        if not any(first.get(k) for k in ("content", "embeds", "sticker_ids", "components")):
            raise DiscordError(400, 50006, "Cannot send an empty message")
        # REQUIRE_TAG: "a tag is required to be specified when creating a thread" (docs,
        # resources/channel#channel-object-channel-flags); without one, 400, code 40067 "A
        # tag is required to create a forum post in this channel" (discord-net/Discord.Net
        # #2503). A media channel takes a post without a file (discord.py PR #10170).
        tags = {tag["id"] for tag in forum.get("available_tags") or []}
        applied = set(body.get("applied_tags") or [])
        if int(forum.get("flags") or 0) & p.REQUIRE_TAG and not tags & applied:
            raise DiscordError(
                400, 40067, "A tag is required to create a forum post in this channel"
            )
        _check_message(first)
        thread_id = p.snowflake()
        thread = await self._new_thread(forum, body["name"], thread_id=thread_id)
        message = self._bot_message(thread, first, message_id=thread_id)
        if self.echo_own_messages:
            await self.dispatch("MESSAGE_CREATE", message)
        # The answer is the thread with its first message nested (same page).
        return thread | {"message": _public(message)}

    async def _new_thread(self, parent: Json, name: str, *, thread_id: int) -> Json:
        if parent.get("type") not in (p.GUILD_TEXT, *p.THREAD_ONLY):
            raise DiscordError(*WRONG_CHANNEL_TYPE)
        # "1-100 character channel name" (docs, resources/channel#start-thread-from-message,
        # and the same for a thread without a message and a forum post); refused as a form
        # error, BASE_TYPE_BAD_LENGTH "Must be between 1 and 100 in length." (the shape
        # Discord gives every over-long form field; seen in bots' reports of it).
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            bad = {"_errors": [{"code": "BASE_TYPE_BAD_LENGTH", "message": BAD_NAME_LENGTH}]}
            raise DiscordError(400, 50035, "Invalid Form Body", {"name": bad})
        guild_id = int(parent["guild_id"])
        thread = p.thread(thread_id, guild_id, int(parent["id"]), self.bot_id, name)
        self.channels[thread_id] = thread
        await self.dispatch("THREAD_CREATE", thread | {"newly_created": True})
        return thread

    async def _edit_channel(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        thread = self._channel(int(match[1]))
        meta = thread.get("thread_metadata")
        if meta is None:
            raise DiscordError(403, 50013, "Missing Permissions")
        if meta["archived"] and body.get("archived") is not False:
            # An archived thread takes no edit but unarchiving: "Requires the thread to have
            # archived set to false or be set to false in the request" (discord-api-docs
            # PR #5365); otherwise 400, code 50083 (discord.js #8680, discord-api-docs #6928).
            # To lock it: unarchive first, then archive and lock in one PATCH.
            raise DiscordError(400, 50083, "Thread is archived")
        touches_lock = "locked" in body or meta["locked"]
        if touches_lock and not self._can_manage_threads():
            raise DiscordError(403, 50013, "Missing Permissions")
        for key in ("archived", "locked"):
            if key in body:
                meta[key] = bool(body[key])
        await self.dispatch("THREAD_UPDATE", thread)
        return 200, thread

    async def _delete_channel(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        thread = self.channels.pop(int(self._channel(int(match[1]))["id"]))
        await self.dispatch("THREAD_DELETE", thread)
        return 200, thread

    async def _get_channel(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        return 200, self._channel(int(match[1]))

    async def _callback(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        interaction = self._interaction(match[1])
        kind = int(body["type"])
        if interaction.answered is not None:
            raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
        if self.clock() - interaction.created > self.interaction_deadline:
            # Answered after the 3-second deadline (see INTERACTION_DEADLINE): the person
            # already saw "This interaction failed".
            raise DiscordError(404, 10062, "Unknown interaction")
        data = body.get("data") or {}
        if kind in (4, 7):
            _check_message(data)
        interaction.answered = kind
        channel = self.channels[interaction.channel_id]
        answer: Json = {"id": match[1], "type": body["type"]}
        resource: Json = {"type": kind}
        if kind in (4, 5):
            ephemeral = bool(int(data.get("flags") or 0) & 64)
            message = self._bot_message(channel, data)
            if ephemeral:
                message["_shown_to"] = interaction.user_id
            elif self.echo_own_messages:
                await self.dispatch("MESSAGE_CREATE", message)
            resource["message"] = _public(message)
            interaction.response_id = int(message["id"])
            answer |= {
                "response_message_id": message["id"],
                "response_message_loading": kind == 5,
                "response_message_ephemeral": ephemeral,
            }
        elif kind == 7 and interaction.message_id is not None:
            # UPDATE_MESSAGE edits the message the component was on.
            message = self._message(interaction.message_id)
            _update(message, data)
            resource["message"] = _public(message)
        # https://discord.com/developers/docs/interactions/receiving-and-responding#create-interaction-response:
        # the callback object comes back only with ?with_response=true; otherwise 204.
        if query.get("with_response") not in ("1", "true", "True"):
            return 204, None
        return 200, {"interaction": answer, "resource": resource}

    def _interaction(self, interaction_id: str) -> _Interaction:
        if interaction_id not in self._interactions:
            raise DiscordError(404, 10062, "Unknown interaction")
        return self._interactions[interaction_id]

    def _answered(self, token: str) -> _Interaction:
        """The interaction behind a webhook token, if follow-ups may use it now."""
        interaction = self._interaction(token.removeprefix("token-"))
        # Follow-ups need the initial response first, and last 15 minutes
        # (https://discord.com/developers/docs/interactions/receiving-and-responding#followup-messages).
        if interaction.answered is None:
            raise DiscordError(404, 10015, "Unknown Webhook")
        if self.clock() - interaction.created > FOLLOWUP_WINDOW:
            raise DiscordError(401, 50027, "Invalid Webhook Token")
        return interaction

    async def _followup(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        interaction = self._answered(match[2])
        _check_message(body or {})
        message = self._bot_message(self.channels[interaction.channel_id], body or {})
        if int(message["flags"]) & 64:
            message["_shown_to"] = interaction.user_id
        return 200, _public(message)

    async def _edit_original(
        self, match: re.Match[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        # The original response: the message the answer created, or for a component's
        # UPDATE_MESSAGE / DEFERRED_UPDATE_MESSAGE, the message the component is on.
        interaction = self._answered(match[2])
        _check_message(body or {})
        message = self._message(interaction.response_id or interaction.message_id or 0)
        _update(message, body or {})
        return 200, _public(message)

    async def _file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.downloads.append(name)
        async with self._changed:
            self._changed.notify_all()
        if name not in self.files or not self._cdn_valid(name, request.query):
            return web.Response(status=404, text=CDN_EXPIRED)
        if name in self._held_files:
            await self._held_files[name].wait()
        content_type, data = self.files[name]
        return web.Response(body=data, headers={"Content-Type": content_type})

    def _cdn_valid(self, name: str, query: Mapping[str, str]) -> bool:
        """Whether an attachment address is signed, unaltered and not yet expired."""
        try:
            expires, issued = int(query["ex"], 16), int(query["is"], 16)
        except (KeyError, ValueError):
            return False
        signed = query.get("hm") == _cdn_signature(name, expires, issued)
        return signed and _CDN_EPOCH + self.clock() < expires

    def _channel(self, channel_id: int) -> Json:
        if channel_id not in self.channels:
            raise DiscordError(404, 10003, "Unknown Channel")
        return self.channels[channel_id]

    def _message(self, message_id: int) -> Json:
        if message_id not in self.messages:
            raise DiscordError(404, 10008, "Unknown Message")
        return self.messages[message_id]

    def _can_manage_threads(self) -> bool:
        return bool(self.bot_permissions & (p.MANAGE_THREADS | p.ADMINISTRATOR))


def _update(message: Json, body: Json) -> None:
    for key in ("content", "embeds", "components"):
        if key in body:
            message[key] = body[key] if body[key] is not None else ([] if key != "content" else "")
    message["edited_timestamp"] = p.now_iso()


def _public(message: Json) -> Json:
    """A message as Discord sends it (without the fake's own bookkeeping keys)."""
    return {k: v for k, v in message.items() if not k.startswith("_")}


def _check_message(body: Json) -> None:
    """Discord's size limits on a message body (see CONTENT_LIMIT and EMBED_LIMITS)."""
    errors: Json = {}
    content = body.get("content")
    if isinstance(content, str) and len(content) > CONTENT_LIMIT:
        errors["content"] = _too_long(CONTENT_LIMIT)
    if len(str(body.get("nonce", ""))) > NONCE_LIMIT:
        errors["nonce"] = _too_long(NONCE_LIMIT)
    for index, embed in enumerate(body.get("embeds") or []):
        total = 0
        for name, limit in EMBED_LIMITS.items():
            value = embed.get(name) or ""
            total += len(value)
            if len(value) > limit:
                errors[f"embeds.{index}.{name}"] = _too_long(limit)
        for field_index, item in enumerate(embed.get("fields") or []):
            total += len(item.get("name") or "") + len(item.get("value") or "")
            if len(item.get("value") or "") > EMBED_FIELD_VALUE_LIMIT:
                errors[f"embeds.{index}.fields.{field_index}.value"] = _too_long(
                    EMBED_FIELD_VALUE_LIMIT
                )
        if total > EMBED_TOTAL_LIMIT:
            errors[f"embeds.{index}"] = _too_long(EMBED_TOTAL_LIMIT)
    for row_index, row in enumerate(body.get("components") or []):
        for index, component in enumerate(row.get("components") or []):
            if len(component.get("label") or "") > BUTTON_LABEL_LIMIT:
                where = f"components.{row_index}.components.{index}.label"
                errors[where] = _too_long(BUTTON_LABEL_LIMIT)
    if errors:
        raise DiscordError(400, 50035, "Invalid Form Body", errors)


def _too_long(limit: int) -> Json:
    return {
        "_errors": [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {limit} or fewer in length."}
        ]
    }
