"""A message's files -> the core's Attachments: text read up to a limit, images for Claude."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
import discord

from bot.context import bytes_to_read, file_kind, text_type
from bot.conversation import Attachment, FileRef

log = logging.getLogger(__name__)

# Whatever reading a file from the CDN can raise: Discord's answers (an expired address is
# a 404, NotFound), the HTTP transport's errors, timeouts and sockets (TimeoutError is an
# OSError). The message must never be lost for a file: the file is only named instead.
READ_ERRORS = (discord.DiscordException, aiohttp.ClientError, OSError, ValueError)

Fetch = Callable[[str], Awaitable[bytes]]
"""Downloads a CDN address (discord.py's `HTTPClient.get_from_cdn`, which
`discord.Attachment.read` uses too)."""

Refresh = Callable[[str], Awaitable[str | None]]
"""A fresh signed address for an expired one, or None if Discord gives none."""


async def read_files(
    files: Sequence[FileRef], fetch: Fetch, max_text_bytes: int, refresh: Refresh
) -> tuple[Attachment, ...]:
    return tuple([await _read(file, fetch, max_text_bytes, refresh) for file in files])


async def _read(file: FileRef, fetch: Fetch, max_text_bytes: int, refresh: Refresh) -> Attachment:
    named = file.unread()
    limit = bytes_to_read(file, max_text_bytes)
    if not limit or not file.locator:
        return named
    try:
        data = await _download(file.locator, fetch, refresh)
    except READ_ERRORS as exc:
        log.warning("could not read attachment %s: %r", file.name, exc)
        return named
    if file_kind(file.name, file.media_type) == "image":
        return Attachment(file.name, file.media_type, data, file.size)
    return Attachment(file.name, text_type(file.media_type), data[:limit], file.size)


async def _download(url: str, fetch: Fetch, refresh: Refresh) -> bytes:
    try:
        return await fetch(url)
    except discord.NotFound:
        # Most likely the signed address expired (a message kept over a long stop): one
        # fresh address is asked for, and read.
        renewed = await refresh(url)
        if renewed is None:
            raise
        return await fetch(renewed)
