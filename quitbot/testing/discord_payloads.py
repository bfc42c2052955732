"""Discord API v10 payload builders for the fake Discord (shapes as Discord sends them)."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000
_counter = itertools.count(1)

# Permission bits (https://discord.com/developers/docs/topics/permissions)
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
READ_MESSAGE_HISTORY = 1 << 16
MANAGE_THREADS = 1 << 34
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38
ADMINISTRATOR = 1 << 3
MEMBER_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY | SEND_MESSAGES_IN_THREADS
BOT_PERMISSIONS = MEMBER_PERMISSIONS | EMBED_LINKS | MANAGE_THREADS | CREATE_PUBLIC_THREADS

GATEWAY_MESSAGE_CONTENT = 1 << 18


def snowflake() -> int:
    """A fresh id that discord.py can read a creation time from."""
    return ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (next(_counter) & 0x3FFFFF)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def user(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
    }


def member(user_payload: dict[str, Any], roles: list[int]) -> dict[str, Any]:
    return {
        "user": user_payload,
        "roles": [str(r) for r in roles],
        "joined_at": now_iso(),
        "deaf": False,
        "mute": False,
        "flags": 0,
    }


def role(role_id: int, name: str, permissions: int, position: int = 0) -> dict[str, Any]:
    return {
        "id": str(role_id),
        "name": name,
        "permissions": str(permissions),
        "position": position,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def text_channel(channel_id: int, guild_id: int, name: str) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "parent_id": None,
        "nsfw": False,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
    }


# Channel types (https://discord.com/developers/docs/resources/channel#channel-object-channel-types)
GUILD_TEXT, GUILD_VOICE, PUBLIC_THREAD, GUILD_STAGE_VOICE, GUILD_FORUM, GUILD_MEDIA = (
    0, 2, 11, 13, 15, 16
)  # fmt: skip
THREAD_ONLY = frozenset({GUILD_FORUM, GUILD_MEDIA})
VOCAL = frozenset({GUILD_VOICE, GUILD_STAGE_VOICE})


REQUIRE_TAG = 1 << 4  # a channel flag: a new post must carry a tag


def forum_channel(
    channel_id: int, guild_id: int, name: str, *, media: bool = False, tags: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A forum (or media) channel: it holds posts (threads) only; with `tags`, a post must
    carry one of them (REQUIRE_TAG), the first being one only moderators may set."""
    available = [
        {"id": str(snowflake()), "name": tag, "moderated": i == 0, "emoji_id": None}
        | {"emoji_name": None}
        for i, tag in enumerate(tags)
    ]
    return text_channel(channel_id, guild_id, name) | {
        "type": GUILD_MEDIA if media else GUILD_FORUM,
        "available_tags": available,
        "default_reaction_emoji": None,
        "default_sort_order": None,
        "default_forum_layout": 0,
        "flags": REQUIRE_TAG if tags else 0,
    }


def voice_channel(channel_id: int, guild_id: int, name: str) -> dict[str, Any]:
    """A voice channel, with its text chat ("text in voice")."""
    return text_channel(channel_id, guild_id, name) | {
        "type": GUILD_VOICE,
        "bitrate": 64000,
        "user_limit": 0,
        "rtc_region": None,
    }


def thread(
    thread_id: int, guild_id: int, parent_id: int, owner_id: int, name: str
) -> dict[str, Any]:
    return {
        "id": str(thread_id),
        "type": 11,
        "guild_id": str(guild_id),
        "parent_id": str(parent_id),
        "owner_id": str(owner_id),
        "name": name,
        "last_message_id": None,
        "member_count": 1,
        "message_count": 0,
        "rate_limit_per_user": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": now_iso(),
            "locked": False,
            "invitable": True,
        },
    }


def dm_channel(channel_id: int, recipient: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(channel_id), "type": 1, "recipients": [recipient], "last_message_id": None}


def message(
    message_id: int,
    channel: dict[str, Any],
    author: dict[str, Any],
    content: str,
    *,
    mentions: list[dict[str, Any]] | None = None,
    attachments: list[dict[str, Any]] | None = None,
    message_type: int = 0,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": str(message_id),
        "channel_id": channel["id"],
        "author": author,
        "content": content,
        "timestamp": now_iso(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": mentions or [],
        "mention_roles": [],
        "attachments": attachments or [],
        "embeds": [],
        "components": [],
        "pinned": False,
        "type": message_type,
        "flags": 0,
    }
    if "guild_id" in channel:
        payload["guild_id"] = channel["guild_id"]
    return payload


def attachment(
    attachment_id: int, filename: str, content_type: str, size: int, url: str
) -> dict[str, Any]:
    return {
        "id": str(attachment_id),
        "filename": filename,
        "size": size,
        "url": url,
        "proxy_url": url,
        "content_type": content_type,
    }


def guild(
    guild_id: int,
    name: str,
    *,
    owner_id: int,
    roles: list[dict[str, Any]],
    channels: list[dict[str, Any]],
    threads: list[dict[str, Any]],
    members: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "id": str(guild_id),
        "name": name,
        "icon": None,
        "owner_id": str(owner_id),
        "features": [],
        "emojis": [],
        "stickers": [],
        "roles": roles,
        "channels": channels,
        "threads": threads,
        "members": members,
        "member_count": len(members),
        "large": False,
        "unavailable": False,
        "voice_states": [],
        "presences": [],
        "premium_tier": 0,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "preferred_locale": "en-US",
        "system_channel_flags": 0,
        "joined_at": now_iso(),
    }
