"""Files shared with a message: text read up to a limit, images fetched for Claude.

Slack's file addresses (`url_private`, `url_private_download`) are read with the bot
token in an Authorization header (https://api.slack.com/types/file#auth), which the app
holds at any time: a message kept before a restart can still have its files read (one
deleted meanwhile is only named).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aiohttp

from bot.context import bytes_to_read, file_kind, text_type
from bot.conversation import Attachment, FileRef

log = logging.getLogger(__name__)


async def fetch_attachments(
    session: aiohttp.ClientSession, token: str, files: Sequence[FileRef], max_text_bytes: int
) -> tuple[Attachment, ...]:
    """Download what Claude can use; a file that cannot be fetched is still named."""
    attachments = []
    for file in files:
        limit = bytes_to_read(file, max_text_bytes)
        data = await _download(session, token, file, limit) if limit else b""
        kind = file_kind(file.name, file.media_type)
        shown = text_type(file.media_type) if kind == "text" else file.media_type
        attachments.append(Attachment(file.name, shown, data, file.size or len(data)))
    return tuple(attachments)


async def _download(session: aiohttp.ClientSession, token: str, file: FileRef, limit: int) -> bytes:
    try:
        async with session.get(
            file.locator, headers={"Authorization": f"Bearer {token}"}, allow_redirects=True
        ) as response:
            response.raise_for_status()
            if "text/html" in response.headers.get("Content-Type", ""):
                # Slack answers a missing files:read scope with its login page, not an error.
                log.warning("could not download %s: is the files:read scope granted?", file.name)
                return b""
            return await response.content.read(limit)
    except (aiohttp.ClientError, TimeoutError) as exc:  # the message goes on without it
        log.warning("could not download %s: %s", file.name, exc)
        return b""
