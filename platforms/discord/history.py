"""What a Discord channel already shows after a message: the bot's reply a stopped run left
there, read from the channel's history, and marked as cut short when it was left half."""

from __future__ import annotations

import logging

import discord

from platforms.discord.stream import MESSAGE_LIMIT

log = logging.getLogger(__name__)

# Get Channel Messages takes `after` and a `limit` of 1-100 (default 50) and needs
# READ_MESSAGE_HISTORY (https://discord.com/developers/docs/resources/message#get-channel-
# messages). A reply comes within the first messages after the one it answers: one call.
LOOK_AHEAD = 100
CUT_SHORT_MARK = "\n-# (cut short: answered again below)"


async def reply_parts(
    channel: discord.abc.Messageable, message_id: str, reply_id: str
) -> list[discord.Message]:
    """The messages of the reply beginning with `reply_id` among those after `message_id`:
    it and the same author's messages straight after it (a long reply's later parts)."""
    parts: list[discord.Message] = []
    after = discord.Object(int(message_id))
    async for message in channel.history(limit=LOOK_AHEAD, after=after, oldest_first=True):
        if not parts:
            if str(message.id) == reply_id:
                parts.append(message)
        elif message.author.id == parts[0].author.id:
            parts.append(message)
        else:
            break
    return parts


async def cut_short(channel: discord.abc.Messageable, message_id: str, reply_id: str) -> None:
    """Edit the last part of a half-shown reply to say it was cut short (within the
    2,000-character limit, its end giving way to the mark)."""
    parts = await reply_parts(channel, message_id, reply_id)
    if not parts:
        log.info("Discord reply %s cut short is not there any more", reply_id)
        return
    last = parts[-1]
    room = MESSAGE_LIMIT - len(CUT_SHORT_MARK)
    content = last.content if len(last.content) <= room else last.content[: room - 1] + "…"
    try:
        await last.edit(content=content + CUT_SHORT_MARK)
    except discord.HTTPException as exc:
        log.warning("could not mark reply %s as cut short: %s", reply_id, exc)
