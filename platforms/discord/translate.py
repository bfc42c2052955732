"""Discord payloads -> the core's words. Pure: attribute reads and string work, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import discord

from bot.conversation import ConversationKey, FileRef, Inbound
from bot.texts import DEFAULT_TEXTS, TextKey, Texts

PLATFORM = "discord"
THREAD_NAME_LIMIT = 100
_CHAT_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})
_THREAD_TYPES = frozenset({discord.ChannelType.public_thread, discord.ChannelType.private_thread})
# A voice channel's text chat has no threads (discord-api-docs PR #4829, "Text in Voice");
# a stage channel's chat is the same kind of chat (our reading, not documented).
_VOCAL_TYPES = frozenset({discord.ChannelType.voice, discord.ChannelType.stage_voice})


def dm_key(channel_id: int) -> ConversationKey:
    return ConversationKey(PLATFORM, f"dm:{channel_id}")


def thread_key(thread_id: int) -> ConversationKey:
    return ConversationKey(PLATFORM, str(thread_id))


def is_dm(channel: object) -> bool:
    return isinstance(channel, discord.DMChannel) or (
        isinstance(channel, discord.PartialMessageable)
        and channel.guild_id is None
        and channel.type in (None, discord.ChannelType.private)
    )


def key_for(channel: discord.abc.Snowflake) -> ConversationKey:
    """A DM is one conversation place; in a server, each thread is."""
    return dm_key(channel.id) if is_dm(channel) else thread_key(channel.id)


def community_of(source: object) -> str:
    """The server (guild id) a message, channel or interaction belongs to, whose own
    settings apply there; "" for a DM."""
    for known in (source, _looked_up(source, "channel")):  # a message's channel knows too
        guild = _looked_up(known, "guild")
        guild_id = guild.id if guild is not None else getattr(known, "guild_id", None)
        if isinstance(guild_id, int) and guild_id:
            return str(guild_id)
    return ""


def _looked_up(source: object, name: str) -> Any:
    """`source.name`, or None where discord.py cannot look it up: it keeps a falsy
    guild_id as it came (`value and int(value)`: `[]`, `{}`), and its lookup of the server
    by that raises TypeError ("unhashable type")."""
    try:
        return getattr(source, name, None)
    except TypeError:
        return None


def conversation_target(text: str) -> ConversationKey | str:
    """What a moderator typed to name a conversation: its thread (a #mention, a link or
    the bare id) as a key, else the text as a conversation id."""
    text = text.strip().strip("`")
    named = re.fullmatch(r"<#(\d+)>|(?:https?://\S+/)?(\d+)/?", text)
    return thread_key(int(named.group(1) or named.group(2))) if named else text


def thread_id_of(key: ConversationKey) -> int | None:
    """The Discord thread a key names, or None for a DM."""
    return None if key.place.startswith("dm:") else int(key.place)


def channel_id_of(key: ConversationKey) -> int:
    """The Discord channel a key names: its thread, or its DM channel."""
    return int(key.place.removeprefix("dm:"))


# --- messages ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ignore:
    """Not for the bot: another bot, itself, a system message, or a channel without a mention."""


@dataclass(frozen=True, slots=True)
class StartThread:
    """A mention in a channel: open a thread from the message and answer there."""

    text: str


@dataclass(frozen=True, slots=True)
class NoThreads:
    """A mention in a voice channel's text chat: it has no threads, so no conversation of
    its own can be held there."""


@dataclass(frozen=True, slots=True)
class Converse:
    """A message in a conversation's place; `known_only`: only if a conversation lives there."""

    key: ConversationKey
    text: str
    known_only: bool


Route = Ignore | StartThread | NoThreads | Converse


def route(message: discord.Message, bot_id: int) -> Route:
    """Decide what a new message means for the bot, from the message alone. Raises
    ValueError for ids that are no snowflake (discord.py reads any integer)."""
    if not (_snowflake(message.id) and _snowflake(message.channel.id)):
        raise ValueError(f"message {message.id} in channel {message.channel.id}: not snowflakes")
    if message.author.bot or message.author.id == bot_id or message.type not in _CHAT_TYPES:
        return Ignore()
    mentioned = any(user.id == bot_id for user in message.mentions)
    text = prompt_text(message.content, bot_id)
    channel = message.channel
    if is_dm(channel):
        return Converse(dm_key(channel.id), text, known_only=False)
    if isinstance(channel, discord.Thread) or _typed(channel) in _THREAD_TYPES:
        return Converse(thread_key(channel.id), text, known_only=not mentioned)
    if isinstance(channel, discord.PartialMessageable) and channel.type is None:
        # Not in the cache (e.g. a thread archived while we were away): only a known
        # conversation's place can be answered without knowing what the channel is.
        return Converse(thread_key(channel.id), text, known_only=True)
    if not mentioned:
        return Ignore()
    return NoThreads() if holds_no_threads(channel) else StartThread(text)


def holds_no_threads(channel: object) -> bool:
    """Whether `channel` is a voice or stage channel's text chat, where Discord has no
    threads."""
    return isinstance(channel, discord.VoiceChannel | discord.StageChannel) or (
        _typed(channel) in _VOCAL_TYPES
    )


def _snowflake(value: int) -> bool:
    """Whether `value` can be a Discord id: an unsigned 64-bit integer (0 is never one)."""
    return 0 < value < 2**64


def _typed(channel: object) -> discord.ChannelType | None:
    kind = getattr(channel, "type", None)
    return kind if isinstance(kind, discord.ChannelType) else None


def prompt_text(content: str, bot_id: int) -> str:
    """The message without the bot's own mention."""
    return re.sub(rf"<@!?{bot_id}>", "", content).strip()


def thread_name(text: str, author: str, texts: Texts = DEFAULT_TEXTS) -> str:
    """A thread named from the first words of the prompt (without any, in `texts`)."""
    words = " ".join(text.split())
    if not words:
        return texts.get(TextKey.DISCORD_THREAD_NAME, name=author)[:THREAD_NAME_LIMIT]
    if len(words) <= THREAD_NAME_LIMIT:
        return words
    cut = words[: THREAD_NAME_LIMIT - 1].rsplit(" ", 1)[0]
    return cut + "…"


def offer_post_name(ended: str | None, texts: Texts = DEFAULT_TEXTS) -> str:
    """The title of the forum post that offers a way on after `ended` (a thread's name)."""
    if not ended:
        return texts.get(TextKey.DISCORD_OFFER_POST_UNNAMED)
    return texts.get(TextKey.DISCORD_OFFER_POST_NAME, name=ended)[:THREAD_NAME_LIMIT]


def interaction_event_id(interaction_id: int) -> str:
    return f"interaction:{interaction_id}"


def inbound(message: discord.Message, key: ConversationKey, text: str) -> Inbound:
    """A message as the core's Inbound; its event id is the message's (replays dedupe).
    Its files are only referred to: they are read when its turn comes."""
    author, message_id = str(message.author.id), str(message.id)
    event = f"message:{message_id}"
    files = tuple(file_ref(attachment) for attachment in message.attachments)
    return Inbound(
        key, event, author, text, message_id, community=community_of(message), files=files
    )


# --- attachments ---------------------------------------------------------------------------

OCTET_STREAM = "application/octet-stream"
# What reading an attachment whose fields have the wrong JSON types raises (Discord never
# sends one, but the message must not be lost for it).
MALFORMED = (TypeError, AttributeError, ValueError)


def file_ref(attachment: discord.Attachment) -> FileRef:
    """A file as the core keeps it: its CDN address, to be read when the message's turn
    comes. One with fields of the wrong types can only be named."""
    name = attachment.filename if isinstance(attachment.filename, str) else "file"
    try:
        if not isinstance(attachment.size, int) or not isinstance(attachment.url, str):
            raise TypeError("a file's size or address is of the wrong type")
        return FileRef(name, media_type(attachment), attachment.size, attachment.url)
    except MALFORMED:
        return FileRef(name, OCTET_STREAM)


def media_type(attachment: discord.Attachment) -> str:
    raw = attachment.content_type or ""
    return raw.split(";", 1)[0].strip().lower() or OCTET_STREAM


# --- buttons and modals --------------------------------------------------------------------

NEW_CONVERSATION = "quitbot:new"
CONFIRM_END = "quitbot:end"
CANCEL_END = "quitbot:keep"
_NEW_IN = "quitbot:new:"
_MISTAKE = "quitbot:mistake:"
_FEEDBACK = "quitbot:feedback:"
FEEDBACK_FIELD = "quitbot:feedback-text"


def new_id(channel_id: int | None) -> str:
    """The "Start a new conversation" button: in `channel_id` (where an ended server
    conversation began; the button may be pressed in a DM), or where it is pressed."""
    return NEW_CONVERSATION if channel_id is None else f"{_NEW_IN}{channel_id}"


def mistake_id(conversation_id: str) -> str:
    return _MISTAKE + conversation_id


def feedback_modal_id(conversation_id: str) -> str:
    return _FEEDBACK + conversation_id


@dataclass(frozen=True, slots=True)
class Action:
    """What a quitbot button or modal asks for; `target` names the conversation (mistake,
    feedback) or the channel to start a new one in ("new" from a DM), when there is one."""

    name: Literal["new", "end", "keep", "mistake", "feedback"]
    target: str = ""


def parse_custom_id(custom_id: str) -> Action | None:
    """The action behind a component's custom id, or None if it is not ours."""
    simple = {NEW_CONVERSATION: "new", CONFIRM_END: "end", CANCEL_END: "keep"}
    if custom_id in simple:
        return Action(simple[custom_id])  # type: ignore[arg-type]
    for prefix, name in ((_NEW_IN, "new"), (_MISTAKE, "mistake"), (_FEEDBACK, "feedback")):
        rest = custom_id.removeprefix(prefix)
        if rest != custom_id and rest and (name != "new" or rest.isdigit()):
            return Action(name, rest)  # type: ignore[arg-type]
    return None


def answers_proposal(message: discord.Message | None) -> bool:
    """Whether an end button is on the model's proposal, which lapses, rather than on the
    end command's confirmation: the command answers privately (an ephemeral message), the
    proposal's confirmation is posted in the conversation's place for all to see."""
    return message is not None and not message.flags.ephemeral


def payload_data(data: object) -> dict[str, Any]:
    """An interaction's `data`, or {} if it is not an object (Discord always sends one)."""
    return dict(data) if isinstance(data, dict) else {}


def modal_text(components: object) -> str:
    """The feedback text field's value from a MODAL_SUBMIT's component rows ("" if there
    is none, or the rows are not of the shape Discord sends)."""
    rows = components if isinstance(components, list) else []
    for row in rows:
        if not isinstance(row, dict):
            continue
        inner = row.get("components")  # an action row holds a list; a label holds one
        items = inner if isinstance(inner, list) else [row.get("component"), row]
        for item in items:
            if isinstance(item, dict) and item.get("custom_id") == FEEDBACK_FIELD:
                return str(item.get("value") or "")
    return ""
