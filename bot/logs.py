"""Logging: readable lines or one JSON object per line, the conversation id on every line
about a conversation, and credentials masked whatever logs them.

The conversation id travels in a context variable that the engine and the flows set while
they work on one conversation (`about`), so a line logged anywhere underneath (the store,
the model client, an adapter's platform call) carries it without being passed the id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

_conversation: ContextVar[str | None] = ContextVar("quitbot_conversation", default=None)

MASK = "[redacted]"
# Shorter values are not masked: replacing every "ab" in the logs would hide more than it
# protects, and no real credential is that short.
_MIN_SECRET = 6

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(conversation)s: %(message)s"


@contextmanager
def about(conversation_id: str | None) -> Iterator[None]:
    """Every line logged inside the block (in this task) names `conversation_id`."""
    token = _conversation.set(conversation_id)
    try:
        yield
    finally:
        _conversation.reset(token)


def current_conversation() -> str | None:
    """The conversation the running code works on, if any."""
    return _conversation.get()


class _Masking:
    """Replaces each credential in a finished line, whichever library logged it."""

    def __init__(self, secrets: Sequence[str]) -> None:
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True)

    def __call__(self, line: str) -> str:
        for secret in self._secrets:
            if secret in line:
                line = line.replace(secret, MASK)
        return line


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [conversation]: message`, credentials masked."""

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        super().__init__(_TEXT_FORMAT)
        self._mask = _Masking(secrets)

    def format(self, record: logging.LogRecord) -> str:
        conversation = _conversation.get()
        record.conversation = f" [{conversation}]" if conversation else ""
        return self._mask(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: at, level, logger, message, conversation_id when there is
    one, and the traceback as `exc`; credentials masked."""

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        super().__init__()
        self._mask = _Masking(secrets)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        conversation = _conversation.get()
        if conversation:
            entry["conversation_id"] = conversation
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        # Masked after encoding too: a secret with characters JSON escapes would otherwise
        # slip through in its escaped form.
        return self._mask(
            json.dumps(
                {k: self._mask(v) if isinstance(v, str) else v for k, v in entry.items()},
                ensure_ascii=False,
            )
        )


_HANDLER = "quitbot"

# Libraries that log one line per HTTP request drown the bot's own lines at INFO.
_CHATTY = ("httpx", "httpx2", "httpcore", "httpcore2", "aiohttp.access")


def configure(
    level: str,
    log_format: Literal["text", "json"],
    secrets: Sequence[str],
    *,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log line to `stream` (stderr) in the chosen format; returns the handler.

    Replaces the handler an earlier call installed (and only that one), so calling it again
    does not duplicate lines and handlers others installed (a test runner's) stay.
    """
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER)
    formatter: logging.Formatter = (
        JsonFormatter(secrets) if log_format == "json" else TextFormatter(secrets)
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for chatty in _CHATTY:
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    return handler
