"""A message's files -> the core's Attachments: text read up to a limit, images for Claude."""

from __future__ import annotations

import logging

import aiohttp
import discord

from bot.conversation import Attachment
from platforms.discord.translate import attachment_kind, media_type

log = logging.getLogger(__name__)

# The Messages API takes images up to 5 MB base64-encoded, about 3.75 MB of raw bytes.
MAX_IMAGE_BYTES = 3_750_000
# Whatever reading a file from the CDN can raise: Discord's answers, the HTTP transport's
# errors, timeouts and sockets (TimeoutError is an OSError). The message must never be
# lost for a file: the file is only named instead.
READ_ERRORS = (discord.DiscordException, aiohttp.ClientError, OSError, ValueError)


# What an attachment whose fields have the wrong JSON types raises when read (Discord never
# sends one, but the message must not be lost for it either).
MALFORMED = (TypeError, AttributeError, ValueError)


async def read_attachments(
    attachments: list[discord.Attachment], max_text_bytes: int
) -> tuple[Attachment, ...]:
    return tuple([await _read_or_name(attachment, max_text_bytes) for attachment in attachments])


async def _read_or_name(attachment: discord.Attachment, max_text_bytes: int) -> Attachment:
    try:
        return await _read(attachment, max_text_bytes)
    except MALFORMED as exc:
        log.warning("attachment %r is malformed: %r", getattr(attachment, "id", None), exc)
        name = getattr(attachment, "filename", None)
        return Attachment(
            name if isinstance(name, str) else "file", "application/octet-stream", b"", 0
        )


async def _read(attachment: discord.Attachment, max_text_bytes: int) -> Attachment:
    if not isinstance(attachment.filename, str) or not isinstance(attachment.size, int):
        raise TypeError("a file's name or size is of the wrong type")
    kind = attachment_kind(attachment)
    named = Attachment(attachment.filename, media_type(attachment), b"", attachment.size)
    if kind == "other" or (kind == "image" and attachment.size > MAX_IMAGE_BYTES):
        return named
    try:
        data = await attachment.read()
    except READ_ERRORS as exc:
        log.warning("could not read attachment %s: %r", attachment.filename, exc)
        return named
    if kind == "image":
        return Attachment(attachment.filename, named.media_type, data, attachment.size)
    # Files recognised by their extension may come without a text/* type.
    text_type = named.media_type if named.media_type.startswith("text/") else "text/plain"
    if named.media_type in {"application/json", "application/xml"}:
        text_type = named.media_type
    return Attachment(attachment.filename, text_type, data[:max_text_bytes], attachment.size)
