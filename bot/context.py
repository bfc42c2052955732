"""Turning stored messages into a valid, bounded Messages API context. Pure functions."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterable, Sequence
from typing import Any

from bot.conversation import Attachment, StoredMessage

ApiMessage = dict[str, Any]
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_TEXT_TYPES = frozenset({"application/json", "application/xml", "application/x-yaml"})
_IMAGE_TOKENS = 1_600  # the API's own estimate for a large image
_CHARS_PER_TOKEN = 4


def user_content(text: str, attachments: Sequence[Attachment]) -> list[dict[str, Any]]:
    """A user message's content blocks: text, readable files inline, images as images."""
    blocks: list[dict[str, Any]] = []
    notes: list[str] = []
    for attachment in attachments:
        if attachment.media_type in IMAGE_TYPES and attachment.data:
            data = base64.b64encode(attachment.data).decode("ascii")
            blocks.append(
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": attachment.media_type, "data": data},
                }
            )
        elif _is_text(attachment) and attachment.data:
            body = attachment.data.decode("utf-8", errors="replace")
            cut = " (truncated)" if attachment.size > len(attachment.data) else ""
            notes.append(f'<file name="{attachment.name}"{cut}>\n{body}\n</file>')
        else:
            size = attachment.size or len(attachment.data)
            notes.append(
                f"[The user attached {attachment.name} ({attachment.media_type}, {size:,} bytes);"
                " it was not read.]"
            )
    body = "\n\n".join(part for part in (text.strip(), *notes) if part)
    blocks.append({"type": "text", "text": body or "(empty message)"})
    return blocks


def _is_text(attachment: Attachment) -> bool:
    return attachment.media_type.startswith("text/") or attachment.media_type in _TEXT_TYPES


def build_context(history: Sequence[StoredMessage], budget_tokens: int) -> list[ApiMessage]:
    """The newest in-context messages that fit `budget_tokens`, as a valid API message list.

    Whole stored messages are dropped from the oldest end; the newest one is always kept.
    Refused turns are left out, consecutive same-role messages are merged, and tool blocks
    without their partner (e.g. cut by a branch) are removed.
    """
    kept: list[StoredMessage] = []
    spent = 0
    for message in reversed(history):
        if not message.in_context:
            continue
        cost = estimate_tokens(message.api)
        if kept and spent + cost > budget_tokens:
            break
        kept.append(message)
        spent += cost
    kept.reverse()
    flat = [api for message in kept for api in message.api]
    return _valid(_merge(flat))


def estimate_tokens(messages: Iterable[ApiMessage]) -> int:
    """A cheap, slightly generous token estimate (about four characters a token)."""
    total = 0
    for message in messages:
        for block in message.get("content", []):
            total += _block_tokens(block)
    return total


def _block_tokens(block: dict[str, Any]) -> int:
    kind = block.get("type")
    if kind == "text":
        return len(block.get("text", "")) // _CHARS_PER_TOKEN + 1
    if kind == "image":
        return _IMAGE_TOKENS
    if kind == "tool_result":
        content = block.get("content", "")
        size = len(content) if isinstance(content, str) else len(json.dumps(content))
        return size // _CHARS_PER_TOKEN + 10
    return len(json.dumps(block)) // _CHARS_PER_TOKEN


def _merge(messages: Iterable[ApiMessage]) -> list[ApiMessage]:
    merged: list[ApiMessage] = []
    for message in messages:
        content = list(message.get("content", []))
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1]["content"] = _tool_results_first(merged[-1]["content"] + content)
        else:
            merged.append({"role": message["role"], "content": content})
    return merged


def _tool_results_first(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results = [b for b in blocks if b.get("type") == "tool_result"]
    return results + [b for b in blocks if b.get("type") != "tool_result"]


def _valid(messages: list[ApiMessage]) -> list[ApiMessage]:
    """Drop unpaired tool blocks and empty messages; start with a user message."""
    out: list[ApiMessage] = []
    for index, message in enumerate(messages):
        content = message["content"]
        if message["role"] == "assistant" and _has(content, "tool_use"):
            following = messages[index + 1] if index + 1 < len(messages) else None
            answered = _ids(following, "tool_result", "tool_use_id")
            content = [b for b in content if b.get("type") != "tool_use" or b.get("id") in answered]
        elif message["role"] == "user" and _has(content, "tool_result"):
            previous = out[-1] if out and out[-1]["role"] == "assistant" else None
            asked = _ids(previous, "tool_use", "id")
            content = [
                b
                for b in content
                if b.get("type") != "tool_result" or b.get("tool_use_id") in asked
            ]
        if content:
            out.append({"role": message["role"], "content": content})
    while out and out[0]["role"] != "user":
        out.pop(0)
    return _merge(out) if _has_adjacent_roles(out) else out


def _has(content: list[dict[str, Any]], kind: str) -> bool:
    return any(block.get("type") == kind for block in content)


def _ids(message: ApiMessage | None, kind: str, field: str) -> set[str]:
    if message is None:
        return set()
    return {str(b.get(field)) for b in message["content"] if b.get("type") == kind}


def _has_adjacent_roles(messages: list[ApiMessage]) -> bool:
    return any(a["role"] == b["role"] for a, b in itertools.pairwise(messages))
