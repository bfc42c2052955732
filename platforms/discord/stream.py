"""Streaming helpers, pure and clock-injected: split text for Discord, pace the edits.

Discord caps a message at 2,000 characters and rate-limits edits (about five per five
seconds per channel), so a streamed reply is one message edited at most once per
`interval`, continued in new messages past the limit. A code block cut by a split is
closed at the end of one message and reopened (same language) at the start of the next,
so every message renders on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MESSAGE_LIMIT = 2000
EDIT_INTERVAL = 1.0
FENCE = "```"
_CLOSER = "\n" + FENCE


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Cut `text` into messages of at most `limit` characters without breaking code blocks."""
    chunks: list[str] = []
    opener = ""  # the fence line of a code block left open by the previous chunk
    pos = 0
    while pos < len(text):
        prefix = opener + "\n" if opener else ""
        if len(prefix) + len(_CLOSER) >= limit:  # a fence line too long to repeat
            prefix = ""
        end = _chunk_end(text, pos, limit - len(prefix))
        if end < len(text) and _open_fence_after(prefix + text[pos:end]):
            end = _chunk_end(text, pos, limit - len(prefix) - len(_CLOSER))
        body = prefix + text[pos:end]
        opener = _open_fence_after(body)
        if opener and end < len(text):
            body = body.rstrip("\n") + _CLOSER
        if body.strip():
            chunks.append(body)
        pos = end
    return chunks


def _chunk_end(text: str, start: int, room: int) -> int:
    """Where to end a chunk: after the last newline, else the last space, else hard."""
    if len(text) - start <= room:
        return len(text)
    window = text[start : start + room]
    for sep in ("\n", " "):
        at = window.rfind(sep)
        if at > 0:
            return start + at + 1
    end = start + room
    while end > start + 1 and text[end - 1] == "`":  # never cut a fence in two
        end -= 1
    return end


def _open_fence_after(text: str) -> str:
    """The fence line (e.g. "```py") of a code block still open at the end of `text`."""
    opener = ""
    for line in text.split("\n"):
        if line.lstrip().count(FENCE) % 2 == 1:
            opener = "" if opener else line.strip()
    return opener


@dataclass(frozen=True, slots=True)
class Send:
    """Post a new message with this content."""

    content: str


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace the content of the `index`-th message of this reply."""

    index: int
    content: str


Op = Send | Edit


class ThrottledEditor:
    """Decides which sends and edits a growing reply needs, at most once per `interval`.

    The first text goes out at once (the reply should appear quickly); later growth is
    batched. `finish` always brings the messages up to date with the final text.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        interval: float = EDIT_INTERVAL,
        limit: int = MESSAGE_LIMIT,
    ) -> None:
        self._clock = clock
        self._interval = interval
        self._limit = limit
        self._shown: list[str] = []
        self._last: float | None = None

    @property
    def shown(self) -> tuple[str, ...]:
        return tuple(self._shown)

    def update(self, text: str) -> list[Op]:
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return []
        ops = self._plan(text)
        if ops:
            self._last = now
        return ops

    def finish(self, text: str) -> list[Op]:
        return self._plan(text)

    def _plan(self, text: str) -> list[Op]:
        wanted = split_message(text, self._limit)
        ops: list[Op] = []
        for index, content in enumerate(wanted):
            if index >= len(self._shown):
                ops.append(Send(content))
                self._shown.append(content)
            elif self._shown[index] != content:
                ops.append(Edit(index, content))
                self._shown[index] = content
        return ops
