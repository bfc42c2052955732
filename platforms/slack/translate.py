"""Slack payloads -> the core's types. Pure: no I/O, tested against recorded payloads."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlparse

from bot.conversation import ConversationKey, FileRef, Inbound
from bot.conversation import storable as safe  # lone UTF-16 surrogates cannot be stored

PLATFORM = "slack"

# Subtypes that are a person writing something new; every other subtype (edits, deletions,
# joins, topic changes, bot posts...) is not a message to answer.
_ANSWERED_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})

_LINK = re.compile(r"<(https?://[^|>]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")


class Place(StrEnum):
    """Where in Slack a conversation lives; decides how to reply and how to start again."""

    CHANNEL = "channel"  # a thread under a message in a channel
    DM = "dm"  # a thread under a top-level message in a DM with the app
    ASSISTANT = "assistant"  # a thread in Slack's AI assistant pane


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """One person's message as the adapter needs it: what to tell the core, where to answer."""

    channel: str
    ts: str
    thread_ts: str  # the thread the answer goes to (the message itself when top-level)
    user_id: str
    team_id: str
    text: str
    place: Place
    mentioned: bool  # the app was @-mentioned: it may start a conversation here
    threaded: bool  # a reply inside an existing thread
    files: tuple[FileRef, ...] = ()  # downloaded when its turn comes, only if the app wants them
    community: str = ""  # the workspace the app serves it in: whose settings apply

    @property
    def key(self) -> ConversationKey:
        return thread_key(self.channel, self.thread_ts)

    @property
    def event_id(self) -> str:
        """The same for a message's `app_mention` and `message` events and Slack's retries."""
        return f"{self.channel}:{self.ts}"

    def inbound(self) -> Inbound:
        m = self
        return Inbound(m.key, m.event_id, m.user_id, m.text, m.ts, (), m.community, m.files)


def thread_key(channel: str, thread_ts: str) -> ConversationKey:
    return ConversationKey(PLATFORM, f"{channel}:{thread_ts}")


def split_key(key: ConversationKey) -> tuple[str, str]:  # (channel, thread_ts)
    channel, _, thread_ts = key.place.partition(":")
    return channel, thread_ts


def translate_event(
    event: dict[str, Any], bot_user_id: str, team_id: str = ""
) -> SlackMessage | None:
    """A `message` or `app_mention` event as a SlackMessage, or None if it is not for us."""
    user, channel, ts, thread_ts = (event.get(k) for k in ("user", "channel", "ts", "thread_ts"))
    if (
        event.get("type") not in {"message", "app_mention"}
        or event.get("subtype") not in _ANSWERED_SUBTYPES
        or event.get("bot_id")
        or user == bot_user_id
        or not _all_text(user, channel, ts, thread_ts or "-")  # the edge checked; stay safe
    ):
        return None
    raw = str(event.get("text") or "")
    mention = f"<@{bot_user_id}>"
    mentioned = event.get("type") == "app_mention" or (bool(bot_user_id) and mention in raw)
    return SlackMessage(
        channel=safe(str(channel)),
        ts=safe(str(ts)),
        thread_ts=safe(str(thread_ts or ts)),
        user_id=safe(str(user)),
        # The recipient of a stream is the person's own team: for someone from another
        # workspace in a Slack Connect channel that is `user_team`, not the channel's `team`
        # (Bolt's extract_actor_team_id reads them in this order).
        team_id=safe(str(event.get("user_team") or event.get("team") or team_id)),
        text=safe(plain_text(raw.replace(mention, "")).strip()),
        place=_place(event, bot_user_id),
        mentioned=mentioned,
        threaded=thread_ts is not None and thread_ts != ts,
        files=tuple(_files(event)),
        community=safe(team_id or str(event.get("team") or "")),
    )


def _all_text(*values: Any) -> bool:
    return all(isinstance(value, str) and value for value in values)


def _place(event: dict[str, Any], bot_user_id: str) -> Place:
    if not (event.get("channel_type") == "im" or str(event.get("channel")).startswith("D")):
        return Place.CHANNEL
    # Messages in assistant threads carry `assistant_thread`; their root is the app's own.
    mine = event.get("thread_ts") and event.get("parent_user_id") == bot_user_id
    return Place.ASSISTANT if "assistant_thread" in event or mine else Place.DM


def _files(event: dict[str, Any]) -> list[FileRef]:
    refs = []
    for file in event.get("files") or ():
        url = isinstance(file, dict) and (
            file.get("url_private_download") or file.get("url_private")
        )
        if not url or file.get("mode") == "tombstone":
            continue
        name, size = file.get("name") or file.get("title") or "file", file.get("size")
        media_type = str(file.get("mimetype") or "application/octet-stream")
        size = size if isinstance(size, int) else 0
        refs.append(FileRef(str(name), media_type, size, str(url)))  # FileRef makes them safe
    return refs


def plain_text(text: str) -> str:
    """Slack's message markup as a person typed it: links unwrapped, entities decoded."""
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = _SPECIAL.sub(lambda m: "@" + m.group(1), text)
    return html.unescape(text)


class AssistantThread(NamedTuple):  # assistant_thread_started: a new assistant pane thread
    channel: str
    thread_ts: str
    user_id: str

    @property
    def key(self) -> ConversationKey:
        return thread_key(self.channel, self.thread_ts)


def translate_assistant_thread(event: dict[str, Any]) -> AssistantThread | None:
    thread = event.get("assistant_thread") or {}
    channel, thread_ts = thread.get("channel_id"), thread.get("thread_ts")
    if not channel or not thread_ts:
        return None
    return AssistantThread(safe(channel), safe(thread_ts), safe(str(thread.get("user_id") or "")))


# --- commands ----------------------------------------------------------------------------


class Command(NamedTuple):  # /quitbot <verb> [target] [note]; target: a thread link or an id
    verb: str
    target: str = ""
    note: str = ""


def parse_command(text: str) -> Command:
    words = text.strip().split(maxsplit=2)
    if not words:
        return Command("help")
    target = words[1].strip("<>").split("|")[0] if len(words) > 1 else ""
    return Command(words[0].lower(), target, words[2] if len(words) > 2 else "")


_ARCHIVES = re.compile(r"/archives/([A-Z0-9]+)/p(\d{10})(\d{6})")


def key_from_link(link: str) -> ConversationKey | None:
    """The conversation key named by a Slack message or thread link, if it is one.

    A link to a reply names its thread through `thread_ts`; a link to a top-level message
    names the thread under it.
    """
    match = _ARCHIVES.search(link)
    if match is None:
        return None
    channel, seconds, micros = match.groups()
    query = parse_qs(urlparse(link).query)
    thread_ts = query.get("thread_ts", [f"{seconds}.{micros}"])[0]
    return thread_key(channel, thread_ts)
