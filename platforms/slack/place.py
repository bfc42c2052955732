"""The Slack side of the core's ports (a thread as a `Place`, the mod-log channel as `ModLog`)
and what every part of the adapter shares (`Deps`: the client, its work, learnt facts)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.conversation import Attachment, Conversation, ConversationKey, FileRef
from bot.notices import Notice, NoticeKind
from bot.ports import DatabaseUnavailable, ModLogEntry, ModLogKind
from bot.settings import Settings
from bot.texts import TextKey, Texts
from platforms.slack import history
from platforms.slack.files import fetch_attachments
from platforms.slack.render import ENDED_REACTION, Blocks, escape, render_notice
from platforms.slack.stream import DEFAULT_INTERVAL, Clock, SlackReply, StreamingSupport
from platforms.slack.translate import Place, split_key

log = logging.getLogger(__name__)

# What chat.postEphemeral answers in a channel the app is not in: not_in_channel (public) or
# channel_not_found (a DM or private channel it cannot see; slackapi/python-slack-sdk#734).
# A command's or a click's response_url still reaches the person there.
NOT_THERE = frozenset({"not_in_channel", "channel_not_found"})


@dataclass
class Tasks:
    """Work started after Slack was acknowledged; drained on shutdown so nothing is cut off."""

    _running: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(self._logged(work, name), name=name)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    @staticmethod
    async def _logged(work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except DatabaseUnavailable:
            # Said once by the store; a message it had kept is answered at the next start.
            log.info("Slack %s not done: the database does not answer", name)
        except Exception:  # (CancelledError is not one: a cancelled task stays cancelled)
            log.exception("Slack %s failed", name)

    async def drain(self, grace: float | None = None) -> None:
        """Wait for running work, for at most `grace` seconds; then, or if this wait is
        itself cancelled, cancel what is left (a cut-short reply is recorded as such)."""
        try:
            async with asyncio.timeout(grace):
                while self._running:
                    await asyncio.gather(*self._running, return_exceptions=True)
        except (TimeoutError, asyncio.CancelledError):
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise


@dataclass
class Deps:
    settings: Settings
    client: AsyncWebClient
    session: aiohttp.ClientSession | None = None
    clock: Clock = time.monotonic
    interval: float = DEFAULT_INTERVAL
    support: StreamingSupport = field(default_factory=StreamingSupport)
    tasks: Tasks = field(default_factory=Tasks)
    bot_user_id: str = ""  # learnt from Bolt's context (auth.test) with the first event
    team_id: str = ""  # the app's workspace: a stream's recipient team when no event says
    # The words in force in a workspace (its own over the operator's), where an engine is.
    words_of: Callable[[str], Awaitable[Texts]] | None = None

    async def words(self, team: str) -> Texts:
        """The words in force in workspace `team` (the operator's where no engine says)."""
        return await self.words_of(team) if self.words_of else self.settings.words

    async def attempt(
        self, method: str, expected: frozenset[str] = frozenset(), /, **args: Any
    ) -> tuple[dict[str, Any], str]:
        """A Web API call whose failure is logged (unless `expected`), not raised: (its data,
        "") or ({}, error)."""
        try:
            return dict((await getattr(self.client, method)(**args)).data), ""
        except SlackApiError as exc:
            error = str(exc.response.get("error") if exc.response is not None else exc)
            # already_reacted, no_reaction: the state wanted is there
            if error not in {"already_reacted", "no_reaction", *expected}:
                log.warning("Slack %s failed: %s", method, error)
            return {}, error

    async def ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        blocks: Blocks | None = None,
        thread_ts: str = "",
        response_url: str = "",
    ) -> None:
        """Tell one person something: in the channel (or thread) they are in, or, where the app
        is not a member, through the `response_url` of what they typed or clicked."""
        _, error = await self.attempt(
            "chat_postEphemeral",
            NOT_THERE if response_url else frozenset(),
            channel=channel,
            user=user,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts or None,
        )
        if error in NOT_THERE and response_url:
            await self.respond(response_url, text, blocks)

    async def respond(
        self, url: str, text: str, blocks: Blocks | None = None, *, replace: bool = False
    ) -> bool:
        """Post to a command's or an interaction's `response_url`: a new message only the
        person sees, or with `replace` one in place of the message that was clicked (the only
        way to change an ephemeral one). Whether Slack took it; a response_url works 5 times
        within 30 minutes (https://docs.slack.dev/interactivity/handling-user-interaction)."""
        if not url:
            return False
        hook = AsyncWebhookClient(url, session=self.session)
        try:
            sent = await hook.send(
                text=text,
                blocks=blocks if blocks is not None else ([] if replace else None),
                response_type="ephemeral",
                replace_original=replace,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("Slack response_url failed: %s", type(exc).__name__)
            return False
        if sent.status_code != 200:
            log.warning("Slack response_url refused: %d %s", sent.status_code, sent.body[:80])
            return False
        return True

    async def permalink(self, channel: str, ts: str) -> str:
        data, _ = await self.attempt("chat_getPermalink", channel=channel, message_ts=ts)
        return str(data.get("permalink") or "")

    async def set_title(self, channel: str, thread_ts: str, title: str) -> None:
        """An assistant thread's title in the pane."""
        await self.attempt(
            "assistant_threads_setTitle", channel_id=channel, thread_ts=thread_ts, title=title
        )


@dataclass(frozen=True, slots=True)
class SlackPlace:
    """One conversation's thread. `user_id`/`team_id` are whom a reply streams to."""

    deps: Deps
    channel: str
    thread_ts: str
    kind: Place
    user_id: str = ""
    team_id: str = ""

    def reply(self) -> SlackReply:
        return SlackReply(self)

    async def post(self, notice: Notice, conversation: Conversation | None) -> str:
        text, blocks = self._render(notice, conversation)
        if notice.replaces:  # its buttons go with the message it replaces: none left stale
            edit = {"channel": self.channel, "ts": notice.replaces, "text": text, "blocks": blocks}
            data, _ = await self.deps.attempt("chat_update", **edit)
            return str(data.get("ts") or "")
        response = await self.deps.client.chat_postMessage(
            channel=self.channel, thread_ts=self.thread_ts, text=text, blocks=blocks
        )
        return str(response.get("ts") or "")

    async def tell(self, user_id: str, notice: Notice, conversation: Conversation | None) -> None:
        if notice.kind is NoticeKind.AFTER_END:
            return  # the END notice keeps its buttons: usable (no lock), lasting (not ephemeral)
        text, blocks = self._render(notice, conversation)
        await self.deps.ephemeral(self.channel, user_id, text, blocks, self.thread_ts)

    async def close(self, conversation: Conversation) -> None:
        """Slack cannot lock a thread: mark its first message, and in the assistant pane
        retitle it; the engine keeps the conversation closed to the model."""
        await self._react("reactions_add")
        if self.kind is Place.ASSISTANT:
            title = (await self.deps.words(conversation.community)).get(TextKey.SLACK_ENDED_TITLE)
            await self.deps.set_title(self.channel, self.thread_ts, title)
        log.info("Slack thread %s:%s closed: its conversation ended", self.channel, self.thread_ts)

    async def reopen(self, conversation: Conversation) -> str:
        problem = await self._react("reactions_remove")
        return "" if problem in ("", "no_reaction") else f"Slack said {problem}."

    async def reply_after(self, message_id: str, reply_id: str) -> str | None:
        return await history.reply_text(self, message_id, reply_id)

    async def marked_reply(self, message_id: str) -> tuple[str, str] | None:
        return await history.marked_reply(self, message_id)

    async def cut_short(self, message_id: str, reply_id: str) -> None:
        await history.cut_short(self, message_id, reply_id)

    def _render(
        self, notice: Notice, conversation: Conversation | None
    ) -> tuple[str, list[dict[str, object]]]:
        conversation_id = conversation.id if conversation else ""
        return render_notice(notice, self.kind, self.deps.bot_user_id, conversation_id)

    async def _react(self, method: str) -> str:
        """The ended mark on the thread's first message, added or removed; the error or ""."""
        args = {"channel": self.channel, "timestamp": self.thread_ts, "name": ENDED_REACTION}
        return (await self.deps.attempt(method, **args))[1]


class SlackPlaces:
    """Reaches any conversation's thread; remembers what kind of place each one is."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._kinds: dict[ConversationKey, Place] = {}
        self._remembering = threading.Lock()

    def kind(self, key: ConversationKey, guess: Place | None = None) -> Place:
        """Learnt from its messages (or when the app made it); else guessed from the channel."""
        known = self._kinds.get(key)
        if known is not None:
            return known
        if guess is not None:
            return guess
        channel, _ = split_key(key)
        return Place.DM if channel.startswith("D") else Place.CHANNEL

    def remember(self, key: ConversationKey, kind: Place) -> None:
        if self._kinds.get(key) is kind:
            return  # known already (a thread's every message says it again)
        # The HTTP listener's thread remembers too: no forgetting while the other adds.
        with self._remembering:
            self._kinds[key] = kind
            if len(self._kinds) > 50_000:  # bounded: the oldest are forgotten
                self._kinds.pop(next(iter(self._kinds)))

    def place(self, key: ConversationKey, user_id: str = "", team_id: str = "") -> SlackPlace:
        channel, thread_ts = split_key(key)
        return SlackPlace(self._deps, channel, thread_ts, self.kind(key), user_id, team_id)

    async def read(self, files: Sequence[FileRef]) -> tuple[Attachment, ...]:
        limit = self._deps.settings.slack.max_attachment_bytes
        token = str(self._deps.client.token or "")
        if self._deps.session is not None:
            return await fetch_attachments(self._deps.session, token, files, limit)
        async with aiohttp.ClientSession() as session:
            return await fetch_attachments(session, token, files, limit)


class SlackModLog:
    """Ends, reopens and feedback, posted with a link to the configured channel."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._channel = deps.settings.slack.modlog_channel

    async def write(self, entry: ModLogEntry) -> None:
        if not self._channel:
            return
        conversation = entry.conversation
        channel, thread_ts = split_key(conversation.key)
        link = await self._deps.permalink(channel, entry.message_id or thread_ts)
        view = f"<{link}|View>" if link else ""
        who = f"<@{entry.actor_id}>"
        if entry.kind is ModLogKind.ENDED:
            ladder = conversation.ladder
            text = (
                f":no_entry_sign: Conversation `{conversation.id}` with "
                f"<@{conversation.user_id}> ended by {ladder.ended_by} ({ladder.ended_reason})."
            )
        elif entry.kind is ModLogKind.WOULD_END:
            text = (
                f":rotating_light: Alert-only mode: I would have ended `{conversation.id}` for "
                f"{who} (nothing ended): {escape(entry.text)}"
            )
        elif entry.kind is ModLogKind.SHUT_OUT:
            text = (
                f":no_entry_sign: {who} was shut out of `{conversation.id}` (started by "
                f"<@{conversation.user_id}>, which goes on): {escape(entry.text)}"
            )
        elif entry.kind is ModLogKind.REOPENED:
            why = f": {escape(entry.text)}" if entry.text else ""
            text = f":arrows_counterclockwise: {who} reopened `{conversation.id}`{why}."
        else:
            text = f":speech_balloon: {who} on `{conversation.id}`: {escape(entry.text)}"
        await self._deps.attempt("chat_postMessage", channel=self._channel, text=f"{text} {view}")
