"""The permissions quitbot needs on a server, and why each one."""

from __future__ import annotations

import discord

# Each permission the bot asks for, with the reason an operator would want to know.
NEEDED: dict[str, str] = {
    "view_channel": "see the channels it is mentioned in",
    "send_messages": "post mod-log entries, open threads in text channels and posts in forums",
    "create_public_threads": "open a thread for each conversation",
    "send_messages_in_threads": "reply inside conversation threads",
    "manage_threads": "archive and lock a thread when its conversation ends, and reopen it",
    "embed_links": "show warnings, final notices and mod-log entries as embeds",
    "read_message_history": "reply to and branch from earlier messages in a thread",
}
SCOPES = ("bot", "applications.commands")


def needed() -> discord.Permissions:
    return discord.Permissions(**dict.fromkeys(NEEDED, True))


def missing(have: discord.Permissions) -> list[str]:
    """The needed permissions `have` lacks, by their names in Discord's settings."""
    if have.administrator:
        return []
    return [_title(name) for name in NEEDED if not getattr(have, name)]


def invite_url_for(application_id: int) -> str:
    return discord.utils.oauth_url(application_id, permissions=needed(), scopes=SCOPES)


def _title(name: str) -> str:
    return name.replace("_", " ").title().replace("View Channel", "View Channels")
