"""The Slack side of the core's ports: a thread as a `Place`, the mod-log channel as `ModLog`."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError

from bot.conversation import Conversation, ConversationKey
from bot.notices import Notice, NoticeKind
from bot.ports import ModLogEntry, ModLogKind
from platforms.slack.deps import Deps
from platforms.slack.render import ENDED_REACTION, ENDED_TITLE, escape, render_notice
from platforms.slack.stream import SlackReply
from platforms.slack.translate import Place, split_key

log = logging.getLogger(__name__)

PLACES_REMEMBERED = 50_000


@dataclass(frozen=True, slots=True)
class SlackPlace:
    """One conversation's thread. `user_id`/`team_id` are whom a reply streams to."""

    deps: Deps
    channel: str
    thread_ts: str
    kind: Place
    user_id: str = ""
    team_id: str = ""

    @property
    def recipient_team_id(self) -> str:
        return self.team_id or self.deps.team_id

    def reply(self) -> SlackReply:
        d = self.deps
        return SlackReply(d.client, self, d.support, d.clock, d.interval)

    async def post(self, notice: Notice, conversation: Conversation | None) -> str:
        text, blocks = self._render(notice, conversation)
        response = await self.deps.client.chat_postMessage(
            channel=self.channel, thread_ts=self.thread_ts, text=text, blocks=blocks
        )
        return str(response.get("ts") or "")

    async def tell(self, user_id: str, notice: Notice, conversation: Conversation | None) -> None:
        if notice.kind is NoticeKind.AFTER_END:
            # Slack cannot lock a thread, so the END notice just posted in it keeps its
            # "Start a new conversation" and "This was a mistake" buttons, which stay usable
            # and, unlike an ephemeral message, survive a reload; repeating them is noise.
            return
        text, blocks = self._render(notice, conversation)
        await self.deps.ephemeral(self.channel, user_id, text, blocks, self.thread_ts)

    async def close(self, conversation: Conversation) -> None:
        """Slack cannot lock a thread: mark its first message, and in the assistant pane
        retitle it; the engine keeps the conversation closed to the model."""
        await self._call("reactions_add", name=ENDED_REACTION)
        if self.kind is Place.ASSISTANT:
            await set_title(self.deps, self.channel, self.thread_ts, ENDED_TITLE)
        log.info("Slack thread %s:%s closed: its conversation ended", self.channel, self.thread_ts)

    async def reopen(self, conversation: Conversation) -> str:
        problem = await self._call("reactions_remove", name=ENDED_REACTION)
        return "" if problem in ("", "no_reaction") else f"Slack said {problem}."

    def _render(
        self, notice: Notice, conversation: Conversation | None
    ) -> tuple[str, list[dict[str, object]]]:
        conversation_id = conversation.id if conversation else ""
        return render_notice(notice, self.kind, self.deps.bot_user_id, conversation_id)

    async def _call(self, method: str, **args: str) -> str:
        """A reaction on the thread's first message; the error, or "" if it went through."""
        try:
            await getattr(self.deps.client, method)(
                channel=self.channel, timestamp=self.thread_ts, **args
            )
        except SlackApiError as exc:
            error = str(exc.response.get("error"))
            if error not in ("already_reacted", "no_reaction"):
                log.warning("%s on thread %s failed: %s", method, self.thread_ts, error)
            return error
        return ""


class SlackPlaces:
    """Reaches any conversation's thread; remembers what kind of place each one is."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._kinds: dict[ConversationKey, Place] = {}

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
        self._kinds[key] = kind
        if len(self._kinds) > PLACES_REMEMBERED:
            self._kinds.pop(next(iter(self._kinds)))

    def place(self, key: ConversationKey, user_id: str = "", team_id: str = "") -> SlackPlace:
        channel, thread_ts = split_key(key)
        return SlackPlace(self._deps, channel, thread_ts, self.kind(key), user_id, team_id)


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
        elif entry.kind is ModLogKind.REOPENED:
            why = f": {escape(entry.text)}" if entry.text else ""
            text = f":arrows_counterclockwise: {who} reopened `{conversation.id}`{why}."
        else:
            text = f":speech_balloon: {who} on `{conversation.id}`: {escape(entry.text)}"
        try:
            await self._deps.client.chat_postMessage(channel=self._channel, text=f"{text} {view}")
        except SlackApiError as exc:
            log.warning("mod-log post to %s failed: %s", self._channel, exc.response.get("error"))


async def set_title(deps: Deps, channel: str, thread_ts: str, title: str) -> None:
    try:
        await deps.client.assistant_threads_setTitle(
            channel_id=channel, thread_ts=thread_ts, title=title
        )
    except SlackApiError as exc:
        log.info("could not title assistant thread %s: %s", thread_ts, exc.response)
